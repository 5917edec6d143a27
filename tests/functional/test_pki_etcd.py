"""
The PKI module's certificates, issued as a node and the CA would issue them, and used by
a real three-member etcd cluster (the host's etcd 3.4) with client and peer certificate
authentication. Each member runs in a network namespace of its own on a test bridge, so
that it speaks from its own address, as etcd's peer certificate checks expect.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.functional import etcd_hosts

TOPOLOGY = etcd_hosts.topology("198.19.1")
ETCD_NODES = etcd_hosts.etcd_addresses(TOPOLOGY)
_minion = etcd_hosts.minion
_issue = etcd_hosts.issue


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Every node's certificates, issued through the module as the lab would issue them."""
    tmp = tmp_path_factory.mktemp("pki")
    minions = etcd_hosts.issue_all(tmp, TOPOLOGY, [*ETCD_NODES, "cp1"])
    yield {"tmp": tmp, "ca": minions["paas-master"], "minions": minions}


def _paths(pki, node: str, profile: str) -> dict:
    return pki["minions"][node].modules.paas_pki.profile(profile)


def _openssl_verify(pki, node: str, profile: str, purpose: str) -> bool:
    paths = _paths(pki, node, profile)
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", paths["ca"], "-purpose", purpose, paths["cert"]],
        check=False,
        capture_output=True,
        text=True,
    )
    return result.returncode == 0


@pytest.mark.parametrize(
    ("node", "profile", "allowed", "refused"),
    [
        ("etcd1", "etcd-healthcheck-client", "sslclient", "sslserver"),
        ("cp1", "kube-apiserver-etcd-client", "sslclient", "sslserver"),
        ("paas-master", "etcd-admin-client", "sslclient", "sslserver"),
    ],
)
def test_certificate_passes_its_purpose_and_fails_the_other(pki, node, profile, allowed, refused):
    assert _openssl_verify(pki, node, profile, allowed)
    assert not _openssl_verify(pki, node, profile, refused)


@pytest.mark.parametrize("profile", ["etcd-server", "etcd-peer"])
def test_server_and_peer_certificates_serve_and_authenticate(pki, profile):
    # The server certificate is a client too: etcd's JSON gateway dials etcd with it.
    assert _openssl_verify(pki, "etcd2", profile, "sslserver")
    assert _openssl_verify(pki, "etcd2", profile, "sslclient")


def test_server_certificate_has_what_etcd_needs(pki):
    details = pki["minions"]["etcd1"].modules.x509.read_certificate(
        _paths(pki, "etcd1", "etcd-server")["cert"]
    )
    extensions = details["extensions"]
    assert extensions["keyUsage"]["digitalSignature"] and extensions["keyUsage"]["keyEncipherment"]
    assert extensions["extendedKeyUsage"]["value"] == ["serverAuth", "clientAuth"]
    assert sorted(extensions["subjectAltName"]["value"]) == sorted(
        ["IP:198.19.1.21", "DNS:etcd1", "DNS:etcd1.ft.test", "IP:127.0.0.1", "DNS:localhost"]
    )
    assert pki["minions"]["etcd1"].modules.paas_pki.check("etcd-server") == []


def test_keys_are_private_to_their_owner(pki):
    server_key = Path(_paths(pki, "etcd1", "etcd-server")["key"])
    assert server_key.stat().st_mode & 0o777 == 0o600
    assert server_key.owner() == "etcd"
    client_key = Path(_paths(pki, "cp1", "kube-apiserver-etcd-client")["key"])
    assert client_key.stat().st_mode & 0o777 == 0o600
    assert client_key.owner() == "root"
    ca_key = pki["tmp"] / "ca" / "ca.key"
    assert ca_key.stat().st_mode & 0o777 == 0o400


def _refusal(pki, node: str, profile: str, csr: str) -> str:
    reply = pki["ca"].modules.paas_pki.sign(csr, profile, __pub_id=node)
    assert "certificate" not in reply
    return reply["error"]


def test_ca_refuses_another_nodes_address(pki):
    etcd2 = pki["minions"]["etcd2"].modules
    csr = etcd2.x509.create_csr(
        private_key=_paths(pki, "etcd2", "etcd-peer")["key"],
        CN="etcd2",
        subjectAltName="IP:198.19.1.21, DNS:etcd2",
    )
    error = _refusal(pki, "etcd2", "etcd-peer", csr)
    assert "names that are not etcd2's: IP:198.19.1.21" in error


def test_ca_refuses_another_nodes_name(pki):
    etcd2 = pki["minions"]["etcd2"].modules
    csr = etcd2.x509.create_csr(private_key=_paths(pki, "etcd2", "etcd-peer")["key"], CN="etcd1")
    assert "CN=etcd1 is not etcd2" in _refusal(pki, "etcd2", "etcd-peer", csr)


def test_ca_refuses_a_profile_the_node_roles_do_not_have(pki):
    etcd2 = pki["minions"]["etcd2"].modules
    csr = etcd2.x509.create_csr(
        private_key=_paths(pki, "etcd2", "etcd-peer")["key"], CN="kube-apiserver-etcd-client"
    )
    error = _refusal(pki, "etcd2", "kube-apiserver-etcd-client", csr)
    assert "that profile is for the control-plane role" in error


def test_ca_refuses_a_ca_certificate(pki):
    etcd2 = pki["minions"]["etcd2"].modules
    key = _paths(pki, "etcd2", "etcd-peer")["key"]
    csr = etcd2.x509.create_csr(private_key=key, CN="etcd2", basicConstraints="critical, CA:TRUE")
    assert "a CA certificate, which no node may have" in _refusal(pki, "etcd2", "etcd-peer", csr)
    assert "a CA certificate never is" in _refusal(pki, "etcd2", "etcd-ca", csr)


def test_ca_refuses_a_request_without_a_known_requester(pki):
    csr = pki["minions"]["etcd2"].modules.paas_pki.csr("etcd-peer")
    assert (
        "requesting minion is unknown" in pki["ca"].modules.paas_pki.sign(csr, "etcd-peer")["error"]
    )


def test_unknown_profile_and_unknown_node_are_clear_errors(pki):
    with pytest.raises(SaltInvocationError, match="unknown certificate profile 'etcd-client'"):
        pki["minions"]["etcd1"].modules.paas_pki.profile("etcd-client")
    with pytest.raises(SaltInvocationError, match="ghost is neither a node of the topology"):
        pki["ca"].modules.paas_pki.profile("etcd-server", node_id="ghost")


def test_expired_ca_signs_nothing_and_changes_no_file(tmp_path):
    topology = copy.deepcopy(TOPOLOGY)
    topology["pki"] = {"ca_days": 2, "leaf_days": 2, "renew_days": 1}
    ca = _minion("paas-master", tmp_path, topology)
    ca.modules.paas_pki.create_ca()
    # Replace the CA certificate with one that has already expired, on the same key.
    expired = ca.modules.x509.create_certificate(
        signing_private_key=str(tmp_path / "ca/ca.key"),
        CN="ft etcd CA",
        basicConstraints="critical, CA:TRUE",
        not_before="2020-01-01 00:00:00",
        not_after="2020-01-02 00:00:00",
    )
    (tmp_path / "ca/ca.crt").write_text(expired)
    etcd1 = _minion("etcd1", tmp_path, topology)
    csr = etcd1.modules.paas_pki.csr("etcd-server")
    before = sorted(path.name for path in (tmp_path / "etcd1/pki").iterdir())
    reply = ca.modules.paas_pki.sign(csr, "etcd-server", __pub_id="etcd1")
    assert "the CA certificate expired on 2020-01-02" in reply["error"]
    assert sorted(path.name for path in (tmp_path / "etcd1/pki").iterdir()) == before
    assert not list((tmp_path / "ca/issued").iterdir())


def test_create_ca_refuses_to_replace_a_ca(pki):
    with pytest.raises(CommandExecutionError, match="never replaced"):
        pki["ca"].modules.paas_pki.create_ca()


def test_install_refuses_a_certificate_for_another_key(pki):
    etcd3 = pki["minions"]["etcd3"].modules
    etcd1_cert = Path(_paths(pki, "etcd1", "etcd-server")["cert"]).read_text()
    ca = Path(_paths(pki, "etcd1", "etcd-server")["ca"]).read_text()
    before = Path(_paths(pki, "etcd3", "etcd-server")["cert"]).read_text()
    with pytest.raises(CommandExecutionError, match="does not match"):
        etcd3.paas_pki.install("etcd-server", etcd1_cert, ca)
    assert Path(_paths(pki, "etcd3", "etcd-server")["cert"]).read_text() == before


def test_issued_certificates_are_recorded_on_the_ca(pki):
    records = [json.loads(path.read_text()) for path in (pki["tmp"] / "ca/issued").iterdir()]
    issued = {(record["node"], record["profile"]) for record in records}
    assert ("etcd2", "etcd-peer") in issued
    assert ("cp1", "kube-apiserver-etcd-client") in issued
    assert not any(
        "PRIVATE KEY" in path.read_text() for path in (pki["tmp"] / "ca/issued").iterdir()
    )


# The cluster itself.


def _etcdctl(pki, node: str, profile: str, *argv: str) -> subprocess.CompletedProcess:
    """etcdctl against the cluster as ``node`` with its certificate of ``profile``."""
    paths = _paths(pki, node, profile)
    return _etcdctl_with(paths["ca"], paths["cert"], paths["key"], *argv)


def _etcdctl_with(ca: str, cert: str, key: str, *argv: str) -> subprocess.CompletedProcess:
    endpoints = [f"https://{address}:2379" for address in ETCD_NODES.values()]
    return etcd_hosts.etcdctl(ca, cert, key, endpoints, *argv)


@pytest.fixture(scope="module")
def etcd_cluster(pki):
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed (make test installs etcd-server)")
    cluster = ",".join(f"{node}=https://{address}:2380" for node, address in ETCD_NODES.items())
    with etcd_hosts.Hosts("ft", "198.19.1.1", ETCD_NODES) as hosts:
        members = [
            etcd_hosts.Member(
                node,
                address,
                hosts.namespaces[node],
                {profile: _paths(pki, node, profile) for profile in ("etcd-server", "etcd-peer")},
                pki["tmp"] / node,
            )
            for node, address in ETCD_NODES.items()
        ]
        try:
            for member in members:
                member.start(cluster, "new", token="pki-functional")
            etcd_hosts.wait_for(
                lambda: (
                    _etcdctl(
                        pki, "etcd1", "etcd-healthcheck-client", "endpoint", "health"
                    ).returncode
                    == 0
                ),
                "the etcd cluster becoming healthy",
                members,
            )
            yield members
        finally:
            for member in members:
                member.stop()


def test_cluster_forms_quorum_with_the_issued_certificates(pki, etcd_cluster):
    members = _etcdctl(pki, "etcd1", "etcd-healthcheck-client", "member", "list", "-w", "json")
    assert members.returncode == 0, members.stderr
    assert sorted(m["name"] for m in json.loads(members.stdout)["members"]) == sorted(ETCD_NODES)
    for node in ETCD_NODES:
        health = _etcdctl(pki, node, "etcd-healthcheck-client", "endpoint", "health")
        assert health.returncode == 0, health.stderr


def test_apiserver_client_reads_and_writes(pki, etcd_cluster):
    assert (
        _etcdctl(
            pki, "cp1", "kube-apiserver-etcd-client", "put", "/paas/test", "written"
        ).returncode
        == 0
    )
    read = _etcdctl(
        pki, "paas-master", "etcd-admin-client", "get", "/paas/test", "--print-value-only"
    )
    assert read.stdout.strip() == "written"


def test_server_only_certificate_is_refused_as_a_client(pki, etcd_cluster, tmp_path):
    # The same request with a client certificate reads the value; a server-only one
    # (serverAuth, no clientAuth) from the cluster's CA is turned away in the handshake.
    accepted = _etcdctl(pki, "etcd1", "etcd-healthcheck-client", "get", "/paas/test")
    assert "written" in accepted.stdout
    ca_dir = pki["tmp"] / "ca"
    key, csr, cert = tmp_path / "server.key", tmp_path / "server.csr", tmp_path / "server.crt"
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=server-only",
         "-addext", "extendedKeyUsage=serverAuth"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca_dir / "ca.crt", "-CAkey",
         ca_dir / "ca.key", "-copy_extensions", "copy", "-days", "1", "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip
    cluster_ca = _paths(pki, "etcd1", "etcd-server")["ca"]
    result = _etcdctl_with(cluster_ca, str(cert), str(key), "get", "/paas/test")
    assert result.returncode != 0
    assert "written" not in result.stdout


def test_client_certificate_from_another_ca_is_refused(pki, etcd_cluster, tmp_path):
    other = _minion("paas-master", tmp_path, TOPOLOGY)
    other.modules.paas_pki.create_ca()
    cp1 = _minion("cp1", tmp_path, TOPOLOGY)
    _issue(cp1, other, "kube-apiserver-etcd-client")
    paths = cp1.modules.paas_pki.profile("kube-apiserver-etcd-client")
    cluster_ca = _paths(pki, "etcd1", "etcd-server")["ca"]
    result = _etcdctl_with(cluster_ca, paths["cert"], paths["key"], "get", "/paas/test")
    assert result.returncode != 0
    assert "written" not in result.stdout


def test_certificate_holders_are_the_nodes_whose_roles_have_profiles(pki):
    assert pki["ca"].modules.paas_pki.holders() == ["etcd1", "etcd2", "etcd3", "cp1", "paas-master"]


def test_the_inventory_says_which_certificates_are_due_for_renewal(pki, tmp_path):
    rows = pki["minions"]["etcd1"].modules.paas_pki.certificates()
    assert [(row["profile"], row["renewal_due"], row["problems"]) for row in rows] == [
        ("etcd-server", False, []),
        ("etcd-peer", False, []),
        ("etcd-healthcheck-client", False, []),
    ]
    topology = copy.deepcopy(TOPOLOGY)
    topology["pki"] = {"ca_days": 10, "leaf_days": 2, "renew_days": 1}
    short_lived = etcd_hosts.issue_all(tmp_path, topology, ["cp1"])["cp1"]
    (row,) = short_lived.modules.paas_pki.certificates()
    assert (row["days_left"], row["renewal_due"]) == (1, True)
