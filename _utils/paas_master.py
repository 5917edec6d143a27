"""
The master's side of the platform, shared by its runners: the pillar the master's own
minion (the one that runs orchestrations) sees, and a clean stderr for ``salt-run``.
"""

from __future__ import annotations

import logging

import salt.pillar

# What salt-run itself leaves unclosed when it exits (saltstack/salt#70174, Salt 3008):
# its Runner, that Runner's MasterMinion and an event publisher. Logger and message.
_SALT_RUN_LEAKS = {
    "salt.runner": "unclosed Runner <salt.runner.Runner object",
    "salt.minion": "unclosed MasterMinion <salt.minion.MasterMinion object",
    "salt.utils.asynchronous": (
        "unclosed SyncWrapper for cls=<class 'salt.transport.tcp._TCPPubServerPublisher'>"
    ),
}


def pillar(opts: dict) -> dict:
    """The compiled pillar of the master's own minion, with the runner's ``opts``."""
    compiler = salt.pillar.get_pillar(opts, {}, opts["id"], saltenv=opts.get("saltenv") or "base")
    try:
        return compiler.compile_pillar()
    finally:
        compiler.destroy()


class _SaltRunLeakFilter(logging.Filter):
    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.message)


def quiet_salt_run_teardown(opts: dict, runner: str) -> None:
    """Drop the warnings salt-run logs about its own objects as it exits (every salt-run
    prints them, whatever it ran), so that an operator, a monitoring check or a cron job
    running one of the platform's runners gets a clean stderr. Only in salt-run running
    ``runner`` (its opts name the function), only those messages."""
    if not str(opts.get("fun", "")).startswith(f"{runner}."):
        return
    for name, message in _SALT_RUN_LEAKS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(found, _SaltRunLeakFilter) for found in logger.filters):
            logger.addFilter(_SaltRunLeakFilter(message))
