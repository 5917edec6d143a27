"""
The restore's decisions: which member to rebuild from, and when the restored cluster is
whole.
"""

from __future__ import annotations

import pytest

MEMBERS = {"members": {"etcd1": {}, "etcd2": {}, "etcd3": {}}}


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
