"""
The master's reactor hands ``salt/beacon/<id>/etcd_health/`` events, with their tag, to
``paas_dr.react``, which acts on nothing it has not verified.

A salt-master of its own, configured from the shipped etc/salt/master (its reactor
entry, schedule and paths included), with a pillar holding the lab's topology whose DR
records live in a temporary directory, and a state tree in front of the repository's
whose ``orch.etcd_recover`` and ``orch.etcd_restore`` are stand-ins that record that
they ran. A real minion of that master, named worker1 as the lab's worker is, forges
reports with ``salt-call event.send`` as an attacker on a worker would; reports signed
with keys the master accepted for etcd1-3 are fired on the master's bus as the etcd
nodes' beacons fire them.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import salt.utils.event
import yaml

from tests.conftest import _import_by_path, minion_keys
from tests.integration.conftest import ShippedConfigMaster, _plain

REACT = "runner.paas_dr.react"
MEMBERS = ("etcd1", "etcd2", "etcd3")
WAIT_S = 60


@pytest.fixture(scope="module")
def dr_tree(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dr-reactor")


@pytest.fixture(scope="module")
def ran(dr_tree) -> Path:
    return dr_tree / "orchestrations-ran"


@pytest.fixture(scope="module")
def etcd_keys(dr_tree) -> dict:
    """A throwaway key per etcd node: its private key, and its public key for the master."""
    return minion_keys(dr_tree, MEMBERS)


@pytest.fixture(scope="module")
def dr_master(salt_factories, shipped_master_config, shipped_lab_topology, dr_tree, ran, etcd_keys):
    """A master with the shipped config, its pillar, stand-in remediations, and the
    etcd nodes' keys accepted."""
    state_tree = dr_tree / "states"
    (state_tree / "orch").mkdir(parents=True)
    for orchestration in ("etcd_recover", "etcd_restore"):
        (state_tree / "orch" / f"{orchestration}.sls").write_text(
            f"{orchestration}-stand-in:\n  cmd.run:\n    - name: echo {orchestration} >> {ran}\n"
        )
    pillar_tree = dr_tree / "pillar"
    pillar_tree.mkdir()
    topology = copy.deepcopy(shipped_lab_topology)
    topology.setdefault("dr", {})["receive_dir"] = str(dr_tree / "dr" / "snapshots")
    # No certificate there: the master's probe cannot run, and says so.
    topology.setdefault("pki", {})["dir"] = str(dr_tree / "no-pki")
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
    accepted = Path(factory.config["pki_dir"]) / "minions"
    accepted.mkdir(parents=True, exist_ok=True)
    for member, key in etcd_keys.items():
        (accepted / member).write_text(key["public"])
    with factory.started():
        yield factory


@pytest.fixture(scope="module")
def worker(dr_master):
    """A minion of that master, as the lab's worker1."""
    factory = dr_master.salt_minion_daemon("worker1")
    with factory.started():
        yield factory


@pytest.fixture
def state_dir(dr_tree, ran) -> Path:
    """The DR records, empty at the start of each test."""
    path = dr_tree / "dr" / "state"
    shutil.rmtree(path, ignore_errors=True)
    ran.unlink(missing_ok=True)
    return path


@pytest.fixture(scope="module")
def signing():
    return _import_by_path("_utils/paas_signed_report.py", "paas_signed_report_for_reactor")


def reactions(master, event_listener, after: float, count: int) -> list[dict]:
    """The react runner's first ``count`` returns after ``after``."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = [
            event.data
            for event in event_listener.get_events(
                [(master.id, "salt/run/*/ret")], after_time=after
            )
            if event.data.get("fun") == REACT
        ]
        if len(found) >= count:
            return found[:count]
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} {REACT} returns in {WAIT_S} s")


def read(path: Path, default=None):
    return json.loads(path.read_text()) if path.exists() else default


def test_a_workers_forged_reports_are_refused_naming_it_and_nothing_runs(
    dr_master, worker, event_listener, state_dir, ran
):
    after = time.time()
    forged = json.dumps(
        {"member": "etcd1", "state": "down", "serving": False, "time": time.time() + 3600}
    )
    cli = worker.salt_call_cli(timeout=60)
    for _ in range(3):
        sent = cli.run("event.send", "salt/beacon/etcd1/etcd_health/", f"data={forged}")
        assert sent.returncode == 0, sent

    returned = reactions(dr_master, event_listener, after, 3)

    assert {(ret["return"]["action"], ret["return"]["rule"]) for ret in returned} == {
        ("none", "refused")
    }
    refused = read(state_dir / "refused.json")
    assert len(refused) == 3
    assert {entry["tag"] for entry in refused} == {"salt/beacon/etcd1/etcd_health/"}
    assert "not signed by etcd1's minion" in refused[0]["reason"]
    # event.send's data holds the load Salt received, whose id is the sending minion's.
    assert {entry["sender"] for entry in refused} == {"worker1"}
    assert not ran.exists()
    assert "etcd1" not in read(state_dir / "reports.json", {}).get("members", {})


def test_signed_reports_suspecting_a_member_are_probed_before_anything_runs(
    dr_master, event_listener, state_dir, ran, etcd_keys, signing
):
    bus = salt.utils.event.get_master_event(
        dr_master.config, dr_master.config["sock_dir"], listen=False
    )
    epoch = uuid.uuid4().hex
    after = time.time()
    try:
        for sequence in (1, 2, 3):
            report = signing.sign(
                etcd_keys["etcd3"]["private"],
                {
                    "member": "etcd3",
                    "state": "down",
                    "serving": False,
                    "peers": {},
                    "epoch": epoch,
                    "sequence": sequence,
                    "time": time.time(),
                },
            )
            bus.fire_event({**report, "id": "etcd3"}, "salt/beacon/etcd3/etcd_health/")
            # A beacon reports once per tick.
            time.sleep(1)
    finally:
        bus.destroy()

    returned = [ret["return"] for ret in reactions(dr_master, event_listener, after, 3)]

    # The reactor's threads may take the reports in any order.
    assert sorted(ret["rule"] for ret in returned) == ["blocked", "debounce", "debounce"]
    [blocked] = [ret for ret in returned if ret["rule"] == "blocked"]
    assert blocked["action"] == "none"
    assert "the master cannot probe etcd" in blocked["reason"]
    [probed] = read(state_dir / "probes.json")
    # etcd3 alone reports, and down: the reports suspect a lost quorum.
    assert (probed["hint"], probed["sender"], probed["rule"]) == ("restore", "etcd3", "blocked")
    assert not ran.exists()
    assert read(state_dir / "lock.json") is None


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
