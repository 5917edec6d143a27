"""
The master's side of the platform, shared by its runners: the pillar the master's own
minion (the one that runs orchestrations) sees.
"""

from __future__ import annotations

import salt.pillar


def pillar(opts: dict) -> dict:
    """The compiled pillar of the master's own minion, with the runner's ``opts``."""
    compiler = salt.pillar.get_pillar(opts, {}, opts["id"], saltenv=opts.get("saltenv") or "base")
    try:
        return compiler.compile_pillar()
    finally:
        compiler.destroy()
