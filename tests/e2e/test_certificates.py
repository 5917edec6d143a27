"""
Certificates renewed by nobody (this file sorts before test_lab.py, whose last tests
take the lab down and up): certificates re-issued with a short life (each by its own
CA, with its own key, subject, names and usages: a certificate near its end) are renewed
by the master's schedule (``paas.renew``) and loaded by what uses them, while the
platform stays healthy and no acknowledged etcd write is lost; a kubelet whose client
certificate is near its end renews it itself (``rotateCertificates``).
"""

from __future__ import annotations

import datetime
import json
import random
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from lab.machines import leader_pid
from tests.e2e.etcd_helpers import admin_client
from tests.e2e.lab_helpers import machine, on, paas_report, wait_until

pytestmark = pytest.mark.e2e

ETCD_CA = "/var/lib/paas-lab/ca"
STATE_DIR = "/var/lib/paas-lab/dr/state"
ADMIN = "/etc/paas/pki"
ADDRESSES = {"etcd2": "198.18.1.22", "cp2": "198.18.1.32", "cp3": "198.18.1.33"}
KUBELET_CLIENT = "/var/lib/kubelet/pki/kubelet-client-current.pem"
# The master's schedule looks every minute in the lab; a run renews node by node.
RENEWED_WITHIN_S = 300


def _read(node: str, path: str) -> bytes:
    return subprocess.run(
        ["nsenter", "-t", str(leader_pid(machine(node))), "-a", "cat", path],
        check=True,
        capture_output=True,
    ).stdout


def _write(node: str, path: str, data: bytes) -> None:
    """Replace ``path`` on ``node`` whole, with its owner and mode."""
    subprocess.run(
        [
            "nsenter", "-t", str(leader_pid(machine(node))), "-a", "sh", "-c",
            'cat > "$0.e2e" && chown --reference="$0" "$0.e2e" && '
            'chmod --reference="$0" "$0.e2e" && mv "$0.e2e" "$0"',
            path,
        ],
        input=data,
        check=True,
        capture_output=True,
    )  # fmt: skip


def _reissued(pem: bytes, ca_pem: bytes, ca_key_pem: bytes, life: datetime.timedelta, spent=0.0):
    """``pem`` issued again by its CA for ``life``, ``spent`` of it gone already: the
    same subject, key and extensions, a new serial."""
    old = x509.load_pem_x509_certificate(pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    now = datetime.datetime.now(datetime.UTC)
    start = now - life * spent
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(ca.subject)
        .public_key(old.public_key())
        .serial_number(random.getrandbits(120))
        .not_valid_before(start)
        .not_valid_after(start + life)
    )
    for extension in old.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _shorten(node: str, path: str, ca: tuple[bytes, bytes], days: int = 2) -> str:
    """Re-issue a node's certificate for ``days``; its new serial."""
    pem = _reissued(_read(node, path), *ca, datetime.timedelta(days=days))
    _write(node, path, pem)
    return _serial(pem)


def _serial(pem: bytes) -> str:
    return format(x509.load_pem_x509_certificate(pem).serial_number, "X")


def _etcd_ca() -> tuple[bytes, bytes]:
    return Path(ETCD_CA, "ca.crt").read_bytes(), Path(ETCD_CA, "ca.key").read_bytes()


def _kubeadm_ca(node: str) -> tuple[bytes, bytes]:
    return _read(node, "/etc/kubernetes/pki/ca.crt"), _read(node, "/etc/kubernetes/pki/ca.key")


def _presented(address: str, port: int) -> str:
    """The serial of the certificate a TLS server presents (the master's etcd client
    certificate offered, which etcd asks for; the server is not verified here)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(f"{ADMIN}/etcd-admin-client.crt", f"{ADMIN}/etcd-admin-client.key")
    with (
        socket.create_connection((address, port), timeout=5) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return format(x509.load_der_x509_certificate(der).serial_number, "X")


def _runs(since: float) -> list[dict]:
    """The master's renewal runs that renewed something, started since ``since``."""
    path = Path(STATE_DIR, "renewals.json")
    runs = json.loads(path.read_text(encoding="utf-8")) if path.exists() else []
    return [run for run in runs if run["steps"] and run["time"] >= since]


def _days_left(pem: bytes) -> int:
    end = x509.load_pem_x509_certificate(pem).not_valid_after_utc
    return (end - datetime.datetime.now(datetime.UTC)).days


def _apiserver_started(node: str) -> float:
    """When the node's kube-apiserver process started (seconds since the epoch)."""
    pid = on(node, "pgrep -o -x kube-apiserver").strip()
    ticks = int(on(node, f"cut -d' ' -f22 /proc/{pid}/stat").strip())
    booted = int(on(node, "awk '/^btime/ {print $2}' /proc/stat").strip())
    return booted + ticks / int(on(node, "getconf CLK_TCK").strip())


def test_short_lived_certificates_are_renewed_unattended_while_the_platform_stays_healthy(
    lab, writer
):
    etcd_ca = _etcd_ca()
    short = {
        ("etcd2", "etcd-server"): _shorten("etcd2", "/etc/paas/pki/etcd-server.crt", etcd_ca),
        ("etcd2", "etcd-peer"): _shorten("etcd2", "/etc/paas/pki/etcd-peer.crt", etcd_ca),
        ("cp3", "kube-apiserver-etcd-client"): _shorten(
            "cp3", "/etc/paas/pki/kube-apiserver-etcd-client.crt", etcd_ca
        ),
        ("cp2", "apiserver"): _shorten(
            "cp2", "/etc/kubernetes/pki/apiserver.crt", _kubeadm_ca("cp2")
        ),
    }
    cp3_started = _apiserver_started("cp3")
    cp2_started = _apiserver_started("cp2")
    # etcd serves a renewed file at once: the short one now, before any renewal.
    assert _presented(ADDRESSES["etcd2"], 2379) == short[("etcd2", "etcd-server")]
    code, report = paas_report("certs")
    rows = {(row["node"], row["profile"]): row for row in report["certificates"]}
    # Inside the window, with the master's renewal working: pending, not a problem.
    assert all(rows[key]["renewal_due"] and rows[key]["days_left"] <= 2 for key in short)
    assert code == 0, report["problems"]

    seen = []
    shortened = time.time()

    def renewed() -> bool:
        code, status = paas_report("status")
        seen.append((code, status["problems"]))
        _, certs = paas_report("certs")
        found = {(row["node"], row["profile"]): row for row in certs["certificates"]}
        # The run is recorded when it ends, after its last node is back in rotation.
        return all(found[key]["days_left"] > 300 for key in short) and bool(_runs(shortened))

    assert wait_until(renewed, timeout=RENEWED_WITHIN_S, interval=5)
    (run,) = _runs(shortened)
    steps = run["steps"]
    writer.stopping.set()
    writer.join(timeout=30)

    # Healthy all along, by the platform's own report.
    assert seen and {code for code, _ in seen} == {0}, seen
    # One node at a time, etcd before the control planes, each with what it needed; each
    # control plane drained from both gateways' haproxy while it restarted.
    assert run["failed"] is None and all(step["done"] for step in steps), run
    assert all(
        step.get("not_drained") == {} for step in steps if step["turn"] == "control-plane"
    ), steps
    assert [(step["node"], step["sls"]) for step in steps] == [
        ("etcd2", ["pki", "etcd.certificates"]),
        ("cp2", ["kubernetes.certificates"]),
        ("cp3", ["pki", "kubernetes.certificates"]),
    ]
    # etcd presents the renewed certificates on both its ports, and kept every write.
    for profile, port in (("etcd-server", 2379), ("etcd-peer", 2380)):
        on_disk = _serial(_read("etcd2", f"/etc/paas/pki/{profile}.crt"))
        assert on_disk != short[("etcd2", profile)]
        assert _presented(ADDRESSES["etcd2"], port) == on_disk
    with admin_client() as client:
        kept = {meta.key.decode() for _, meta in client.get_prefix(writer.prefix)}
    assert set(writer.acknowledged) <= kept, set(writer.acknowledged) - kept
    # The apiservers restarted on their renewed files: cp3 on its etcd client
    # certificate, cp2 on kubeadm's renewed serving certificate, which it now presents.
    assert _apiserver_started("cp3") > cp3_started
    assert _apiserver_started("cp2") > cp2_started
    apiserver = _read("cp2", "/etc/kubernetes/pki/apiserver.crt")
    assert _days_left(apiserver) > 300
    assert _presented(ADDRESSES["cp2"], 6443) == _serial(apiserver)
    code, report = paas_report("certs")
    assert code == 0, report["problems"]


def test_a_kubelet_renews_its_own_client_certificate_near_its_end(lab):
    ca = _kubeadm_ca("cp1")
    current = on("worker1", f"readlink -f {KUBELET_CLIENT}").strip()
    pem = _read("worker1", current)
    certificate = pem.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    key = pem[len(certificate) :].lstrip()
    # Nine tenths of a ten-hour life gone: past the kubelet's rotation deadline.
    near_end = _reissued(certificate, *ca, datetime.timedelta(hours=10), spent=0.95)
    _write("worker1", current, near_end + key)
    on("worker1", "systemctl restart kubelet")

    def rotated() -> bool:
        path = on("worker1", f"readlink -f {KUBELET_CLIENT}").strip()
        return path != current and _days_left(_read("worker1", path)) > 300

    assert wait_until(rotated, timeout=120, interval=2)
    code, report = paas_report("status")
    assert code == 0, report["problems"]
