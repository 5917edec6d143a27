"""
The restore's decisions: which member to rebuild from, and when the restored cluster is
whole.
"""

from __future__ import annotations

import copy
import json

import pytest
from salt.exceptions import SaltRunnerError

MEMBERS = ["etcd1", "etcd2", "etcd3"]


@pytest.fixture(scope="module")
def runner(import_repo_module):
    return import_repo_module("_runners/paas_restore.py", "paas_restore_runner")


def _data(member, revision, keys=10):
    return {"member": member, "data": True, "revision": revision, "keys": keys}


def test_the_survivor_is_the_member_with_the_highest_revision(runner):
    answers = {
        "etcd1": _data("etcd1", 120),
        "etcd2": {"member": "etcd2", "data": False, "revision": None, "error": "no db"},
        "etcd3": _data("etcd3", 131),
    }
    assert runner.survivor(answers)["member"] == "etcd3"


def test_no_survivor_when_no_store_was_readable_or_a_node_did_not_answer(runner):
    answers = {
        "etcd1": {"member": "etcd1", "data": False, "revision": None, "error": "no db"},
        "etcd2": "no reply",
        "etcd3": "exit code 1: etcdutl failed",
    }
    assert runner.survivor(answers) is None


def _overview(voters=3, healthy=True, leader="etcd1", members=("etcd1", "etcd2", "etcd3")):
    return {
        "healthy": healthy,
        "voters": voters,
        "leader": leader,
        "members": {name: {"healthy": healthy} for name in members},
    }


def test_a_whole_cluster_has_the_topologys_voters_a_leader_and_equal_hashes(runner):
    hashes = {"revision": 40, "equal": True, "members": {}}
    assert runner.whole(MEMBERS, _overview(), hashes) == []


def test_what_keeps_a_restored_cluster_from_being_whole_is_named(runner):
    hashes = {
        "revision": 40,
        "equal": False,
        "members": {"etcd1": {"hash": 1}, "etcd2": {"hash": 2}},
    }
    problems = runner.whole(
        MEMBERS, _overview(voters=2, healthy=False, leader=None, members=("etcd1", "etcd2")), hashes
    )
    assert problems == [
        "the members are etcd1, etcd2, not etcd1, etcd2, etcd3",
        "not every voting member is healthy (etcd1, etcd2)",
        "2 voting members, not 3",
        "no single leader",
        "the members' stores differ at revision 40: etcd1 1, etcd2 2",
    ]


def _report(active="inactive", listening=None):
    return {
        "service": {"active": active, "sub": "dead" if active == "inactive" else "running"},
        "listening": listening or {"client": [], "peer": []},
    }


def test_a_node_is_stopped_when_its_unit_is_inactive_and_nothing_listens_on_etcds_ports(runner):
    assert runner.stopped(_report()) is None
    assert runner.stopped(_report(active="failed")) is None


def test_what_still_runs_on_a_node_is_named(runner):
    squatter = {"client": [{"pid": 4242, "command": "python3"}], "peer": []}

    assert runner.stopped(_report(listening=squatter)) == (
        "python3 (pid 4242) listens on etcd's client port"
    )
    assert runner.stopped(_report(active="active")) == "its etcd unit is active (running)"
    assert runner.stopped("no reply") == "its minion gave no report (no reply)"


def test_the_loss_is_what_was_seen_after_the_snapshot_never_the_bump(runner):
    assert runner.lost(seen_revision=1327, snapshot_revision=1200) == 127
    # A second restore: both revisions are past the first restore's bump.
    bumped = runner.BUMP_REVISION
    assert runner.lost(seen_revision=bumped + 1500, snapshot_revision=bumped + 1400) == 100
    assert runner.lost(seen_revision=None, snapshot_revision=1200) is None
    assert runner.lost(seen_revision=1100, snapshot_revision=1200) == 0


class Nodes:
    """Stand-ins for the etcd nodes behind the master's client: no member kept its data;
    when the restored members start, their beacons report the bumped revision."""

    def __init__(self, state_dir, runner):
        self.state_dir = state_dir
        self.runner = runner
        self.calls = []

    def __call__(self, opts):
        return self

    def __enter__(self):
        self.client = object()
        return self

    def __exit__(self, *exc):
        return None

    def ask(self, minions, function, arg=(), kwarg=None, **kwargs):
        self.calls.append(function)
        if function == "etcd_cluster.local_data":
            return {node: {"member": node, "data": False, "error": "no db"} for node in minions}
        if function == "service.start":
            reports = {"members": {"etcd1": {"last_revision": self.runner.BUMP_REVISION + 1200}}}
            (self.state_dir / "reports.json").write_text(json.dumps(reports))
            return dict.fromkeys(minions, True)
        raise AssertionError(function)

    def call(self, minion, function, arg=(), kwarg=None, **kwargs):
        self.calls.append(function)
        return {"revision": 1200 + self.runner.BUMP_REVISION}


def _compiled(opts):
    raise AssertionError("the master's pillar was compiled though the topology was handed down")


def test_a_restore_from_a_snapshot_counts_its_loss_from_what_was_seen_before_it(
    runner, lab_topology, runner_utils, master_pillar, tmp_path, monkeypatch
):
    """The orchestration hands its topology down: the step and paas_backup.newest use it
    and the master's pillar is not compiled again."""
    lab_topology["dr"] = {"receive_dir": str(tmp_path / "dr" / "snapshots")}
    master_pillar(_compiled)
    handed = []
    state_dir = tmp_path / "dr" / "state"
    state_dir.mkdir(parents=True)
    (state_dir / "reports.json").write_text(
        json.dumps(
            {"members": {"etcd1": {"last_revision": 1327}, "etcd2": {"last_revision": 1300}}}
        )
    )
    nodes = Nodes(state_dir, runner)
    dunders = {
        "__utils__": {
            **runner_utils,
            "paas_master.minions": nodes,
            "paas_master.public_key": lambda opts, node: f"{node}'s key",
            "paas_transfer.send": lambda *args, **kwargs: {},
        },
        "__salt__": {
            "paas_backup.newest": lambda path=None, topology=None: (
                handed.append(topology)
                or {
                    "path": "/dr/etcd1/etcd1-20261206T000000Z-r1200.db",
                    "revision": 1200,
                    "verified": True,
                }
            )
        },
        "__opts__": {"id": "paas-master"},
    }
    for name, value in dunders.items():
        monkeypatch.setattr(runner, name, value, raising=False)

    seeded = runner.seed(topology=lab_topology)

    assert handed == [lab_topology]
    assert (seeded["source"], seeded["snapshot_revision"]) == ("snapshot", 1200)
    assert (seeded["seen_revision"], seeded["lost_revisions"]) == (1327, 127)
    assert nodes.calls.count("service.start") == 1


@pytest.mark.parametrize("source", ["the master's pillar", "handed down"])
def test_an_invalid_topology_stops_a_step_naming_the_runner_and_each_problem(
    source, runner, lab_topology, runner_utils, master_pillar, monkeypatch
):
    valid = copy.deepcopy(lab_topology)
    lab_topology["dr"] = {"receive_dir": "relative/snapshots"}
    handed = source == "handed down"
    master_pillar({"paas": valid if handed else lab_topology})
    monkeypatch.setattr(runner, "__utils__", runner_utils, raising=False)
    monkeypatch.setattr(runner, "__opts__", {"id": "paas-master"}, raising=False)

    with pytest.raises(SaltRunnerError) as refused:
        runner.seed(topology=lab_topology if handed else None)

    assert str(refused.value).startswith("paas_restore: ")
    assert "paas:dr:receive_dir" in str(refused.value)
