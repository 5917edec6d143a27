"""
What a machine is, measured before the platform changes anything on it.

``paas_preflight.facts`` measures what the master asks of this node for its roles (the
``paas_preflight`` utils module's ``asks``, one part per node) and changes nothing: the
OS release, Salt's version, swap, cgroup v2, kernel modules, who listens on the roles'
ports, time synchronization and this clock, etcd's disk (fdatasync latency, as etcd's
hardware guidance measures it, and free space), what the topology's names resolve to,
and whether the package and wheel sources answer. The master judges the answers.

:depends: the standard library, ``ss`` (iproute2), ``timedatectl`` and ``modprobe``
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import salt.version

__virtualname__ = "paas_preflight"

SOURCE_TIMEOUT = 5
# etcd's hardware guidance measures its disk with writes of 2300 bytes, each followed by
# fdatasync (fio --fdatasync=1 --bs=2300): as many here, in a scratch file.
FDATASYNC_WRITES = 100
FDATASYNC_BYTES = 2300
_LISTENER = re.compile(r'\("([^"]+)",pid=(\d+)')


def __virtual__():
    return __virtualname__


def facts(asked: dict) -> dict:
    """
    Measure what ``asked`` (by node id; this node reads its own part) names, changing
    nothing on the machine but a scratch file, removed, for etcd's disk.

    CLI Example:

    .. code-block:: bash

        salt-run paas.preflight
    """
    mine = asked[__grains__["id"]]
    started = time.time()
    return {
        "time": started,
        "os": _os_release(),
        "salt": salt.version.__version__,
        "swap": _swaps(),
        "cgroup_v2": os.path.exists("/sys/fs/cgroup/cgroup.controllers"),
        "modules": {
            module: _module_available(module, shown_by)
            for module, shown_by in mine["modules"].items()
        },
        "listeners": _listeners({int(port) for port in mine["ports"]}),
        "time_sync": _time_sync(),
        "disk": _disk(mine["disk"]["path"]) if mine.get("disk") else None,
        "names": {name: _resolve(name) for name in mine["names"]},
        "sources": {source: _reach(source) for source in mine["sources"]},
    }


def _os_release() -> dict:
    found = {}
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                if key:
                    found[key.lower()] = value.strip('"')
    except OSError:
        pass
    return found


def _swaps() -> list[str]:
    try:
        with open("/proc/swaps", encoding="utf-8") as handle:
            lines = handle.read().splitlines()[1:]
    except OSError:
        return []
    return [line.split()[0] for line in lines if line.strip()]


def _module_available(module: str, shown_by: dict) -> bool:
    """In the kernel (loaded, or built in as ``shown_by`` tells), or loadable."""
    if os.path.isdir(f"/sys/module/{module}"):
        return True
    if shown_by.get("path") and os.path.exists(shown_by["path"]):
        return True
    if shown_by.get("filesystem"):
        try:
            with open("/proc/filesystems", encoding="utf-8") as handle:
                if shown_by["filesystem"] in handle.read().split():
                    return True
        except OSError:
            pass
    try:
        probe = subprocess.run(
            ["modprobe", "--dry-run", "--quiet", module], check=False, capture_output=True
        )
    except FileNotFoundError:
        return False
    return probe.returncode == 0


def _listeners(ports: set[int]) -> dict[str, list[dict]]:
    """Who listens on each of ``ports`` (TCP), by process name, as ``ss`` sees them."""
    result = subprocess.run(
        ["ss", "--no-header", "--listening", "--tcp", "--numeric", "--processes"],
        check=False,
        capture_output=True,
        text=True,
    )
    found: dict[str, list[dict]] = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        port = fields[3].rpartition(":")[2]
        if not port.isdigit() or int(port) not in ports:
            continue
        holders = found.setdefault(port, [])
        for name, pid in _LISTENER.findall(line):
            holder = {"name": name, "pid": int(pid)}
            if holder not in holders:
                holders.append(holder)
    return found


def _time_sync() -> str:
    try:
        result = subprocess.run(
            ["timedatectl", "show", "--property=NTPSynchronized", "--value"],
            check=False,
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        return "unknown (no timedatectl)"
    return result.stdout.strip() or f"unknown ({result.stderr.strip() or 'no answer'})"


def _existing(path: str) -> str:
    while not os.path.isdir(path):
        path = os.path.dirname(path) or "/"
    return path


def _disk(path: str) -> dict:
    where = _existing(path)
    usage = os.statvfs(where)
    measured = {"path": where, "free_bytes": usage.f_bavail * usage.f_frsize}
    block = os.urandom(FDATASYNC_BYTES)
    latencies = []
    try:
        with tempfile.TemporaryFile(dir=where, prefix=".paas-preflight-") as scratch:
            for _ in range(FDATASYNC_WRITES):
                scratch.write(block)
                scratch.flush()
                began = time.perf_counter()
                os.fdatasync(scratch.fileno())
                latencies.append((time.perf_counter() - began) * 1000)
    except OSError as err:
        measured["error"] = f"cannot write and fdatasync under {where}: {err}"
        return measured
    measured["fdatasync_p99_ms"] = statistics.quantiles(latencies, n=100)[98]
    return measured


def _resolve(name: str) -> list[str]:
    try:
        answers = socket.getaddrinfo(name, None, family=socket.AF_INET)
    except OSError:
        return []
    return sorted({answer[4][0] for answer in answers})


def _reach(source: str) -> str:
    if source.startswith("/"):
        return "ok" if os.path.isdir(source) else "no such directory"
    try:
        with urllib.request.urlopen(source, timeout=SOURCE_TIMEOUT) as response:
            response.read(1)
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return str(getattr(err, "reason", err))
    return "ok"
