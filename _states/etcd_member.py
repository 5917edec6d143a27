"""
etcd membership as a state: this node is (or is not) a voting member of the cluster.

``etcd_member.present`` runs on the node that is to be a member. A node that is not a
member is added as a learner, its old data wiped (a re-used data directory is how "member
ID mismatch" happens), started with the initial cluster etcd gave for it, and promoted
once it has caught up: quorum never depends on a member that has not started. The first
etcd node of the topology bootstraps the cluster when no member exists anywhere.
``etcd_member.absent`` removes a member, ``etcd_member.pruned`` every member that is no
longer an etcd node of the topology. They refuse a change that would cost quorum and say
what they would do under ``test=True`` without doing it.

Changes are recorded as each step commits: a run that fails half-way (a member added,
then its start failed) returns ``result: False`` with the changes that did happen.

:depends: the ``etcd_cluster`` execution module and the topology's etcd view
    (``paas_topology.etcd_member``)
"""

from __future__ import annotations

import os
import shutil
import time
from urllib.parse import urlparse

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "etcd_member"
# How far back in its unit's journal a member's panic counts: systemd restarts it every
# few seconds, and each panic's goroutine dump runs to dozens of lines.
PANIC_SECONDS = 120


def __virtual__():
    if "etcd_cluster.lookup_member" not in __salt__:
        return (False, "etcd_member: the etcd_cluster execution module is not loaded")
    if "paas_state.ret" not in __utils__:
        return (False, "etcd_member: the paas_state utils module is not synced")
    return __virtualname__


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

    .. code-block:: yaml

        etcd-service-member:
          etcd_member.present:
            - name: etcd1
    """
    ret = __utils__["paas_state.ret"](name)
    refused = __utils__["paas_state.elsewhere"](ret, "etcd_member.present", __opts__["id"])
    if refused:
        return refused
    try:
        member = __salt__["paas_topology.etcd_member"](name)
        return _present(ret, member, bootstrap, timeout)
    except (CommandExecutionError, SaltInvocationError) as err:
        return __utils__["paas_state.failed"](ret, str(err))


def _present(ret: dict, member: dict, bootstrap: bool, timeout: int) -> dict:
    name = member["name"]
    try:
        mine = __salt__["etcd_cluster.lookup_member"](name)
    except CommandExecutionError as err:
        return _bootstrap(ret, member, bootstrap, timeout, error=err)
    if mine is None:
        return _join(ret, member, timeout)
    if mine["learner"] or not mine["started"]:
        return _finish_join(ret, member, mine, timeout)
    if not __salt__["etcd_health.has_log"](member["data_dir"]):
        # The cluster knows this node, but its data is gone (a rebuilt machine, or a data
        # directory emptied and the unit started again, which leaves a fresh store and no
        # log): it can only come back as a new member.
        ret["changes"]["reason"] = f"{member['data_dir']} holds no write-ahead log"
        return _replace(ret, member, mine, timeout)
    if not __salt__["service.status"](member["service"]):
        if __opts__["test"]:
            __utils__["paas_state.record"](ret, "service", "stopped", "running")
            return __utils__["paas_state.predicted"](ret, f"{name}'s etcd would be started.")
        try:
            _service("start", member)
        except CommandExecutionError:
            # Started by systemd all the same, a member that panics on its data is
            # replaced below; any other failure to start is the run's error.
            if not _panic(member):
                raise
        __utils__["paas_state.record"](ret, "service", "stopped", "running")
        return _healthy_or_replaced(
            ret, member, mine, timeout, "was started and is a healthy voting member"
        )
    return _healthy_or_replaced(ret, member, mine, timeout, "is a healthy voting member")


def _healthy_or_replaced(ret: dict, member: dict, mine: dict, timeout: int, state: str) -> dict:
    """Wait until the member is healthy; a member whose etcd panics in a loop instead (its
    data emptied under a running cluster: etcd then starts a fresh log under the old
    member ID, and the leader's first append is out of its range) is replaced: its data
    is of no use to anyone, and the cluster has all of it."""
    deadline = time.monotonic() + timeout
    while True:
        report = __salt__["etcd_cluster.member_health"](member["client_url"])
        if report["healthy"]:
            ret["comment"] = f"{member['name']} {state}."
            return ret
        panic = _panic(member)
        if panic:
            if __opts__["test"]:
                __utils__["paas_state.record"](
                    ret, "member", f"voter {mine['id']} panicking", "voter"
                )
                return __utils__["paas_state.predicted"](
                    ret, f"{member['name']}'s etcd panics ({panic}): it would be replaced."
                )
            ret["changes"]["reason"] = f"its etcd panics: {panic}"
            return _replace(ret, member, mine, timeout)
        if time.monotonic() > deadline:
            raise CommandExecutionError(
                f"{member['name']} is a member but not healthy: {report['error']}"
            )
        time.sleep(1)


def _panic(member: dict) -> str | None:
    """The panic of this member's etcd, when its journal of the last minutes holds one."""
    journal = __salt__["cmd.run"](
        f"journalctl --no-pager -o cat --since -{PANIC_SECONDS}s -u {member['service']}",
        python_shell=False,
        ignore_retcode=True,
    )
    for line in reversed(journal.splitlines()):
        if line.startswith("panic: "):
            return line.removeprefix("panic: ").strip()
    return None


def mod_watch(name: str, timeout: int = 120, **kwargs) -> dict:
    """
    Restart this member because its configuration changed, and wait until it is healthy
    again. Salt calls this only when ``present`` changed nothing itself: a member that
    just joined already runs with the new configuration. Run one node at a time (the
    orchestration's batch of 1), so that a restart never costs quorum.
    """
    ret = __utils__["paas_state.ret"](name)
    try:
        member = __salt__["paas_topology.etcd_member"](name)
        if __opts__["test"]:
            __utils__["paas_state.record"](ret, "service", "running", "restarted")
            return __utils__["paas_state.predicted"](ret, f"{name}'s etcd would be restarted.")
        _service("restart", member)
        __utils__["paas_state.record"](ret, "service", "running", "restarted")
        ret["comment"] = _healthy(
            member, timeout, "was restarted with its new configuration and is healthy"
        )
        return ret
    except (CommandExecutionError, SaltInvocationError) as err:
        return __utils__["paas_state.failed"](ret, str(err))


def certificates_served(name: str, timeout: int = 120) -> dict:
    """
    This member's etcd presents the server and peer certificates on its disk. etcd
    reads its certificate files again for every new TLS connection (etcd's
    ``client/pkg/transport/listener.go``, ``TLSInfo.baseConfig``), so a renewed
    certificate is served at once and nothing restarts; an etcd that still presents the
    old one is restarted and waited for until healthy. A stopped etcd (not started yet)
    is left alone. Run one node at a time, as every restart of a member.

    .. code-block:: yaml

        etcd-certificates-served:
          etcd_member.certificates_served:
            - name: etcd1
    """
    ret = __utils__["paas_state.ret"](name)
    refused = __utils__["paas_state.elsewhere"](
        ret, "etcd_member.certificates_served", __opts__["id"]
    )
    if refused:
        return refused
    try:
        member = __salt__["paas_topology.etcd_member"](name)
        stale = []
        for profile, url in (("etcd-server", "client_url"), ("etcd-peer", "peer_url")):
            listener = urlparse(member[url])
            serves = __salt__["paas_pki.serves"](
                profile, listener.hostname, listener.port, "etcd-healthcheck-client"
            )
            if serves is None:
                ret["comment"] = f"{name}'s etcd is not running: it will start with its files."
                return ret
            if not serves:
                stale.append(f"{profile} on {listener.hostname}:{listener.port}")
        if not stale:
            ret["comment"] = f"{name}'s etcd presents the certificates on its disk."
            return ret
        if __opts__["test"]:
            __utils__["paas_state.record"](ret, "service", "running", "restarted")
            return __utils__["paas_state.predicted"](
                ret, f"{name}'s etcd would be restarted: it presents an old {', '.join(stale)}."
            )
        _service("restart", member)
        __utils__["paas_state.record"](ret, "service", "running", "restarted")
        ret["comment"] = _healthy(
            member,
            timeout,
            f"was restarted (it presented an old {', '.join(stale)}) and is healthy",
        )
        return ret
    except (CommandExecutionError, SaltInvocationError) as err:
        return __utils__["paas_state.failed"](ret, str(err))


def _service(action: str, member: dict) -> None:
    service = member["service"]
    try:
        done, error = __salt__[f"service.{action}"](service), ""
    except CommandExecutionError as err:
        done, error = False, f": {err}"
    if done:
        return
    journal = __salt__["cmd.run"](
        f"journalctl --no-pager -n 15 -u {service}", python_shell=False, ignore_retcode=True
    )
    raise CommandExecutionError(
        f"systemctl {action} {service} failed{error}; its journal ends:\n{journal}"
    )


def _healthy(member: dict, timeout: int, state: str) -> str:
    """Wait until the member is healthy and say so; raise when it does not become so."""
    deadline = time.monotonic() + timeout
    while True:
        report = __salt__["etcd_cluster.member_health"](member["client_url"])
        if report["healthy"]:
            return f"{member['name']} {state}."
        if time.monotonic() > deadline:
            raise CommandExecutionError(
                f"{member['name']} is a member but not healthy: {report['error']}"
            )
        time.sleep(1)


def _bootstrap(ret: dict, member: dict, bootstrap: bool, timeout: int, error) -> dict:
    name = member["name"]
    first = next(iter(member["members"]))
    refused = None
    if not bootstrap:
        refused = "bootstrap is not allowed here"
    elif name != first:
        refused = f"only the first etcd node of the topology ({first}) starts a cluster"
    elif _has_data(member):
        refused = f"{member['data_dir']} holds data: this member was part of a cluster"
    if refused:
        return __utils__["paas_state.failed"](
            ret,
            f"No etcd member answers ({error}), and {name} does not start a new "
            f"cluster: {refused}.",
        )
    _start(ret, member, f"{name}={member['peer_url']}", "new")
    __utils__["paas_state.record"](
        ret, "member", None, f"{name}, the first member of a new cluster"
    )
    if __opts__["test"]:
        return __utils__["paas_state.predicted"](ret, f"{name} would start a new cluster.")
    ret["comment"] = _healthy(member, timeout, "started a new cluster and is healthy")
    return ret


def _join(ret: dict, member: dict, timeout: int) -> dict:
    name = member["name"]
    if __opts__["test"]:
        health = __salt__["etcd_cluster.health"]()
        if not health["quorum"]:
            return __utils__["paas_state.failed"](
                ret, f"{name} could not be added: the cluster has no quorum."
            )
        __utils__["paas_state.record"](ret, "member", None, "voter")
        _start(ret, member, __salt__["etcd_cluster.initial_cluster"](name), "existing")
        return __utils__["paas_state.predicted"](
            ret,
            f"{name} would be added as a learner, its data directory wiped, "
            "started and promoted once caught up.",
        )
    added = __salt__["etcd_cluster.member_add"](name, timeout=timeout)
    __utils__["paas_state.record"](ret, "member", None, f"learner {added['id']}")
    return _start_and_promote(ret, member, added["id"], added["initial_cluster"], timeout)


def _finish_join(ret: dict, member: dict, mine: dict, timeout: int) -> dict:
    # Added earlier, not yet started or promoted (a run that stopped half-way).
    name = member["name"]
    if not mine["started"]:
        initial = __salt__["etcd_cluster.initial_cluster"](name)
        if __opts__["test"]:
            _start(ret, member, initial, "existing")
            __utils__["paas_state.record"](
                ret, "member", f"learner {mine['id']}", f"voter {mine['id']}"
            )
            return __utils__["paas_state.predicted"](ret, f"{name} would be started and promoted.")
        return _start_and_promote(ret, member, mine["id"], initial, timeout)
    if not __salt__["service.status"](member["service"]):
        if not __opts__["test"]:
            _service("start", member)
        __utils__["paas_state.record"](ret, "service", "stopped", "running")
    if __opts__["test"]:
        __utils__["paas_state.record"](
            ret, "member", f"learner {mine['id']}", f"voter {mine['id']}"
        )
        return __utils__["paas_state.predicted"](ret, f"{name} would be promoted.")
    return _promote(ret, member, mine["id"], timeout)


def _start_and_promote(
    ret: dict, member: dict, member_id: str, initial_cluster: str, timeout: int
) -> dict:
    _start(ret, member, initial_cluster, "existing")
    _check_identity(member, member_id, timeout)
    return _promote(ret, member, member_id, timeout)


def _start(ret: dict, member: dict, initial_cluster: str, state: str) -> None:
    """Start the member afresh with ``initial_cluster``: stopped, its data directory
    emptied, the membership written, started; each change recorded as it commits, or
    only predicted under test."""
    test = __opts__["test"]
    was_running = bool(__salt__["service.status"](member["service"]))
    if not test:
        _service("stop", member)
    entries = _data_entries(member)
    if entries:
        if not test:
            _wipe(member)
        __utils__["paas_state.record"](ret, "data_dir", _entries(len(entries)), "empty")
    elif not os.path.isdir(member["data_dir"]):
        # Removed whole (rm -rf): etcd, not root, could not make it again.
        if not test:
            _make_data_dir(member)
        __utils__["paas_state.record"](ret, "data_dir", "missing", "empty")
    _write_membership(ret, member, initial_cluster, state)
    if not test:
        _service("start", member)
    # A member that was running (say, restarting in a loop on stale data) is started
    # afresh all the same.
    __utils__["paas_state.record"](
        ret, "service", "running" if was_running else "stopped", "running"
    )


def _check_identity(member: dict, member_id: str, timeout: int) -> None:
    """The member that started is the one the cluster added: a node that started with
    other files (a membership or data directory etcd_member did not write) may run a
    cluster of its own and answer every question itself."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            running = __salt__["etcd_cluster.member_status"](member["client_url"])["id"]
            break
        except CommandExecutionError as err:
            if time.monotonic() > deadline:
                raise CommandExecutionError(
                    f"{member['name']} was started but does not answer: {err}"
                ) from err
            time.sleep(1)
    if running != member_id:
        raise CommandExecutionError(
            f"{member['name']} runs as member {running}, not as {member_id}, the member the "
            f"cluster added: it is not part of the cluster (see {member['membership_env']} "
            f"and the unit's environment files)"
        )


def _promote(ret: dict, member: dict, member_id: str, timeout: int) -> dict:
    __salt__["etcd_cluster.member_promote"](member["name"], timeout=timeout)
    old = ret["changes"].get("member", {}).get("old", f"learner {member_id}")
    __utils__["paas_state.record"](ret, "member", old, f"voter {member_id}")
    ret["comment"] = _healthy(member, timeout, "joined as a learner, caught up and was promoted")
    return ret


def _replace(ret: dict, member: dict, mine: dict, timeout: int) -> dict:
    name = member["name"]
    gone = f"voter {mine['id']} without its data"
    if __opts__["test"]:
        __utils__["paas_state.record"](ret, "member", gone, "voter")
        _start(ret, member, __salt__["etcd_cluster.initial_cluster"](name), "existing")
        return __utils__["paas_state.predicted"](
            ret, f"{name} has lost its data: it would be removed and added again."
        )
    __salt__["etcd_cluster.member_remove"](name, timeout=timeout)
    __utils__["paas_state.record"](ret, "member", gone, None)
    added = __salt__["etcd_cluster.member_add"](name, timeout=timeout)
    __utils__["paas_state.record"](ret, "member", gone, f"learner {added['id']}")
    return _start_and_promote(ret, member, added["id"], added["initial_cluster"], timeout)


def _entries(count: int) -> str:
    return f"{count} {'entry' if count == 1 else 'entries'}"


def _has_data(member: dict) -> bool:
    return os.path.isdir(os.path.join(member["data_dir"], "member"))


def _data_entries(member: dict) -> list[str]:
    data_dir = member["data_dir"]
    return os.listdir(data_dir) if os.path.isdir(data_dir) else []


def _make_data_dir(member: dict) -> None:
    os.makedirs(member["data_dir"], mode=0o700)
    owner = (
        __salt__["file.user_to_uid"](member["user"]),
        __salt__["file.group_to_gid"](member["user"]),
    )
    os.chown(member["data_dir"], *owner)
    os.chmod(member["data_dir"], 0o700)


def _wipe(member: dict) -> None:
    for entry in _data_entries(member):
        path = os.path.join(member["data_dir"], entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def _write_membership(ret: dict, member: dict, initial_cluster: str, state: str) -> None:
    # Read by the unit only when the data directory is empty: etcd ignores the initial
    # cluster once it has data, so this file is never a reason to restart.
    path = member["membership_env"]
    contents = (
        "# Written by etcd_member.present when this node joined the cluster.\n"
        f"ETCD_INITIAL_CLUSTER={initial_cluster}\n"
        f"ETCD_INITIAL_CLUSTER_STATE={state}\n"
        f"ETCD_INITIAL_CLUSTER_TOKEN={member['token']}\n"
    )
    old = None
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            old = handle.read()
    if old == contents:
        return
    if __opts__["test"]:
        __utils__["paas_state.record"](ret, "membership", _initial_cluster_of(old), initial_cluster)
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        handle.write(contents)
    os.chmod(partial, 0o644)
    os.replace(partial, path)
    __utils__["paas_state.record"](ret, "membership", _initial_cluster_of(old), initial_cluster)


def _initial_cluster_of(contents: str | None) -> str | None:
    for line in (contents or "").splitlines():
        if line.startswith("ETCD_INITIAL_CLUSTER="):
            return line.split("=", 1)[1]
    return None


def replaced(name: str, timeout: int = 120) -> dict:
    """
    Replace this node's member when it is not healthy: removed from the cluster (refused
    when that would cost quorum), its etcd stopped and its data wiped, added again as a
    learner, started, and promoted once caught up. A member that is healthy when the
    state runs is left alone (it came back on its own), or promoted when it is a learner
    still (a run that stopped half-way left it so, and etcd takes one learner at a
    time). Used by ``orch.etcd_recover``.

    name
        This node's id; the state only manages the node it runs on.

    timeout
        Seconds to wait for each step (removal, start, promotion).

    .. code-block:: yaml

        etcd-member-replaced:
          etcd_member.replaced:
            - name: etcd3
    """
    ret = __utils__["paas_state.ret"](name)
    refused = __utils__["paas_state.elsewhere"](ret, "etcd_member.replaced", __opts__["id"])
    if refused:
        return refused
    try:
        member = __salt__["paas_topology.etcd_member"](name)
        healthy = __salt__["etcd_cluster.member_health"](member["client_url"])["healthy"]
        mine = __salt__["etcd_cluster.lookup_member"](name)
        if healthy and mine is not None and mine["learner"]:
            if __opts__["test"]:
                __utils__["paas_state.record"](
                    ret, "member", f"learner {mine['id']}", f"voter {mine['id']}"
                )
                return __utils__["paas_state.predicted"](
                    ret, f"{name} is a healthy learner: it would be promoted."
                )
            return _promote(ret, member, mine["id"], timeout)
        if healthy:
            ret["comment"] = f"{name} is healthy: nothing to replace."
            return ret
        if mine is None:
            return _join(ret, member, timeout)
        if __opts__["test"]:
            refusal = __salt__["etcd_cluster.removal_refusal"](name)
            if refusal:
                return __utils__["paas_state.failed"](ret, refusal)
        return _replace(ret, member, mine, timeout)
    except (CommandExecutionError, SaltInvocationError) as err:
        return __utils__["paas_state.failed"](ret, str(err))


def absent(name: str, timeout: int = 120) -> dict:
    """
    Make sure ``name`` is not a member of the cluster. Refused when removing it would
    cost quorum. On the node itself, its etcd is also stopped and its data wiped, so it
    can never come back with a removed member's data.

    name
        The etcd node to remove (any node of the cluster, or this one).

    .. code-block:: yaml

        etcd-member-gone:
          etcd_member.absent:
            - name: etcd4
    """
    ret = __utils__["paas_state.ret"](name)
    try:
        found = __salt__["etcd_cluster.lookup_member"](name)
        if found is None:
            ret["comment"] = f"{name} is not a member."
            return ret
        test = __opts__["test"]
        if test:
            refusal = __salt__["etcd_cluster.removal_refusal"](name)
            if refusal:
                return __utils__["paas_state.failed"](ret, refusal)
        else:
            __salt__["etcd_cluster.member_remove"](name, timeout=timeout)
        __utils__["paas_state.record"](ret, "member", found["id"], None)
        if name == __opts__["id"]:
            member = __salt__["paas_topology.etcd_member"](name)
            if __salt__["service.status"](member["service"]):
                if not test:
                    _service("stop", member)
                __utils__["paas_state.record"](ret, "service", "running", "stopped")
            entries = _data_entries(member)
            if entries:
                if not test:
                    _wipe(member)
                __utils__["paas_state.record"](ret, "data_dir", _entries(len(entries)), "empty")
        if test:
            return __utils__["paas_state.predicted"](
                ret, f"{name} would be removed from the cluster."
            )
    except (CommandExecutionError, SaltInvocationError) as err:
        return __utils__["paas_state.failed"](ret, str(err))
    ret["comment"] = f"{name} was removed from the cluster."
    return ret


def pruned(name: str, timeout: int = 120) -> dict:
    """
    Remove, one at a time, every member that is no longer an etcd node of the topology.
    Each removal is refused if it would cost quorum; a refusal stops there, with the
    members removed before it reported.

    name
        A label for the step (say, the cluster's token).

    .. code-block:: yaml

        etcd-prune-members:
          etcd_member.pruned:
            - name: paas-prod
    """
    ret = __utils__["paas_state.ret"](name)
    try:
        wanted = set(__salt__["etcd_cluster.endpoints"]())
        leaving = [
            member["name"]
            for member in __salt__["etcd_cluster.members"]()
            if member["name"] and member["name"] not in wanted
        ]
        if not leaving:
            ret["comment"] = "Every member is an etcd node of the topology."
            return ret
        if __opts__["test"]:
            refusal = __salt__["etcd_cluster.removal_refusal"](leaving[0])
            if refusal:
                return __utils__["paas_state.failed"](ret, refusal)
            __utils__["paas_state.record"](ret, "members", None, leaving)
            return __utils__["paas_state.predicted"](
                ret, f"{', '.join(leaving)} would be removed from the cluster."
            )
        removed = []
        for leaver in leaving:
            __salt__["etcd_cluster.member_remove"](leaver, timeout=timeout)
            removed.append(leaver)
            __utils__["paas_state.record"](ret, "members", None, list(removed))
    except (CommandExecutionError, SaltInvocationError) as err:
        return __utils__["paas_state.failed"](ret, str(err))
    ret["comment"] = f"{', '.join(removed)} left the cluster: no longer etcd nodes of the topology."
    return ret


def cluster_healthy(name: str, voters: int | None = None, timeout: int = 120) -> dict:
    """
    Wait until every voting member is healthy (and, given ``voters``, that many vote);
    fail with each member's state if that does not happen within ``timeout`` seconds.
    Changes nothing.

    .. code-block:: yaml

        etcd-cluster-healthy:
          etcd_member.cluster_healthy:
            - voters: 3
    """
    ret = __utils__["paas_state.ret"](name)
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
    return __utils__["paas_state.failed"](
        ret,
        f"The cluster is not whole: {wanted} wanted, {report['voters']} voting "
        f"({members or report.get('error')}).",
    )
