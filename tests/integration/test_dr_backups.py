"""
etcd's backups end to end on this host: a real etcd on loopback (25379/25380) with
client certificates, a salt-master from the shipped configuration (``file_recv`` on) and
the minion ``etcd1`` of a topology of its own. ``etcd_snapshot.take``, sent by the
master, leaves a verified 0600 snapshot on the node and pushes it;
``paas_backup.collect`` moves it, verified and read by etcd's own ``snapshot status``,
into the receive directory, keeps the master's pushes directory 0700, and refuses a copy
corrupted on the way (the ``paas/dr/snapshot/rejected`` event, ``rejected.json``).
``paas_backup.drill`` restores a good snapshot, and a fresh cluster's empty one, into a
scratch etcd on 127.0.0.1:24379 and reads it back, and fails on a corrupt or
unreadable one; the scratch etcd serves only the drill's own client certificate, and it
and its directory are gone afterwards.

The first master's schedule is off: its minute-by-minute collect and drill would race
the tests' own calls. A second master, with the shipped schedule, collects a pushed
snapshot and drills it on its own.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from tests import tls
from tests.functional import etcd_hosts
from tests.integration.conftest import ShippedConfigMaster

TOPOLOGY = etcd_hosts.topology("198.19.7")
CLIENT_URL = "https://127.0.0.1:25379"
PEER_URL = "https://127.0.0.1:25380"
KEYS = 12


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("dr-backups")


@pytest.fixture(scope="module")
def certificates(workdir):
    return etcd_hosts.issue_all(workdir, TOPOLOGY, ["etcd1"])["etcd1"]


@pytest.fixture(scope="module")
def etcd(certificates, workdir):
    """One etcd member on loopback with client certificate authentication."""
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed (make test installs etcd-server)")
    modules = certificates.modules
    member = etcd_hosts.Member(
        "etcd1",
        "127.0.0.1",
        None,
        {profile: modules.paas_pki.profile(profile) for profile in ("etcd-server", "etcd-peer")},
        workdir / "etcd",
    )
    member.start(f"etcd1={PEER_URL}", "new", client_port=25379, peer_port=25380)
    try:
        etcd_hosts.wait_for(
            lambda: modules.etcd_cluster.member_health(CLIENT_URL)["healthy"], "etcd1", [member]
        )
        client = modules.paas_pki.profile("etcd-healthcheck-client")
        for index in range(KEYS):
            put = etcd_hosts.etcdctl(
                client["ca"],
                client["cert"],
                client["key"],
                [CLIENT_URL],
                "put",
                f"/paas/dr/key{index}",
                f"value{index}",
            )
            assert put.returncode == 0, put.stderr
        yield member
    finally:
        member.stop()


@pytest.fixture(scope="module")
def pillar(workdir) -> dict:
    paas = etcd_hosts.pillar("etcd1", workdir, TOPOLOGY)
    paas["dr"] = {"receive_dir": str(workdir / "master" / "dr" / "snapshots")}
    return paas


@pytest.fixture(scope="module")
def master(salt_factories, shipped_master_config, pillar, workdir, etcd):
    pillar_root = workdir / "pillar"
    pillar_root.mkdir()
    (pillar_root / "top.sls").write_text(yaml.safe_dump({"base": {"*": ["paas"]}}))
    (pillar_root / "paas.sls").write_text(yaml.safe_dump({"paas": pillar}))
    factory = salt_factories.salt_master_daemon(
        "dr-itest-master",
        overrides={
            **shipped_master_config,
            "pillar_roots": {"base": [str(pillar_root)]},
            "schedule": {},
        },
        factory_class=ShippedConfigMaster,
    )
    assert factory.config["file_recv"] is True
    with factory.started():
        minion = factory.salt_minion_daemon("etcd1")
        with minion.started():
            cli = factory.salt_cli(timeout=120)
            synced = cli.run("saltutil.sync_all", minion_tgt="etcd1")
            assert synced.returncode == 0, synced
            yield factory


@pytest.fixture(scope="module")
def salt_cli(master):
    return master.salt_cli(timeout=120)


@pytest.fixture(scope="module")
def run_cli(master):
    return master.salt_run_cli(timeout=300)


def _incoming(master) -> str:
    """Where cp.push leaves etcd1's snapshots on the master."""
    return os.path.join(master.config["cachedir"], "minions", "etcd1", "files", "paas-dr")


@pytest.fixture
def no_drill_left_behind():
    """No scratch directory of a drill and nothing on the drill's ports after the test."""
    pattern = os.path.join(tempfile.gettempdir(), "paas-dr-drill-*")
    before = set(glob.glob(pattern))
    yield
    assert set(glob.glob(pattern)) - before == set(), "a drill left its scratch directory"
    for port in (24379, 24380):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"something serves :{port}"


def _snapshot(salt_cli) -> dict:
    ret = salt_cli.run("etcd_snapshot.take", f"endpoint={CLIENT_URL}", minion_tgt="etcd1")
    assert ret.returncode == 0, ret
    assert ret.data["result"] is True, ret.data
    return ret.data


def test_a_snapshot_is_verified_on_the_node_and_received_verified_on_the_master(
    salt_cli, run_cli, master, pillar
):
    taken = _snapshot(salt_cli)["snapshot"]

    on_node = taken["path"]
    assert os.path.dirname(on_node) == pillar["etcd"]["snapshot_dir"]
    assert stat.S_IMODE(os.stat(on_node).st_mode) == 0o600
    checked = salt_cli.run("etcd_cluster.snapshot_check", on_node, minion_tgt="etcd1")
    assert checked.data["revision"] == taken["revision"] >= KEYS
    assert checked.data["sha256"] == taken["sha256"]
    assert os.path.exists(os.path.join(_incoming(master), taken["name"]))

    collected = run_cli.run("paas_backup.collect")

    assert collected.returncode == 0, collected
    assert [entry["name"] for entry in collected.data["received"]] == [taken["name"]]
    received = os.path.join(pillar["dr"]["receive_dir"], "etcd1", taken["name"])
    with open(received, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == taken["sha256"]
    assert stat.S_IMODE(os.stat(received).st_mode) == 0o600
    pushes = os.path.join(master.config["cachedir"], "minions")
    assert stat.S_IMODE(os.stat(pushes).st_mode) == 0o700
    offsite = run_cli.run("paas_backup.offsite", "verify=True").data["etcd1"]
    assert (offsite["name"], offsite["revision"], offsite["verified"]) == (
        taken["name"],
        taken["revision"],
        True,
    )
    summary = run_cli.run("paas_backup.summary").data
    assert summary["members"]["etcd1"]["stale"] is False


def test_a_snapshot_corrupted_on_its_way_is_refused_and_reported(
    salt_cli, run_cli, master, pillar, event_listener
):
    taken = _snapshot(salt_cli)["snapshot"]
    pushed = os.path.join(_incoming(master), taken["name"])
    with open(pushed, "r+b") as handle:
        handle.seek(taken["size"] // 2)
        byte = handle.read(1)
        handle.seek(taken["size"] // 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    start = time.time()

    collected = run_cli.run("paas_backup.collect")

    assert collected.returncode == 1, collected
    [refused] = collected.data["rejected"]
    assert refused["name"] == taken["name"]
    assert "sha256 does not match its contents" in refused["error"]
    assert not os.path.exists(os.path.join(pillar["dr"]["receive_dir"], "etcd1", taken["name"]))
    seen = event_listener.wait_for_events(
        [(master.id, "paas/dr/snapshot/rejected")], after_time=start, timeout=30
    )
    assert seen.found_all_events, f"no rejection event: {seen.missed}"
    state_dir = os.path.join(os.path.dirname(pillar["dr"]["receive_dir"]), "state")
    with open(os.path.join(state_dir, "rejected.json"), encoding="utf-8") as handle:
        assert json.load(handle)[-1]["name"] == taken["name"]
    # The node still holds it, whole.
    checked = salt_cli.run("etcd_cluster.snapshot_check", taken["path"], minion_tgt="etcd1")
    assert checked.data["sha256"] == taken["sha256"]


@pytest.mark.usefixtures("no_drill_left_behind")
def test_a_drill_restores_the_newest_snapshot_off_the_node_and_reads_it_back(salt_cli, run_cli):
    taken = _snapshot(salt_cli)["snapshot"]
    assert run_cli.run("paas_backup.collect").returncode == 0

    drill = run_cli.run("paas_backup.drill")

    assert drill.returncode == 0, drill
    record = drill.data
    assert record["passed"] is True, record
    assert record["snapshot"].endswith(taken["name"])
    assert record["snapshot_revision"] == taken["revision"]
    assert record["revision"] == record["expected_revision"] == taken["revision"]
    assert record["keys"] == KEYS
    assert isinstance(record["hashkv"], int)
    summary = run_cli.run("paas_backup.summary").data
    assert summary["last_drill"]["snapshot"] == record["snapshot"]
    assert summary["drill_failed"] is False


@pytest.mark.usefixtures("no_drill_left_behind")
def test_a_drill_of_a_corrupt_snapshot_fails_and_says_why(salt_cli, run_cli, workdir):
    taken = _snapshot(salt_cli)["snapshot"]
    with open(taken["path"], "rb") as handle:
        data = bytearray(handle.read())
    data[len(data) // 2] ^= 0xFF
    corrupt = workdir / taken["name"]
    corrupt.write_bytes(bytes(data))

    drill = run_cli.run("paas_backup.drill", f"snapshot={corrupt}")

    assert drill.returncode == 1, drill
    assert drill.data["passed"] is False
    assert "corrupt or truncated" in drill.data["error"]
    assert run_cli.run("paas_backup.summary").data["drill_failed"] is True


@pytest.mark.usefixtures("no_drill_left_behind")
def test_a_drill_of_data_etcd_cannot_read_fails_and_says_why(run_cli, workdir):
    # Its trailer is right, its contents are no etcd database.
    body = b"not a bolt database" * 512
    unreadable = workdir / "etcd1-20260101T000000Z-r5.db"
    unreadable.write_bytes(body + hashlib.sha256(body).digest())

    drill = run_cli.run("paas_backup.drill", f"snapshot={unreadable}")

    assert drill.returncode == 1, drill
    assert drill.data["passed"] is False
    assert "etcd cannot read it" in drill.data["error"]
    assert "snapshot status" in drill.data["error"]


@pytest.fixture(scope="module")
def empty_store_snapshot(workdir):
    """A snapshot of a cluster nobody wrote to, as a fresh lab's first one: an etcd of
    its own on loopback (26379/26380), stopped once the snapshot is saved."""
    directory = workdir / "empty-store"
    directory.mkdir()
    client, peer = "http://127.0.0.1:26379", "http://127.0.0.1:26380"
    snapshot = directory / f"etcd1-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-r0.db"
    with open(directory / "etcd.log", "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [
                "etcd",
                "--name=empty",
                f"--data-dir={directory / 'data'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=empty={peer}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            saved = subprocess.run(
                ["etcdctl", f"--endpoints={client}", "snapshot", "save", str(snapshot)],
                check=False,
                capture_output=True,
                text=True,
                env={**os.environ, "ETCDCTL_API": "3"},
            )
            if saved.returncode == 0:
                break
            assert time.monotonic() < deadline, saved.stderr
            time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return snapshot


@pytest.mark.usefixtures("no_drill_left_behind")
def test_a_drill_of_a_fresh_clusters_empty_snapshot_passes(run_cli, empty_store_snapshot):
    drill = run_cli.run("paas_backup.drill", f"snapshot={empty_store_snapshot}")

    assert drill.returncode == 0, drill
    record = drill.data
    assert record["passed"] is True, record
    # snapshot status says 0 for a store without keys; etcd serves it at revision 1.
    assert (record["snapshot_revision"], record["revision"], record["keys"]) == (0, 1, 0)


@pytest.fixture(scope="module")
def runner_module(import_repo_module):
    """The runner's own code, for the binaries it finds (which needs no loader)."""
    return import_repo_module("_runners/paas_backup.py", "paas_backup_runner_in_integration")


@pytest.fixture(scope="module")
def etcd_binaries(import_repo_module):
    """The scratch etcd a drill serves (``_utils/paas_etcd_binaries.py``, plain Python)."""
    return import_repo_module("_utils/paas_etcd_binaries.py", "paas_etcd_binaries_in_integration")


def _answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.mark.usefixtures("no_drill_left_behind")
def test_the_drills_etcd_serves_only_a_client_with_the_drills_certificate(
    runner_module, etcd_binaries, salt_cli, workdir
):
    taken = _snapshot(salt_cli)["snapshot"]
    bin_dir = os.path.dirname(shutil.which("etcd"))
    tools = runner_module._tools({"etcd": {"bin_dir": bin_dir}}, bin_dir)
    other_authority = tls.authority("another authority")
    other_cert, other_key = tls.issue(other_authority, "another client")
    other = workdir / "another-client"
    other.mkdir()
    (other / "client.crt").write_text(tls.pem(other_cert))
    (other / "client.key").write_bytes(
        other_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    with etcd_binaries.scratch_etcd(tools, taken["path"], 2**31) as scratch:
        drill_tls = scratch.tls
        assert stat.S_IMODE(os.stat(scratch.scratch).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(scratch.data_dir).st_mode) == 0o700
        for path in drill_tls.values():
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        endpoint = [scratch.client_url]

        served = etcd_hosts.etcdctl(
            drill_tls["ca"], drill_tls["client_cert"], drill_tls["client_key"], endpoint,
            "get", "/paas/dr/key0", "--print-value-only",
        )  # fmt: skip
        assert (served.returncode, served.stdout.strip()) == (0, "value0"), served.stderr
        without_certificate = subprocess.run(
            ["etcdctl", f"--endpoints={scratch.client_url}", f"--cacert={drill_tls['ca']}",
             "--dial-timeout=3s", "--command-timeout=5s", "get", "/paas/dr/key0"],
            check=False, capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"},
        )  # fmt: skip
        assert without_certificate.returncode != 0
        assert "value0" not in without_certificate.stdout
        another_authoritys = etcd_hosts.etcdctl(
            drill_tls["ca"], str(other / "client.crt"), str(other / "client.key"), endpoint,
            "get", "/paas/dr/key0",
        )  # fmt: skip
        assert another_authoritys.returncode != 0
        assert "value0" not in another_authoritys.stdout

        trusted = ssl.create_default_context(cafile=drill_tls["ca"])
        with_drills = ssl.create_default_context(cafile=drill_tls["ca"])
        with_drills.load_cert_chain(drill_tls["client_cert"], drill_tls["client_key"])
        assert _answers(f"{scratch.client_url}/health", with_drills)
        assert not _answers(f"{scratch.client_url}/health", trusted)
        assert not _answers(f"http://127.0.0.1:{etcd_binaries.DRILL_CLIENT_PORT}/health")
        assert _answers(f"{scratch.peer_url}/members", with_drills)
        assert not _answers(f"{scratch.peer_url}/members", trusted)

    assert not os.path.exists(scratch.scratch)


@pytest.mark.usefixtures("no_drill_left_behind")
def test_the_shipped_master_schedule_collects_and_drills_on_its_own(
    salt_factories, shipped_master_config, salt_cli, pillar, workdir
):
    taken = _snapshot(salt_cli)["snapshot"]
    own = {**pillar, "dr": {"receive_dir": str(workdir / "scheduled" / "dr" / "snapshots")}}
    pillar_root = workdir / "scheduled" / "pillar"
    pillar_root.mkdir(parents=True)
    (pillar_root / "top.sls").write_text(yaml.safe_dump({"base": {"*": ["paas"]}}))
    (pillar_root / "paas.sls").write_text(yaml.safe_dump({"paas": own}))
    factory = salt_factories.salt_master_daemon(
        "dr-itest-scheduled-master",
        overrides={**shipped_master_config, "pillar_roots": {"base": [str(pillar_root)]}},
        factory_class=ShippedConfigMaster,
    )
    # As cp.push leaves them: the snapshot, then its digest.
    incoming = _incoming(factory)
    os.makedirs(incoming)
    for suffix in ("", ".sha256"):
        shutil.copy(f"{taken['path']}{suffix}", os.path.join(incoming, f"{taken['name']}{suffix}"))
    received = os.path.join(own["dr"]["receive_dir"], "etcd1", taken["name"])
    drills = workdir / "scheduled" / "dr" / "state" / "drills.json"
    with factory.started():
        deadline = time.monotonic() + 300
        while not (os.path.exists(received) and drills.exists()):
            assert time.monotonic() < deadline, "the master's schedule did not collect and drill"
            time.sleep(2)
    [drill] = json.loads(drills.read_text())
    assert drill["snapshot"] == received
    assert drill["passed"] is True, drill
