"""
The ``etcd_cluster`` module inside a running salt-minion daemon, with the protobuf that
Salt 3008 installs: a put and a get through gRPC, sent by the master and executed in the
minion's own process, against a real etcd with client certificates.

The minion runs from this repository's venv, where ``make test`` installs the same
``.pth`` file the lab's image has (docs/decisions/0001); its id is ``etcd1`` of a topology
of its own, so that it holds etcd1's health-check client certificate.
"""

from __future__ import annotations

import shutil
import time

import pytest
import yaml

from tests.functional import etcd_hosts
from tests.integration.conftest import ShippedConfigMaster

TOPOLOGY = etcd_hosts.topology("198.19.5")
CLIENT_URL = "https://127.0.0.1:22379"
PEER_URL = "https://127.0.0.1:22380"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("etcd-in-minion")
    minions = etcd_hosts.issue_all(tmp, TOPOLOGY, ["etcd1"])
    return {"tmp": tmp, "etcd1": minions["etcd1"]}


@pytest.fixture(scope="module")
def etcd(certificates):
    """One etcd member on loopback with client certificate authentication."""
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed (make test installs etcd-server)")
    etcd1 = certificates["etcd1"].modules
    member = etcd_hosts.Member(
        "etcd1",
        "127.0.0.1",
        None,
        {profile: etcd1.paas_pki.profile(profile) for profile in ("etcd-server", "etcd-peer")},
        certificates["tmp"] / "etcd",
    )
    member.start(f"etcd1={PEER_URL}", "new", client_port=22379, peer_port=22380)
    try:
        etcd_hosts.wait_for(
            lambda: etcd1.etcd_cluster.member_health(CLIENT_URL)["healthy"], "etcd1", [member]
        )
        yield member
    finally:
        member.stop()


@pytest.fixture(scope="module")
def etcd1_minion(salt_factories, shipped_master_config, certificates, etcd):
    """A master serving the topology above, and the minion etcd1 with the modules synced."""
    pillar_root = certificates["tmp"] / "pillar"
    pillar_root.mkdir()
    pillar = {**TOPOLOGY, "pki": {"dir": str(certificates["tmp"] / "etcd1" / "pki")}}
    (pillar_root / "top.sls").write_text(yaml.safe_dump({"base": {"*": ["paas"]}}))
    (pillar_root / "paas.sls").write_text(yaml.safe_dump({"paas": pillar}))
    master = salt_factories.salt_master_daemon(
        "etcd-itest-master",
        overrides={**shipped_master_config, "pillar_roots": {"base": [str(pillar_root)]}},
        factory_class=ShippedConfigMaster,
    )
    with master.started():
        minion = master.salt_minion_daemon("etcd1")
        with minion.started():
            cli = master.salt_cli(timeout=120)
            synced = cli.run("saltutil.sync_all", minion_tgt="etcd1")
            assert synced.returncode == 0, synced
            yield cli


def test_the_module_talks_grpc_from_inside_the_minion(etcd1_minion):
    value = f"written-by-the-minion-at-{time.time_ns()}"
    put = etcd1_minion.run(
        "etcd_cluster.put", "/paas/itest", value, f"endpoint={CLIENT_URL}", minion_tgt="etcd1"
    )
    assert put.returncode == 0, put
    assert put.data["revision"] > 0
    got = etcd1_minion.run(
        "etcd_cluster.get", "/paas/itest", f"endpoint={CLIENT_URL}", minion_tgt="etcd1"
    )
    assert got.data == value
    members = etcd1_minion.run("etcd_cluster.members", f"endpoint={CLIENT_URL}", minion_tgt="etcd1")
    assert [member["name"] for member in members.data] == ["etcd1"]


def test_the_minion_runs_protobufs_python_implementation(etcd1_minion):
    ret = etcd1_minion.run(
        "environ.get", "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", minion_tgt="etcd1"
    )
    assert ret.data == "python"
