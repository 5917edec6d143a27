"""
Salt's own Python on this minion: the libraries the platform's modules import.

The platform's modules need etcd3 and kubernetes (and what they need beyond Salt),
pinned in ``requirements-minion.lock``, and the one-line ``.pth`` file that makes this
Python run protobuf's pure-Python implementation for etcd3
(docs/decisions/0001-protobuf-python-implementation.md). The ``paas_python.installed``
state puts them in place; these functions say what is missing and whether the running
minion has loaded them.

"Salt's own Python" is the one this minion runs: Salt's onedir (where Salt's ``pip``
module uses ``salt-pip``) or a virtualenv (where it uses ``python -m pip`` of
``sys.executable``). A ``.pth`` file and a newly installed library take effect when
the interpreter starts, so the minion restarts once after a change; ``ready`` tells the
restarted minion from the one that installed.

:depends: packaging and psutil (both Salt's own dependencies)
"""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
from importlib.metadata import PackageNotFoundError, distribution

import psutil
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from salt.exceptions import CommandExecutionError

__virtualname__ = "paas_python"

PROTOBUF_SETTING = "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"
PTH_NAME = "paas-protobuf-python.pth"
# A module of the platform's that loads only with each library in place and protobuf's
# pure-Python implementation running: what ``ready`` asks the loader for.
LOADED_BY = {
    "etcd3": "etcd_cluster.settings",
    "kubernetes": "paas_control_plane.status",
}
RESTART_MARKER = "paas_python.restart"


def __virtual__():
    return __virtualname__


def pins(lock: str) -> dict[str, str]:
    """
    Return the pins of a lock (``name==version`` lines, ``#`` comments), by name.

    lock
        A ``salt://`` URL of the lock, or a path on this minion.

    CLI Example:

    .. code-block:: bash

        salt-call paas_python.pins salt://salt_python/requirements-minion.lock
    """
    text = __salt__["cp.get_file_str"](lock) if lock.startswith("salt://") else None
    if text is None and not lock.startswith("salt://"):
        try:
            with open(lock, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as err:
            raise CommandExecutionError(f"paas_python: cannot read the lock {lock}: {err}") from err
    if text is None:
        raise CommandExecutionError(f"paas_python: the master serves no {lock}")
    pinned = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement as err:
            raise CommandExecutionError(f"paas_python: {lock}, line {number}: {err}") from err
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            raise CommandExecutionError(
                f"paas_python: {lock}, line {number}: {line!r} is not pinned (name==version)"
            )
        pinned[canonicalize_name(requirement.name)] = specifiers[0].version
    return pinned


def _version(name: str) -> str | None:
    try:
        return distribution(name).version
    except PackageNotFoundError:
        return None


def differing(lock: str) -> dict[str, dict]:
    """
    Return the lock's libraries that Salt's Python lacks or has at another version:
    ``{name: {"wanted": version, "found": version or None}}``.

    CLI Example:

    .. code-block:: bash

        salt-call paas_python.differing salt://salt_python/requirements-minion.lock
    """
    importlib.invalidate_caches()
    found = {name: _version(name) for name in pins(lock)}
    return {
        name: {"wanted": wanted, "found": found[name]}
        for name, wanted in pins(lock).items()
        if found[name] != wanted
    }


def unmet(lock: str) -> list[str]:
    """
    Return what the lock's libraries require that Salt's Python does not satisfy, one
    message each (the lock is installed without its dependencies: those are Salt's).

    CLI Example:

    .. code-block:: bash

        salt-call paas_python.unmet salt://salt_python/requirements-minion.lock
    """
    importlib.invalidate_caches()
    messages = []
    for name, version in pins(lock).items():
        if _version(name) != version:
            continue
        for line in distribution(name).requires or []:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            have = _version(requirement.name)
            if have is None:
                messages.append(f"{name} {version} needs {requirement}, which is not installed")
            elif not requirement.specifier.contains(have, prereleases=True):
                messages.append(f"{name} {version} needs {requirement}, and {have} is installed")
    return messages


def site_packages() -> str:
    """
    Return the site-packages directory of Salt's Python, where the ``.pth`` file goes.

    CLI Example:

    .. code-block:: bash

        salt-call paas_python.site_packages
    """
    return sysconfig.get_paths()["purelib"]


def python() -> str:
    """
    Return the interpreter this minion runs on.

    CLI Example:

    .. code-block:: bash

        salt-call paas_python.python
    """
    return sys.executable


def restart_marker() -> str:
    """
    Return the file whose time says when this minion was last asked to restart for its
    libraries (``ready`` wants a process started after it).

    CLI Example:

    .. code-block:: bash

        salt-call paas_python.restart_marker
    """
    return os.path.join(__opts__["cachedir"], RESTART_MARKER)


def _interpreter_started() -> float:
    """When this Python started: a minion runs each job in a process forked from its
    daemon, which started the interpreter; the furthest ancestor running the same
    executable is that daemon (or this process, for salt-call)."""
    process = psutil.Process()
    started = process.create_time()
    executable = process.exe()
    for parent in process.parents():
        try:
            if parent.exe() != executable:
                break
            started = parent.create_time()
        except psutil.Error:
            break
    return started


def ready(lock: str) -> dict:
    """
    Succeed when this running minion has the lock's libraries loaded: every pin
    installed, protobuf's pure-Python implementation in effect, the platform's modules
    that need the libraries loaded, the process started after the last restart the
    ``paas_python.installed`` state asked for and, after that restart, its pillar fetched
    from the master as a state run fetches it (the restart's marker is then removed).
    Fails naming what is not yet so.

    CLI Example:

    .. code-block:: bash

        salt-call paas_python.ready salt://salt_python/requirements-minion.lock
    """
    problems = []
    marker = restart_marker()
    restarted = os.path.exists(marker)
    if restarted and _interpreter_started() <= os.path.getmtime(marker):
        problems.append("this minion has not restarted since its libraries changed")
    for name, pin in differing(lock).items():
        problems.append(f"{name}: {pin['found'] or 'not installed'}, the lock pins {pin['wanted']}")
    if os.environ.get(PROTOBUF_SETTING) != "python":
        problems.append(
            f"{PROTOBUF_SETTING} is not 'python' in the running minion ({PTH_NAME} is not in "
            f"{site_packages()}, or the minion started before it was)"
        )
    for library, function in LOADED_BY.items():
        if function not in __salt__:
            reason = __salt__.missing_fun_string(function)
            problems.append(f"{function} (needs {library}) is not loaded: {reason}")
    # After a restart, what the next step's state runs do first: sign in to the master
    # again and fetch the pillar. A master that many restarted minions sign in to at once
    # can refuse one for a moment (Salt 3008: "Corrupt or missing public key ...
    # 'localfs_key.fetch'"); asked again, it answers.
    if restarted and not problems:
        try:
            __salt__["pillar.items"]()
        except Exception as err:  # whatever keeps this minion from its pillar
            problems.append(f"cannot fetch its pillar from the master: {err}")
    if problems:
        raise CommandExecutionError(
            f"{__grains__['id']}: Salt's Python ({sys.executable}) is not ready: "
            + "; ".join(problems)
        )
    if restarted:
        # The restart it asked for is done: later runs need not ask again.
        os.remove(marker)
    return {"python": sys.executable, "pins": len(pins(lock))}
