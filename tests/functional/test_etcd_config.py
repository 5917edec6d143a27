"""
The configuration salt/etcd writes, read by the etcd 3.4 line: the host's etcd runs with
nothing but the environment file rendered from the topology (as the paas-etcd unit gives
it), so the lab's 3.5 is not the only line the formula's settings are proven on.
"""

from __future__ import annotations

import shutil
import urllib.request

import jinja2
import pytest

from tests.functional import etcd_hosts

REPO = etcd_hosts.REPO
# etcd1 speaks from loopback here: its server certificate names 127.0.0.1, and a
# one-member cluster has no peer to check the peer certificate's address.
TOPOLOGY = etcd_hosts.topology("198.19.7")


def _environment(etcd1, tmp_path) -> dict:
    settings = etcd1.modules.etcd_cluster.settings()
    settings["data_dir"] = str(tmp_path / "data")
    settings["metrics_port"] = 22381
    node = {"id": "etcd1", "addresses": {"private": "127.0.0.1"}}
    pki = {"dir": str(tmp_path / "etcd1" / "pki")}
    template = (REPO / "salt/etcd/files/etcd.env.jinja").read_text()
    rendered = jinja2.Template(template).render(etcd=settings, node=node, pki=pki)
    environment = dict(
        line.split("=", 1) for line in rendered.splitlines() if line and not line.startswith("#")
    )
    environment["ETCD_INITIAL_CLUSTER"] = "etcd1=https://127.0.0.1:2380"
    environment["ETCD_INITIAL_CLUSTER_STATE"] = "new"
    return environment


def test_the_formulas_settings_start_an_etcd_34_member(tmp_path):
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed (make test installs etcd-server)")
    minions = etcd_hosts.issue_all(tmp_path, TOPOLOGY, ["etcd1"])
    etcd1 = minions["etcd1"]
    environment = _environment(etcd1, tmp_path)
    assert environment["ETCD_CLIENT_CERT_AUTH"] == "true"
    assert environment["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"
    pki = {
        profile: etcd1.modules.paas_pki.profile(profile) for profile in ("etcd-server", "etcd-peer")
    }
    member = etcd_hosts.Member("etcd1", "127.0.0.1", None, pki, tmp_path / "etcd")
    member.start_configured(environment)
    try:
        endpoint = "https://127.0.0.1:2379"
        etcd_hosts.wait_for(
            lambda: etcd1.modules.etcd_cluster.member_health(endpoint)["healthy"],
            "etcd started from the formula's environment file",
            [member],
        )
        assert etcd1.modules.etcd_cluster.member_status(endpoint)["version"].startswith("3.4.")
        with urllib.request.urlopen("http://127.0.0.1:22381/metrics", timeout=5) as reply:
            assert "etcd_server_has_leader 1" in reply.read().decode()
    finally:
        member.stop()
