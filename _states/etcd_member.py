"""
etcd membership as a state: this node is (or is not) a voting member of the cluster.

``etcd_member.present`` runs on the node that is to be a member. A node that is not a
member is added as a learner, its old data wiped (a re-used data directory is how "member
ID mismatch" happens), started with the initial cluster etcd gave for it, and promoted
once it has caught up: quorum never depends on a member that has not started. The first
etcd node of the topology bootstraps the cluster when no member exists anywhere.
``etcd_member.absent`` removes a member. Both refuse a change that would cost quorum and
say what they would do under ``test=True`` without doing it.

:depends: the ``etcd_cluster`` execution module
"""

from __future__ import annotations

import os
import shutil
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "etcd_member"


def __virtual__():
    if "etcd_cluster.lookup_member" not in __salt__:
        return (False, "etcd_member: the etcd_cluster execution module is not loaded")
    return __virtualname__


def _ret(name: str) -> dict:
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _has_data(settings: dict) -> bool:
    return os.path.isdir(os.path.join(settings["data_dir"], "member"))


def present(name: str, bootstrap: bool = False, timeout: int = 120) -> dict:
    """
    Make this node, ``name`` (its minion id), a healthy voting member of the cluster.

    name
        This node's id; the state only manages the node it runs on.

    bootstrap
        Allow this node to start a new cluster when no member answers anywhere, and only
        when it is the first etcd node of the topology and holds no data. Without it, a
        cluster that cannot be reached is an error, never a reason to start another one.

    timeout
        Seconds to wait for the member to start, catch up and be healthy.
    """
    if name != __opts__["id"]:
        return {
            **_ret(name),
            "result": False,
            "comment": f"etcd_member.present manages the node it runs on "
            f"({__opts__['id']}), not {name}",
        }
    try:
        return _present(_ret(name), name, bootstrap, timeout)
    except CommandExecutionError as err:
        return {**_ret(name), "result": False, "comment": str(err)}


def _present(ret: dict, name: str, bootstrap: bool, timeout: int) -> dict:
    settings = __salt__["etcd_cluster.settings"]()
    etcd_nodes = list(__salt__["etcd_cluster.endpoints"]())
    if name not in etcd_nodes:
        return {**ret, "result": False, "comment": f"{name} is not an etcd node of the topology"}
    try:
        mine = __salt__["etcd_cluster.lookup_member"](name)
    except CommandExecutionError as err:
        return _bootstrap(
            ret, settings, etcd_nodes, bootstrap=bootstrap, timeout=timeout, error=err
        )

    if mine and mine["started"] and not mine["learner"]:
        if not _has_data(settings):
            # The cluster knows this node, but its data is gone (a rebuilt machine):
            # it can only come back as a new member.
            return _replace(ret, settings, name, timeout)
        if not __salt__["service.status"](settings["service"]):
            ret["changes"] = {"service": {"old": "stopped", "new": "running"}}
            if __opts__["test"]:
                return {**ret, "result": None, "comment": f"{name}'s etcd would be started."}
            _service("start", settings)
            return _healthy(ret, name, timeout, "was started and is a healthy voting member")
        return _healthy(ret, name, timeout, "is a healthy voting member")
    if mine:
        return _finish_join(ret, settings, name, mine, timeout)
    return _join(ret, settings, name, timeout)


def mod_watch(name: str, timeout: int = 120, **kwargs) -> dict:
    """
    Restart this member because its configuration changed, and wait until it is healthy
    again. Salt calls this only when ``present`` changed nothing itself: a member that
    just joined already runs with the new configuration. Run one node at a time (the
    orchestration's batch of 1), so that a restart never costs quorum.
    """
    ret = _ret(name)
    settings = __salt__["etcd_cluster.settings"]()
    ret["changes"] = {"restarted": {"old": "previous configuration", "new": "current one"}}
    if __opts__["test"]:
        return {**ret, "result": None, "comment": f"{name}'s etcd would be restarted."}
    try:
        _service("restart", settings)
    except CommandExecutionError as err:
        return {**ret, "result": False, "comment": str(err)}
    return _healthy(ret, name, timeout, "was restarted with its new configuration and is healthy")


def _service(action: str, settings: dict, attempts: int = 3) -> None:
    # systemd 257 in the lab's containers now and then fails to spawn a unit's process
    # ("Failed to spawn executor: No such file or directory", result 'resources'); the
    # same start a moment later works, so a failed start or restart is tried again.
    service = settings["service"]
    for attempt in range(1, attempts + 1):
        try:
            done, error = __salt__[f"service.{action}"](service), ""
        except CommandExecutionError as err:
            done, error = False, str(err)
        if done:
            return
        if action == "stop" or attempt == attempts:
            break
        time.sleep(2)
    journal = __salt__["cmd.run"](
        f"journalctl --no-pager -n 15 -u {service}", python_shell=False, ignore_retcode=True
    )
    raise CommandExecutionError(
        f"systemctl {action} {service} failed {error}; its journal ends:\n{journal}"
    )


def _healthy(ret: dict, name: str, timeout: int, state: str) -> dict:
    endpoint = __salt__["etcd_cluster.endpoints"]()[name]
    report = _wait_healthy(endpoint, timeout)
    if not report["healthy"]:
        return {
            **ret,
            "result": False,
            "comment": f"{name} is a member but not healthy: {report['error']}",
        }
    ret["comment"] = f"{name} {state}."
    return ret


def _wait_healthy(endpoint: str, timeout: int) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        report = __salt__["etcd_cluster.member_health"](endpoint)
        if report["healthy"] or time.monotonic() > deadline:
            return report
        time.sleep(1)


def _bootstrap(ret, settings, etcd_nodes, *, bootstrap, timeout, error) -> dict:
    name = __opts__["id"]
    refused = None
    if not bootstrap:
        refused = "bootstrap is not allowed here"
    elif name != etcd_nodes[0]:
        refused = f"only the first etcd node of the topology ({etcd_nodes[0]}) starts a cluster"
    elif _has_data(settings):
        refused = f"{settings['data_dir']} holds data: this member was part of a cluster"
    if refused:
        return {
            **ret,
            "result": False,
            "comment": f"No etcd member answers ({error}), and {name} does not start a new "
            f"cluster: {refused}.",
        }
    initial = f"{name}={__salt__['etcd_cluster.peer_url'](name)}"
    ret["changes"] = {"member": {"old": None, "new": f"{name} started a new cluster"}}
    if __opts__["test"]:
        return {**ret, "result": None, "comment": f"{name} would start a new cluster."}
    _write_membership(settings, initial, "new")
    _service("start", settings)
    return _healthy(ret, name, timeout, "started a new cluster and is healthy")


def _join(ret: dict, settings: dict, name: str, timeout: int) -> dict:
    ret["changes"] = {"member": {"old": None, "new": f"{name} as a voting member"}}
    if __opts__["test"]:
        health = __salt__["etcd_cluster.health"]()
        if not health["quorum"]:
            return {
                **ret,
                "changes": {},
                "result": False,
                "comment": f"{name} could not be added: the cluster has no quorum.",
            }
        return {
            **ret,
            "result": None,
            "comment": f"{name} would be added as a learner, its data directory wiped, "
            "started and promoted once caught up.",
        }
    try:
        added = __salt__["etcd_cluster.member_add"](name, timeout=timeout)
    except (CommandExecutionError, SaltInvocationError) as err:
        return {**ret, "changes": {}, "result": False, "comment": str(err)}
    return _start_and_promote(ret, settings, name, added["initial_cluster"], timeout)


def _finish_join(ret, settings, name, mine, timeout) -> dict:
    # Added earlier, not yet started or promoted (a run that stopped half-way).
    ret["changes"] = {"member": {"old": f"{name} as a learner", "new": f"{name} as a voter"}}
    if __opts__["test"]:
        return {**ret, "result": None, "comment": f"{name} would be started and promoted."}
    if not mine["started"]:
        initial = __salt__["etcd_cluster.initial_cluster"](name)
        return _start_and_promote(ret, settings, name, initial, timeout)
    _service("start", settings)
    return _promote(ret, name, timeout)


def _start_and_promote(ret, settings, name, initial_cluster, timeout) -> dict:
    _service("stop", settings)
    _wipe(settings)
    _write_membership(settings, initial_cluster, "existing")
    _service("start", settings)
    return _promote(ret, name, timeout)


def _promote(ret, name, timeout) -> dict:
    try:
        __salt__["etcd_cluster.member_promote"](name, timeout=timeout)
    except CommandExecutionError as err:
        return {**ret, "result": False, "comment": str(err)}
    return _healthy(ret, name, timeout, "joined as a learner, caught up and was promoted")


def _replace(ret: dict, settings: dict, name: str, timeout: int) -> dict:
    ret["changes"] = {"member": {"old": f"{name} without its data", "new": f"{name} re-added"}}
    if __opts__["test"]:
        return {
            **ret,
            "result": None,
            "comment": f"{name} has lost its data: it would be removed and added again.",
        }
    try:
        __salt__["etcd_cluster.member_remove"](name, timeout=timeout)
        added = __salt__["etcd_cluster.member_add"](name, timeout=timeout)
    except (CommandExecutionError, SaltInvocationError) as err:
        return {**ret, "changes": {}, "result": False, "comment": str(err)}
    return _start_and_promote(ret, settings, name, added["initial_cluster"], timeout)


def _wipe(settings: dict) -> None:
    data_dir = settings["data_dir"]
    if os.path.isdir(data_dir):
        for entry in os.listdir(data_dir):
            path = os.path.join(data_dir, entry)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)


def _write_membership(settings: dict, initial_cluster: str, state: str) -> None:
    # Read by the unit only when the data directory is empty: etcd ignores the initial
    # cluster once it has data, so this file is never a reason to restart.
    path = settings["membership_env"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(
            "# Written by etcd_member.present when this node joined the cluster.\n"
            f"ETCD_INITIAL_CLUSTER={initial_cluster}\n"
            f"ETCD_INITIAL_CLUSTER_STATE={state}\n"
            f"ETCD_INITIAL_CLUSTER_TOKEN={settings['token']}\n"
        )
    os.chmod(partial, 0o644)
    os.replace(partial, path)


def absent(name: str, timeout: int = 120) -> dict:
    """
    Make sure ``name`` is not a member of the cluster. Refused when removing it would
    cost quorum. On the node itself, its etcd is also stopped and its data wiped, so it
    can never come back with a removed member's data.

    name
        The etcd node to remove (any node of the cluster, or this one).
    """
    ret = _ret(name)
    if not __salt__["etcd_cluster.is_member"](name):
        ret["comment"] = f"{name} is not a member."
        return ret
    ret["changes"] = {"member": {"old": name, "new": None}}
    if __opts__["test"]:
        refusal = __salt__["etcd_cluster.removal_refusal"](name)
        if refusal:
            return {**ret, "changes": {}, "result": False, "comment": refusal}
        return {**ret, "result": None, "comment": f"{name} would be removed from the cluster."}
    try:
        __salt__["etcd_cluster.member_remove"](name, timeout=timeout)
    except CommandExecutionError as err:
        return {**ret, "changes": {}, "result": False, "comment": str(err)}
    if name == __opts__["id"]:
        settings = __salt__["etcd_cluster.settings"]()
        try:
            _service("stop", settings)
        except CommandExecutionError as err:
            return {**ret, "result": False, "comment": f"{name} was removed, but {err}"}
        _wipe(settings)
    ret["comment"] = f"{name} was removed from the cluster."
    return ret


def cluster_healthy(name: str, voters: int | None = None, timeout: int = 120) -> dict:
    """
    Wait until every voting member is healthy (and, given ``voters``, that many vote);
    fail with each member's state if that does not happen within ``timeout`` seconds.
    Changes nothing.
    """
    ret = _ret(name)
    deadline = time.monotonic() + timeout
    while True:
        try:
            report = __salt__["etcd_cluster.health"]()
        except CommandExecutionError as err:
            report = {"healthy": False, "voters": 0, "members": {}, "error": str(err)}
        whole = report["healthy"] and (voters is None or report["voters"] == voters)
        if whole or time.monotonic() > deadline:
            break
        time.sleep(1)
    members = ", ".join(
        f"{member}: {'healthy' if entry['healthy'] else entry.get('error')}"
        + (" (learner)" if entry.get("learner") else "")
        for member, entry in sorted(report["members"].items())
    )
    if whole:
        ret["comment"] = f"The cluster is healthy: {report['voters']} voting members ({members})."
        return ret
    wanted = f"{voters} healthy voting members" if voters else "every voting member healthy"
    return {
        **ret,
        "result": False,
        "comment": f"The cluster is not whole: {wanted} wanted, {report['voters']} voting "
        f"({members or report.get('error')}).",
    }
