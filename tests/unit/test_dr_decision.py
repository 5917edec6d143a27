"""
The reactor's decision on etcd health reports (``_runners/paas_dr.py``).

``decide`` is a pure function of the recorded reports, the ``paas:dr`` view and the
time: each rule of the contract (debounce, confirmation by the others, partition,
quorum, restore, stale reports) on the lab's three members, and on five members where
quorum arithmetic matters. ``react`` under Salt's loader dunders, with a stand-in for
``state.orchestrate``: what it starts, with which pillar, what it records, and the lock
(one remediation at a time, a second event dropped and recorded, an expired or
orphaned lock taken over naming its owner, an operator's unlock).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time

import pytest
from salt.exceptions import SaltRunnerError

NOW = 1_800_000_000.0
INTERVAL = 5
LEADER = "8e9e05c52164694d"
OTHER_LEADER = "91bc3c398fb3c146"
THREE = ("etcd1", "etcd2", "etcd3")
FIVE = ("etcd1", "etcd2", "etcd3", "etcd4", "etcd5")


@pytest.fixture(scope="module")
def runner(import_repo_module):
    return import_repo_module("_runners/paas_dr.py", "paas_dr_runner_module")


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


def report(member, state, at, *, members=THREE, leader=LEADER, failing=(), alarms=()) -> dict:
    """One beacon event: ``member`` in ``state`` at ``at``, seeing the members named in
    ``failing`` fail and the others answer."""
    serving = state != "down"
    return {
        "member": member,
        "state": state,
        "serving": serving,
        "health": state == "healthy",
        "member_id": f"id-{member}",
        "leader": leader if state in ("healthy", "alarm") else None,
        "alarms": list(alarms),
        "data_dir": True,
        "peers": {other: other not in failing for other in members if other != member},
        "reason": "changed",
        "time": at,
    }


def record(runner, settings, reports: dict, *events) -> dict:
    """The reports as react records them."""
    for event in events:
        runner._record_report(reports, event, event["time"], runner._debounce(settings))
    return reports["members"]


def streak(member, state, count, end=NOW, **kwargs) -> list[dict]:
    """``count`` reports in a row from ``member``, one per beacon interval, the last at ``end``."""
    return [report(member, state, end - INTERVAL * (count - 1 - i), **kwargs) for i in range(count)]


def confirmed_loss(member, count, members=THREE, **kwargs) -> list[dict]:
    """The others healthy under one leader, seeing ``member`` fail; ``member`` down."""
    others = [report(o, "healthy", NOW - 1, members=members, failing=(member,)) for o in members]
    return [
        *(event for event in others if event["member"] != member),
        *streak(member, "down", count, members=members, **kwargs),
    ]


def decide(runner, settings, *events, now=NOW) -> dict:
    return runner.decide(record(runner, settings, {}, *events), settings, now)


def test_three_down_reports_confirmed_by_the_others_recover_the_member(runner, settings):
    decision = decide(runner, settings, *confirmed_loss("etcd3", 3))

    assert decision["action"] == "recover"
    assert decision["member"] == "etcd3"
    assert "etcd1, etcd2" in decision["reason"]


def test_fewer_down_reports_than_the_debounce_trigger_nothing(runner, settings):
    decision = decide(runner, settings, *confirmed_loss("etcd3", 2))

    assert decision["action"] == "none"
    assert decision["rule"] == "debounce"
    assert "etcd3 (2 of 3" in decision["reason"]


def test_a_flapping_member_triggers_nothing(runner, settings):
    others = confirmed_loss("etcd3", 0)
    # Up and down faster than the debounce: never three down reports in a row.
    flaps = ["down", "down", "healthy", "down", "down", "healthy", "down", "down"]
    reports = {}
    for index, state in enumerate(flaps):
        at = NOW - INTERVAL * (len(flaps) - 1 - index)
        event = report("etcd3", state, at, failing=())
        members = record(runner, settings, reports, *others, event)
        decision = runner.decide(members, settings, at)
        assert decision["action"] == "none", (index, decision)
    assert members["etcd3"]["consecutive_unhealthy"] == 2


def test_a_healthy_report_resets_the_count_of_unhealthy_ones(runner, settings):
    reports = {}
    record(runner, settings, reports, *streak("etcd3", "down", 2, end=NOW - 10))
    members = record(runner, settings, reports, report("etcd3", "healthy", NOW - 5))
    assert members["etcd3"]["consecutive_unhealthy"] == 0
    members = record(runner, settings, reports, report("etcd3", "down", NOW))
    assert members["etcd3"]["consecutive_unhealthy"] == 1


def test_an_isolated_member_with_the_majority_healthy_is_a_partition_never_acted_on(
    runner, settings
):
    others = [report(o, "healthy", NOW - 1, failing=("etcd3",)) for o in ("etcd1", "etcd2")]
    isolated = streak("etcd3", "isolated", 10, failing=("etcd1", "etcd2"))

    decision = decide(runner, settings, *others, *isolated)

    assert decision["action"] == "none"
    assert decision["rule"] == "partition"
    assert decision["member"] == "etcd3"


def test_a_partitioned_member_silent_to_the_master_is_never_removed(runner, settings):
    # The majority sees etcd3 fail; etcd3's own minion is cut off too and says nothing.
    others = [report(o, "healthy", NOW - 1, failing=("etcd3",)) for o in ("etcd1", "etcd2")]

    decision = decide(runner, settings, *others)

    assert decision["action"] == "none"
    assert decision["rule"] == "healthy"


def test_a_member_the_others_still_reach_is_not_recovered(runner, settings):
    others = [report(o, "healthy", NOW - 1) for o in ("etcd1", "etcd2")]

    decision = decide(runner, settings, *others, *streak("etcd3", "down", 3))

    assert decision["action"] == "none"
    assert decision["rule"] == "unconfirmed"


def test_others_that_disagree_on_the_leader_do_not_confirm(runner, settings):
    others = [
        report("etcd1", "healthy", NOW - 1, failing=("etcd3",)),
        report("etcd2", "healthy", NOW - 1, failing=("etcd3",), leader=OTHER_LEADER),
    ]

    decision = decide(runner, settings, *others, *streak("etcd3", "down", 3))

    assert decision["action"] == "none"
    assert decision["rule"] == "unconfirmed"


def test_no_member_is_removed_when_that_would_cost_quorum(runner, five_settings):
    members = FIVE
    healthy = [
        report(o, "healthy", NOW - 1, members=members, failing=("etcd3", "etcd4", "etcd5"))
        for o in ("etcd1", "etcd2")
    ]
    down = [
        event
        for member in ("etcd3", "etcd4", "etcd5")
        for event in streak(member, "down", 3, members=members)
    ]

    decision = decide(runner, five_settings, *healthy, *down)

    assert decision["action"] == "none"
    assert decision["rule"] == "quorum"
    assert "fewer than the quorum of 3 of the remaining 4" in decision["reason"]


def test_of_five_members_two_lost_are_recovered_one_at_a_time(runner, five_settings):
    members = FIVE
    healthy = [
        report(o, "healthy", NOW - 1, members=members, failing=("etcd4", "etcd5"))
        for o in ("etcd1", "etcd2", "etcd3")
    ]
    down = [e for m in ("etcd4", "etcd5") for e in streak(m, "down", 3, members=members)]

    decision = decide(runner, five_settings, *healthy, *down)

    assert (decision["action"], decision["member"]) == ("recover", "etcd4")


def test_a_corrupt_member_is_recovered_and_a_full_one_is_not(runner, settings):
    others = [report(o, "healthy", NOW - 1, failing=("etcd3",)) for o in ("etcd1", "etcd2")]

    corrupt = decide(runner, settings, *others, *streak("etcd3", "alarm", 3, alarms=["CORRUPT"]))
    full = decide(runner, settings, *others, *streak("etcd3", "alarm", 3, alarms=["NOSPACE"]))

    assert (corrupt["action"], corrupt["member"]) == ("recover", "etcd3")
    assert full["action"] == "none"


def test_stale_down_reports_are_ignored(runner, settings):
    events = confirmed_loss("etcd3", 3)

    decision = decide(runner, settings, *events, now=NOW + 3 * INTERVAL + 1)

    assert decision["action"] == "none"
    assert decision["rule"] == "healthy"


def test_confirmations_older_than_a_heartbeat_do_not_count(runner, settings):
    stale = [
        report(o, "healthy", NOW - settings["heartbeat_seconds"] - 3 * INTERVAL - 1)
        for o in ("etcd1", "etcd2")
    ]

    decision = decide(runner, settings, *stale, *streak("etcd3", "down", 3))

    assert decision["action"] == "none"


def test_no_member_healthy_and_all_down_or_isolated_in_a_row_restores(runner, settings):
    events = [
        *streak("etcd1", "isolated", 3, failing=("etcd2", "etcd3")),
        *streak("etcd2", "down", 3, failing=("etcd1", "etcd3")),
        *streak("etcd3", "down", 4, failing=("etcd1", "etcd2")),
    ]

    decision = decide(runner, settings, *events)

    assert decision["action"] == "restore"
    assert decision["member"] is None


def test_a_silent_member_seen_down_by_the_others_counts_toward_a_restore(runner, settings):
    events = [
        *streak("etcd1", "isolated", 3, failing=("etcd2", "etcd3")),
        *streak("etcd2", "down", 3, failing=("etcd1", "etcd3")),
    ]

    decision = decide(runner, settings, *events)

    assert decision["action"] == "restore"
    assert "etcd3 silent" in decision["reason"]


def test_a_silent_member_the_others_still_reach_stops_a_restore(runner, settings):
    events = [
        *streak("etcd1", "isolated", 3, failing=("etcd2",)),
        *streak("etcd2", "down", 3, failing=("etcd1", "etcd3")),
    ]

    decision = decide(runner, settings, *events)

    assert decision["action"] == "none"
    assert decision["rule"] == "unconfirmed"


def test_no_restore_while_a_member_is_healthy_or_before_the_debounce(runner, settings):
    healthy = decide(
        runner,
        settings,
        report("etcd1", "healthy", NOW - 30),
        *streak("etcd2", "down", 3),
        *streak("etcd3", "down", 3),
    )
    early = decide(
        runner,
        settings,
        *streak("etcd1", "isolated", 2),
        *streak("etcd2", "down", 3),
        *streak("etcd3", "down", 3),
    )

    assert healthy["action"] == "none"
    assert early["action"] == "none"
    assert early["rule"] == "debounce"


def test_no_restore_from_stale_reports(runner, settings):
    events = [event for member in THREE for event in streak(member, "down", 3)]

    decision = decide(runner, settings, *events, now=NOW + 3 * INTERVAL + 1)

    assert decision["action"] == "none"
    assert decision["rule"] == "stale"


def test_a_report_older_than_the_members_latest_changes_nothing(runner, settings):
    reports = {}
    record(runner, settings, reports, report("etcd3", "down", NOW))
    members = record(runner, settings, reports, report("etcd3", "healthy", NOW - 1))

    assert members["etcd3"]["latest"]["state"] == "down"
    assert members["etcd3"]["consecutive_unhealthy"] == 1


# react and the lock, under the loader's dunders


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


@pytest.fixture
def orchestrations() -> Orchestrations:
    return Orchestrations()


@pytest.fixture
def configure_loader_modules(runner, runner_utils, topology, orchestrations, monkeypatch):
    monkeypatch.setattr(runner, "_master_pillar", lambda: {"paas": topology})
    return {
        runner: {
            "__utils__": dict(runner_utils),
            "__opts__": {"id": "itest-master", "utils_dirs": ["/srv/paas/_utils"]},
            "__salt__": {"state.orchestrate": orchestrations},
            "__context__": {},
        }
    }


@pytest.fixture
def state_dir(settings) -> str:
    return settings["state_dir"]


def read(state_dir, name, default=None):
    path = os.path.join(state_dir, name)
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def live(member, state, **kwargs) -> dict:
    return report(member, state, time.time(), **kwargs)


def healthy_others(runner, lost="etcd3"):
    for member in THREE:
        if member != lost:
            runner.react(live(member, "healthy", failing=(lost,)))


def test_react_starts_one_recovery_with_the_member_and_owner_and_records_it(
    runner, orchestrations, state_dir
):
    healthy_others(runner)
    decisions = [runner.react(live("etcd3", "down")) for _ in range(3)]

    assert [d["action"] for d in decisions] == ["none", "none", "recover"]
    owner = decisions[-1]["owner"]
    assert orchestrations.calls == [("orch.etcd_recover", {"member": "etcd3", "dr_owner": owner})]
    assert decisions[-1]["outcome"] == "ok"
    [remediation] = read(state_dir, "remediations.json")
    assert remediation["owner"] == owner
    assert remediation["member"] == "etcd3"
    assert remediation["outcome"] == "ok"
    assert remediation["failed_steps"] == []
    assert remediation["lock_released"] is True
    assert remediation["duration_s"] >= 0
    assert remediation["event_time"] <= remediation["started"]
    assert read(state_dir, "lock.json") is None
    # What led to the remediation is spent: the next one takes N new reports.
    assert runner.react(live("etcd3", "down"))["action"] == "none"
    assert len(orchestrations.calls) == 1
    assert sorted(os.listdir(state_dir)) == [
        ".records.lock",
        "remediations.json",
        "reports.json",
    ]


def test_react_restores_when_quorum_is_lost(runner, orchestrations):
    for _ in range(3):
        runner.react(live("etcd1", "isolated", failing=("etcd2", "etcd3")))
        runner.react(live("etcd2", "down", failing=("etcd1", "etcd3")))
        decision = runner.react(live("etcd3", "down", failing=("etcd1", "etcd2")))

    assert decision["action"] == "restore"
    assert orchestrations.calls == [("orch.etcd_restore", {"dr_owner": decision["owner"]})]


def test_a_failed_orchestration_is_recorded_with_its_failed_steps_and_the_lock_released(
    runner, orchestrations, state_dir
):
    orchestrations.result = {
        "data": {
            "itest-master_master": {
                "salt_|-remove_|-remove_|-function": {
                    "__id__": "etcd-recover-remove",
                    "__run_num__": 0,
                    "result": False,
                    "comment": "removing etcd3 would cost quorum",
                },
                "salt_|-start_|-start_|-function": {
                    "__id__": "etcd-recover-start",
                    "__run_num__": 1,
                    "result": True,
                    "comment": "",
                },
            }
        },
        "retcode": 1,
    }
    healthy_others(runner)
    decision = [runner.react(live("etcd3", "down")) for _ in range(3)][-1]

    assert decision["outcome"] == "failed"
    [remediation] = read(state_dir, "remediations.json")
    assert remediation["outcome"] == "failed"
    assert remediation["failed_steps"] == [
        {"step": "etcd-recover-remove", "comment": "removing etcd3 would cost quorum"}
    ]
    assert read(state_dir, "lock.json") is None


def test_an_orchestration_that_raises_is_recorded_failed_and_the_lock_released(
    runner, orchestrations, state_dir
):
    orchestrations.result = RuntimeError("the master minion died")
    healthy_others(runner)
    decision = [runner.react(live("etcd3", "down")) for _ in range(3)][-1]

    assert decision["outcome"] == "failed"
    [remediation] = read(state_dir, "remediations.json")
    assert remediation["failed_steps"] == [
        {"step": "orch.etcd_recover", "comment": "RuntimeError: the master minion died"}
    ]
    assert read(state_dir, "lock.json") is None


def test_a_second_event_during_a_remediation_is_dropped_and_recorded(
    runner, orchestrations, state_dir
):
    seen = {}

    def second_burst():
        seen["lock"] = runner.lock()
        seen["decisions"] = [runner.react(live("etcd3", "down")) for _ in range(3)]

    orchestrations.during = second_burst
    healthy_others(runner)
    decision = [runner.react(live("etcd3", "down")) for _ in range(3)][-1]

    assert len(orchestrations.calls) == 1
    assert seen["lock"]["owner"] == decision["owner"]
    assert seen["lock"]["expired"] is False
    assert [d["outcome"] for d in seen["decisions"]] == ["dropped"] * 3
    dropped = read(state_dir, "dropped.json")
    assert len(dropped) == 3
    assert {(d["member"], d["action"], d["held_by"]) for d in dropped} == {
        ("etcd3", "recover", decision["owner"])
    }
    assert runner.summary()["dropped"] == dropped


def test_an_expired_lock_is_taken_over_and_the_remediation_names_its_owner(
    runner, orchestrations, state_dir
):
    os.makedirs(state_dir)
    with open(os.path.join(state_dir, "lock.json"), "w", encoding="utf-8") as handle:
        json.dump(
            {
                "owner": "20261126120000000000",
                "action": "recover",
                "member": "etcd2",
                "taken": time.time() - 3600,
                "expires": time.time() - 60,
            },
            handle,
        )
    assert runner.lock()["expired"] is True
    healthy_others(runner)
    decision = [runner.react(live("etcd3", "down")) for _ in range(3)][-1]

    assert decision["outcome"] == "ok"
    [remediation] = read(state_dir, "remediations.json")
    assert remediation["took_over"]["owner"] == "20261126120000000000"
    assert remediation["took_over"]["member"] == "etcd2"
    assert runner.lock() is None


def lock_of(state_dir, pid, started, expires_in=600):
    os.makedirs(state_dir, exist_ok=True)
    with open(os.path.join(state_dir, "lock.json"), "w", encoding="utf-8") as handle:
        json.dump(
            {
                "owner": "holder",
                "action": "recover",
                "member": "etcd3",
                "taken": time.time(),
                "expires": time.time() + expires_in,
                "host": os.uname().nodename,
                "pid": pid,
                "pid_started": started,
            },
            handle,
        )


def test_the_lock_of_a_process_that_is_gone_is_taken_over_before_it_expires(
    runner, orchestrations, state_dir
):
    # A master restarted mid-remediation: the lock's process no longer runs.
    gone = subprocess.Popen(["true"])
    gone.wait()
    lock_of(state_dir, gone.pid, "12345")
    healthy_others(runner)
    decision = [runner.react(live("etcd3", "down")) for _ in range(3)][-1]

    assert decision["outcome"] == "ok"
    assert read(state_dir, "remediations.json")[0]["took_over"]["owner"] == "holder"


def test_a_live_lock_drops_the_event(runner, orchestrations, state_dir):
    lock_of(state_dir, os.getpid(), runner._process_started(os.getpid()))
    healthy_others(runner)
    decision = [runner.react(live("etcd3", "down")) for _ in range(3)][-1]

    assert (decision["action"], decision["outcome"], decision["owner"]) == (
        "recover",
        "dropped",
        "holder",
    )
    assert orchestrations.calls == []
    assert read(state_dir, "dropped.json")[0]["held_by"] == "holder"


def test_unlock_removes_only_the_named_owners_lock(runner, state_dir):
    lock_of(state_dir, os.getpid(), runner._process_started(os.getpid()))

    with pytest.raises(SaltRunnerError, match="held by 'holder', not 'someone'"):
        runner.unlock("someone")
    assert runner.lock()["owner"] == "holder"

    assert runner.unlock("holder")["unlocked"] is True
    assert runner.lock() is None
    assert runner.unlock("holder")["unlocked"] is False


def test_an_event_of_no_etcd_member_is_refused(runner):
    with pytest.raises(SaltRunnerError, match="'cp1' is no etcd member"):
        runner.react(live("cp1", "down"))


def test_the_summary_gives_lock_last_remediation_and_members(runner, orchestrations):
    healthy_others(runner)
    for _ in range(3):
        runner.react(live("etcd3", "down"))

    summary = runner.summary()

    assert summary["lock"] is None
    assert summary["last_remediation"]["member"] == "etcd3"
    assert summary["last_remediation"]["outcome"] == "ok"
    assert summary["last_decision"]["action"] == "recover"
    assert summary["members"]["etcd1"]["state"] == "healthy"
    assert summary["members"]["etcd3"]["consecutive_unhealthy"] == 0


def test_react_reads_the_pillar_once_per_settings_period(runner, monkeypatch, topology):
    compiled = []

    def master_pillar():
        compiled.append(time.monotonic())
        return {"paas": topology}

    monkeypatch.setattr(runner, "_master_pillar", master_pillar)
    for member in THREE:
        runner.react(live(member, "healthy"))

    assert len(compiled) == 1


def test_a_pause_keeps_the_reactor_from_acting_and_records_what_it_dropped(
    runner, orchestrations, state_dir
):
    paused = runner.pause(minutes=30, reason="etcd3's disk replaced")["paused"]
    healthy_others(runner)
    decision = [runner.react(live("etcd3", "down")) for _ in range(3)][-1]

    assert decision["action"] == "recover" and decision["outcome"] == "paused"
    assert orchestrations.calls == []
    [dropped] = read(state_dir, "dropped.json")
    assert dropped["target"] == "etcd3"
    assert dropped["paused"]["reason"] == "etcd3's disk replaced"
    assert runner.summary()["paused"] == paused

    assert runner.resume()["resumed"] is True
    assert runner.summary()["paused"] is None
    decision = runner.react(live("etcd3", "down"))
    assert decision["outcome"] == "ok"
    assert [call[0] for call in orchestrations.calls] == ["orch.etcd_recover"]


def test_a_pause_needs_a_whole_number_of_minutes(runner):
    with pytest.raises(SaltRunnerError, match="minutes must be a whole number >= 1, not 0"):
        runner.pause(minutes=0)


def test_the_summary_gives_the_newest_revision_a_member_reported(runner):
    runner.react({**live("etcd1", "healthy"), "revision": 120})
    runner.react({**live("etcd2", "healthy"), "revision": 131})
    # Members that are down report no revision: the newest seen is kept.
    runner.react(live("etcd1", "down"))
    runner.react(live("etcd2", "down"))

    assert runner.summary()["last_revision"] == 131


def test_an_operators_restore_runs_under_the_lock_with_the_snapshot(
    runner, orchestrations, state_dir, monkeypatch
):
    checked = []

    def check(snapshot):
        checked.append(snapshot)

    monkeypatch.setitem(runner.__salt__, "paas_restore.check", check)

    done = runner.remediate("restore", snapshot="/srv/dr/etcd1/x.db")

    assert checked == ["/srv/dr/etcd1/x.db"]
    assert done["outcome"] == "ok" and done["rule"] == "operator"
    assert orchestrations.calls == [
        ("orch.etcd_restore", {"dr_owner": done["owner"], "snapshot": "/srv/dr/etcd1/x.db"})
    ]
    assert read(state_dir, "lock.json") is None


def test_an_operators_remediation_is_refused_while_another_holds_the_lock(runner, orchestrations):
    def operator_too():
        with pytest.raises(SaltRunnerError, match="a remediation holds the lock \\(recover by"):
            runner.remediate("recover", member="etcd2")

    orchestrations.during = operator_too
    healthy_others(runner)
    decision = [runner.react(live("etcd3", "down")) for _ in range(3)][-1]

    assert decision["outcome"] == "ok"
    assert [call[0] for call in orchestrations.calls] == ["orch.etcd_recover"]


def test_an_operators_remediation_names_a_bad_action_or_member(runner):
    with pytest.raises(SaltRunnerError, match="action must be one of recover, restore"):
        runner.remediate("rebuild")
    with pytest.raises(SaltRunnerError, match="member 'cp1' is no etcd member"):
        runner.remediate("recover", member="cp1")


def test_a_restore_records_what_its_runner_steps_returned_and_why_one_failed(
    runner, orchestrations, state_dir
):
    orchestrations.result = {
        "data": {
            "itest-master_master": {
                "salt_|-paas-etcd-restore-seed_|-paas_restore.seed_|-runner": {
                    "__id__": "paas-etcd-restore-seed",
                    "__run_num__": 3,
                    "result": True,
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
    assert done["failed_steps"] == [
        {
            "step": "paas-etcd-restore-verify",
            "comment": "Runner function 'paas_restore.verify' failed. "
            "SaltRunnerError: the members' stores differ",
        }
    ]


def _failed_before(action, member, finished):
    return {"action": action, "member": member, "outcome": "failed", "finished": finished}


def test_a_remediation_that_failed_waits_longer_after_each_failure_in_a_row(runner):
    recover = runner._decision("recover", "etcd3", "recover", "etcd3 down")
    now = 10_000.0
    once = [_failed_before("recover", "etcd3", now - 30)]
    twice = [_failed_before("recover", "etcd3", now - 500), *once]

    assert runner.backoff(recover, once, now)["rule"] == "backoff"
    assert runner.backoff(recover, once, now + 31)["action"] == "recover"
    held = runner.backoff(recover, twice, now + 31)
    assert held["action"] == "none" and "failed 2 time(s) in a row" in held["reason"]
    assert runner.backoff(recover, twice, now + 91)["action"] == "recover"
    # A success ends the run of failures; another member's failures do not count.
    succeeded = [*twice, {"action": "recover", "member": "etcd3", "outcome": "ok"}]
    assert runner.backoff(recover, succeeded, now)["action"] == "recover"
    other = [_failed_before("recover", "etcd2", now - 1)]
    assert runner.backoff(recover, other, now)["action"] == "recover"


def test_react_does_not_run_a_failing_remediation_again_at_once(runner, orchestrations):
    orchestrations.result = RuntimeError("the remediation cannot succeed")
    healthy_others(runner)
    first = [runner.react(live("etcd3", "down")) for _ in range(3)][-1]
    again = [runner.react(live("etcd3", "down")) for _ in range(3)][-1]

    assert first["outcome"] == "failed"
    assert (again["action"], again["rule"]) == ("none", "backoff")
    assert len(orchestrations.calls) == 1
