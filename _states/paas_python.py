"""
Put the libraries the platform's modules import into Salt's own Python on this minion.

``paas_python.installed`` is the step of every orchestration after the modules are
synced: it installs ``requirements-minion.lock`` (pinned, without dependencies: those
are Salt's, and it checks that Salt's Python satisfies them) from the source the topology
names (``paas:python``: an index, or a wheelhouse), puts the protobuf ``.pth`` file in
place, and, when anything changed, has systemd restart the minion two seconds later so
that the daemon loads them. ``paas_python.ready``, the orchestrations' next step, runs
on the master and waits until every minion runs with them loaded (the ``paas_python``
utils module's wait, which ``salt-run paas_python.ready`` runs too); it changes nothing.

:depends: on a minion, the ``paas_python`` execution module, Salt's ``pip`` module and
    systemd; on the master, the ``paas_python`` and ``paas_master`` utils modules
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from salt.exceptions import CommandExecutionError

__virtualname__ = "paas_python"

RESTART_DELAY_SECONDS = 2
# The minion's unit, as Salt's packages and the lab name it.
UNIT = "salt-minion.service"
PROTOBUF_SETTING = "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"
NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")


def __virtual__():
    if "paas_python.pins" not in __salt__ and "paas_python.ready" not in __utils__:
        return (False, "paas_python: neither the paas_python module nor its utils is loaded")
    return __virtualname__


def _source(index_url: str, find_links: str) -> str:
    return f"the wheelhouse {find_links}" if find_links else f"the index {index_url}"


def _plain_http_host(url: str) -> str | None:
    parts = urlsplit(url)
    return parts.hostname if parts.scheme == "http" else None


def _pip_failure(node: str, reply: dict, source: str, wanted: list[str]) -> str:
    output = f"{reply.get('stderr', '')}\n{reply.get('stdout', '')}"
    missing = NOT_FOUND.search(output)
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    detail = errors[-1] if errors else (output.strip().splitlines() or ["no output"])[-1]
    if missing:
        return (
            f"{node}: {missing.group(1)} is not in {source} (pip: {detail}); nothing was "
            "installed into Salt's Python"
        )
    return f"{node}: pip could not install {', '.join(wanted)} from {source}: {detail}"


def installed(
    name: str,
    lock: str,
    pth: str,
    index_url: str = "",
    find_links: str = "",
) -> dict:
    """
    Make Salt's Python hold exactly the lock's pins and the ``.pth`` file, and restart
    the minion when either changed.

    name
        A label for the step.
    lock
        ``salt://`` URL of the lock (``name==version`` lines).
    pth
        ``salt://`` URL of the ``.pth`` file for Salt's site-packages.
    index_url
        The package index to install from.
    find_links
        A wheelhouse (a directory on the node, or the URL of a page of links): when set,
        pip reads it and no index.
    .. code-block:: yaml

        paas-salt-python:
          paas_python.installed:
            - lock: salt://salt_python/requirements-minion.lock
            - pth: salt://salt_python/paas-protobuf-python.pth
            - find_links: http://198.18.1.1:8081/wheels/
    """
    node = __grains__["id"]
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    source = _source(index_url, find_links)
    differing = __salt__["paas_python.differing"](lock)
    pth_text = __salt__["cp.get_file_str"](pth)
    if pth_text is None:
        ret.update(result=False, comment=f"{node}: the master serves no {pth}")
        return ret
    pth_path = os.path.join(__salt__["paas_python.site_packages"](), os.path.basename(pth))
    try:
        with open(pth_path, encoding="utf-8") as handle:
            pth_current = handle.read()
    except FileNotFoundError:
        pth_current = None
    planned = {}
    if differing:
        planned["installed"] = {
            pkg: {"old": pin["found"], "new": pin["wanted"]} for pkg, pin in differing.items()
        }
    if pth_current != pth_text:
        planned["pth"] = pth_path
    # A daemon that started before the .pth was in place (or whose restart never came)
    # runs without it: it restarts too, though nothing else changes.
    if planned or os.environ.get(PROTOBUF_SETTING) != "python":
        planned["restart"] = f"{UNIT} in {RESTART_DELAY_SECONDS} s"
    if __opts__["test"]:
        ret["changes"] = planned
        ret["result"] = None if planned else True
        ret["comment"] = (
            f"Salt's Python would get {', '.join(planned)} from {source}"
            if planned
            else "Salt's Python has every pin of the lock and the .pth file"
        )
        return ret
    if differing:
        wanted = [f"{pkg}=={pin['wanted']}" for pkg, pin in sorted(differing.items())]
        try:
            reply = __salt__["pip.install"](
                pkgs=wanted,
                no_deps=True,
                # pip reads the wheelhouse alone, or the index alone.
                index_url=None if find_links else index_url or None,
                find_links=find_links or None,
                no_index=bool(find_links),
                # pip ignores a plain-http source unless told to trust its host: the
                # topology naming one is the operator's word for it.
                trusted_host=_plain_http_host(find_links or index_url),
                disable_version_check=True,
                # Byte-compiling every file of the kubernetes client is most of an
                # install's time, and most of them are never imported on a node.
                extra_args=["--no-compile"],
            )
        except CommandExecutionError as err:
            ret.update(result=False, comment=f"{node}: cannot run pip for Salt's Python: {err}")
            return ret
        if reply.get("retcode"):
            ret.update(result=False, comment=_pip_failure(node, reply, source, wanted))
            return ret
        still = __salt__["paas_python.differing"](lock)
        if still:
            ret.update(
                result=False,
                comment=f"{node}: pip ran and Salt's Python still differs from the lock: {still}",
            )
            return ret
    unmet = __salt__["paas_python.unmet"](lock)
    if unmet:
        ret.update(
            result=False,
            changes={k: v for k, v in planned.items() if k == "installed"},
            comment=(
                f"{node}: Salt's Python ({__salt__['paas_python.python']()}) does not satisfy "
                "what the lock's libraries need (a Salt too old for them?): " + "; ".join(unmet)
            ),
        )
        return ret
    if pth_current != pth_text:
        with open(pth_path, "w", encoding="utf-8") as handle:
            handle.write(pth_text)
    if planned:
        marker = __salt__["paas_python.restart_marker"]()
        with open(marker, "w", encoding="utf-8") as handle:
            handle.write(f"{UNIT}\n")
        reply = __salt__["cmd.run_all"](
            [
                "systemd-run", f"--on-active={RESTART_DELAY_SECONDS}",
                "--timer-property=AccuracySec=100ms", "--collect",
                "--description=salt-minion restart: its Python's libraries changed",
                "systemctl", "restart", UNIT,
            ],
            python_shell=False,
        )  # fmt: skip
        if reply["retcode"]:
            ret.update(
                result=False,
                changes=planned,
                comment=f"{node}: cannot have systemd restart {UNIT}: {reply['stderr'].strip()}",
            )
            return ret
    ret["changes"] = planned
    got = [key for key in planned if key != "restart"]
    if got:
        ret["comment"] = (
            f"Salt's Python got {', '.join(got)} from {source}; the minion restarts in "
            f"{RESTART_DELAY_SECONDS} s to load them"
        )
    elif planned:
        ret["comment"] = (
            f"The minion restarts in {RESTART_DELAY_SECONDS} s: it runs without "
            f"{PROTOBUF_SETTING}=python (it started before the .pth was in place)"
        )
    else:
        ret["comment"] = "Salt's Python has every pin of the lock and the .pth file"
    return ret


def ready(name: str, minions: list, timeout: int = 180) -> dict:
    """
    Every one of ``minions`` runs with the lock's libraries loaded: the master asks each
    until it does (a restarting minion answers again after a few seconds), and fails
    naming those that do not, with their last answer, after ``timeout`` seconds. It
    changes nothing, in test mode too.

    name
        A label for the step.
    minions
        The minions' ids.

    .. code-block:: yaml

        paas-cluster-salt-python:
          paas_python.ready:
            - minions: [gw1, gw2, etcd1]
    """
    uses = {function: __utils__[function] for function in __utils__["paas_python.uses"]()}
    try:
        found = __utils__["paas_python.ready"](__opts__, uses, minions, timeout=timeout)
    except CommandExecutionError as err:
        return {"name": name, "result": False, "changes": {}, "comment": str(err)}
    return {
        "name": name,
        "result": True,
        "changes": {},
        "comment": f"Salt's Python runs with the platform's libraries on {len(found)} minions",
    }
