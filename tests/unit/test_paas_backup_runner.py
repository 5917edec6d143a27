"""
``salt-run paas_backup.*`` (``_runners/paas_backup.py``) under Salt's loader dunders:
the lab's topology with the master's directories under a temporary directory, files
pushed the way ``cp.push`` leaves them in the master's cachedir, the master's event bus
recorded, and a stand-in for etcd's ``etcdutl snapshot status`` that reads the revision
a test snapshot holds from its bytes. Drills that start a real etcd, and the drill's
TLS, are proven in tests/integration/test_dr_backups.py; here, what a drill refuses
before it starts one.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import stat
import sys
import time
import types

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from salt.exceptions import SaltRunnerError

from tests.conftest import utils_of

MIB = 1024 * 1024

# etcdutl snapshot status <path> --write-out=json, for the test snapshots: the revision
# is what the bytes say, and a file without one is no bolt database.
FAKE_ETCDUTL = """#!{python}
import json, re, sys, zlib
data = open(sys.argv[3], "rb").read()
found = re.search(rb"etcd data at revision (\\d+)", data)
if sys.argv[1:3] != ["snapshot", "status"] or not found:
    sys.exit("Error: snapshot file integrity check failed")
print(json.dumps({{"hash": zlib.crc32(data[:-32]), "revision": int(found[1]),
                  "totalKey": 7, "totalSize": len(data) - 32}}))
"""


@pytest.fixture(scope="module")
def runner(import_repo_module):
    return import_repo_module("_runners/paas_backup.py", "paas_backup_runner_module")


@pytest.fixture(scope="module")
def snapshot_utils(import_repo_module) -> dict:
    module = import_repo_module("_utils/paas_snapshot.py", "paas_snapshot_utils_for_the_master")
    return {
        f"paas_snapshot.{name}": function
        for name, function in vars(module).items()
        if callable(function) and getattr(function, "__module__", None) == module.__name__
    }


@pytest.fixture(scope="module")
def etcd_binaries(import_repo_module):
    return import_repo_module("_utils/paas_etcd_binaries.py", "paas_etcd_binaries_utils")


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
def etcd_bin(tmp_path) -> pathlib.Path:
    """A directory with the stand-in for etcdutl."""
    directory = tmp_path / "etcd-bin"
    directory.mkdir()
    tool = directory / "etcdutl"
    tool.write_text(FAKE_ETCDUTL.format(python=sys.executable))
    tool.chmod(0o755)
    return directory


@pytest.fixture
def master(tmp_path, etcd_bin) -> types.SimpleNamespace:
    """The master's opts (its etcd binaries the stand-in), the runner's __context__, and
    the events fired on its bus."""
    return types.SimpleNamespace(
        opts={
            "id": "paas-master",
            "cachedir": str(tmp_path / "cache"),
            "sock_dir": str(tmp_path),
            "paas_dr_drill_bin_dir": str(etcd_bin),
        },
        context={},
        events=[],
    )


@pytest.fixture
def opts(master) -> dict:
    return master.opts


@pytest.fixture
def configure_loader_modules(
    runner,
    runner_utils,
    snapshot_utils,
    etcd_binaries,
    topology,
    master,
    master_pillar,
    monkeypatch,
):
    master_pillar({"paas": topology})
    monkeypatch.setattr(runner, "_fire", lambda tag, data: master.events.append((tag, data)))
    return {
        runner: {
            "__utils__": {
                **runner_utils,
                **snapshot_utils,
                **utils_of(etcd_binaries, "paas_etcd_binaries"),
            },
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
    """A file as etcd writes a snapshot: whole pages, then their sha256."""
    body = (f"etcd data at revision {revision}\n".encode() * 100).ljust(4096, b"\0")
    return body + hashlib.sha256(body).digest()


def stamp(seconds_ago: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - seconds_ago))


def pushed_dir(opts, minion: str) -> str:
    return os.path.join(opts["cachedir"], "minions", minion, "files")


def push(opts, member: str, name: str, data: bytes, digest: str | bool = True) -> str:
    """Leave ``name`` where cp.push puts it on the master, with its .sha256 unless not."""
    incoming = os.path.join(pushed_dir(opts, member), "paas-dr")
    os.makedirs(incoming, exist_ok=True)
    path = os.path.join(incoming, name)
    with open(path, "wb") as handle:
        handle.write(data)
    if digest:
        recorded = digest if isinstance(digest, str) else hashlib.sha256(data).hexdigest()
        with open(f"{path}.sha256", "w", encoding="utf-8") as handle:
            handle.write(f"{recorded}  {name}\n")
    return path


def place(receive_dir, member: str, name: str, data: bytes, content: dict | None = None) -> str:
    """Leave ``name`` in the receive directory as it is kept there, with its content
    record when given."""
    directory = receive_dir / member
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)
    (directory / f"{name}.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
    if content is not None:
        (directory / f"{name}.json").write_text(json.dumps(content))
    return str(directory / name)


def rejected(state_dir) -> list[dict]:
    return json.loads((state_dir / "rejected.json").read_text())


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


def test_what_etcd_read_in_a_received_snapshot_is_kept_beside_it_and_offsite_reports_it(
    runner, opts, receive_dir
):
    name = f"etcd1-{stamp(30)}-r42.db"
    data = snapshot_bytes(42)
    push(opts, "etcd1", name, data)
    runner.collect()

    record = receive_dir / "etcd1" / f"{name}.json"
    content = json.loads(record.read_text())
    assert (content["revision"], content["keys"], content["read_by"]) == (42, 7, "etcdutl")
    assert content["sha256"] == hashlib.sha256(data).hexdigest()
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    newest = runner.offsite()["etcd1"]
    assert (newest["revision"], newest["keys"], newest["hash"]) == (42, 7, content["hash"])
    assert newest["verified"] is True


def test_a_snapshot_whose_name_claims_another_revision_than_it_holds_is_refused_and_recorded(
    runner, master, receive_dir, state_dir
):
    name = f"etcd2-{stamp(30)}-r90.db"
    incoming = push(master.opts, "etcd2", name, snapshot_bytes(12))

    report = runner.collect()

    assert report["retcode"] == 1
    [refused] = report["rejected"]
    assert refused["error"].endswith("it holds revision 12, its name says 90")
    assert not (receive_dir / "etcd2").exists()
    assert not os.path.exists(incoming)
    assert not os.path.exists(f"{incoming}.sha256")
    [(tag, fired)] = master.events
    assert (tag, fired["name"]) == ("paas/dr/snapshot/rejected", name)
    [recorded] = rejected(state_dir)
    assert (recorded["minion"], recorded["member"], recorded["name"]) == ("etcd2", "etcd2", name)
    assert recorded["error"] == refused["error"]


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
    [recorded] = rejected(state_dir)
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


def test_only_the_newest_incomplete_push_of_a_member_waits(runner, opts):
    older = push(opts, "etcd1", f"etcd1-{stamp(600)}-r5.db", snapshot_bytes(5), digest=False)
    newer = push(opts, "etcd1", f"etcd1-{stamp(300)}-r6.db", snapshot_bytes(6), digest=False)

    report = runner.collect()

    [refused] = report["rejected"]
    assert refused["path"] == older
    assert "a newer push of etcd1 is waiting" in refused["error"]
    assert [entry["path"] for entry in report["pending"]] == [newer]
    assert not os.path.exists(older)
    assert os.path.exists(newer)


def test_a_member_cannot_push_another_members_snapshot(runner, opts, receive_dir):
    name = f"etcd2-{stamp(30)}-r5.db"
    push(opts, "etcd1", name, snapshot_bytes(5))
    [refused] = runner.collect()["rejected"]
    assert "not a snapshot of etcd1" in refused["error"]
    assert not (receive_dir / "etcd2").exists()


def test_a_push_from_a_minion_that_is_no_etcd_node_is_removed_and_recorded(
    runner, master, state_dir
):
    opts = master.opts
    snapshot = push(opts, "cp1", f"cp1-{stamp(30)}-r5.db", snapshot_bytes(5))
    stray = os.path.join(pushed_dir(opts, "intruder"), "var", "big.bin")
    os.makedirs(os.path.dirname(stray))
    pathlib.Path(stray).write_bytes(b"x" * 1000)

    report = runner.collect()

    assert report["retcode"] == 1
    by_path = {entry["path"]: entry for entry in report["rejected"]}
    assert set(by_path) == {snapshot, f"{snapshot}.sha256", stray}
    assert (by_path[stray]["minion"], by_path[stray]["member"]) == ("intruder", None)
    assert by_path[stray]["size"] == 1000
    assert by_path[stray]["error"] == (
        "intruder is not an etcd node of the topology: nothing it pushes is kept"
    )
    assert by_path[snapshot]["minion"] == "cp1"
    assert not os.path.exists(pushed_dir(opts, "cp1"))
    assert not os.path.exists(pushed_dir(opts, "intruder"))
    assert sorted(entry["path"] for entry in rejected(state_dir)) == sorted(by_path)
    assert sorted(data["path"] for _tag, data in master.events) == sorted(by_path)
    assert {tag for tag, _data in master.events} == {"paas/dr/snapshot/rejected"}
    assert runner.summary()["last_rejected_other_minion"]["minion"] in {"cp1", "intruder"}


def test_an_etcd_nodes_push_outside_its_upload_directory_or_not_named_as_a_snapshot_is_removed(
    runner, opts, receive_dir
):
    good = f"etcd3-{stamp(30)}-r8.db"
    push(opts, "etcd3", good, snapshot_bytes(8))
    outside = os.path.join(pushed_dir(opts, "etcd3"), "etc", "shadow")
    os.makedirs(os.path.dirname(outside))
    pathlib.Path(outside).write_text("root:x")
    unnamed = os.path.join(pushed_dir(opts, "etcd3"), "paas-dr", "notes.txt")
    pathlib.Path(unnamed).write_text("hello")
    orphan = os.path.join(pushed_dir(opts, "etcd3"), "paas-dr", f"etcd3-{stamp(60)}-r7.db.sha256")
    pathlib.Path(orphan).write_text("0" * 64)

    report = runner.collect()

    by_path = {entry["path"]: entry["error"] for entry in report["rejected"]}
    assert by_path == {
        outside: "etcd3 pushed etc/shadow: nothing but snapshots in paas-dr/ is kept",
        unnamed: "etcd3 pushed paas-dr/notes.txt: not a snapshot's name",
        orphan: f"etcd3 pushed {os.path.basename(orphan)}: the digest of no snapshot "
        "that was pushed",
    }
    assert [entry["name"] for entry in report["received"]] == [good]
    assert (receive_dir / "etcd3" / good).exists()
    assert sorted(os.listdir(pushed_dir(opts, "etcd3"))) == ["paas-dr"]
    assert os.listdir(os.path.join(pushed_dir(opts, "etcd3"), "paas-dr")) == []


def test_a_push_larger_than_the_quota_allows_is_refused_before_it_is_whole(
    runner, topology, opts, receive_dir
):
    topology["etcd"] = {**topology.get("etcd", {}), "quota_bytes": 16 * MIB}
    bound = runner._largest_snapshot(16 * MIB)
    assert bound == 80 * MIB
    name = f"etcd1-{stamp(30)}-r5.db"
    path = push(opts, "etcd1", name, b"", digest=False)
    with open(path, "wb") as handle:
        handle.truncate(bound + 1)

    [refused] = runner.collect()["rejected"]

    assert refused["size"] == bound + 1
    assert refused["error"] == (
        f"etcd1 pushed {name}: {bound + 1} bytes, more than the largest snapshot the "
        f"topology's quota_bytes allows ({bound} bytes)"
    )
    assert not os.path.exists(path)
    assert not (receive_dir / "etcd1").exists()


def test_the_largest_snapshot_is_the_quota_and_a_quarter_at_least_64_mib_more(runner):
    assert runner._largest_snapshot(2 * 1024 * MIB) == 2560 * MIB
    assert runner._largest_snapshot(8 * 1024 * MIB) == 10240 * MIB
    assert runner._largest_snapshot(16 * MIB) == 80 * MIB


def test_collect_keeps_the_pushed_files_out_of_other_users_reach(runner, opts):
    minions = pathlib.Path(opts["cachedir"]) / "minions"
    minions.mkdir(parents=True)
    minions.chmod(0o755)
    summary = runner.summary()
    assert any(problem.startswith(f"{minions} is 755") for problem in summary["problems"])

    push(opts, "etcd1", f"etcd1-{stamp(30)}-r4.db", snapshot_bytes(4))
    assert runner.collect()["retcode"] == 0

    assert stat.S_IMODE(minions.stat().st_mode) == 0o700
    assert not any(str(minions) in problem for problem in runner.summary()["problems"])


def test_collect_makes_the_pushes_directory_0700_before_anything_is_pushed(runner, opts):
    assert runner.collect()["retcode"] == 0
    minions = pathlib.Path(opts["cachedir"]) / "minions"
    assert stat.S_IMODE(minions.stat().st_mode) == 0o700


def test_without_etcd_binaries_snapshots_are_received_unread_said_and_read_later(
    runner, opts, receive_dir, state_dir, tmp_path, etcd_bin
):
    empty = tmp_path / "no-etcd"
    empty.mkdir()
    opts["paas_dr_drill_bin_dir"] = str(empty)
    good = f"etcd1-{stamp(60)}-r42.db"
    liar = f"etcd2-{stamp(60)}-r99.db"
    push(opts, "etcd1", good, snapshot_bytes(42))
    push(opts, "etcd2", liar, snapshot_bytes(3))

    report = runner.collect()

    assert report["retcode"] == 1
    assert sorted(entry["name"] for entry in report["unread"]) == [good, liar]
    [problem] = report["problems"]
    assert problem.startswith(f"the master has no etcdutl or etcdctl in {empty}")
    entry = runner.offsite()["etcd1"]
    assert entry["revision"] is None
    assert entry["verified"].startswith("its content has not been read yet")
    summary = runner.summary()
    assert any("no etcdutl or etcdctl" in problem for problem in summary["problems"])
    assert any("2 received snapshots are unread" in problem for problem in summary["problems"])
    with pytest.raises(SaltRunnerError, match="no etcdutl or etcdctl"):
        runner.newest()

    opts["paas_dr_drill_bin_dir"] = str(etcd_bin)
    report = runner.collect()

    assert [entry["name"] for entry in report["received"]] == [good]
    [refused] = report["rejected"]
    assert refused["error"].endswith("it holds revision 3, its name says 99")
    assert not (receive_dir / "etcd2" / liar).exists()
    assert runner.offsite()["etcd1"]["revision"] == 42
    assert runner.summary()["unread"] == 0


def test_the_snapshot_to_restore_holds_the_highest_revision_whatever_the_newest_name(
    runner, opts, master
):
    older_but_ahead = f"etcd1-{stamp(600)}-r40.db"
    newer_but_behind = f"etcd2-{stamp(60)}-r30.db"
    push(opts, "etcd1", older_but_ahead, snapshot_bytes(40))
    push(opts, "etcd2", newer_but_behind, snapshot_bytes(30))
    runner.collect()

    chosen = runner.newest()

    assert chosen["verified"] is True
    assert (chosen["name"], chosen["member"], chosen["revision"]) == (older_but_ahead, "etcd1", 40)
    assert chosen["refused"] == []
    assert master.events == []


def test_newest_reads_a_topology_handed_down_without_compiling_the_pillar_again(
    runner, opts, topology, master_pillar
):
    push(opts, "etcd1", f"etcd1-{stamp(60)}-r40.db", snapshot_bytes(40))
    runner.collect()

    def compiled(_opts):
        raise AssertionError("the master's pillar was compiled though a topology was handed")

    master_pillar(compiled)
    assert runner.newest(topology=topology)["revision"] == 40


def test_a_received_snapshot_whose_content_disagrees_is_refused_and_the_next_one_taken(
    runner, receive_dir, state_dir, master
):
    place(receive_dir, "etcd1", f"etcd1-{stamp(600)}-r40.db", snapshot_bytes(40), None)
    # Its name and its content record claim more than it holds.
    liar = place(
        receive_dir,
        "etcd2",
        f"etcd2-{stamp(60)}-r99.db",
        snapshot_bytes(20),
        {"revision": 99, "keys": 7, "hash": 1, "sha256": "0" * 64},
    )
    # Unread, and its name claims more than it holds.
    unread_liar = place(receive_dir, "etcd3", f"etcd3-{stamp(60)}-r98.db", snapshot_bytes(10))

    chosen = runner.newest()

    assert (chosen["member"], chosen["revision"]) == ("etcd1", 40)
    by_path = {entry["path"]: entry["error"] for entry in chosen["refused"]}
    assert by_path == {
        unread_liar: f"{unread_liar}: it holds revision 10, its name says 98",
        liar: f"{liar}: it holds revision 20, its name says 99",
    }
    for path in by_path:
        assert not os.path.exists(path)
        assert not os.path.exists(f"{path}.sha256")
        assert not os.path.exists(f"{path}.json")
    assert sorted(entry["path"] for entry in rejected(state_dir)) == sorted(by_path)
    assert [tag for tag, _data in master.events] == ["paas/dr/snapshot/rejected"] * 2


def test_a_snapshot_that_holds_what_its_name_says_but_not_its_content_record_is_refused(
    runner, receive_dir
):
    place(receive_dir, "etcd1", f"etcd1-{stamp(600)}-r40.db", snapshot_bytes(40))
    swapped = place(
        receive_dir,
        "etcd2",
        f"etcd2-{stamp(60)}-r20.db",
        snapshot_bytes(20),
        {"revision": 50, "keys": 7, "hash": 1, "sha256": "0" * 64},
    )

    chosen = runner.newest()

    assert chosen["revision"] == 40
    [refused] = chosen["refused"]
    assert refused["error"] == f"{swapped}: its revision is 20, 50 when it was received"


def test_a_received_snapshot_replaced_by_another_of_the_same_revision_is_refused(
    runner, opts, receive_dir
):
    name = f"etcd1-{stamp(60)}-r40.db"
    push(opts, "etcd1", name, snapshot_bytes(40))
    runner.collect()
    # The same revision, other bytes, and a digest record to match them.
    body = b"etcd data at revision 40\n".ljust(4096, b"\1")
    other = body + hashlib.sha256(body).digest()
    place(receive_dir, "etcd1", name, other)

    chosen = runner.newest()

    assert chosen["verified"] is False
    [refused] = chosen["refused"]
    assert refused["error"].startswith(
        f"{receive_dir / 'etcd1' / name}: its sha256 is {hashlib.sha256(other).hexdigest()}, "
    )
    assert refused["error"].endswith(" when it was received")


def test_when_every_received_snapshot_is_refused_newest_says_why(runner, receive_dir):
    liar = place(receive_dir, "etcd1", f"etcd1-{stamp(60)}-r9.db", snapshot_bytes(8))
    chosen = runner.newest()
    assert chosen["verified"] is False
    assert chosen["error"] == (
        f"every received snapshot was refused: {liar}: it holds revision 8, its name says 9"
    )


def test_newest_is_none_before_any_snapshot_is_received(runner):
    assert runner.newest() is None


def test_newest_of_a_given_file_checks_it_and_never_deletes_it(runner, tmp_path, master):
    liar = tmp_path / f"etcd1-{stamp(60)}-r9.db"
    liar.write_bytes(snapshot_bytes(8))
    checked = runner.newest(path=str(liar))
    assert checked["verified"] is False
    assert checked["error"] == f"{liar}: it holds revision 8, its name says 9"
    assert liar.exists()
    assert master.events == []
    honest = tmp_path / "any-name.db"
    honest.write_bytes(snapshot_bytes(8))
    checked = runner.newest(path=str(honest))
    assert (checked["verified"], checked["revision"], checked["member"]) == (True, 8, None)


def test_the_master_keeps_the_newest_of_the_offsite_retention_per_member(runner, opts, receive_dir):
    names = [f"etcd3-{stamp(600 - minute * 60)}-r{minute}.db" for minute in range(1, 5)]
    for revision, name in enumerate(names, start=1):
        push(opts, "etcd3", name, snapshot_bytes(revision))
    report = runner.collect()
    assert report["removed"] == names[:2]
    assert sorted(os.listdir(receive_dir / "etcd3")) == sorted(
        f"{name}{suffix}" for name in names[2:] for suffix in ("", ".sha256", ".json")
    )
    newest = runner.offsite()["etcd3"]
    assert (newest["name"], newest["revision"], newest["count"]) == (names[-1], 4, 2)
    assert newest["verified"] is True


def test_offsite_verify_names_a_received_snapshot_damaged_since(runner, opts, receive_dir):
    name = f"etcd1-{stamp(30)}-r3.db"
    push(opts, "etcd1", name, snapshot_bytes(3))
    runner.collect()
    kept = receive_dir / "etcd1" / name
    data = bytearray(kept.read_bytes())
    data[200] ^= 0xFF
    kept.write_bytes(bytes(data))
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
    assert summary["members"]["etcd3"] == {
        "offsite": None,
        "arriving": 0,
        "stale": True,
        "last_rejected": None,
    }
    assert summary["backups_stale"] is True
    assert summary["last_drill"] is None
    assert any(problem.startswith("etcd3: no snapshot") for problem in summary["problems"])
    assert any(problem.startswith("etcd2: the newest snapshot") for problem in summary["problems"])


def test_a_first_snapshot_pushed_whole_and_not_yet_collected_is_on_its_way(runner, opts):
    # A platform just built: the node pushed, the master's next collect is a minute away.
    push(opts, "etcd3", f"etcd3-{stamp(5)}-r1.db", snapshot_bytes(1), digest=False)
    assert any(p.startswith("etcd3: no snapshot") for p in runner.summary()["problems"])

    push(opts, "etcd3", f"etcd3-{stamp(5)}-r1.db", snapshot_bytes(1))
    summary = runner.summary()

    assert summary["members"]["etcd3"]["arriving"] == 1
    assert not any(p.startswith("etcd3: no snapshot") for p in summary["problems"])


def test_summary_says_when_salt_would_refuse_the_largest_snapshot_the_quota_allows(runner, opts):
    opts["file_recv_max_size"] = 100
    [problem] = [p for p in runner.summary()["problems"] if "file_recv_max_size" in p]
    assert problem == (
        "the master's file_recv_max_size (100 MB) is below the largest snapshot the quota "
        "allows (2560 MB): a large snapshot cannot be pushed"
    )
    opts["file_recv_max_size"] = 2560
    assert not [p for p in runner.summary()["problems"] if "file_recv_max_size" in p]


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
    assert record["error"] == (
        f"{path}: {len(snapshot_bytes(8)) - 5} bytes, no whole etcd snapshot (corrupt or "
        "truncated: etcd's are a multiple of 512 bytes and its 32-byte sha256)"
    )
    [(tag, _data)] = events
    assert tag == "paas/dr/drill/failed"
    [recorded] = json.loads((state_dir / "drills.json").read_text())
    assert recorded["error"] == record["error"]
    summary = runner.summary()
    assert summary["drill_failed"] is True
    assert any("the last drill failed" in problem for problem in summary["problems"])


def test_a_drill_of_a_snapshot_whose_name_claims_another_revision_fails_before_it_starts(
    runner, tmp_path, monkeypatch
):
    def no_etcd(*args, **kwargs):
        raise AssertionError("the drill started etcd on a snapshot that is not what it says")

    monkeypatch.setitem(runner.__utils__, "paas_etcd_binaries.scratch_etcd", no_etcd)
    liar = tmp_path / f"etcd1-{stamp(60)}-r9.db"
    liar.write_bytes(snapshot_bytes(8))
    record = runner.drill(snapshot=str(liar))
    assert record["passed"] is False
    assert record["error"] == f"{liar}: it holds revision 8, its name says 9"


def test_a_restored_store_is_served_at_its_revision_at_least_1_and_its_compaction(etcd_binaries):
    assert etcd_binaries.served_revision(42, -1) == 42
    # An empty store's snapshot says 0; etcd serves revision 1.
    assert etcd_binaries.served_revision(0, -1) == 1
    # A compaction that removed the newest revisions' keys.
    assert etcd_binaries.served_revision(40, 45) == 45


def test_the_drills_certificates_are_its_own_and_private(etcd_binaries, tmp_path):
    directory = tmp_path / "drill"
    directory.mkdir(mode=0o700)

    paths = etcd_binaries.drill_certificates(str(directory))

    assert sorted(os.listdir(directory)) == [
        "ca.crt",
        "client.crt",
        "client.key",
        "server.crt",
        "server.key",
    ]
    for path in paths.values():
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    authority = x509.load_pem_x509_certificate(pathlib.Path(paths["ca"]).read_bytes())
    server = x509.load_pem_x509_certificate(pathlib.Path(paths["server_cert"]).read_bytes())
    client = x509.load_pem_x509_certificate(pathlib.Path(paths["client_cert"]).read_bytes())
    usage = x509.ExtendedKeyUsage
    assert list(server.extensions.get_extension_for_class(usage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    assert list(client.extensions.get_extension_for_class(usage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(address) for address in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    for certificate in (server, client):
        certificate.verify_directly_issued_by(authority)
    other_directory = tmp_path / "other"
    other_directory.mkdir()
    other = etcd_binaries.drill_certificates(str(other_directory))
    assert pathlib.Path(other["ca"]).read_bytes() != pathlib.Path(paths["ca"]).read_bytes()


def test_drills_are_recorded_twenty_at_most(runner, opts, state_dir):
    path = push(opts, "etcd1", f"etcd1-{stamp(30)}-r8.db", b"short")
    for _ in range(25):
        runner.drill(snapshot=path)
    assert len(json.loads((state_dir / "drills.json").read_text())) == 20


def test_a_scheduled_drill_waits_for_its_interval(runner, opts, state_dir):
    push(opts, "etcd1", f"etcd1-{stamp(30)}-r8.db", snapshot_bytes(8))
    runner.collect()
    (state_dir / "drills.json").write_text(json.dumps([{"time": time.time(), "passed": True}]))
    assert runner.drill(when_due=True) == {"result": None, "reason": "not due", "retcode": 0}


def test_a_scheduled_drill_does_not_run_again_when_one_recorded_itself_meanwhile(
    runner, opts, state_dir, monkeypatch
):
    push(opts, "etcd1", f"etcd1-{stamp(30)}-r8.db", snapshot_bytes(8))
    runner.collect()
    drills = state_dir / "drills.json"
    real_due = runner._due

    def another_drill_ends(dr):
        # Between the first look and the lock, another drill recorded itself.
        due = real_due(dr)
        drills.write_text(json.dumps([{"time": time.time(), "passed": True}]))
        return due

    monkeypatch.setattr(runner, "_due", another_drill_ends)
    monkeypatch.setattr(runner, "_drill", lambda *args: pytest.fail("a second drill ran"))

    assert runner.drill(when_due=True)["reason"] == "not due"


def test_nothing_is_written_when_nothing_was_pushed(runner, tmp_path):
    assert runner.collect()["received"] == []
    assert runner.drill(when_due=True)["reason"] == "no snapshot has been received yet"
    assert not (tmp_path / "dr").exists()


def test_the_drills_binaries_are_the_given_then_configured_then_topologys_then_path(
    runner, topology_utils, topology, opts, monkeypatch
):
    dr = topology_utils.dr(topology)
    tmp_path = pathlib.Path(opts["sock_dir"])
    assert runner._binaries(dr, "/given") == ("/given", "given")
    opts[runner.BIN_DIR_OPTION] = "/configured"
    assert runner._binaries(dr, None)[0] == "/configured"
    del opts[runner.BIN_DIR_OPTION]
    bin_dir = tmp_path / "etcd-bin-of-the-topology"
    bin_dir.mkdir()
    (bin_dir / "etcd").write_text("#!/bin/sh\n")
    (bin_dir / "etcd").chmod(0o755)
    assert runner._binaries({**dr, "etcd": {**dr["etcd"], "bin_dir": str(bin_dir)}}, None)[1] == (
        "the topology's etcd bin_dir"
    )
    missing = {**dr, "etcd": {**dr["etcd"], "bin_dir": str(tmp_path / "none")}}
    monkeypatch.setattr(runner.shutil, "which", lambda name: None)
    with pytest.raises(SaltRunnerError, match="the master has no etcd binary"):
        runner._binaries(missing, None)


def test_the_masters_schedule_runs_collect_and_due_drills_every_minute(
    repo_root, runner, topology_utils, topology
):
    config = yaml.safe_load((repo_root / "etc/salt/master").read_text())
    assert config["file_recv"] is True
    quota = topology_utils.dr(topology)["etcd"]["quota_bytes"]
    assert config["file_recv_max_size"] * MIB >= runner._largest_snapshot(quota)
    jobs = config["schedule"]
    assert jobs["paas-dr-collect"] == {"function": "paas_backup.collect", "minutes": 1}
    assert jobs["paas-dr-drill"]["function"] == "paas_backup.drill"
    assert jobs["paas-dr-drill"]["kwargs"] == {"when_due": True}
    for job in jobs.values():
        if job["function"].startswith("paas_backup."):
            assert callable(getattr(runner, job["function"].split(".")[1]))
