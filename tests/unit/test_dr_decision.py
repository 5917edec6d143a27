"""
The master's decision on etcd health reports (``_runners/paas_dr.py``).

``suspect`` is a pure function of the recorded reports, the ``paas:dr`` view and the
master's time; ``decide`` a pure function of a suspicion and the master's own probe:
each rule of the contract (debounce, a member confirmed failed, contradicted, blocked by
a silent minion, a partition, quorum, restore) on the lab's three members, and on five
where quorum arithmetic matters. ``react`` under Salt's loader dunders, with reports
signed by throwaway minion keys the master "accepted", a stand-in for the probe and for
``state.orchestrate``: which reports it refuses, what it starts with which pillar, what
it records, fencing with real commands, and the lock (one remediation at a time, renewed
past its expiry, a gone holder's lock cleared and its remediation recorded interrupted).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
import uuid

import pytest
import yaml
from salt.exceptions import SaltRunnerError

from tests.conftest import minion_keys, utils_of

NOW = 1_800_000_000.0
INTERVAL = 5
LEADER = "8e9e05c52164694d"
OTHER_LEADER = "91bc3c398fb3c146"
THREE = ("etcd1", "etcd2", "etcd3")
FIVE = ("etcd1", "etcd2", "etcd3", "etcd4", "etcd5")
MINIONS = (*FIVE, "worker1", "gw1")


@pytest.fixture(scope="module")
def runner(import_repo_module):
    return import_repo_module("_runners/paas_dr.py", "paas_dr_runner_module")


@pytest.fixture(scope="module")
def decisions(import_repo_module):
    return import_repo_module("_utils/paas_dr_decide.py", "paas_dr_decide_utils")


@pytest.fixture(scope="module")
def records(import_repo_module):
    return import_repo_module("_utils/paas_dr_records.py", "paas_dr_records_utils")


@pytest.fixture(scope="module")
def lock_utils(import_repo_module):
    return import_repo_module("_utils/paas_lock.py", "paas_lock_utils")


@pytest.fixture(scope="module")
def state_returns(import_repo_module):
    return import_repo_module("_utils/paas_orchestration.py", "paas_orchestration_utils")


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    return minion_keys(tmp_path_factory.mktemp("minion-keys"), MINIONS)


@pytest.fixture
def pki_dir(tmp_path, keys) -> str:
    """The master's pki_dir: every minion's key accepted."""
    accepted = tmp_path / "pki" / "minions"
    accepted.mkdir(parents=True)
    for minion, key in keys.items():
        (accepted / minion).write_text(key["public"])
    return str(tmp_path / "pki")


@pytest.fixture
def topology(lab_topology, tmp_path) -> dict:
    lab_topology.setdefault("dr", {})["receive_dir"] = str(tmp_path / "dr" / "snapshots")
    return lab_topology


@pytest.fixture
def settings(topology_utils, topology) -> dict:
    return topology_utils.dr(topology)


@pytest.fixture
def five_settings(topology_utils, topology) -> dict:
    """The lab's topology with two more etcd members."""
    topology = copy.deepcopy(topology)
    for index, address in ((4, "198.18.1.24"), (5, "198.18.1.25")):
        topology["nodes"].append(
            {"id": f"etcd{index}", "roles": ["etcd"], "addresses": {"private": address}}
        )
    return topology_utils.dr(topology)


def report(member, state, at, *, alarms=(), learner=False) -> dict:
    """One report as the master records it: ``member`` in ``state`` received at ``at``."""
    return {
        "member": member,
        "state": state,
        "serving": state != "down",
        "health": state == "healthy",
        "leader": LEADER if state in ("healthy", "alarm") else None,
        "learner": learner if state != "down" else None,
        "alarms": list(alarms),
        "epoch": "e",
        "sequence": 1,
        "time": at,
    }


def record(decisions, records, settings, *reports) -> dict:
    """The reports as react records them, each received at its time."""
    recorded = {}
    for entry in reports:
        records.record_report(recorded, entry, entry["time"], decisions.debounce(settings))
    return recorded["members"]


def streak(member, state, count, end=NOW, **kwargs) -> list[dict]:
    """``count`` reports in a row from ``member``, one per beacon interval, the last at ``end``."""
    return [report(member, state, end - INTERVAL * (count - 1 - i), **kwargs) for i in range(count)]


def healthy(*members, at=NOW - 1) -> list[dict]:
    return [report(member, "healthy", at) for member in members]


def suspect(decisions, records, settings, *reports, now=NOW) -> dict:
    return decisions.suspect(record(decisions, records, settings, *reports), settings, now)


# What the reports suspect.


def test_a_members_own_down_reports_in_a_row_suspect_it(decisions, records, settings):
    hint = suspect(
        decisions, records, settings, *healthy("etcd1", "etcd2"), *streak("etcd3", "down", 3)
    )

    assert (hint["action"], hint["member"]) == ("recover", "etcd3")


def test_fewer_down_reports_than_the_debounce_suspect_nothing(decisions, records, settings):
    hint = suspect(
        decisions, records, settings, *healthy("etcd1", "etcd2"), *streak("etcd3", "down", 2)
    )

    assert (hint["action"], hint["rule"]) == ("none", "debounce")


def test_a_flapping_member_is_never_suspected(decisions, records, settings):
    flapping = [
        report("etcd3", state, NOW - INTERVAL * (5 - i))
        for i, state in enumerate(["down", "down", "healthy", "down", "down", "healthy"])
    ]

    assert (
        suspect(decisions, records, settings, *healthy("etcd1", "etcd2"), *flapping)["action"]
        == "none"
    )


def test_an_isolated_member_beside_healthy_ones_is_not_suspected(decisions, records, settings):
    hint = suspect(
        decisions, records, settings, *healthy("etcd1", "etcd2"), *streak("etcd3", "isolated", 5)
    )

    assert hint["action"] == "none"


def test_a_corrupt_member_is_suspected_and_a_full_one_is_not(decisions, records, settings):
    corrupt = streak("etcd3", "alarm", 3, alarms=("CORRUPT",))
    full = streak("etcd3", "alarm", 3, alarms=("NOSPACE",))

    assert (
        suspect(decisions, records, settings, *healthy("etcd1", "etcd2"), *corrupt)["action"]
        == "recover"
    )
    assert (
        suspect(decisions, records, settings, *healthy("etcd1", "etcd2"), *full)["action"] == "none"
    )


def test_stale_down_reports_suspect_nothing(decisions, records, settings):
    old = streak("etcd3", "down", 3, end=NOW - 4 * INTERVAL)

    assert suspect(decisions, records, settings, *old)["rule"] == "stale"


def test_no_member_healthy_and_all_down_or_isolated_in_a_row_suspect_a_lost_quorum(
    decisions, records, settings
):
    reports = [
        *streak("etcd1", "isolated", 3),
        *streak("etcd2", "down", 3),
    ]

    hint = suspect(decisions, records, settings, *reports)

    assert (hint["action"], hint["rule"]) == ("restore", "restore")
    assert "etcd3 silent" in hint["reason"]


def test_no_lost_quorum_is_suspected_while_one_member_reports_healthy(decisions, records, settings):
    reports = [*healthy("etcd1"), *streak("etcd2", "down", 3), *streak("etcd3", "down", 3)]

    assert suspect(decisions, records, settings, *reports)["action"] != "restore"


def test_a_member_reporting_itself_a_healthy_learner_in_a_row_is_suspected(
    decisions, records, settings
):
    # A join that stopped half-way: etcd3 started and caught up, and nobody promoted it.
    learner = streak("etcd3", "healthy", 3, learner=True)

    hint = suspect(decisions, records, settings, *healthy("etcd1", "etcd2"), *learner)

    assert (hint["action"], hint["member"], hint["rule"]) == ("recover", "etcd3", "learner")
    joining = streak("etcd3", "healthy", 2, learner=True)
    assert (
        suspect(decisions, records, settings, *healthy("etcd1", "etcd2"), *joining)["action"]
        == "none"
    )


def test_reports_are_aged_by_the_masters_receive_time_not_the_signers(decisions, records, settings):
    # A report signed an hour in the future, received now: fresh now, stale later.
    members = record(
        decisions, records, settings, *healthy("etcd1", "etcd2"), *streak("etcd3", "down", 3)
    )
    for entry in members["etcd3"]["recent"]:
        assert entry["received"] <= NOW
    members["etcd3"]["latest"]["signed_time"] = NOW + 3600

    assert decisions.suspect(members, settings, NOW)["action"] == "recover"
    later = decisions.suspect(members, settings, NOW + 3 * settings["beacon_interval_seconds"] + 1)
    assert (later["action"], later["rule"]) == ("none", "healthy")


# What the probe confirms.


def seen(
    state, *, leader=LEADER, members=THREE, learners=(), alarms=(), revision=42, learner=False
) -> dict:
    """The master's view of one member (paas_etcd_http.member_view's shape)."""
    return {
        "state": state,
        "serving": state != "down",
        "health": state == "healthy",
        "leader": leader if state in ("healthy", "alarm") else None,
        "learner": learner if state != "down" else None,
        "revision": revision if state != "down" else None,
        "alarms": list(alarms),
        "url": "https://198.18.1.2x:2379",
        "error": "" if state != "down" else "connection refused",
        "members": (
            {name: {"id": f"id-{name}", "learner": name in learners} for name in members}
            if state == "healthy"
            else None
        ),
    }


def node(state, *, active="active", listening=()) -> dict:
    """An etcd node's own report (etcd_health.report's shape)."""
    return {
        "state": state,
        "service": {"active": active, "sub": "running" if active == "active" else "dead"},
        "listening": {"client": list(listening), "peer": []},
        "data_dir": True,
    }


def probe_of(members: dict, nodes: dict | None = None) -> dict:
    return {
        "time": NOW,
        "error": None,
        "members": members,
        "nodes": nodes
        if nodes is not None
        else {name: node(s["state"]) for name, s in members.items()},
    }


RECOVER = {"action": "recover", "member": "etcd3", "rule": "recover", "reason": "reports"}
RESTORE = {"action": "restore", "member": None, "rule": "restore", "reason": "reports"}


def test_a_member_the_master_confirms_down_beside_a_healthy_quorum_is_recovered(
    decisions, settings
):
    probe = probe_of({"etcd1": seen("healthy"), "etcd2": seen("healthy"), "etcd3": seen("down")})

    decision = decisions.decide(RECOVER, probe, settings)

    assert (decision["action"], decision["member"]) == ("recover", "etcd3")
    assert "etcd1, etcd2 hold quorum" in decision["reason"]


def test_a_member_the_master_reaches_healthy_contradicts_the_report(decisions, settings):
    probe = probe_of({name: seen("healthy") for name in THREE})

    decision = decisions.decide(RECOVER, probe, settings)

    assert (decision["action"], decision["rule"]) == ("none", "contradicted")
    assert "the master reaches etcd3 healthy" in decision["reason"]


@pytest.mark.parametrize(
    "etcd3",
    [
        pytest.param(seen("healthy", learner=True), id="by-its-own-status"),
        pytest.param(seen("healthy", members=()), id="by-the-others-member-list"),
    ],
)
def test_a_member_the_master_reaches_healthy_and_a_learner_is_promoted(decisions, settings, etcd3):
    others = seen("healthy", learners=("etcd3",))
    probe = probe_of({"etcd1": others, "etcd2": others, "etcd3": etcd3})

    decision = decisions.decide(RECOVER, probe, settings)

    assert (decision["action"], decision["member"], decision["rule"]) == (
        "recover",
        "etcd3",
        "learner",
    )


def test_a_member_only_the_master_cannot_reach_is_not_recovered(decisions, settings):
    probe = probe_of(
        {"etcd1": seen("healthy"), "etcd2": seen("healthy"), "etcd3": seen("down")},
        {"etcd1": node("healthy"), "etcd2": node("healthy"), "etcd3": node("healthy")},
    )

    decision = decisions.decide(RECOVER, probe, settings)

    assert decision["rule"] == "contradicted"
    assert "a problem between the master and etcd3" in decision["reason"]


def test_a_member_whose_minion_does_not_answer_blocks_its_recovery(decisions, settings):
    probe = probe_of(
        {"etcd1": seen("healthy"), "etcd2": seen("healthy"), "etcd3": seen("down")},
        {"etcd1": node("healthy"), "etcd2": node("healthy"), "etcd3": "no reply"},
    )

    decision = decisions.decide(RECOVER, probe, settings)

    assert (decision["action"], decision["rule"]) == ("none", "blocked")
    assert "etcd3's minion does not answer (no reply)" in decision["reason"]


def test_an_isolated_member_is_a_partition_never_recovered(decisions, settings):
    probe = probe_of(
        {"etcd1": seen("healthy"), "etcd2": seen("healthy"), "etcd3": seen("isolated")}
    )

    decision = decisions.decide(RECOVER, probe, settings)

    assert (decision["action"], decision["rule"]) == ("none", "partition")


def test_others_under_different_leaders_do_not_make_a_quorum(decisions, settings):
    probe = probe_of(
        {
            "etcd1": seen("healthy"),
            "etcd2": seen("healthy", leader=OTHER_LEADER),
            "etcd3": seen("down"),
        }
    )

    decision = decisions.decide(RECOVER, probe, settings)

    assert (decision["action"], decision["rule"]) == ("none", "quorum")


def test_no_member_is_replaced_when_that_would_cost_quorum(decisions, five_settings):
    # Five voters, three down: removing one leaves four voters, whose quorum (three) the
    # two healthy ones do not make.
    members = {name: seen("healthy", members=FIVE) for name in ("etcd1", "etcd2")}
    members.update({name: seen("down", members=FIVE) for name in ("etcd3", "etcd4", "etcd5")})

    decision = decisions.decide(RECOVER, probe_of(members), five_settings)

    assert (decision["action"], decision["rule"]) == ("none", "quorum")


def test_of_five_members_one_lost_beside_four_healthy_is_recovered(decisions, five_settings):
    members = {name: seen("healthy", members=FIVE) for name in ("etcd1", "etcd2", "etcd4", "etcd5")}
    members["etcd3"] = seen("down", members=FIVE)

    assert decisions.decide(RECOVER, probe_of(members), five_settings)["action"] == "recover"


def test_a_member_no_longer_listed_comes_back_under_the_current_voters_quorum(decisions, settings):
    # After a restore that fenced etcd2 and etcd3, etcd1 alone is the cluster; etcd3's
    # machine is back with the old data and etcd refuses it.
    probe = probe_of(
        {
            "etcd1": seen("healthy", members=("etcd1",)),
            "etcd2": seen("down"),
            "etcd3": seen("down"),
        }
    )

    assert decisions.decide(RECOVER, probe, settings)["action"] == "recover"


def test_a_learner_left_behind_is_promoted_before_a_lost_member_is_added(decisions, settings):
    # A restore that failed joining etcd3 left it a learner; etcd takes one at a time.
    probe = probe_of(
        {
            "etcd1": seen("healthy", members=("etcd1", "etcd3"), learners=("etcd3",)),
            "etcd2": seen("down"),
            "etcd3": seen("healthy", members=("etcd1", "etcd3"), learners=("etcd3",)),
        }
    )

    decision = decisions.decide({**RECOVER, "member": "etcd2"}, probe, settings)

    assert (decision["action"], decision["member"], decision["rule"]) == (
        "recover",
        "etcd3",
        "learner",
    )


def test_a_lost_quorum_confirmed_by_the_probe_is_restored(decisions, settings):
    probe = probe_of({"etcd1": seen("isolated"), "etcd2": seen("down"), "etcd3": seen("down")})

    decision = decisions.decide(RESTORE, probe, settings)

    assert (decision["action"], decision["silent"]) == ("restore", [])


def test_a_restore_is_contradicted_by_any_member_the_master_reaches_healthy(decisions, settings):
    probe = probe_of({"etcd1": seen("healthy"), "etcd2": seen("down"), "etcd3": seen("down")})

    decision = decisions.decide(RESTORE, probe, settings)

    assert (decision["action"], decision["rule"]) == ("none", "contradicted")
    assert "etcd1 healthy: quorum holds" in decision["reason"]


def test_a_restore_is_contradicted_by_a_node_that_sees_its_member_healthy(decisions, settings):
    probe = probe_of(
        {name: seen("down") for name in THREE},
        {"etcd1": node("healthy"), "etcd2": node("down"), "etcd3": node("down")},
    )

    decision = decisions.decide(RESTORE, probe, settings)

    assert decision["rule"] == "contradicted"
    assert "a problem between the master and etcd" in decision["reason"]


def test_a_restore_names_the_nodes_whose_minion_is_silent(decisions, settings):
    probe = probe_of(
        {"etcd1": seen("down"), "etcd2": seen("down"), "etcd3": seen("isolated")},
        {"etcd1": node("down"), "etcd2": node("down"), "etcd3": "no reply"},
    )

    decision = decisions.decide(RESTORE, probe, settings)

    assert decision["silent"] == ["etcd3"]


def test_a_probe_that_could_not_run_blocks_everything(decisions, settings):
    probe = {"error": "the master's etcd-admin-client certificate cannot be loaded"}

    decision = decisions.decide(RECOVER, probe, settings)

    assert (decision["action"], decision["rule"]) == ("none", "blocked")


# react and the lock, under the loader's dunders.


class Orchestrations:
    """A stand-in for the runner's state.orchestrate: each call, and what it returns."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []
        self.result: dict | Exception = {"data": {"master": {}}, "retcode": 0}
        self.during = None

    def __call__(self, mods, pillar=None):
        self.calls.append((mods, pillar))
        if self.during is not None:
            self.during()
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class Probes:
    """A stand-in for the master's probe: what it finds, and how often it was taken."""

    def __init__(self):
        self.taken = 0
        self.found = probe_of(
            {"etcd1": seen("healthy"), "etcd2": seen("healthy"), "etcd3": seen("down")}
        )

    def __call__(self, settings):
        self.taken += 1
        return copy.deepcopy(self.found)


class Minions:
    """A stand-in for the master's client to the minions (paas_master.minions)."""

    def __init__(self):
        self.calls = []
        self.replies = {}

    def __call__(self, opts):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def run(self, minions, function, arg=(), kwarg=None, **kwargs):
        self.calls.append((list(minions), function, list(arg)))
        return {minion: self.replies.get(minion, {"ret": {}, "retcode": 0}) for minion in minions}


@pytest.fixture
def orchestrations() -> Orchestrations:
    return Orchestrations()


@pytest.fixture
def probes(runner, monkeypatch) -> Probes:
    found = Probes()
    monkeypatch.setattr(runner, "_probe", found)
    return found


@pytest.fixture
def minions() -> Minions:
    return Minions()


@pytest.fixture
def configure_loader_modules(
    runner,
    runner_utils,
    decisions,
    records,
    lock_utils,
    state_returns,
    topology_utils,
    signed_report,
    topology,
    orchestrations,
    probes,
    minions,
    master_pillar,
    pki_dir,
):
    master_pillar({"paas": topology})
    utils = {
        **runner_utils,
        **utils_of(decisions, "paas_dr_decide"),
        **utils_of(records, "paas_dr_records"),
        **utils_of(lock_utils, "paas_lock"),
        **utils_of(state_returns, "paas_orchestration"),
        "paas_topology.node_ids": topology_utils.node_ids,
        "paas_signed_report.verify": signed_report.verify,
        "paas_master.minions": minions,
    }
    return {
        runner: {
            "__utils__": utils,
            "__opts__": {
                "id": "paas-master",
                "pki_dir": pki_dir,
                "utils_dirs": ["/srv/paas/_utils"],
            },
            "__salt__": {"state.orchestrate": orchestrations},
            "__context__": {},
        }
    }


class Signer:
    """A minion's beacon: reports signed with its key, one epoch, the sequence counted."""

    def __init__(self, signed_report, key: str, member: str):
        self.signing = signed_report
        self.key = key
        self.member = member
        self.epoch = uuid.uuid4().hex
        self.sequence = 0

    def event(self, state: str, **fields) -> dict:
        self.sequence += 1
        data = {
            **report(self.member, state, time.time()),
            "peers": {},
            **fields,
            "epoch": self.epoch,
            "sequence": self.sequence,
        }
        return {**self.signing.sign(self.key, data), "id": self.member, "_stamp": "2026"}


@pytest.fixture
def beacons(signed_report, keys) -> dict:
    return {member: Signer(signed_report, keys[member]["private"], member) for member in FIVE}


@pytest.fixture
def state_dir(settings) -> str:
    return settings["state_dir"]


def read(state_dir, name, default=None):
    path = os.path.join(state_dir, name)
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def react(runner, beacons, member, state, **fields) -> dict:
    return runner.react(
        beacons[member].event(state, **fields), tag=f"salt/beacon/{member}/etcd_health/"
    )


def lose_etcd3(runner, beacons) -> list[dict]:
    for member in ("etcd1", "etcd2"):
        react(runner, beacons, member, "healthy")
    return [react(runner, beacons, "etcd3", "down") for _ in range(3)]


def test_react_starts_one_recovery_once_the_probe_confirms_it_and_records_it(
    runner, beacons, orchestrations, probes, state_dir
):
    decisions = lose_etcd3(runner, beacons)

    assert [d["action"] for d in decisions] == ["none", "none", "recover"]
    assert probes.taken == 1
    owner = decisions[-1]["owner"]
    assert orchestrations.calls == [("orch.etcd_recover", {"member": "etcd3", "dr_owner": owner})]
    assert decisions[-1]["outcome"] == "ok"
    [remediation] = read(state_dir, "remediations.json")
    assert (remediation["owner"], remediation["member"], remediation["outcome"]) == (
        owner,
        "etcd3",
        "ok",
    )
    assert remediation["failed_steps"] == []
    assert remediation["lock_released"] is True
    assert remediation["event_time"] <= remediation["started"]
    [probed] = read(state_dir, "probes.json")
    assert (probed["hint"], probed["action"], probed["sender"]) == ("recover", "recover", "etcd3")
    assert read(state_dir, "lock.json") is None
    # What led to the remediation is spent: the next one takes N new reports.
    assert react(runner, beacons, "etcd3", "down")["action"] == "none"
    assert len(orchestrations.calls) == 1
    assert sorted(os.listdir(state_dir)) == [
        ".records.lock",
        "probes.json",
        "remediations.json",
        "reports.json",
    ]
    assert oct(os.stat(state_dir).st_mode)[-3:] == "700"
    assert {
        oct(os.stat(os.path.join(state_dir, name)).st_mode)[-3:] for name in os.listdir(state_dir)
    } == {"600"}


def test_a_report_the_probe_contradicts_is_recorded_with_its_sender_and_nothing_is_done(
    runner, beacons, orchestrations, probes, state_dir
):
    probes.found = probe_of({name: seen("healthy") for name in THREE})

    decisions = lose_etcd3(runner, beacons)

    assert decisions[-1]["outcome"] == "contradicted"
    assert orchestrations.calls == []
    [probed] = read(state_dir, "probes.json")
    assert (probed["rule"], probed["sender"], probed["member"]) == (
        "contradicted",
        "etcd3",
        "etcd3",
    )
    assert read(state_dir, "lock.json") is None
    summary = runner.summary()
    assert summary["contradicted"][0]["sender"] == "etcd3"
    assert any("etcd3's report (recover etcd3) was contradicted" in p for p in summary["problems"])
    # The same suspicion is not probed again at once.
    assert react(runner, beacons, "etcd3", "down")["rule"] == "holdoff"
    assert probes.taken == 1


def test_an_unsigned_report_is_refused_recorded_and_never_acted_on(
    runner, orchestrations, probes, state_dir
):
    forged = {**report("etcd1", "down", time.time() + 3600), "id": "worker1"}

    for _ in range(4):
        decision = runner.react(forged, tag="salt/beacon/etcd1/etcd_health/")

    assert (decision["action"], decision["rule"]) == ("none", "refused")
    assert probes.taken == 0 and orchestrations.calls == []
    refused = read(state_dir, "refused.json")
    assert len(refused) == 4
    assert refused[0]["sender"] == "worker1"
    assert refused[0]["member"] == "etcd1"
    assert refused[0]["tag"] == "salt/beacon/etcd1/etcd_health/"
    assert "not signed by etcd1's minion: the report is not signed" in refused[0]["reason"]
    # Nothing of it was recorded as etcd1's.
    assert "etcd1" not in read(state_dir, "reports.json", {}).get("members", {})


def test_a_report_signed_by_another_minion_is_refused(
    runner, signed_report, keys, probes, state_dir
):
    # worker1 signs, with its own key, a report that names etcd1.
    forged = Signer(signed_report, keys["worker1"]["private"], "etcd1").event("down")

    decision = runner.react({**forged, "id": "worker1"}, tag="salt/beacon/etcd1/etcd_health/")

    assert decision["rule"] == "refused"
    [refused] = read(state_dir, "refused.json")
    assert refused["sender"] == "worker1"
    assert "does not match the signer's accepted key" in refused["reason"]


def test_a_replayed_report_is_refused(runner, beacons, state_dir):
    event = beacons["etcd2"].event("healthy")
    runner.react(event)

    assert runner.react(copy.deepcopy(event))["rule"] == "refused"
    assert (
        "a replay: etcd2 sent sequence 1 of epoch" in read(state_dir, "refused.json")[0]["reason"]
    )
    # A new minion process (epoch) is taken; the old epoch's reports are still replays.
    restarted = Signer(beacons["etcd2"].signing, beacons["etcd2"].key, "etcd2")
    assert runner.react(restarted.event("healthy"))["rule"] != "refused"
    assert runner.react(copy.deepcopy(event))["rule"] == "refused"
    assert len(read(state_dir, "refused.json")) == 2


def test_a_report_delivered_after_a_newer_one_is_left_out_not_refused(runner, beacons, state_dir):
    first, second = beacons["etcd2"].event("down"), beacons["etcd2"].event("healthy")
    runner.react(second)

    assert runner.react(first)["rule"] == "late"
    assert read(state_dir, "refused.json") is None
    assert read(state_dir, "reports.json")["members"]["etcd2"]["latest"]["state"] == "healthy"


def test_a_report_dated_in_the_future_is_timed_by_the_master_and_shows_the_clock_offset(
    runner, beacons, state_dir
):
    runner.react({**beacons["etcd1"].event("healthy")})
    runner.react(beacons["etcd2"].event("healthy", time=time.time() + 3600))

    entry = read(state_dir, "reports.json")["members"]["etcd2"]
    assert entry["latest"]["received"] <= time.time()
    summary = runner.summary()
    assert summary["members"]["etcd2"]["clock_offset_s"] < -3500
    assert any(
        "etcd2's clock is" in problem and "ahead of the master's" in problem
        for problem in summary["problems"]
    )
    assert summary["members"]["etcd1"]["clock_offset_s"] < 5


def test_a_lost_quorum_restores_with_the_fenced_and_unattended_pillar(
    runner, beacons, orchestrations, probes
):
    probes.found = probe_of(
        {"etcd1": seen("isolated"), "etcd2": seen("down"), "etcd3": seen("down")}
    )
    for _ in range(3):
        react(runner, beacons, "etcd1", "isolated")
        react(runner, beacons, "etcd2", "down")
        decision = react(runner, beacons, "etcd3", "down")

    assert decision["action"] == "restore"
    assert orchestrations.calls == [
        ("orch.etcd_restore", {"dr_owner": decision["owner"], "fenced": [], "dr_unattended": True})
    ]


def quorum_lost_with_etcd3_silent(runner, beacons, probes):
    probes.found = probe_of(
        {"etcd1": seen("down"), "etcd2": seen("down"), "etcd3": seen("isolated")},
        {"etcd1": node("down"), "etcd2": node("down"), "etcd3": "no reply"},
    )
    for _ in range(3):
        react(runner, beacons, "etcd1", "down")
        decision = react(runner, beacons, "etcd2", "down")
    return decision


def test_a_silent_minion_blocks_the_unattended_restore_and_names_the_node(
    runner, beacons, orchestrations, probes, state_dir
):
    decision = quorum_lost_with_etcd3_silent(runner, beacons, probes)

    assert (decision["action"], decision["outcome"]) == ("none", "blocked")
    assert orchestrations.calls == []
    assert "etcd3's minion does not answer" in decision["reason"]
    assert "alive behind a silent minion" in decision["reason"]
    assert "salt-run paas.restore fenced=etcd3" in decision["reason"]
    problems = runner.summary()["problems"]
    assert any(p.startswith("the reactor is blocked") and "etcd3" in p for p in problems)
    assert read(state_dir, "lock.json") is None


def test_the_silent_node_reporting_again_is_probed_at_once_and_the_restore_goes_on(
    runner, beacons, orchestrations, probes
):
    quorum_lost_with_etcd3_silent(runner, beacons, probes)
    # Within the hold-off, another report of a silent-free node is not probed again...
    assert react(runner, beacons, "etcd1", "down")["rule"] == "holdoff"
    # ...but etcd3's minion is back: once its own reports make the suspicion, it is
    # probed at once.
    probes.found = probe_of(
        {"etcd1": seen("down"), "etcd2": seen("down"), "etcd3": seen("isolated")}
    )

    decision = [react(runner, beacons, "etcd3", "isolated") for _ in range(3)][-1]

    assert (decision["action"], decision["outcome"]) == ("restore", "ok")
    assert probes.taken == 2


def test_a_silent_machine_fenced_by_the_topologys_command_lets_the_restore_go_on(
    runner, beacons, orchestrations, probes, topology, master_pillar, tmp_path
):
    fenced_log = tmp_path / "fenced"
    topology["dr"]["fencing"] = {
        "command": ["/bin/sh", "-c", f'echo "$0 $1" >> {fenced_log}', "{node}", "{address}"]
    }
    master_pillar({"paas": topology})

    decision = quorum_lost_with_etcd3_silent(runner, beacons, probes)

    assert decision["action"] == "restore"
    assert fenced_log.read_text() == "etcd3 198.18.1.23\n"
    assert orchestrations.calls[0][1]["fenced"] == ["etcd3"]


def test_a_fencing_that_fails_blocks_the_restore(
    runner, beacons, orchestrations, probes, topology, master_pillar
):
    topology["dr"]["fencing"] = {
        "command": ["/bin/sh", "-c", "echo no such server >&2; exit 3", "{node}"]
    }
    master_pillar({"paas": topology})

    decision = quorum_lost_with_etcd3_silent(runner, beacons, probes)

    assert decision["outcome"] == "blocked"
    assert "fencing failed: exit code 3: no such server" in decision["reason"]
    assert orchestrations.calls == []


def test_a_failed_restore_puts_the_control_planes_back(
    runner, orchestrations, probes, minions, state_dir
):
    probes.found = probe_of({name: seen("down") for name in THREE})
    orchestrations.result = {
        "data": {
            "paas-master_master": {
                "salt_|-paas-etcd-restore-etcd-stopped_|-paas_restore.stop_|-runner": {
                    "__id__": "paas-etcd-restore-etcd-stopped",
                    "result": False,
                    "comment": "Runner function 'paas_restore.stop' failed.",
                    "changes": {"return": "SaltRunnerError: etcd3: python3 (pid 7) listens"},
                }
            }
        },
        "retcode": 1,
    }

    done = runner.remediate("restore")

    assert done["outcome"] == "failed"
    assert minions.calls == [(["cp1", "cp2", "cp3"], "state.apply", ["kubernetes.resumed"])]
    [remediation] = read(state_dir, "remediations.json")
    assert remediation["control_planes_back"] == "ok"
    assert any(
        "the last remediation (restore the cluster) failed" in p
        for p in runner.summary()["problems"]
    )


def test_a_failed_restore_says_when_the_control_planes_could_not_be_put_back(
    runner, orchestrations, probes, minions, state_dir
):
    probes.found = probe_of({name: seen("down") for name in THREE})
    orchestrations.result = RuntimeError("the master minion died")
    minions.replies["cp2"] = "no reply"

    runner.remediate("restore")

    [remediation] = read(state_dir, "remediations.json")
    assert remediation["control_planes_back"] == "cp2 did not return: no reply"
    problems = runner.summary()["problems"]
    assert any(
        "the control planes were not put back: cp2 did not return: no reply" in p for p in problems
    )
    runner.acknowledge(reason="cp2 checked by hand")
    assert runner.summary()["problems"] == []


def test_an_operators_restore_is_refused_while_the_master_reaches_a_healthy_member(
    runner, orchestrations, probes, state_dir
):
    probes.found = probe_of({name: seen("healthy") for name in THREE})

    with pytest.raises(
        SaltRunnerError, match="refused: the master reaches etcd1, etcd2, etcd3 healthy"
    ):
        runner.remediate("restore")

    assert orchestrations.calls == []
    assert read(state_dir, "lock.json") is None


def test_an_operators_restore_leaves_out_the_nodes_they_fenced(runner, orchestrations, probes):
    probes.found = probe_of(
        {"etcd1": seen("isolated"), "etcd2": seen("down"), "etcd3": seen("down")},
        {"etcd1": node("isolated"), "etcd2": "no reply", "etcd3": "no reply"},
    )
    with pytest.raises(SaltRunnerError, match="etcd3's minion does not answer"):
        runner.remediate("restore", fenced="etcd2")

    done = runner.remediate("restore", fenced="etcd2,etcd3")

    assert done["outcome"] == "ok"
    assert orchestrations.calls == [
        (
            "orch.etcd_restore",
            {"dr_owner": done["owner"], "fenced": ["etcd2", "etcd3"], "dr_unattended": False},
        )
    ]


def test_an_operators_restore_runs_under_the_lock_with_the_snapshot(
    runner, orchestrations, probes, state_dir, monkeypatch
):
    probes.found = probe_of({name: seen("down") for name in THREE})
    checked = []

    def check(snapshot):
        checked.append(snapshot)

    monkeypatch.setitem(runner.__salt__, "paas_restore.check", check)

    done = runner.remediate("restore", snapshot="/srv/dr/etcd1/x.db")

    assert checked == ["/srv/dr/etcd1/x.db"]
    assert done["outcome"] == "ok" and done["rule"] == "operator"
    assert orchestrations.calls[0][1]["snapshot"] == "/srv/dr/etcd1/x.db"
    assert read(state_dir, "lock.json") is None


def test_an_operators_remediation_names_a_bad_action_member_or_fenced_node(runner):
    with pytest.raises(SaltRunnerError, match="action must be one of recover, restore"):
        runner.remediate("rebuild")
    with pytest.raises(SaltRunnerError, match="member 'cp1' is no etcd member"):
        runner.remediate("recover", member="cp1")
    with pytest.raises(SaltRunnerError, match="not cp1"):
        runner.remediate("restore", fenced="cp1")
    with pytest.raises(SaltRunnerError, match="at least one etcd node not fenced"):
        runner.remediate("restore", fenced="etcd1,etcd2,etcd3")


def test_a_failed_orchestration_is_recorded_with_its_failed_steps_and_the_lock_released(
    runner, beacons, orchestrations, probes, state_dir
):
    orchestrations.result = {
        "data": {
            "paas-master_master": {
                "salt_|-remove_|-remove_|-function": {
                    "__id__": "etcd-recover-remove",
                    "__run_num__": 0,
                    "result": False,
                    "comment": "removing etcd3 would cost quorum",
                },
            }
        },
        "retcode": 1,
    }

    decision = lose_etcd3(runner, beacons)[-1]

    assert decision["outcome"] == "failed"
    [remediation] = read(state_dir, "remediations.json")
    assert remediation["failed_steps"] == [
        {"step": "etcd-recover-remove", "comment": "removing etcd3 would cost quorum"}
    ]
    assert read(state_dir, "lock.json") is None


def test_a_second_event_during_a_remediation_is_dropped_and_recorded(
    runner, beacons, orchestrations, probes, state_dir
):
    seen_during = {}

    def second_burst():
        seen_during["lock"] = runner.lock()
        seen_during["decisions"] = [react(runner, beacons, "etcd3", "down") for _ in range(3)]

    orchestrations.during = second_burst
    decision = lose_etcd3(runner, beacons)[-1]

    assert len(orchestrations.calls) == 1
    assert seen_during["lock"]["owner"] == decision["owner"]
    assert seen_during["lock"]["expired"] is False
    assert [d["outcome"] for d in seen_during["decisions"]] == ["dropped"] * 3
    dropped = read(state_dir, "dropped.json")
    assert {(d["member"], d["action"], d["held_by"]) for d in dropped} == {
        ("etcd3", "recover", decision["owner"])
    }


def test_the_lock_renewed_past_its_expiry_is_not_taken_over(
    lock_utils,
    runner,
    beacons,
    orchestrations,
    probes,
    topology,
    master_pillar,
    monkeypatch,
    state_dir,
):
    topology["dr"]["lock_expiry_minutes"] = 1
    master_pillar({"paas": topology})
    monkeypatch.setattr(lock_utils, "RENEW_S", 0.05)
    real_time = time.time
    later = {"by": 0.0}
    monkeypatch.setattr(runner.time, "time", lambda: real_time() + later["by"])
    seen_during = {}

    def outlasts_the_expiry():
        # Two expiries pass while the remediation runs; its holder keeps renewing.
        later["by"] = 120.0
        time.sleep(0.5)
        held = read(state_dir, "lock.json")
        seen_during["stale"] = lock_utils.is_stale(held, runner.time.time())
        seen_during["renewed"] = held["renewed"]
        with pytest.raises(SaltRunnerError, match="a remediation holds the lock"):
            runner.remediate("recover", member="etcd2")

    orchestrations.during = outlasts_the_expiry
    decision = lose_etcd3(runner, beacons)[-1]

    assert seen_during["stale"] is False
    assert seen_during["renewed"] > real_time() + 60
    assert decision["outcome"] == "ok"
    assert [call[0] for call in orchestrations.calls] == ["orch.etcd_recover"]
    [remediation] = read(state_dir, "remediations.json")
    assert remediation["took_over"] is None


def lock_of(state_dir, pid, started, expires_in=600):
    os.makedirs(state_dir, exist_ok=True)
    with open(os.path.join(state_dir, "lock.json"), "w", encoding="utf-8") as handle:
        json.dump(
            {
                "owner": "holder",
                "action": "recover",
                "member": "etcd3",
                "taken": time.time(),
                "renewed": time.time(),
                "expires": time.time() + expires_in,
                "host": os.uname().nodename,
                "pid": pid,
                "pid_started": started,
            },
            handle,
        )


def test_the_lock_of_a_process_that_is_gone_is_cleared_at_the_masters_start_and_recorded(
    runner, state_dir
):
    # A master restarted mid-remediation: the lock's process no longer runs.
    gone = subprocess.Popen(["true"])
    gone.wait()
    lock_of(state_dir, gone.pid, "12345")

    cleared = runner.tidy()

    assert cleared["cleared"]["owner"] == "holder"
    assert runner.lock() is None
    [interrupted] = read(state_dir, "remediations.json")
    assert (interrupted["owner"], interrupted["outcome"], interrupted["member"]) == (
        "holder",
        "interrupted",
        "etcd3",
    )
    assert "is gone" in interrupted["reason"]
    assert runner.summary()["problems"] == []


def test_tidy_leaves_a_live_holders_lock(lock_utils, runner, state_dir):
    lock_of(state_dir, os.getpid(), lock_utils.process_started(os.getpid()))

    assert runner.tidy() == {"cleared": None}
    assert runner.lock()["owner"] == "holder"


def test_the_lock_of_a_process_that_is_gone_is_taken_over_and_named(
    runner, beacons, orchestrations, probes, state_dir
):
    gone = subprocess.Popen(["true"])
    gone.wait()
    lock_of(state_dir, gone.pid, "12345")

    decision = lose_etcd3(runner, beacons)[-1]

    assert decision["outcome"] == "ok"
    remediations = read(state_dir, "remediations.json")
    assert [entry["outcome"] for entry in remediations] == ["interrupted", "ok"]
    assert remediations[1]["took_over"]["owner"] == "holder"


def test_a_live_lock_drops_the_suspicion_before_any_probe(
    lock_utils, runner, beacons, orchestrations, probes, state_dir
):
    lock_of(state_dir, os.getpid(), lock_utils.process_started(os.getpid()))

    decision = lose_etcd3(runner, beacons)[-1]

    assert (decision["action"], decision["outcome"], decision["owner"]) == (
        "recover",
        "dropped",
        "holder",
    )
    assert probes.taken == 0 and orchestrations.calls == []
    assert read(state_dir, "dropped.json")[0]["held_by"] == "holder"


def test_unlock_removes_only_the_named_owners_lock(lock_utils, runner, state_dir):
    lock_of(state_dir, os.getpid(), lock_utils.process_started(os.getpid()))

    with pytest.raises(SaltRunnerError, match="held by 'holder', not 'someone'"):
        runner.unlock("someone")
    assert runner.lock()["owner"] == "holder"

    assert runner.unlock("holder")["unlocked"] is True
    assert runner.lock() is None
    assert runner.unlock("holder")["unlocked"] is False


def test_react_reads_the_pillar_once_per_settings_period(runner, beacons, master_pillar, topology):
    compiled = []

    def pillar(_opts):
        compiled.append(time.monotonic())
        return {"paas": topology}

    master_pillar(pillar)
    for member in THREE:
        react(runner, beacons, member, "healthy")

    assert len(compiled) == 1


def test_a_pause_keeps_the_reactor_from_probing_or_acting_and_records_what_it_dropped(
    runner, beacons, orchestrations, probes, state_dir
):
    paused = runner.pause(minutes=30, reason="etcd3's disk replaced")["paused"]
    decision = lose_etcd3(runner, beacons)[-1]

    assert decision["action"] == "recover" and decision["outcome"] == "paused"
    assert probes.taken == 0 and orchestrations.calls == []
    [dropped] = read(state_dir, "dropped.json")
    assert dropped["target"] == "etcd3"
    assert dropped["paused"]["reason"] == "etcd3's disk replaced"
    assert runner.summary()["paused"] == paused

    assert runner.resume()["resumed"] is True
    decision = react(runner, beacons, "etcd3", "down")
    assert decision["outcome"] == "ok"
    assert [call[0] for call in orchestrations.calls] == ["orch.etcd_recover"]


def test_a_pause_needs_a_whole_number_of_minutes(runner):
    with pytest.raises(SaltRunnerError, match="minutes must be a whole number >= 1, not 0"):
        runner.pause(minutes=0)


def test_the_summary_gives_the_newest_revision_a_member_reported(runner, beacons):
    react(runner, beacons, "etcd1", "healthy", revision=120)
    react(runner, beacons, "etcd2", "healthy", revision=131)
    # Members that are down report no revision: the newest seen is kept.
    react(runner, beacons, "etcd1", "down", revision=None)

    assert runner.summary()["last_revision"] == 131


def test_refusals_are_problems_until_an_operator_acknowledges_them(runner, state_dir):
    runner.react(
        {**report("etcd1", "down", time.time()), "id": "gw1"}, tag="salt/beacon/etcd1/etcd_health/"
    )

    problems = runner.summary()["problems"]
    assert any("refused 1 report(s) from gw1 claiming etcd1" in problem for problem in problems)
    runner.acknowledge(reason="gw1 rebuilt")
    assert runner.summary()["problems"] == []
    assert runner.summary()["refused"] == []


def test_a_restore_records_what_its_runner_steps_returned_and_why_one_failed(
    runner, orchestrations, probes, state_dir
):
    probes.found = probe_of({name: seen("down") for name in THREE})
    orchestrations.result = {
        "data": {
            "paas-master_master": {
                "salt_|-paas-etcd-restore-seed_|-paas_restore.seed_|-runner": {
                    "__id__": "paas-etcd-restore-seed",
                    "__run_num__": 3,
                    "result": True,
                    "duration": 12345.6,
                    "changes": {"return": {"source": "snapshot", "lost_revisions": 12}},
                },
                "salt_|-paas-etcd-restore-verify_|-paas_restore.verify_|-runner": {
                    "__id__": "paas-etcd-restore-verify",
                    "__run_num__": 6,
                    "result": False,
                    "comment": "Runner function 'paas_restore.verify' failed.",
                    "changes": {
                        "return": "Traceback...\nSaltRunnerError: the members' stores differ"
                    },
                },
            }
        },
        "retcode": 1,
    }

    done = runner.remediate("restore")

    [remediation] = read(state_dir, "remediations.json")
    assert remediation["returned"] == {
        "paas-etcd-restore-seed": {"source": "snapshot", "lost_revisions": 12}
    }
    assert remediation["step_seconds"] == {"paas-etcd-restore-seed": 12.346}
    assert done["failed_steps"] == [
        {
            "step": "paas-etcd-restore-verify",
            "comment": "Runner function 'paas_restore.verify' failed. "
            "SaltRunnerError: the members' stores differ",
        }
    ]


def _failed_before(action, member, finished):
    return {"action": action, "member": member, "outcome": "failed", "finished": finished}


def test_a_remediation_that_failed_waits_longer_after_each_failure_in_a_row(decisions):
    recover = decisions.new_decision("recover", "etcd3", "recover", "etcd3 down")
    now = 10_000.0
    once = [_failed_before("recover", "etcd3", now - 30)]
    twice = [_failed_before("recover", "etcd3", now - 500), *once]

    assert decisions.backoff(recover, once, now)["rule"] == "backoff"
    assert decisions.backoff(recover, once, now + 31)["action"] == "recover"
    held = decisions.backoff(recover, twice, now + 31)
    assert held["action"] == "none" and "failed 2 time(s) in a row" in held["reason"]
    assert decisions.backoff(recover, twice, now + 91)["action"] == "recover"
    # A success ends the run of failures; another member's failures do not count.
    succeeded = [*twice, {"action": "recover", "member": "etcd3", "outcome": "ok"}]
    assert decisions.backoff(recover, succeeded, now)["action"] == "recover"
    other = [_failed_before("recover", "etcd2", now - 1)]
    assert decisions.backoff(recover, other, now)["action"] == "recover"
    # An operator acknowledged the failures: they mended the cause.
    assert decisions.backoff(recover, twice, now + 31, acknowledged=now - 1)["action"] == "recover"


def test_react_does_not_run_a_failing_remediation_again_at_once(
    runner, beacons, orchestrations, probes
):
    orchestrations.result = RuntimeError("the remediation cannot succeed")
    first = lose_etcd3(runner, beacons)[-1]
    again = [react(runner, beacons, "etcd3", "down") for _ in range(3)][-1]

    assert first["outcome"] == "failed"
    assert (again["action"], again["rule"]) == ("none", "backoff")
    assert len(orchestrations.calls) == 1


def test_the_masters_schedule_tidies_the_lock_at_its_start_and_every_minute(repo_root, runner):
    jobs = yaml.safe_load((repo_root / "etc/salt/master").read_text())["schedule"]

    assert jobs["paas-dr-tidy"] == {"function": "paas_dr.tidy", "minutes": 1, "run_on_start": True}
    assert callable(runner.tidy)


def test_why_a_minions_state_run_failed_names_the_node_each_way_it_can_fail(state_returns):
    why = state_returns.state_failure
    ok = {"ret": {"a": {"result": True, "comment": "fine"}}, "retcode": 0}
    assert why("cp2", ok, "kubernetes.resumed") is None
    assert why("cp2", "no reply", "kubernetes.resumed") == "cp2 did not return: no reply"
    assert why("cp2", {"ret": ["a render error"], "retcode": 1}, "x") == (
        "cp2: state.apply x did not run: ['a render error']"
    )
    failed = {
        "ret": {
            "a": {"result": False, "comment": "the apiserver is not ready"},
            "b": {"result": False, "comment": "cp2: kubeadm join failed"},
        },
        "retcode": 2,
    }
    assert why("cp2", failed, "x") == "cp2: the apiserver is not ready\ncp2: kubeadm join failed"
    assert why("cp2", {**ok, "retcode": 5}, "x") == "cp2: state.apply x exited 5"
