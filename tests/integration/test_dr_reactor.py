"""
The master's reactor hands ``salt/beacon/<id>/etcd_health/`` events to ``paas_dr.react``,
which starts an orchestration only after N unhealthy reports in a row, one at a time.

A salt-master of its own, configured from the shipped etc/salt/master (its reactor
entry and paths included), with a pillar holding the lab's topology whose DR records
live in a temporary directory, and a state tree in front of the repository's whose
``orch.etcd_recover`` is a stand-in: it appends its pillar to a file, then waits until
the test lets it finish (so "during a remediation" is a state the test holds, not a
race). The beacon's events are fired on the master's event bus, one after the other,
each awaited as the react runner's return.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import salt.utils.event
import yaml

from tests.integration.conftest import ShippedConfigMaster, _plain

REACT = "runner.paas_dr.react"
LEADER = "8e9e05c52164694d"
MEMBERS = ("etcd1", "etcd2", "etcd3")
# How long the stand-in orchestration waits for the test to let it finish before it
# fails by itself, so that a broken test never leaves it running.
STUB_WAIT_S = 120
WAIT_S = 60


@pytest.fixture(scope="module")
def dr_tree(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dr-reactor")


@pytest.fixture(scope="module")
def stub_paths(dr_tree) -> dict:
    return {"runs": dr_tree / "recover-runs", "release": dr_tree / "recover-release"}


@pytest.fixture(scope="module")
def dr_master(salt_factories, shipped_master_config, shipped_lab_topology, dr_tree, stub_paths):
    """A master with the shipped config, its pillar and a stand-in orch.etcd_recover."""
    state_tree = dr_tree / "states"
    (state_tree / "orch").mkdir(parents=True)
    (state_tree / "orch" / "etcd_recover.sls").write_text(
        "etcd-recover-stand-in:\n"
        "  cmd.run:\n"
        "    - name: |\n"
        "        echo \"{{ pillar['member'] }} {{ pillar['dr_owner'] }}\""
        f" >> {stub_paths['runs']}\n"
        f"        for i in $(seq {STUB_WAIT_S * 10}); do\n"
        f"          [ -e {stub_paths['release']} ] && exit 0; sleep 0.1\n"
        "        done\n"
        "        exit 1\n"
    )
    pillar_tree = dr_tree / "pillar"
    pillar_tree.mkdir()
    topology = copy.deepcopy(shipped_lab_topology)
    topology.setdefault("dr", {})["receive_dir"] = str(dr_tree / "dr" / "snapshots")
    (pillar_tree / "top.sls").write_text(yaml.safe_dump({"base": {"*": ["paas"]}}))
    (pillar_tree / "paas.sls").write_text(yaml.safe_dump({"paas": topology}))

    config = copy.deepcopy(shipped_master_config)
    assert config["reactor"] == [
        {
            "salt/beacon/*/etcd_health/": [
                str(Path(config["runner_dirs"][0]).parent / "reactor/etcd_health.sls")
            ]
        }
    ]
    config["file_roots"] = {"base": [str(state_tree), *config["file_roots"]["base"]]}
    config["pillar_roots"] = {"base": [str(pillar_tree)]}
    factory = salt_factories.salt_master_daemon(
        "dr-reactor-master", overrides=config, factory_class=ShippedConfigMaster
    )
    assert _plain(factory.config["reactor"]) == config["reactor"]
    with factory.started():
        yield factory


@pytest.fixture
def state_dir(dr_tree, stub_paths) -> Path:
    """The DR records, empty at the start of each test; the stand-in's files removed."""
    path = dr_tree / "dr" / "state"
    shutil.rmtree(path, ignore_errors=True)
    for stub_file in stub_paths.values():
        stub_file.unlink(missing_ok=True)
    try:
        yield path
    finally:
        # Never leave the stand-in waiting, whatever the test did.
        stub_paths["release"].touch()


@pytest.fixture
def fire(dr_master, event_listener):
    """Fire one beacon report on the master's bus and return the react runner's decision."""
    bus = salt.utils.event.get_master_event(
        dr_master.config, dr_master.config["sock_dir"], listen=False
    )

    def fire_report(member: str, state: str, failing=()) -> dict:
        event = {
            "member": member,
            "state": state,
            "serving": state != "down",
            "health": state == "healthy",
            "leader": LEADER if state == "healthy" else None,
            "alarms": [],
            "data_dir": True,
            "peers": {other: other not in failing for other in MEMBERS if other != member},
            "reason": "unhealthy" if state != "healthy" else "heartbeat",
            "time": time.time(),
            "id": member,
        }
        after = time.time()
        bus.fire_event(event, f"salt/beacon/{member}/etcd_health/")
        return reaction(dr_master, event_listener, event["time"], after)

    try:
        yield fire_report
    finally:
        bus.destroy()


def reaction(master, event_listener, report_time: float, after: float) -> dict:
    """The react runner's return for the report made at ``report_time``."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        for event in event_listener.get_events([(master.id, "salt/run/*/ret")], after_time=after):
            if event.data.get("fun") != REACT:
                continue
            args = event.data.get("fun_args") or [{}]
            if args[-1].get("event", {}).get("time") == report_time:
                assert isinstance(event.data["return"], dict), event.data["return"]
                return event.data["return"]
        time.sleep(0.1)
    raise AssertionError(f"no {REACT} return for the report of {report_time} in {WAIT_S} s")


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen in {WAIT_S} s"
        time.sleep(0.1)


def read(path: Path, default=None):
    return json.loads(path.read_text()) if path.exists() else default


def confirm_loss_of_etcd3(fire):
    for member in ("etcd1", "etcd2"):
        assert fire(member, "healthy", failing=("etcd3",))["action"] == "none"


def test_fewer_bad_reports_than_the_debounce_start_nothing(fire, state_dir, stub_paths):
    confirm_loss_of_etcd3(fire)

    decisions = [fire("etcd3", "down") for _ in range(2)]

    assert [(d["action"], d["rule"]) for d in decisions] == [("none", "debounce")] * 2
    assert not stub_paths["runs"].exists()
    assert read(state_dir / "reports.json")["members"]["etcd3"]["consecutive_unhealthy"] == 2
    assert not (state_dir / "remediations.json").exists()


def test_bad_reports_in_a_row_start_one_recovery_and_a_burst_during_it_is_dropped(
    dr_master, fire, state_dir, stub_paths, event_listener
):
    confirm_loss_of_etcd3(fire)
    assert [fire("etcd3", "down")["action"] for _ in range(2)] == ["none", "none"]
    started = time.time()
    third = {
        "member": "etcd3",
        "state": "down",
        "serving": False,
        "peers": {"etcd1": False, "etcd2": False},
        "time": time.time(),
    }
    bus = salt.utils.event.get_master_event(
        dr_master.config, dr_master.config["sock_dir"], listen=False
    )
    try:
        bus.fire_event(third, "salt/beacon/etcd3/etcd_health/")
    finally:
        bus.destroy()

    # The stand-in is running and holds the lock until the test releases it.
    wait_for(stub_paths["runs"].exists, "orch.etcd_recover")
    lock = read(state_dir / "lock.json")
    assert (lock["action"], lock["member"]) == ("recover", "etcd3")
    burst = [fire("etcd3", "down") for _ in range(3)]
    assert [(d["action"], d["outcome"], d["owner"]) for d in burst] == [
        ("recover", "dropped", lock["owner"])
    ] * 3
    dropped = read(state_dir / "dropped.json")
    assert [(d["member"], d["held_by"]) for d in dropped] == [("etcd3", lock["owner"])] * 3

    stub_paths["release"].touch()
    decision = reaction(dr_master, event_listener, third["time"], started)

    assert (decision["action"], decision["member"], decision["outcome"]) == (
        "recover",
        "etcd3",
        "ok",
    )
    assert decision["owner"] == lock["owner"]
    assert stub_paths["runs"].read_text().splitlines() == [f"etcd3 {lock['owner']}"]
    [remediation] = read(state_dir / "remediations.json")
    assert remediation["outcome"] == "ok"
    assert remediation["orchestration"] == "orch.etcd_recover"
    assert remediation["took_over"] is None
    assert not (state_dir / "lock.json").exists()


def test_an_operators_pause_and_resume_print_their_answer_and_nothing_else(dr_master, state_dir):
    salt_run = Path(sys.executable).parent / "salt-run"
    config_dir = f"--config-dir={dr_master.config_dir}"

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(salt_run), config_dir, "--out=json", *argv],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    paused = run("paas_dr.pause", "minutes=5", "reason=disk swap")
    resumed = run("paas_dr.resume")

    assert paused.returncode == resumed.returncode == 0, (paused, resumed)
    assert json.loads(paused.stdout)["paused"]["reason"] == "disk swap"
    assert json.loads(resumed.stdout)["resumed"] is True, resumed.stdout
    # salt-run's own "unclosed Runner/MasterMinion/SyncWrapper" warnings are not printed.
    assert (paused.stderr, resumed.stderr) == ("", "")
