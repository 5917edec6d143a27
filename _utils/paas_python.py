"""
The master's wait until Salt's Python on each minion runs with the platform's libraries
loaded, for ``salt-run paas_python.ready`` and the orchestrations' ``paas_python.ready``
step alike.

The ``salt_python`` state installs what the modules import and has systemd restart a
minion whose Python changed. This asks each minion ``paas_python.ready`` until all say
yes: every pin installed, protobuf's setting in effect, the modules that need them
loaded, the daemon started after its libraries changed. A minion that is restarting does
not answer; it is asked again, each time with short timeouts (a job cut off by the
restart would otherwise hold the master for the whole of ``gather_job_timeout``).

:depends: the ``paas_master`` utils module, handed in by the caller (``uses``)
"""

from __future__ import annotations

import time

from salt.exceptions import CommandExecutionError

LOCK = "salt://salt_python/requirements-minion.lock"
# Seconds a minion has to answer one ask, and to say it is still on the job.
ASK_TIMEOUT = 5
JOB_CHECK_TIMEOUT = 3
INTERVAL = 1
USES = ("paas_master.minions", "paas_master.answer")


def uses() -> tuple[str, ...]:
    """The utils functions ``ready`` calls, which the caller hands in as
    ``{name: its __utils__[name]}`` (a utils module gets no ``__utils__`` of its own)."""
    return USES


def ready(opts: dict, utils: dict, minions: list | str, lock: str = LOCK, timeout: int = 180):
    """The ``minions`` (a list, or ids separated by commas), once every one runs with the
    lock's libraries loaded; raises naming those that do not after ``timeout`` s."""
    wanted = minions.split(",") if isinstance(minions, str) else list(minions)
    pending, last = list(wanted), {}
    deadline = time.monotonic() + timeout
    with utils["paas_master.minions"](opts) as asked:
        while True:
            replies = asked.run(
                pending,
                "paas_python.ready",
                [lock],
                timeout=ASK_TIMEOUT,
                gather_job_timeout=JOB_CHECK_TIMEOUT,
            )
            for minion, reply in replies.items():
                if isinstance(reply, dict) and not reply.get("retcode"):
                    pending.remove(minion)
                else:
                    last[minion] = utils["paas_master.answer"](reply)
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(INTERVAL)
    if pending:
        raise CommandExecutionError(
            f"Salt's Python is not ready after {timeout} s on "
            + "; ".join(f"{minion}: {last[minion]}" for minion in pending)
        )
    return wanted
