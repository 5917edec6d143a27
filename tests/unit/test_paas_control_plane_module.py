"""
``paas_control_plane`` (``_modules/paas_control_plane.py``) under Salt's loader, on a control
plane of the lab's topology whose kubeadm files are made here: the Nodes, Leases and
``/readyz`` come through the real ``kubernetes`` client from small HTTPS stand-ins on
loopback addresses (the node's own, the private VIP's and the public VIP's) that ask for
the admin client certificate as kube-apiserver does; kubeadm's certificates are read
from the files and kubeconfigs, with Salt's own ``x509_v2``.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import ipaddress
import json
import os
import socket
import ssl
import tempfile
import threading
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from salt.modules import x509_v2

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
ADDRESSES = {"direct": "127.0.0.1", "private_vip": "127.0.0.2", "public_vip": "127.0.0.3"}
NODES_PATH = "/api/v1/nodes"
LEASES_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
NOT_READY = "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n"


class Authority:
    """A CA that issues certificates relative to NOW (ECDSA keys: quick to make)."""

    def __init__(self, name: str):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = self._build(name, self.key.public_key(), days=3650, ca=True)

    def issue(self, name: str, days: int = 365, ips: tuple[str, ...] = (), org: str | None = None):
        key = ec.generate_private_key(ec.SECP256R1())
        return self._build(name, key.public_key(), days, ips=ips, org=org), key

    def _build(self, name, public_key, days, *, ca=False, ips=(), org=None):
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
        if org:
            attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self.cert.subject if not ca else x509.Name(attributes))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=400))
            .not_valid_after(NOW + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ips:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
                ),
                critical=False,
            )
        return builder.sign(self.key, hashes.SHA256())


def pem(item) -> str:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM).decode()
    return item.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Kubeadm:
    """The files kubeadm writes on the first control plane, under a root of its own."""

    def __init__(self, root: Path, server: str):
        self.root, self.server = root, server
        self.kubeconfig_dir = root / "etc/kubernetes"
        self.pki_dir = self.kubeconfig_dir / "pki"
        self.pki_dir.mkdir(parents=True)
        self.ca = Authority("kubernetes")
        self.front_proxy_ca = Authority("front-proxy-ca")
        self.write_ca("ca", self.ca)
        self.write_ca("front-proxy-ca", self.front_proxy_ca)
        self.write_pki("apiserver", *self.ca.issue("kube-apiserver", ips=tuple(ADDRESSES.values())))
        self.write_pki("apiserver-kubelet-client", *self.ca.issue("kube-apiserver-kubelet-client"))
        self.write_pki("front-proxy-client", *self.front_proxy_ca.issue("front-proxy-client"))
        self.admin = self.ca.issue("kubernetes-admin", org="kubeadm:cluster-admins")
        self.write_kubeconfig("admin.conf", *self.admin)
        self.write_kubeconfig("super-admin.conf", *self.ca.issue("kubernetes-super-admin"))
        self.write_kubeconfig(
            "controller-manager.conf", *self.ca.issue("system:kube-controller-manager")
        )
        self.write_kubeconfig("scheduler.conf", *self.ca.issue("system:kube-scheduler"))

    def write_ca(self, name: str, authority: Authority) -> None:
        self.write_pki(name, authority.cert, authority.key)

    def write_pki(self, name: str, cert, key) -> None:
        (self.pki_dir / f"{name}.crt").write_text(pem(cert))
        (self.pki_dir / f"{name}.key").write_text(pem(key))

    def write_kubeconfig(self, name: str, cert, key) -> None:
        user = name.removesuffix(".conf")
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kubernetes",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": b64(pem(self.ca.cert)),
                    },
                }
            ],
            "contexts": [{"name": "ctx", "context": {"cluster": "kubernetes", "user": user}}],
            "current-context": "ctx",
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate-data": b64(pem(cert)),
                        "client-key-data": b64(pem(key)),
                    },
                }
            ],
        }
        (self.kubeconfig_dir / name).write_text(yaml.safe_dump(document))


class Apiserver(http.server.ThreadingHTTPServer):
    """An HTTPS stand-in: fixed answers per path, client certificates required and
    checked against kubeadm's CA, the client's CN recorded for every request."""

    def __init__(self, address: str, port: int, kubeadm: Kubeadm, routes: dict, cert=None):
        super().__init__((address, port), _Handler)
        self.routes, self.clients = routes, []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if cert is None:
            context.load_cert_chain(
                kubeadm.pki_dir / "apiserver.crt", kubeadm.pki_dir / "apiserver.key"
            )
        else:
            context.load_cert_chain(*cert)
        context.load_verify_locations(kubeadm.pki_dir / "ca.crt")
        context.verify_mode = ssl.CERT_REQUIRED
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        subject = dict(item[0] for item in self.connection.getpeercert()["subject"])
        self.server.clients.append(subject["commonName"])
        status, body = self.server.routes.get(self.path.split("?")[0], (404, "not found"))
        payload = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        kind = "application/json" if isinstance(body, dict) else "text/plain; charset=utf-8"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def stamp(seconds_ago: float, micro: bool = False) -> str:
    moment = NOW - datetime.timedelta(seconds=seconds_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def node(name: str, ready: str, age_s: int, *, roles=(), reason=None, message=None) -> dict:
    """A Node as kube-apiserver serves it (nodeInfo with every field the client requires)."""
    condition = {"type": "Ready", "status": ready, "lastHeartbeatTime": stamp(5)}
    condition.update(
        {key: value for key, value in (("reason", reason), ("message", message)) if value}
    )
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": stamp(age_s),
            "labels": {
                "kubernetes.io/hostname": name,
                **{f"node-role.kubernetes.io/{role}": "" for role in roles},
            },
        },
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, condition],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "b",
                "containerRuntimeVersion": "containerd://1.7.24",
                "kernelVersion": "6.1.0",
                "kubeProxyVersion": "",
                "kubeletVersion": "v1.34.2",
                "machineID": "m",
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 13 (trixie)",
                "systemUUID": "u",
            },
        },
    }


def lease(name: str, renewed_s_ago: float) -> dict:
    return {
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "renewTime": stamp(renewed_s_ago, micro=True)},
    }


def routes() -> dict:
    return {
        "/readyz": (200, "ok"),
        NODES_PATH: (
            200,
            {
                "kind": "NodeList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "42"},
                "items": [
                    node("cp1", "True", 3600, roles=("control-plane",)),
                    node(
                        "worker1",
                        "False",
                        600,
                        reason="KubeletNotReady",
                        message="container runtime is down",
                    ),
                ],
            },
        ),
        LEASES_PATH: (
            200,
            {
                "kind": "LeaseList",
                "apiVersion": "coordination.k8s.io/v1",
                "metadata": {"resourceVersion": "42"},
                "items": [lease("cp1", 4.5)],
            },
        ),
    }


@pytest.fixture(scope="module")
def module(import_repo_module):
    return import_repo_module("_modules/paas_control_plane.py", "paas_control_plane_module")


@pytest.fixture
def port() -> int:
    # The same free port on the three loopback addresses (the apiservers and the VIPs
    # listen on one port).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def kubeadm(tmp_path, port) -> Kubeadm:
    return Kubeadm(tmp_path, f"https://{ADDRESSES['private_vip']}:{port}")


@pytest.fixture
def apiservers(kubeadm, port):
    """The node's own apiserver and the private VIP's, both healthy; nothing behind the
    public VIP until a test starts it. Stopped, whatever the test did."""
    started = {}

    def start(name: str, answers: dict | None = None, cert=None) -> Apiserver:
        started[name] = Apiserver(ADDRESSES[name], port, kubeadm, answers or routes(), cert)
        return started[name]

    start("direct")
    start("private_vip")
    try:
        yield start, started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture
def view(topology_utils, lab_topology, kubeadm, port) -> dict:
    """cp1's kubernetes_node view, its addresses and kubeadm's paths moved to the test's."""
    view = topology_utils.kubernetes_node(lab_topology, "cp1")
    view.update(
        address=ADDRESSES["direct"],
        endpoint={"host": ADDRESSES["private_vip"], "port": port},
        vips={"private": ADDRESSES["private_vip"], "public": ADDRESSES["public_vip"]},
        admin_kubeconfig=str(kubeadm.kubeconfig_dir / "admin.conf"),
        pki_dir=str(kubeadm.pki_dir),
    )
    return view


@pytest.fixture
def private_tmp(tmp_path, monkeypatch) -> Path:
    """The temporary directory the module may use, to see what it leaves behind."""
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    return directory


@pytest.fixture
def configure_loader_modules(module, view, monkeypatch):
    monkeypatch.setattr(module, "_now", lambda: NOW)
    salt = {
        "paas_topology.kubernetes_node": lambda: view,
        "paas_topology.get": lambda: {"pki": {"renew_days": 30}},
        "x509.read_certificate": x509_v2.read_certificate,
        "x509.verify_signature": x509_v2.verify_signature,
    }
    return {
        module: {"__salt__": salt, "__opts__": {"id": "cp1"}},
        x509_v2: {"__opts__": {"fips_mode": False}},
    }


def test_status_lists_each_node_with_ready_roles_kubelet_age_and_lease(module, apiservers):
    report = module.status()

    assert report["initialized"] is True and report["node"] == "cp1"
    assert report["nodes"] == [
        {
            "name": "cp1",
            "ready": True,
            "condition": "True",
            "reason": None,
            "roles": ["control-plane"],
            "kubelet": "v1.34.2",
            "age_s": 3600,
            "lease_age_s": 4,
        },
        {
            "name": "worker1",
            "ready": False,
            "condition": "False",
            "reason": "KubeletNotReady: container runtime is down",
            "roles": [],
            "kubelet": "v1.34.2",
            "age_s": 600,
            "lease_age_s": None,
        },
    ]


def test_status_asks_readyz_of_its_own_apiserver_and_through_both_vips(module, apiservers, port):
    start, _ = apiservers
    start("public_vip", {"/readyz": (500, NOT_READY)})

    apiserver = module.status()["apiserver"]

    assert apiserver == {
        "direct": {"url": f"https://127.0.0.1:{port}/readyz", "ready": True, "error": None},
        "private_vip": {"url": f"https://127.0.0.2:{port}/readyz", "ready": True, "error": None},
        "public_vip": {
            "url": f"https://127.0.0.3:{port}/readyz",
            "ready": False,
            "error": "HTTP 500: etcd failed: reason withheld",
        },
    }


def test_a_vip_nobody_answers_on_is_not_ready_with_the_reason(module, apiservers):
    public = module.status()["apiserver"]["public_vip"]

    assert public["ready"] is False
    assert "Connection refused" in public["error"]


def test_an_apiserver_whose_certificate_is_from_another_ca_is_not_ready(
    module, apiservers, kubeadm, tmp_path
):
    start, _ = apiservers
    cert, key = Authority("another").issue("kube-apiserver", ips=(ADDRESSES["public_vip"],))
    (tmp_path / "other.crt").write_text(pem(cert))
    (tmp_path / "other.key").write_text(pem(key))
    start("public_vip", cert=(tmp_path / "other.crt", tmp_path / "other.key"))

    public = module.status()["apiserver"]["public_vip"]

    assert public["ready"] is False
    assert "CERTIFICATE_VERIFY_FAILED" in public["error"]


def test_the_apiservers_see_the_admin_certificate_and_no_copy_of_it_stays(
    module, apiservers, private_tmp
):
    _, started = apiservers

    module.status()

    # The Nodes and Leases through the kubeconfig's server (the private VIP), then readyz.
    assert started["direct"].clients == ["kubernetes-admin"]
    assert started["private_vip"].clients == ["kubernetes-admin"] * 3
    assert list(private_tmp.iterdir()) == []


def test_nodes_that_cannot_be_listed_are_said_so_and_readyz_still_asked(module, apiservers):
    start, started = apiservers
    started.pop("private_vip").stop()
    start("private_vip", {**routes(), NODES_PATH: (403, {"kind": "Status", "code": 403})})

    report = module.status()

    assert "nodes" not in report
    assert report["nodes_error"] == "HTTP 403 Forbidden"
    assert report["apiserver"]["direct"]["ready"] is True


def test_without_the_admin_kubeconfig_kubernetes_is_not_initialized(module, kubeadm):
    (kubeadm.kubeconfig_dir / "admin.conf").unlink()

    assert module.status() == {
        "node": "cp1",
        "initialized": False,
        "reason": f"{kubeadm.kubeconfig_dir}/admin.conf is absent",
    }
    assert module.certificates() == []


def test_an_unusable_admin_kubeconfig_is_an_error_in_the_data(module, kubeadm):
    (kubeadm.kubeconfig_dir / "admin.conf").write_text("apiVersion: v1\nkind: Config\n")

    assert module.status() == {
        "node": "cp1",
        "initialized": True,
        "error": f"the kubeconfig {kubeadm.kubeconfig_dir}/admin.conf has no current-context",
    }


def _rows(module) -> dict:
    return {row["profile"]: row for row in module.certificates()}


def test_certificates_lists_kubeadms_as_check_expiration_does(module, kubeadm):
    rows = _rows(module)

    assert list(rows) == [
        "admin.conf",
        "apiserver",
        "apiserver-kubelet-client",
        "controller-manager.conf",
        "front-proxy-client",
        "scheduler.conf",
        "super-admin.conf",
        "ca",
        "front-proxy-ca",
    ]
    admin = rows["admin.conf"]
    assert admin["subject"] == "CN=kubernetes-admin,O=kubeadm:cluster-admins"
    assert admin["serial"] == x509_v2.read_certificate(pem(kubeadm.admin[0]))["serial_number"]
    assert admin["path"] == f"{kubeadm.kubeconfig_dir}/admin.conf"
    assert rows["apiserver"]["names"] == [f"IP:{address}" for address in ADDRESSES.values()]
    assert rows["front-proxy-client"]["signed_by"] == "front-proxy-ca"
    assert rows["ca"]["signed_by"] is None
    for name, row in rows.items():
        assert row["node"] == "cp1" and row["source"] == "kubeadm", name
        assert row["problems"] == [] and row["renewal_due"] is False, name
    assert (rows["apiserver"]["days_left"], rows["ca"]["days_left"]) == (365, 3650)
    assert rows["apiserver"]["not_after"] == (NOW + datetime.timedelta(days=365)).strftime(
        "%Y-%m-%d %H:%M:%S"
    )


def test_super_admin_conf_is_listed_only_where_kubeadm_wrote_it(module, kubeadm):
    (kubeadm.kubeconfig_dir / "super-admin.conf").unlink()

    assert "super-admin.conf" not in _rows(module)


def test_a_missing_certificate_is_a_row_with_its_problem(module, kubeadm):
    os.unlink(kubeadm.pki_dir / "apiserver.crt")

    row = _rows(module)["apiserver"]

    assert row["problems"] == [f"{kubeadm.pki_dir}/apiserver.crt is missing"]
    assert "days_left" not in row


@pytest.mark.parametrize(
    ("days", "renewal_due", "problems"),
    [
        (31, False, []),
        (30, True, []),
        (10, True, []),
        (-2, True, ["it expired on {not_after}"]),
    ],
)
def test_expiry_and_the_renewal_window(module, kubeadm, days, renewal_due, problems):
    kubeadm.write_pki("apiserver-kubelet-client", *kubeadm.ca.issue("client", days=days))

    row = _rows(module)["apiserver-kubelet-client"]

    assert (row["days_left"], row["renewal_due"]) == (days, renewal_due)
    assert row["problems"] == [problem.format(**row) for problem in problems]


def test_a_certificate_not_signed_by_its_kubeadm_ca_is_a_problem(module, kubeadm):
    kubeadm.write_kubeconfig("scheduler.conf", *Authority("another").issue("system:kube-scheduler"))

    row = _rows(module)["scheduler.conf"]

    assert row["problems"] == [f"it is not signed by kubeadm's ca ({kubeadm.pki_dir}/ca.crt)"]


def test_the_module_loads_only_with_x509_and_the_topology_module(module):
    module.__salt__.pop("x509.read_certificate")

    assert module.__virtual__() == (
        False,
        "paas_control_plane: Salt's x509_v2 module (cryptography) is not available",
    )
