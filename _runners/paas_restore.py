"""
The decisions of an etcd restore after quorum is lost (``orch.etcd_restore``'s steps).

``paas_restore.check`` runs before anything is stopped: the snapshot a restore from
backup would use (given, or the newest verified off-node one) must be whole.
``paas_restore.seed`` runs with every member stopped: it asks each etcd node what its
member has on disk; when one still has its store, the one with the highest revision
becomes a cluster of its own (``--force-new-cluster``), losing nothing it had, and the
others join it again afterwards (the etcd formula). Only when none has, every member is
restored from the same snapshot, sent to each node sealed to its key, with a new
cluster token and the revision bumped past anything a watcher saw. ``paas_restore.verify``
ends the run: the topology's voters, one leader, the same hash of the store on every
member.

Each returns data with no secret in it and raises ``SaltRunnerError`` naming the node and
the reason when it cannot go on, so the orchestration stops at that step.

:depends: the ``paas_topology`` and ``paas_transfer`` utils modules (``utils_dirs``); the
    ``etcd_cluster`` module on the etcd nodes
"""

from __future__ import annotations

import os
import time

import salt.client
import salt.utils.minions
from salt.exceptions import SaltRunnerError

__virtualname__ = "paas_restore"

ASK_TIMEOUT = 60
# Seconds for a member to come up: a restored cluster needs a quorum of them started.
START_TIMEOUT = 300
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


def whole(view: dict, overview: dict, hashes: dict) -> list[str]:
    """What keeps the restored cluster from being whole; empty when it is."""
    problems = []
    wanted = sorted(view["members"])
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


# The steps.


def check(snapshot: str = "") -> dict:
    """
    The snapshot a restore from backup would use, checked before anything is stopped:
    ``snapshot`` (a file on the master), or the newest verified off-node one. Raises for
    a corrupt or truncated one. A run without any snapshot may still rebuild from a
    member that kept its data.

    CLI Example:

    .. code-block:: bash

        salt-run paas_restore.check
        salt-run paas_restore.check snapshot=/var/lib/paas/dr/snapshots/etcd1/x.db
    """
    chosen = _snapshot(snapshot)
    if chosen is None:
        return {"snapshot": None, "comment": "no off-node snapshot: a survivor's data only"}
    return {"snapshot": chosen}


def seed(snapshot: str = "", timeout: int = START_TIMEOUT) -> dict:
    """
    With every member stopped: rebuild the cluster from the member whose store has the
    highest revision, or, when none has one, restore every member from the snapshot.

    CLI Example:

    .. code-block:: bash

        salt-run paas_restore.seed
    """
    view = _dr_view()
    members = list(view["etcd"]["members"])
    with _Minions() as minions:
        answers = minions.ask(members, "etcd_cluster.local_data")
        best = survivor(answers)
        if best is not None:
            reply = minions.call(
                best["member"], "etcd_cluster.force_new_cluster", kwarg={"timeout": timeout},
                timeout=timeout * 2 + ASK_TIMEOUT,
            )  # fmt: skip
            if not isinstance(reply, dict):
                raise SaltRunnerError(f"{best['member']}: --force-new-cluster failed: {reply}")
            return {
                "source": "survivor",
                "member": best["member"],
                "revision": best["revision"],
                "keys": best["keys"],
                "lost_revisions": 0,
                "members": _described(answers),
            }
        chosen = _snapshot(snapshot)
        if chosen is None:
            raise SaltRunnerError(
                "no member has a store to rebuild from and there is no off-node snapshot: "
                + "; ".join(f"{node}: {reason}" for node, reason in _described(answers).items())
            )
        return _from_snapshot(minions, view, chosen, answers, timeout)


def verify(timeout: int = 120) -> dict:
    """
    The restored cluster is whole: every etcd node of the topology a healthy voter, one
    leader, and the same hash of the store on every member at one revision.

    CLI Example:

    .. code-block:: bash

        salt-run paas_restore.verify
    """
    view = _dr_view()
    members = list(view["etcd"]["members"])
    deadline = time.monotonic() + timeout
    with _Minions() as minions:
        while True:
            overview = minions.call(members[0], "etcd_cluster.overview")
            hashes = minions.call(members[0], "etcd_cluster.hashkv")
            problems = whole(
                view["etcd"],
                overview if isinstance(overview, dict) else {},
                hashes if isinstance(hashes, dict) else {},
            )
            if not problems:
                return {
                    "leader": overview["leader"],
                    "voters": overview["voters"],
                    "revision": hashes["revision"],
                }
            if time.monotonic() > deadline:
                raise SaltRunnerError("the restored cluster is not whole: " + "; ".join(problems))
            time.sleep(2)


def _from_snapshot(minions, view: dict, chosen: dict, answers: dict, timeout: int) -> dict:
    members = list(view["etcd"]["members"])
    token = f"{view['etcd']['token']}-restored-{int(time.time())}"
    restored = {}
    for node in members:
        destination = os.path.join(
            view["etcd"]["snapshot_dir"], "restore", os.path.basename(chosen["path"])
        )
        __utils__["paas_transfer.send"](
            _local_client(),
            __opts__,
            node,
            chosen["path"],
            destination,
        )
        reply = minions.call(
            node,
            "etcd_cluster.snapshot_restore",
            arg=[destination],
            kwarg={"token": token, "bump_revision": BUMP_REVISION, "set_aside": True},
            timeout=ASK_TIMEOUT * 5,
        )
        if not isinstance(reply, dict):
            raise SaltRunnerError(f"{node}: the snapshot could not be restored: {reply}")
        restored[node] = reply
    # Started together: each waits for a quorum of the others before it is ready.
    started = minions.ask_all(members, "service.start", [view["etcd"]["service"]], timeout)
    failed = {node: reply for node, reply in started.items() if reply is not True}
    if failed:
        raise SaltRunnerError(
            "the restored members did not start: "
            + "; ".join(f"{node}: {reply}" for node, reply in failed.items())
        )
    revision = next(iter(restored.values()))["revision"]
    return {
        "source": "snapshot",
        "snapshot": chosen["path"],
        "snapshot_revision": revision - BUMP_REVISION,
        "revision": revision,
        "token": token,
        "lost_revisions": _lost(revision - BUMP_REVISION),
        "members": _described(answers),
    }


def _lost(snapshot_revision: int) -> int | None:
    """The revisions written after the snapshot, as far as the beacons last saw them."""
    newest = __salt__["paas_dr.summary"]().get("last_revision")
    if newest is None:
        return None
    return max(0, newest - snapshot_revision)


def _described(answers: dict) -> dict:
    return {
        node: (
            f"revision {answer['revision']}, {answer['keys']} keys"
            if isinstance(answer, dict) and answer.get("data")
            else (answer.get("error") if isinstance(answer, dict) else answer)
        )
        for node, answer in answers.items()
    }


def _snapshot(path: str) -> dict | None:
    """The snapshot to restore from, verified: ``path`` on the master, or the newest
    (highest revision) of every member's newest off-node snapshot."""
    if not path:
        newest = [entry for entry in __salt__["paas_backup.offsite"]().values() if entry]
        if not newest:
            return None
        path = max(newest, key=lambda entry: (entry["revision"], entry["time"]))["path"]
    if not os.path.isfile(path):
        raise SaltRunnerError(f"{path} is not a file on the master")
    checked = __salt__["paas_backup.verify_file"](path)
    if not checked["verified"]:
        raise SaltRunnerError(f"the snapshot is refused: {checked['error']}")
    return {"path": path, "size": checked["size"], "sha256": checked["sha256"]}


def _dr_view() -> dict:
    if "paas_topology.dr" not in __utils__:
        raise SaltRunnerError(
            "paas_restore: the paas_topology utils module is not loaded; the master's "
            "utils_dirs must hold the repository's _utils (etc/salt/master)"
        )
    compiled = __utils__["paas_master.pillar"](__opts__)
    errors = [str(error) for error in __utils__["paas_topology.validate"](compiled.get("paas"))]
    if errors:
        raise SaltRunnerError(f"invalid topology (salt-run paas.validate): {'; '.join(errors)}")
    return __utils__["paas_topology.dr"](compiled["paas"])


def _local_client():
    # From the master's configuration file, not this runner's opts: run by the reactor
    # (through paas_dr.react and the orchestration), a runner's opts are not the ones the
    # master's publish authenticates.
    return salt.client.get_local_client(__opts__["conf_file"])


class _Minions:
    """One LocalClient for a step; every call asks only accepted minions."""

    def __enter__(self):
        self.client = _local_client()
        return self

    def __exit__(self, *exc):
        self.client.destroy()

    def ask_all(self, minions: list[str], function: str, arg=(), timeout=ASK_TIMEOUT) -> dict:
        accepted = salt.utils.minions.CkMinions(__opts__).check_minions(minions, "list")
        replies = {minion: "its key is not accepted on this master" for minion in minions}
        if accepted["minions"]:
            found = self.client.cmd(
                accepted["minions"],
                function,
                arg=list(arg),
                tgt_type="list",
                timeout=timeout,
                full_return=True,
            )
            for minion in accepted["minions"]:
                reply = found.get(minion)
                replies[minion] = _answer(reply) if isinstance(reply, dict) else "no reply"
        return replies

    def ask(self, minions: list[str], function: str) -> dict:
        return self.ask_all(minions, function)

    def call(self, minion: str, function: str, arg=(), kwarg=None, timeout=ASK_TIMEOUT):
        found = self.client.cmd(
            minion, function, arg=list(arg), kwarg=kwarg, timeout=timeout, full_return=True
        )
        reply = found.get(minion)
        return _answer(reply) if isinstance(reply, dict) else "no reply"


def _answer(reply: dict):
    answer = reply.get("ret")
    if reply.get("retcode", 0) and not isinstance(answer, str):
        return f"exit code {reply['retcode']}: {answer}"
    return answer
