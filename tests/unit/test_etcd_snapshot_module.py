"""
``etcd_snapshot`` (``_modules/etcd_snapshot.py``), the etcd node's snapshots, under
Salt's loader dunders: the topology's dr view from the real ``_utils/paas_topology.py``,
the real ``_utils/paas_snapshot.py`` as ``__utils__``, and stand-ins for
``etcd_cluster.snapshot_save`` (a file with etcd's sha256 trailer, or the error a failed
verification raises), ``cp.push`` and ``event.send``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
import types

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError


@pytest.fixture(scope="module")
def module(import_repo_module):
    return import_repo_module("_modules/etcd_snapshot.py", "etcd_snapshot_execution_module")


@pytest.fixture(scope="module")
def snapshot_utils(import_repo_module):
    return import_repo_module("_utils/paas_snapshot.py", "paas_snapshot_utils_for_the_node")


class Node:
    """What the module calls on the node: etcd's snapshot, the push, the event bus."""

    def __init__(self):
        self.revision = 100
        # What etcd's snapshot status reads in a file, when it is not what it was saved at.
        self.content_revision: int | None = None
        self.save_error: str | None = None
        self.push_answers: list[bool] = []
        self.pushed: list[tuple[str, str]] = []
        self.events: list[tuple[str, dict]] = []

    def snapshot_save(self, path: str, endpoint=None) -> dict:
        if self.save_error:
            raise CommandExecutionError(self.save_error)
        self.revision += 1
        body = f"revision {self.revision}".encode() * 50
        data = body + hashlib.sha256(body).digest()
        with open(path, "wb") as handle:
            handle.write(data)
        os.chmod(path, 0o600)
        return {
            "path": path,
            "revision": self.revision,
            "keys": 7,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }

    def snapshot_check(self, path: str) -> dict:
        with open(path, "rb") as handle:
            data = handle.read()
        if hashlib.sha256(data[:-32]).digest() != data[-32:]:
            raise CommandExecutionError(f"{path}: the snapshot's sha256 does not match")
        revision = self.content_revision or int(re.match(rb"revision (\d+)", data)[1])
        return {"sha256": hashlib.sha256(data).hexdigest(), "revision": revision}

    def push(self, path: str, upload_path: str | None = None) -> bool:
        self.pushed.append((path, upload_path))
        return self.push_answers.pop(0) if self.push_answers else True

    def send(self, tag: str, data: dict) -> bool:
        self.events.append((tag, data))
        return True


@pytest.fixture
def node() -> Node:
    return Node()


@pytest.fixture
def topology(lab_topology, tmp_path) -> dict:
    lab_topology.setdefault("etcd", {})["snapshot_dir"] = str(tmp_path / "snapshots")
    lab_topology.setdefault("dr", {})["snapshot_retention"] = 3
    return lab_topology


@pytest.fixture
def opts() -> dict:
    return {"id": "etcd2"}


@pytest.fixture
def configure_loader_modules(module, snapshot_utils, topology_utils, topology, node, opts):
    salt = {
        "paas_topology.dr": lambda: topology_utils.dr(topology),
        "etcd_cluster.snapshot_save": node.snapshot_save,
        "etcd_cluster.snapshot_check": node.snapshot_check,
        "cp.push": node.push,
        "event.send": node.send,
    }
    utils = {
        f"paas_snapshot.{name}": function
        for name, function in vars(snapshot_utils).items()
        if callable(function) and getattr(function, "__module__", None) == snapshot_utils.__name__
    }
    return {module: {"__salt__": salt, "__opts__": opts, "__utils__": utils}}


@pytest.fixture
def snapshot_dir(tmp_path):
    return tmp_path / "snapshots"


def _snapshots(snapshot_dir) -> list[str]:
    return sorted(name for name in os.listdir(snapshot_dir) if name.endswith(".db"))


def test_a_snapshot_is_kept_verified_0600_named_by_member_time_and_revision(module, snapshot_dir):
    result = module.take()
    assert result["result"] is True
    [name] = _snapshots(snapshot_dir)
    assert name.startswith("etcd2-")
    assert name.endswith("-r101.db")
    path = snapshot_dir / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (snapshot_dir / f"{name}.sha256").read_text() == f"{digest}  {name}\n"
    status = json.loads((snapshot_dir / "status.json").read_text())
    assert status["last_good"]["name"] == name
    assert status["last_good"]["revision"] == 101
    assert stat.S_IMODE((snapshot_dir / "status.json").stat().st_mode) == 0o600


def test_the_newest_snapshot_is_pushed_to_the_master_its_digest_last(module, node, snapshot_dir):
    result = module.take()
    name = result["snapshot"]["name"]
    assert result["pushed"] is True
    assert node.pushed == [
        (str(snapshot_dir / name), f"/paas-dr/{name}"),
        (str(snapshot_dir / f"{name}.sha256"), f"/paas-dr/{name}.sha256"),
    ]
    assert json.loads((snapshot_dir / "status.json").read_text())["last_push"]["result"] is True


def test_a_failed_verification_keeps_the_newest_good_one_and_is_reported(
    module, node, snapshot_dir
):
    good = module.take()["snapshot"]
    node.pushed.clear()
    node.save_error = f"{snapshot_dir}/x.db: the snapshot's sha256 does not match its contents"

    result = module.take()

    assert result["result"] is False
    assert "sha256 does not match" in result["error"]
    assert result["newest_good"]["name"] == good["name"]
    assert _snapshots(snapshot_dir) == [good["name"]]
    assert [entry for entry in os.listdir(snapshot_dir) if entry.startswith(".")] == []
    assert node.pushed == []
    [(tag, data)] = node.events
    assert tag == "paas/dr/snapshot/failed"
    assert data["member"] == "etcd2"
    assert data["stage"] == "save"
    assert "sha256 does not match" in data["error"]
    status = json.loads((snapshot_dir / "status.json").read_text())
    assert status["last_good"]["name"] == good["name"]
    assert "sha256 does not match" in status["last_failure"]["error"]
    assert module.inventory()["snapshots"][0]["name"] == good["name"]


def test_only_the_newest_snapshots_of_the_retention_are_kept(module, snapshot_dir, monkeypatch):
    clock = iter(range(1_800_000_000, 1_800_000_000 + 6000, 60))
    # Only the module's clock: a minute between snapshots.
    monkeypatch.setattr(
        module,
        "time",
        types.SimpleNamespace(
            time=lambda: next(clock),
            gmtime=time.gmtime,
            strftime=time.strftime,
            strptime=time.strptime,
        ),
    )
    names = [module.take()["snapshot"]["name"] for _ in range(5)]
    assert _snapshots(snapshot_dir) == names[-3:]
    assert not (snapshot_dir / f"{names[0]}.sha256").exists()
    assert [entry["name"] for entry in module.inventory()["snapshots"]] == names[::-1][:3]


def test_a_failed_push_keeps_the_snapshot_and_is_reported(module, node, snapshot_dir):
    node.push_answers = [False]
    result = module.take()
    assert result["result"] is False
    assert result["pushed"] is False
    assert "not pushed to the master" in result["error"]
    assert _snapshots(snapshot_dir) == [result["snapshot"]["name"]]
    [(tag, data)] = node.events
    assert (tag, data["stage"]) == ("paas/dr/snapshot/failed", "push")
    status = json.loads((snapshot_dir / "status.json").read_text())
    assert status["last_good"]["name"] == result["snapshot"]["name"]
    assert status["last_push"]["result"] is False


def test_snapshots_verify_names_a_snapshot_damaged_since_it_was_taken(module, snapshot_dir):
    name = module.take()["snapshot"]["name"]
    path = snapshot_dir / name
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    [entry] = module.inventory(verify=True)["snapshots"]
    assert "sha256 does not match" in entry["verified"]


def test_inventory_verify_names_a_snapshot_that_holds_another_revision_than_its_name(module, node):
    name = module.take()["snapshot"]["name"]
    node.content_revision = 7
    [entry] = module.inventory(verify=True)["snapshots"]
    assert entry["name"] == name
    assert entry["verified"].endswith("it holds revision 7, its name says 101")


def test_the_module_is_not_loaded_without_the_snapshot_utils(module, monkeypatch):
    monkeypatch.setattr(module, "__utils__", {}, raising=False)
    available, reason = module.__virtual__()
    assert available is False
    assert "paas_snapshot utils module is not synced" in reason


def test_a_node_that_is_not_an_etcd_member_takes_no_snapshot(module, opts):
    opts["id"] = "cp1"
    with pytest.raises(SaltInvocationError, match="cp1 is not an etcd node"):
        module.take()


def test_the_schedule_state_runs_the_snapshot_every_interval(repo_root):
    backup = (repo_root / "salt/etcd/backup.sls").read_text()
    assert "function: etcd_snapshot.take" in backup
    assert "name: paas-etcd-snapshot" in backup
    assert "minutes: {{ dr.snapshot_interval_minutes }}" in backup
    assert "  - etcd.backup" in (repo_root / "salt/etcd/init.sls").read_text().splitlines()
