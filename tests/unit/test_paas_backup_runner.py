"""
``salt-run paas_backup.*`` (``_runners/paas_backup.py``) under Salt's loader dunders:
the lab's topology with the master's directories under a temporary directory, files
pushed the way ``cp.push`` leaves them in the master's cachedir, and the master's event
bus recorded. Drills that start a real etcd are proven in
tests/integration/test_dr_backups.py; here, what a drill refuses before it starts one.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import stat
import time
import types

import pytest
import yaml
from salt.exceptions import SaltRunnerError


@pytest.fixture(scope="module")
def runner(import_repo_module):
    return import_repo_module("_runners/paas_backup.py", "paas_backup_runner_module")


@pytest.fixture
def topology(lab_topology, tmp_path) -> dict:
    lab_topology["dr"] = {
        **lab_topology.get("dr", {}),
        "receive_dir": str(tmp_path / "dr" / "snapshots"),
        "offsite_retention": 2,
        "snapshot_interval_minutes": 5,
    }
    return lab_topology


@pytest.fixture
def master(tmp_path) -> types.SimpleNamespace:
    """The master's opts, the runner's __context__, and the events fired on its bus."""
    return types.SimpleNamespace(
        opts={"id": "paas-master", "cachedir": str(tmp_path / "cache"), "sock_dir": str(tmp_path)},
        context={},
        events=[],
    )


@pytest.fixture
def opts(master) -> dict:
    return master.opts


@pytest.fixture
def configure_loader_modules(runner, runner_utils, topology, master, master_pillar, monkeypatch):
    master_pillar({"paas": topology})
    monkeypatch.setattr(runner, "_fire", lambda tag, data: master.events.append((tag, data)))
    return {
        runner: {
            "__utils__": dict(runner_utils),
            "__opts__": master.opts,
            "__context__": master.context,
        }
    }


@pytest.fixture
def receive_dir(tmp_path):
    return tmp_path / "dr" / "snapshots"


@pytest.fixture
def state_dir(tmp_path):
    return tmp_path / "dr" / "state"


def snapshot_bytes(revision: int) -> bytes:
    """A file as etcd writes a snapshot: contents, then their sha256."""
    body = f"etcd data at revision {revision}".encode() * 100
    return body + hashlib.sha256(body).digest()


def stamp(seconds_ago: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - seconds_ago))


def push(opts, member: str, name: str, data: bytes, digest: str | bool = True) -> str:
    """Leave ``name`` where cp.push puts it on the master, with its .sha256 unless not."""
    incoming = os.path.join(opts["cachedir"], "minions", member, "files", "paas-dr")
    os.makedirs(incoming, exist_ok=True)
    path = os.path.join(incoming, name)
    with open(path, "wb") as handle:
        handle.write(data)
    if digest:
        recorded = digest if isinstance(digest, str) else hashlib.sha256(data).hexdigest()
        with open(f"{path}.sha256", "w", encoding="utf-8") as handle:
            handle.write(f"{recorded}  {name}\n")
    return path


def test_a_pushed_snapshot_is_received_verified_0600_in_its_members_directory(
    runner, opts, receive_dir
):
    name = f"etcd1-{stamp(30)}-r42.db"
    data = snapshot_bytes(42)
    incoming = push(opts, "etcd1", name, data)

    report = runner.collect()

    assert report["retcode"] == 0
    [received] = report["received"]
    assert received["revision"] == 42
    assert received["sha256"] == hashlib.sha256(data).hexdigest()
    kept = receive_dir / "etcd1" / name
    assert kept.read_bytes() == data
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE((receive_dir / "etcd1").stat().st_mode) == 0o700
    assert (receive_dir / "etcd1" / f"{name}.sha256").exists()
    assert not os.path.exists(incoming)
    assert not os.path.exists(f"{incoming}.sha256")


def test_a_corrupt_snapshot_is_refused_recorded_and_fired(runner, master, receive_dir, state_dir):
    opts, events = master.opts, master.events
    name = f"etcd2-{stamp(30)}-r7.db"
    data = bytearray(snapshot_bytes(7))
    digest = hashlib.sha256(data).hexdigest()
    data[100] ^= 0xFF
    incoming = push(opts, "etcd2", name, bytes(data), digest)

    report = runner.collect()

    assert report["retcode"] == 1
    assert master.context["retcode"] == 1
    [refused] = report["rejected"]
    assert "sha256 does not match its contents" in refused["error"]
    assert not (receive_dir / "etcd2" / name).exists()
    assert not os.path.exists(incoming)
    [(tag, data_fired)] = events
    assert tag == "paas/dr/snapshot/rejected"
    assert data_fired["name"] == name
    [recorded] = json.loads((state_dir / "rejected.json").read_text())
    assert recorded["member"] == "etcd2"
    summary = runner.summary()
    assert summary["members"]["etcd2"]["last_rejected"]["name"] == name


def test_a_snapshot_whose_digest_differs_from_its_nodes_record_is_refused(runner, opts):
    name = f"etcd1-{stamp(30)}-r9.db"
    push(opts, "etcd1", name, snapshot_bytes(9), "0" * 64)
    [refused] = runner.collect()["rejected"]
    assert "its node recorded" in refused["error"]


def test_a_push_without_its_digest_waits_and_is_refused_once_abandoned(runner, opts, receive_dir):
    name = f"etcd1-{stamp(30)}-r5.db"
    path = push(opts, "etcd1", name, snapshot_bytes(5), digest=False)
    report = runner.collect()
    assert [entry["name"] for entry in report["pending"]] == [name]
    assert os.path.exists(path)
    old = time.time() - runner.PUSH_ABANDONED_SECONDS - 1
    os.utime(path, (old, old))
    [refused] = runner.collect()["rejected"]
    assert "never arrived whole" in refused["error"]
    assert not os.path.exists(path)
    assert not (receive_dir / "etcd1").exists()


def test_a_member_cannot_push_another_members_snapshot(runner, opts, receive_dir):
    name = f"etcd2-{stamp(30)}-r5.db"
    push(opts, "etcd1", name, snapshot_bytes(5))
    [refused] = runner.collect()["rejected"]
    assert "not a snapshot of etcd1" in refused["error"]
    assert not (receive_dir / "etcd2").exists()


def test_the_master_keeps_the_newest_of_the_offsite_retention_per_member(runner, opts, receive_dir):
    names = [f"etcd3-{stamp(600 - minute * 60)}-r{minute}.db" for minute in range(1, 5)]
    for revision, name in enumerate(names, start=1):
        push(opts, "etcd3", name, snapshot_bytes(revision))
    report = runner.collect()
    assert report["removed"] == names[:2]
    assert (
        sorted(entry for entry in os.listdir(receive_dir / "etcd3") if entry.endswith(".db"))
        == (names[2:])
    )
    newest = runner.offsite()["etcd3"]
    assert (newest["name"], newest["revision"], newest["count"]) == (names[-1], 4, 2)
    assert newest["verified"] is True


def test_offsite_verify_names_a_received_snapshot_damaged_since(runner, opts, receive_dir):
    name = f"etcd1-{stamp(30)}-r3.db"
    push(opts, "etcd1", name, snapshot_bytes(3))
    runner.collect()
    kept = receive_dir / "etcd1" / name
    kept.write_bytes(kept.read_bytes()[:-1])
    assert runner.offsite()["etcd1"]["verified"] is True
    assert "sha256 does not match" in runner.offsite(verify=True)["etcd1"]["verified"]


def test_summary_says_backups_are_stale_after_two_intervals_or_missing(runner, opts):
    push(opts, "etcd1", f"etcd1-{stamp(60)}-r10.db", snapshot_bytes(10))
    push(opts, "etcd2", f"etcd2-{stamp(11 * 60)}-r11.db", snapshot_bytes(11))
    runner.collect()

    summary = runner.summary()

    assert summary["stale_after_seconds"] == 600
    assert summary["members"]["etcd1"]["stale"] is False
    assert summary["members"]["etcd2"]["stale"] is True
    assert summary["members"]["etcd3"] == {"offsite": None, "stale": True, "last_rejected": None}
    assert summary["backups_stale"] is True
    assert summary["last_drill"] is None
    assert any(problem.startswith("etcd3: no snapshot") for problem in summary["problems"])
    assert any(problem.startswith("etcd2: the newest snapshot") for problem in summary["problems"])


def test_a_drill_of_a_corrupt_snapshot_fails_before_any_etcd_starts(
    runner, master, state_dir, monkeypatch
):
    opts, events = master.opts, master.events

    def no_process(*args, **kwargs):
        raise AssertionError("the drill ran a program on a corrupt snapshot")

    monkeypatch.setattr(runner.subprocess, "run", no_process)
    monkeypatch.setattr(runner.subprocess, "Popen", no_process)
    path = push(opts, "etcd1", f"etcd1-{stamp(30)}-r8.db", snapshot_bytes(8)[:-5])

    record = runner.drill(snapshot=path)

    assert record["passed"] is False
    assert record["retcode"] == 1
    assert "corrupt or truncated" in record["error"]
    [(tag, _data)] = events
    assert tag == "paas/dr/drill/failed"
    [recorded] = json.loads((state_dir / "drills.json").read_text())
    assert recorded["error"] == record["error"]
    summary = runner.summary()
    assert summary["drill_failed"] is True
    assert any("the last drill failed" in problem for problem in summary["problems"])


def test_drills_are_recorded_twenty_at_most(runner, opts, state_dir):
    path = push(opts, "etcd1", f"etcd1-{stamp(30)}-r8.db", b"short")
    for _ in range(25):
        runner.drill(snapshot=path)
    assert len(json.loads((state_dir / "drills.json").read_text())) == 20


def test_a_scheduled_drill_waits_for_its_interval(runner, opts, state_dir):
    push(opts, "etcd1", f"etcd1-{stamp(30)}-r8.db", b"short")
    runner.collect()
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "drills.json").write_text(json.dumps([{"time": time.time(), "passed": True}]))
    assert runner.drill(when_due=True) == {"result": None, "reason": "not due", "retcode": 0}


def test_nothing_is_written_when_nothing_was_pushed(runner, tmp_path):
    assert runner.collect()["received"] == []
    assert runner.drill(when_due=True)["reason"] == "no snapshot has been received yet"
    assert not (tmp_path / "dr").exists()


def test_the_drills_binaries_are_the_given_then_configured_then_topologys_then_path(
    runner, topology_utils, topology, opts, monkeypatch
):
    dr = topology_utils.dr(topology)
    tmp_path = pathlib.Path(opts["sock_dir"])
    assert runner._drill_binaries(dr, "/given") == ("/given", "given")
    opts[runner.BIN_DIR_OPTION] = "/configured"
    assert runner._drill_binaries(dr, None)[0] == "/configured"
    del opts[runner.BIN_DIR_OPTION]
    bin_dir = tmp_path / "etcd-bin"
    bin_dir.mkdir()
    (bin_dir / "etcd").write_text("#!/bin/sh\n")
    (bin_dir / "etcd").chmod(0o755)
    assert runner._drill_binaries({**dr, "etcd": {**dr["etcd"], "bin_dir": str(bin_dir)}}, None)[
        1
    ] == ("the topology's etcd bin_dir")
    missing = {**dr, "etcd": {**dr["etcd"], "bin_dir": str(tmp_path / "none")}}
    monkeypatch.setattr(runner.shutil, "which", lambda name: None)
    with pytest.raises(SaltRunnerError, match="no etcd binary"):
        runner._drill_binaries(missing, None)


def test_the_masters_schedule_runs_collect_and_due_drills_every_minute(repo_root, runner):
    config = yaml.safe_load((repo_root / "etc/salt/master").read_text())
    assert config["file_recv"] is True
    assert config["file_recv_max_size"] >= 8192
    jobs = config["schedule"]
    assert jobs["paas-dr-collect"] == {"function": "paas_backup.collect", "minutes": 1}
    assert jobs["paas-dr-drill"]["function"] == "paas_backup.drill"
    assert jobs["paas-dr-drill"]["kwargs"] == {"when_due": True}
    for job in jobs.values():
        assert callable(getattr(runner, job["function"].split(".")[1]))
