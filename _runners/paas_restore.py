"""
The decisions of an etcd restore after quorum is lost (``orch.etcd_restore``'s steps).

``paas_restore.check`` runs before anything is stopped: the snapshot a restore from
backup would use (given, or the off-node one holding the highest revision) must be
whole. ``paas_restore.stop`` stops etcd on every etcd node the restore uses and goes on
only once each node's minion confirms its unit inactive and nothing listening on etcd's
client and peer ports: a restore never races a live member. ``paas_restore.seed`` asks
each of those nodes what its member has on disk; when one still has its store, the one
with the highest revision becomes a cluster of its own (``--force-new-cluster``), losing
nothing it had, and the others join it again afterwards (the etcd formula). Only when
none has, every member is restored from the same snapshot, sent to each node sealed to
its key, with a new cluster token and the revision bumped past anything a watcher saw.
``paas_restore.verify`` ends the run: the voters, one leader, the same hash of the store
on every member.

Nodes in ``fenced`` (machines confirmed off: by the topology's fencing command, or by an
operator's ``paas.restore fenced=...``) are left out: not stopped, not asked, not
restored, not expected back; each is replaced when its machine comes back.

Each returns data with no secret in it and raises ``SaltRunnerError`` naming the node and
the reason when it cannot go on, so the orchestration stops at that step.

:depends: the ``paas_topology`` and ``paas_transfer`` utils modules (``utils_dirs``); the
    ``etcd_cluster`` module on the etcd nodes
"""

from __future__ import annotations

import os
import time

from salt.exceptions import SaltRunnerError

__virtualname__ = "paas_restore"

ASK_TIMEOUT = 60
# Seconds for a member to come up: a restored cluster needs a quorum of them started.
START_TIMEOUT = 300
# Seconds for a stopped member's ports to be released.
STOP_TIMEOUT = 30
# The revision a restore from backup starts above the snapshot's: far more than a
# cluster writes in a snapshot interval, as etcd's own restore guide advises.
BUMP_REVISION = 1_000_000_000


def __virtual__():
    return __virtualname__


# Pure decisions, unit-tested.


def survivor(answers: dict) -> dict | None:
    """The member to rebuild from: of those whose store etcd's tool could read, the one
    with the highest revision (ties: the first in the topology's order)."""
    usable = [
        answer
        for answer in answers.values()
        if isinstance(answer, dict) and answer.get("data") and answer.get("revision") is not None
    ]
    if not usable:
        return None
    return max(usable, key=lambda answer: answer["revision"])


def whole(expected: list[str], overview: dict, hashes: dict) -> list[str]:
    """What keeps the restored cluster of the ``expected`` members from being whole;
    empty when it is."""
    problems = []
    wanted = sorted(expected)
    listed = sorted(overview.get("members", {}))
    if listed != wanted:
        problems.append(f"the members are {', '.join(listed)}, not {', '.join(wanted)}")
    if not overview.get("healthy"):
        sick = [name for name, entry in overview.get("members", {}).items() if not entry["healthy"]]
        problems.append(f"not every voting member is healthy ({', '.join(sick)})")
    if overview.get("voters") != len(wanted):
        problems.append(f"{overview.get('voters')} voting members, not {len(wanted)}")
    if not overview.get("leader"):
        problems.append("no single leader")
    if not hashes.get("equal"):
        problems.append(
            f"the members' stores differ at revision {hashes.get('revision')}: "
            + ", ".join(
                f"{name} {entry.get('hash', entry.get('error'))}"
                for name, entry in sorted(hashes.get("members", {}).items())
            )
        )
    return problems


def stopped(report) -> str | None:
    """Why the node whose ``etcd_health.report`` this is still runs etcd, or None when
    its unit is inactive and nothing listens on etcd's client or peer port."""
    if not isinstance(report, dict):
        return f"its minion gave no report ({report})"
    service = report.get("service") or {}
    why = []
    if service.get("active") not in ("inactive", "failed"):
        why.append(f"its etcd unit is {service.get('active')} ({service.get('sub')})")
    for port, holders in sorted((report.get("listening") or {}).items()):
        for holder in holders:
            why.append(
                f"{holder.get('command') or 'a process'} (pid {holder.get('pid')}) listens on "
                f"etcd's {port} port"
            )
    return "; ".join(why) or None


def lost(seen_revision: int | None, snapshot_revision: int) -> int | None:
    """The revisions written after the snapshot that the platform had seen: the newest
    revision a member reported before the restore, less the snapshot's."""
    if seen_revision is None:
        return None
    return max(0, seen_revision - snapshot_revision)


# The steps.


def check(snapshot: str = "", topology: dict | None = None) -> dict:
    """
    The snapshot a restore from backup would use, checked before anything is stopped:
    ``snapshot`` (a file on the master), or the off-node one holding the highest
    revision. Raises for a corrupt or truncated one, or one whose content is not what
    its name says. A run without any snapshot may still rebuild from a member that kept
    its data.

    topology
        The ``paas`` topology to use instead of the master's pillar compiled again: the
        orchestration hands down the one it rendered with. Validated all the same.

    CLI Example:

    .. code-block:: bash

        salt-run paas_restore.check
        salt-run paas_restore.check snapshot=/var/lib/paas/dr/snapshots/etcd1/x.db
    """
    chosen = _snapshot(snapshot, topology)
    if chosen is None:
        return {"snapshot": None, "comment": "no off-node snapshot: a survivor's data only"}
    return {"snapshot": chosen}


def stop(
    fenced: list | None = None, timeout: int = STOP_TIMEOUT, topology: dict | None = None
) -> dict:
    """
    Stop etcd on every etcd node but the ``fenced`` ones, and go on only once each
    node's minion reports its unit inactive and nothing listening on etcd's client and
    peer ports; raises naming each node that does not, and why.

    topology
        The ``paas`` topology to use instead of the master's pillar compiled again: the
        orchestration hands down the one it rendered with. Validated all the same.

    CLI Example:

    .. code-block:: bash

        salt-run paas_restore.stop
    """
    view = _dr_view(topology)
    nodes = _used(view, fenced)
    with __utils__["paas_master.minions"](__opts__) as asked:
        stopping = asked.ask(nodes, "service.stop", [view["etcd"]["service"]], timeout=ASK_TIMEOUT)
        deadline = time.monotonic() + timeout
        while True:
            reports = asked.ask(nodes, "etcd_health.report", timeout=ASK_TIMEOUT)
            running = {node: stopped(reports[node]) for node in nodes}
            running = {node: why for node, why in running.items() if why}
            if not running:
                return {"stopped": nodes, "fenced": sorted(fenced or [])}
            if time.monotonic() > deadline:
                raise SaltRunnerError(
                    "etcd is not stopped everywhere, so nothing is forced or restored: "
                    + "; ".join(
                        f"{node}: {why}"
                        + (
                            f" (service.stop said {stopping[node]})"
                            if stopping[node] is not True
                            else ""
                        )
                        for node, why in running.items()
                    )
                )
            time.sleep(1)


def seed(
    snapshot: str = "",
    fenced: list | None = None,
    unattended: bool = False,
    timeout: int = START_TIMEOUT,
    topology: dict | None = None,
) -> dict:
    """
    With every member stopped: rebuild the cluster from the member whose store has the
    highest revision, or, when none has one, restore every member from the snapshot.
    The ``fenced`` nodes are left out; while any is, an ``unattended`` restore never
    restores from a snapshot (a fenced machine may hold newer data than any snapshot).

    topology
        The ``paas`` topology to use instead of the master's pillar compiled again: the
        orchestration hands down the one it rendered with. Validated all the same.

    CLI Example:

    .. code-block:: bash

        salt-run paas_restore.seed
    """
    view = _dr_view(topology)
    nodes = _used(view, fenced)
    # Before anything starts: the members are stopped, and what they reported last is
    # what the platform had seen of the data before it was lost.
    seen = __utils__["paas_master.seen_revision"](view["state_dir"])
    with __utils__["paas_master.minions"](__opts__) as asked:
        answers = asked.ask(nodes, "etcd_cluster.local_data", timeout=ASK_TIMEOUT)
        best = survivor(answers)
        if best is not None:
            reply = asked.call(
                best["member"],
                "etcd_cluster.force_new_cluster",
                kwarg={"timeout": timeout},
                timeout=timeout * 2 + ASK_TIMEOUT,
            )
            if not isinstance(reply, dict):
                raise SaltRunnerError(f"{best['member']}: --force-new-cluster failed: {reply}")
            return {
                "source": "survivor",
                "member": best["member"],
                "revision": best["revision"],
                "keys": best["keys"],
                "lost_revisions": 0,
                "fenced": sorted(fenced or []),
                "members": _described(answers),
            }
        if fenced and unattended:
            raise SaltRunnerError(
                f"no member of {', '.join(nodes)} has a store to rebuild from, and "
                f"{', '.join(fenced)} (fenced) may hold newer data than any snapshot: restore "
                "from a snapshot by hand (salt-run paas.restore fenced=...) once you know "
                "what they held: "
                + "; ".join(f"{node}: {reason}" for node, reason in _described(answers).items())
            )
        chosen = _snapshot(snapshot, topology)
        if chosen is None:
            raise SaltRunnerError(
                "no member has a store to rebuild from and there is no off-node snapshot: "
                + "; ".join(f"{node}: {reason}" for node, reason in _described(answers).items())
            )
        return {
            **_from_snapshot(asked, view, nodes, chosen, timeout),
            "seen_revision": seen,
            "lost_revisions": lost(seen, chosen["revision"]),
            "fenced": sorted(fenced or []),
            "members": _described(answers),
        }


def verify(fenced: list | None = None, timeout: int = 120, topology: dict | None = None) -> dict:
    """
    The restored cluster is whole: every etcd node of the topology but the ``fenced``
    ones a healthy voter, one leader, and the same hash of the store on every member at
    one revision.

    topology
        The ``paas`` topology to use instead of the master's pillar compiled again: the
        orchestration hands down the one it rendered with. Validated all the same.

    CLI Example:

    .. code-block:: bash

        salt-run paas_restore.verify
    """
    view = _dr_view(topology)
    nodes = _used(view, fenced)
    deadline = time.monotonic() + timeout
    with __utils__["paas_master.minions"](__opts__) as asked:
        while True:
            overview = asked.call(nodes[0], "etcd_cluster.overview")
            hashes = asked.call(nodes[0], "etcd_cluster.hashkv")
            problems = whole(
                nodes,
                overview if isinstance(overview, dict) else {},
                hashes if isinstance(hashes, dict) else {},
            )
            if not problems:
                return {
                    "leader": overview["leader"],
                    "voters": overview["voters"],
                    "revision": hashes["revision"],
                    "fenced": sorted(fenced or []),
                }
            if time.monotonic() > deadline:
                raise SaltRunnerError("the restored cluster is not whole: " + "; ".join(problems))
            time.sleep(2)


def seen_revision() -> int | None:
    """
    The newest revision any member reported to the master (the DR records'
    ``reports.json``): what a restore from a snapshot counts its loss against.

    CLI Example:

    .. code-block:: bash

        salt-run paas_restore.seen_revision
    """
    return __utils__["paas_master.seen_revision"](_dr_view()["state_dir"])


def _from_snapshot(asked, view: dict, nodes: list[str], chosen: dict, timeout: int) -> dict:
    token = f"{view['etcd']['token']}-restored-{int(time.time())}"
    # Only the members the restore uses form the restored cluster: a fenced one joins
    # again as a new member when its machine is back.
    initial_cluster = ",".join(
        f"{node}={view['etcd']['members'][node]['peer_url']}" for node in nodes
    )
    restored = {}
    for node in nodes:
        destination = os.path.join(
            view["etcd"]["snapshot_dir"], "restore", os.path.basename(chosen["path"])
        )
        __utils__["paas_transfer.send"](
            asked.client,
            __utils__["paas_master.public_key"](__opts__, node),
            node,
            chosen["path"],
            destination,
        )
        reply = asked.call(
            node,
            "etcd_cluster.snapshot_restore",
            arg=[destination],
            kwarg={
                "token": token,
                "bump_revision": BUMP_REVISION,
                "set_aside": True,
                "initial_cluster": initial_cluster,
            },
            timeout=ASK_TIMEOUT * 5,
        )
        if not isinstance(reply, dict):
            raise SaltRunnerError(f"{node}: the snapshot could not be restored: {reply}")
        restored[node] = reply
    # Started together: each waits for a quorum of the others before it is ready.
    started = asked.ask(nodes, "service.start", [view["etcd"]["service"]], timeout=timeout)
    failed = {node: reply for node, reply in started.items() if reply is not True}
    if failed:
        raise SaltRunnerError(
            "the restored members did not start: "
            + "; ".join(f"{node}: {reply}" for node, reply in failed.items())
        )
    return {
        "source": "snapshot",
        "snapshot": chosen["path"],
        "snapshot_revision": chosen["revision"],
        "revision": chosen["revision"] + BUMP_REVISION,
        "token": token,
    }


def _described(answers: dict) -> dict:
    return {
        node: (
            f"revision {answer['revision']}, {answer['keys']} keys"
            if isinstance(answer, dict) and answer.get("data")
            else (answer.get("error") if isinstance(answer, dict) else answer)
        )
        for node, answer in answers.items()
    }


def _snapshot(path: str, topology: dict | None) -> dict | None:
    """The snapshot to restore from, verified, its revision read from its content:
    ``path`` on the master, or the received snapshot holding the highest revision."""
    if path and not os.path.isfile(path):
        raise SaltRunnerError(f"{path} is not a file on the master")
    chosen = __salt__["paas_backup.newest"](path=path or None, topology=topology)
    if chosen is None:
        return None
    if not chosen.get("verified"):
        raise SaltRunnerError(f"the snapshot is refused: {chosen.get('error')}")
    return chosen


def _used(view: dict, fenced) -> list[str]:
    """The etcd nodes a restore uses: all but the fenced ones."""
    members = list(view["etcd"]["members"])
    fenced = list(fenced or [])
    unknown = [node for node in fenced if node not in members]
    if unknown:
        raise SaltRunnerError(
            f"fenced names {', '.join(unknown)}, no etcd node of the topology "
            f"({', '.join(members)})"
        )
    used = [node for node in members if node not in fenced]
    if not used:
        raise SaltRunnerError("every etcd node is fenced: nothing to restore on")
    return used


def _dr_view(topology: dict | None = None) -> dict:
    return __utils__["paas_master.view"](
        __opts__,
        "paas_restore",
        __utils__["paas_topology.dr"],
        __utils__.get("paas_topology.validate"),
        topology,
    )
