"""
A lock file that one process holds while it works: created with ``O_EXCL``, renewed by
its holder while it works, and stale once it was not renewed within its expiry or its
holder (a process on this host, told from a later one with the same pid by its start
time) is gone: a master restarted in the middle of the work leaves a lock nobody will
release.

The ``paas_dr`` runner holds its remediation lock with it (``__utils__``); what the lock
file names besides its holder (the remediation), and what clearing a stale one records,
is the runner's.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time

# The holder renews its lock this often (or every third of its expiry, if shorter).
RENEW_S = 30


def new_record(owner: str, fields: dict, expiry_s: float, now: float) -> dict:
    """The lock ``owner`` takes at ``now`` for ``expiry_s`` seconds, with ``fields`` (what
    it holds the lock for), naming this process as its holder."""
    return {
        "owner": owner,
        **fields,
        "taken": now,
        "renewed": now,
        "expires": now + expiry_s,
        "expiry_s": expiry_s,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_started": process_started(os.getpid()),
        "took_over": None,
    }


def create(path: str, record: dict) -> None:
    """Write ``record`` to ``path``, which must not exist (``FileExistsError``)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(record, handle)
        handle.flush()
        os.fsync(handle.fileno())


def is_stale(record: dict, now: float) -> bool:
    """Not renewed within its expiry, or its holder (a process on this host) is gone: a
    master restarted in the middle of a remediation leaves a lock nobody will release."""
    if now >= float(record.get("expires", 0)):
        return True
    if record.get("host") != socket.gethostname() or not record.get("pid"):
        return False
    started = process_started(int(record["pid"]))
    return started is None or started != record.get("pid_started")


def why_stale(record: dict) -> str:
    """Why a stale lock is stale: its holder stopped renewing it, or is gone."""
    with_holder = process_started(int(record["pid"])) if record.get("pid") else None
    if with_holder is not None and with_holder == record.get("pid_started"):
        return f"its holder stopped renewing the lock at {record.get('renewed')}"
    return (
        f"its holder (pid {record.get('pid')} on {record.get('host')}) is gone: the master "
        "restarted or the process died during it"
    )


def process_started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (from /proc), which tells a
    process from a later one with the same pid; None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (2nd field) may hold spaces and parentheses; it ends at the last ")".
    return stat.rsplit(")", 1)[1].split()[19]


@contextlib.contextmanager
def renewing(renew, expiry_s: float, name: str):
    """While the block runs, call ``renew(now, expires)`` every RENEW_S (or every third
    of ``expiry_s``), in a thread named ``name``, until it returns False (the lock is no
    longer the holder's): a holder that works longer than the expiry keeps its lock."""
    every = min(RENEW_S, expiry_s / 3)
    stopping = threading.Event()

    def run():
        while not stopping.wait(every):
            now = time.time()
            if not renew(now, now + expiry_s):
                return

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join()
