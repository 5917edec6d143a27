"""
The lab's kubeadm double (lab/kube/kubeadm.py) run as the machines run it, a program:
its configuration checks and errors as kubeadm 1.34 words them, its version and
certificate key, the copycerts encryption, what `kubeadm init` writes on a node (in a
folder standing for the node's root, kubeadm's own --rootfs), its refusal of a second
init and of an etcd below kubeadm's minimum (against an HTTPS stand-in answering
/version as etcd does), `kubeadm certs renew` on what init wrote (the ClusterConfiguration
from an HTTPS stand-in answering the kubeadm-config ConfigMap), and the platform's rendered
configuration accepted as it is.
No etcd, no namespace, no systemd: the integration with the apiserver and kubelet doubles
is the lab's (tests/e2e).
"""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lab.kube import kubeadm_pki

KUBEADM = Path(__file__).resolve().parents[2] / "lab" / "kube" / "kubeadm.py"
ETCD_FILES = {
    "caFile": "/etc/paas/pki/etcd-ca.crt",
    "certFile": "/etc/paas/pki/kube-apiserver-etcd-client.crt",
    "keyFile": "/etc/paas/pki/kube-apiserver-etcd-client.key",
}
# What a node's root folder cannot answer for this host: everything but the checks
# under test (files, the external etcd) is made a warning.
HOST_CHECKS = "NumCPU,Mem,Port-6443,Port-10259,Port-10257,Port-10250,CRI,Swap,IsPrivilegedUser"
AFTER_KUBELET_START = (
    "wait-control-plane,upload-config,upload-certs,mark-control-plane,bootstrap-token,"
    "kubelet-finalize,addon,show-join-command"
)


def kubeadm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(KUBEADM), *args], capture_output=True, text=True, check=False
    )


def documents(endpoints: list[str] | None = None) -> list[dict]:
    return [
        {
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": "InitConfiguration",
            "localAPIEndpoint": {"advertiseAddress": "198.18.1.21", "bindPort": 6443},
            "nodeRegistration": {
                "name": "cp1",
                "criSocket": "unix:///run/containerd/containerd.sock",
                "kubeletExtraArgs": [{"name": "node-ip", "value": "198.18.1.21"}],
            },
        },
        {
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": "ClusterConfiguration",
            "kubernetesVersion": "v1.34.2",
            "controlPlaneEndpoint": "198.18.1.100:6443",
            "etcd": {
                "external": {
                    "endpoints": endpoints or ["https://198.18.1.11:2379"],
                    **ETCD_FILES,
                }
            },
            "apiServer": {
                "certSANs": ["198.18.1.100", "198.18.0.100", "api.paas.example"],
                "extraArgs": [{"name": "audit-log-maxage", "value": "7"}],
            },
            "networking": {
                "podSubnet": "198.19.0.0/17",
                "serviceSubnet": "198.19.128.0/20",
                "dnsDomain": "cluster.local",
            },
        },
    ]


def write_config(tmp_path: Path, docs: list[dict], name: str = "kubeadm.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_config_validate_accepts_a_v1beta4_configuration_with_external_etcd(tmp_path):
    result = kubeadm("config", "validate", "--config", str(write_config(tmp_path, documents())))
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_config_validate_refuses_an_unknown_field_and_names_it(tmp_path):
    docs = documents()
    docs[1]["networking"]["podCIDR"] = "10.0.0.0/16"
    result = kubeadm("config", "validate", "--config", str(write_config(tmp_path, docs)))
    assert result.returncode == 1
    assert (
        'error: error unmarshaling configuration schema.GroupVersionKind{Group:"kubeadm.k8s.io",'
        ' Version:"v1beta4", Kind:"ClusterConfiguration"}: strict decoding error: unknown field'
        ' "networking.podCIDR"'
    ) in result.stderr


def test_config_validate_refuses_a_duplicate_field(tmp_path):
    path = write_config(tmp_path, documents())
    path.write_text(
        path.read_text().replace("  bindPort: 6443\n", "  bindPort: 6443\n  bindPort: 6443\n")
    )
    result = kubeadm("config", "validate", "--config", str(path))
    assert result.returncode == 1
    assert 'strict decoding error: duplicate field "bindPort"' in result.stderr


def test_config_validate_refuses_an_unknown_kind(tmp_path):
    docs = documents()
    docs[1]["kind"] = "ClusterConfig"
    result = kubeadm("config", "validate", "--config", str(write_config(tmp_path, docs)))
    assert result.returncode == 1
    assert (
        "unknown configuration APIs: []schema.GroupVersionKind{schema.GroupVersionKind{"
        'Group:"kubeadm.k8s.io", Version:"v1beta4", Kind:"ClusterConfig"}}'
    ) in result.stderr


@pytest.mark.parametrize(
    ("section", "field", "value", "message"),
    [
        ("networking", "podSubnet", "198.19.0.0/33", "couldn't parse subnet"),
        (
            "networking",
            "serviceSubnet",
            "10.0.0.0/8",
            "specified service subnet is too large; for 32-bit addresses, the mask must be >= 12",
        ),
    ],
)
def test_config_validate_refuses_values_kubeadm_validates(tmp_path, section, field, value, message):
    docs = documents()
    (docs[1][section] if section else docs[1])[field] = value
    result = kubeadm("config", "validate", "--config", str(write_config(tmp_path, docs)))
    path = f"{section}.{field}" if section else field
    assert result.returncode == 1
    assert f'{path}: Invalid value: "{value}": {message}' in result.stderr


def test_a_control_plane_endpoint_with_a_bad_port_is_refused_as_kubeadm_parses_it(tmp_path):
    docs = documents()
    docs[1]["controlPlaneEndpoint"] = "198.18.1.100:99999"
    result = kubeadm("config", "validate", "--config", str(write_config(tmp_path, docs)))
    assert result.returncode == 1
    assert (
        "error: hostport 198.18.1.100:99999: port 99999 must be a valid number between 1 and "
        "65535, inclusive\n"
    ) in result.stderr


def test_config_validate_refuses_an_external_etcd_over_http_with_certificates(tmp_path):
    docs = documents(endpoints=["http://198.18.1.11:2379"])
    result = kubeadm("config", "validate", "--config", str(write_config(tmp_path, docs)))
    assert result.returncode == 1
    assert (
        'etcd.external.endpoints: Invalid value: "http://198.18.1.11:2379": the URL must be '
        "using the HTTPS scheme"
    ) in result.stderr


def join_documents(token: str) -> list[dict]:
    return [
        {
            "apiVersion": "kubeadm.k8s.io/v1beta4",
            "kind": "JoinConfiguration",
            "discovery": {
                "bootstrapToken": {
                    "apiServerEndpoint": "198.18.1.100:6443",
                    "token": token,
                    "caCertHashes": ["sha256:" + "ab" * 32],
                }
            },
            "nodeRegistration": {"name": "worker1"},
        }
    ]


def test_a_join_with_a_malformed_token_is_refused_before_anything_runs(tmp_path):
    root = tmp_path / "node"
    root.mkdir()
    config = write_config(root, join_documents("abcdef.short"))
    for args in (["config", "validate", "--config", str(config)],
                 ["join", "--rootfs", str(root), "--config", "/kubeadm.yaml"]):  # fmt: skip
        result = kubeadm(*args)
        assert result.returncode == 1
        assert (
            'discovery.bootstrapToken.token: Invalid value: "abcdef.short": the bootstrap token '
            "is invalid"
        ) in result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["kubeadm.yaml"]


def test_a_well_formed_join_configuration_is_valid(tmp_path):
    config = write_config(tmp_path, join_documents("abcdef.0123456789abcdef"))
    result = kubeadm("config", "validate", "--config", str(config))
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def v1beta3(docs: list[dict]) -> list[dict]:
    docs = json.loads(json.dumps(docs))
    for doc in docs:
        doc["apiVersion"] = "kubeadm.k8s.io/v1beta3"
    docs[0]["nodeRegistration"]["kubeletExtraArgs"] = {"node-ip": "198.18.1.21"}
    docs[1]["apiServer"]["extraArgs"] = {"audit-log-maxage": "7"}
    return docs


def test_v1beta3_is_read_with_kubeadm_deprecation_warning(tmp_path):
    config = write_config(tmp_path, v1beta3(documents()))
    validated = kubeadm("config", "validate", "--config", str(config))
    # config validate reads deprecated versions without a word, as kubeadm's does.
    assert (validated.returncode, validated.stdout) == (0, "ok\n"), validated.stderr
    every_phase = (
        "preflight,certs,kubeconfig,etcd,control-plane,kubelet-start," + AFTER_KUBELET_START
    )
    result = kubeadm(
        "init", "--rootfs", str(tmp_path), "--config", "/kubeadm.yaml",
        f"--skip-phases={every_phase}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        'your configuration file uses a deprecated API spec: "kubeadm.k8s.io/v1beta3" (kind: '
        '"ClusterConfiguration"). Please use \'kubeadm config migrate --old-config old.yaml '
        "--new-config new.yaml', which will write the new, similar spec using a newer API "
        "version."
    ) in result.stderr


def test_an_old_api_version_is_refused(tmp_path):
    docs = documents()
    for doc in docs:
        doc["apiVersion"] = "kubeadm.k8s.io/v1beta2"
    result = kubeadm("config", "validate", "--config", str(write_config(tmp_path, docs)))
    assert result.returncode == 1
    assert 'your configuration file uses an old API spec: "kubeadm.k8s.io/v1beta2"' in result.stderr


def test_version_json_is_kubeadm_1_34_2():
    result = kubeadm("version", "-o", "json")
    assert result.returncode == 0
    version = json.loads(result.stdout)["clientVersion"]
    assert (version["gitVersion"], version["major"], version["minor"]) == ("v1.34.2", "1", "34")


def test_certificate_key_is_32_random_bytes_in_hex():
    first, second = (kubeadm("certs", "certificate-key") for _ in range(2))
    for result in (first, second):
        assert result.returncode == 0
        assert len(bytes.fromhex(result.stdout.strip())) == 32
    assert first.stdout != second.stdout


def test_copycerts_encryption_is_aes_gcm_with_the_nonce_first():
    key = bytes.fromhex(kubeadm_pki.new_certificate_key())
    secret = b"-----BEGIN RSA PRIVATE KEY-----\n...\n"
    sealed = kubeadm_pki.encrypt_bytes(secret, key)
    # crypto.EncryptBytes: gcm.Seal(nonce, nonce, data, nil), a 12-byte nonce, a 16-byte tag.
    assert len(sealed) == 12 + len(secret) + 16
    assert AESGCM(key).decrypt(sealed[:12], sealed[12:], None) == secret
    assert kubeadm_pki.decrypt_bytes(sealed, key) == secret
    with pytest.raises(kubeadm_pki.PKIError, match="cipher: message authentication failed"):
        kubeadm_pki.decrypt_bytes(sealed, bytes(32))


def test_bootstrap_signer_jws_is_detached_hs256_keyed_by_the_token_secret():
    jws = kubeadm_pki.detached_jws("kubeconfig", "abcdef", "0123456789abcdef")
    header, payload, _ = jws.split(".")
    assert payload == ""
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "kid": "abcdef"}
    assert kubeadm_pki.detached_jws_is_valid(jws, "kubeconfig", "abcdef", "0123456789abcdef")
    assert not kubeadm_pki.detached_jws_is_valid(jws, "kubeconfig", "abcdef", "fedcba9876543210")


def test_ca_pin_refusal_names_the_cluster_key():
    key = kubeadm_pki.generate_key()
    ca = kubeadm_pki.new_ca("kubernetes", key)
    kubeadm_pki.check_pins([kubeadm_pki.spki_hash(ca)], [ca])
    with pytest.raises(kubeadm_pki.PKIError) as refused:
        kubeadm_pki.check_pins(["sha256:" + "00" * 32], [ca])
    assert str(refused.value) == f'none of the public keys "{kubeadm_pki.spki_hash(ca)}" are pinned'


@pytest.fixture
def node_root(tmp_path):
    """A node's root folder with the platform's etcd client files and its kubeadm config."""
    root = tmp_path / "node"
    pki = root / "etc/paas/pki"
    pki.mkdir(parents=True)
    key = kubeadm_pki.generate_key()
    ca = kubeadm_pki.new_ca("etcd-ca", key)
    client_key = kubeadm_pki.generate_key()
    client = kubeadm_pki.new_signed_cert(
        kubeadm_pki.CertSpec("kube-apiserver-etcd-client", client=True), client_key, ca, key
    )
    (pki / "etcd-ca.crt").write_bytes(kubeadm_pki.cert_pem(ca))
    (pki / "kube-apiserver-etcd-client.crt").write_bytes(kubeadm_pki.cert_pem(client))
    (pki / "kube-apiserver-etcd-client.key").write_bytes(kubeadm_pki.key_pem(client_key))
    write_config(root, documents())
    return {"root": root, "etcd_ca": ca, "etcd_key": key}


def init_files(root: Path, *extra: str) -> subprocess.CompletedProcess:
    return kubeadm(
        "init", "--rootfs", str(root), "--config", "/kubeadm.yaml", "--skip-phases",
        f"preflight,{AFTER_KUBELET_START}", *extra,
    )  # fmt: skip


def test_init_writes_what_kubeadm_writes_with_external_etcd(node_root):
    root = node_root["root"]
    result = init_files(root)
    assert result.returncode == 0, result.stderr
    pki = root / "etc/kubernetes/pki"
    leaves = ("ca", "apiserver", "apiserver-kubelet-client", "front-proxy-ca", "front-proxy-client")
    expected = [f"{base}.{ext}" for base in leaves for ext in ("crt", "key")]
    assert sorted(p.name for p in pki.iterdir()) == sorted([*expected, "sa.key", "sa.pub"])
    apiserver = x509.load_pem_x509_certificate((pki / "apiserver.crt").read_bytes())
    names = apiserver.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "cp1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local", "api.paas.example",
    ]  # fmt: skip
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [
        "198.19.128.1", "198.18.1.21", "198.18.1.100", "198.18.0.100",
    ]  # fmt: skip
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    assert apiserver.issuer == ca.subject

    def kubeconfig(name: str) -> tuple[str, str]:
        config = yaml.safe_load((root / "etc/kubernetes" / name).read_text())
        cert = x509.load_pem_x509_certificate(
            base64.b64decode(config["users"][0]["user"]["client-certificate-data"])
        )
        organizations = [a.value for a in cert.subject if a.oid == x509.NameOID.ORGANIZATION_NAME]
        return config["clusters"][0]["cluster"]["server"], ",".join(organizations)

    assert kubeconfig("admin.conf") == ("https://198.18.1.100:6443", "kubeadm:cluster-admins")
    assert kubeconfig("super-admin.conf") == ("https://198.18.1.100:6443", "system:masters")
    assert kubeconfig("kubelet.conf") == ("https://198.18.1.100:6443", "system:nodes")
    assert kubeconfig("controller-manager.conf") == ("https://198.18.1.21:6443", "")
    assert kubeconfig("scheduler.conf") == ("https://198.18.1.21:6443", "")

    manifest = yaml.safe_load((root / "etc/kubernetes/manifests/kube-apiserver.yaml").read_text())
    command = manifest["spec"]["containers"][0]["command"]
    assert command[0] == "kube-apiserver"
    for flag in (
        "--etcd-servers=https://198.18.1.11:2379",
        f"--etcd-cafile={ETCD_FILES['caFile']}",
        f"--etcd-certfile={ETCD_FILES['certFile']}",
        f"--etcd-keyfile={ETCD_FILES['keyFile']}",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt",
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
        "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key",
        "--secure-port=6443",
        "--advertise-address=198.18.1.21",
        "--enable-bootstrap-token-auth=true",
        "--service-account-key-file=/etc/kubernetes/pki/sa.pub",
        "--audit-log-maxage=7",
    ):
        assert flag in command
    assert (root / "etc/kubernetes/manifests/kube-controller-manager.yaml").is_file()
    assert (root / "etc/kubernetes/manifests/kube-scheduler.yaml").is_file()
    kubelet = yaml.safe_load((root / "var/lib/kubelet/config.yaml").read_text())
    assert (kubelet["kind"], kubelet["clusterDNS"]) == ("KubeletConfiguration", ["198.19.128.10"])
    flags = (root / "var/lib/kubelet/kubeadm-flags.env").read_text()
    assert "--container-runtime-endpoint=unix:///run/containerd/containerd.sock" in flags
    assert "--node-ip=198.18.1.21" in flags
    assert (pki / "ca.key").stat().st_mode & 0o777 == 0o600


def test_a_second_init_is_refused_by_preflight(etcd_below_minimum):
    root = etcd_below_minimum
    assert init_files(root).returncode == 0
    result = kubeadm(
        "init", "--rootfs", str(root), "--config", "/kubeadm.yaml",
        f"--ignore-preflight-errors={HOST_CHECKS},ExternalEtcdVersion",
    )  # fmt: skip
    assert result.returncode == 1
    assert "[preflight] Some fatal errors occurred:" in result.stderr
    assert (
        "\t[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: "
        "/etc/kubernetes/manifests/kube-apiserver.yaml already exists\n"
    ) in result.stderr
    assert "error: error execution phase preflight: preflight checks failed" in result.stderr


class _EtcdVersion(BaseHTTPRequestHandler):
    server_version = "etcd"

    def do_GET(self):
        body = json.dumps({"etcdserver": "3.5.16", "etcdcluster": "3.5.0"}).encode()
        self.send_response(200 if self.path == "/version" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def etcd_below_minimum(node_root):
    """An HTTPS stand-in answering /version as etcd 3.5.16 does, requiring a client cert."""
    root = node_root["root"]
    key = kubeadm_pki.generate_key()
    cert = kubeadm_pki.new_signed_cert(
        kubeadm_pki.CertSpec("etcd1", server=True, ips=["127.0.0.1"]),
        key, node_root["etcd_ca"], node_root["etcd_key"],
    )  # fmt: skip
    (root / "server.crt").write_bytes(kubeadm_pki.cert_pem(cert))
    (root / "server.key").write_bytes(kubeadm_pki.key_pem(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(root / "server.crt", root / "server.key")
    context.load_verify_locations(root / "etc/paas/pki/etcd-ca.crt")
    context.verify_mode = ssl.CERT_REQUIRED
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EtcdVersion)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"https://127.0.0.1:{server.server_address[1]}"
        write_config(root, documents(endpoints=[endpoint]))
        yield root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_init_refuses_an_external_etcd_below_kubeadm_minimum(etcd_below_minimum):
    root = etcd_below_minimum
    result = kubeadm(
        "init", "--rootfs", str(root), "--config", "/kubeadm.yaml",
        f"--ignore-preflight-errors={HOST_CHECKS}", f"--skip-phases={AFTER_KUBELET_START}",
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        "\t[ERROR ExternalEtcdVersion]: this version of kubeadm only supports external etcd "
        "version >= 3.5.24-0. Current version: 3.5.16\n"
    ) in result.stderr
    assert not (root / "etc/kubernetes").exists()


def test_init_goes_on_when_told_to_ignore_the_etcd_version(etcd_below_minimum):
    root = etcd_below_minimum
    result = kubeadm(
        "init", "--rootfs", str(root), "--config", "/kubeadm.yaml",
        f"--ignore-preflight-errors={HOST_CHECKS},ExternalEtcdVersion",
        f"--skip-phases={AFTER_KUBELET_START}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        "\t[WARNING ExternalEtcdVersion]: this version of kubeadm only supports external etcd "
        "version >= 3.5.24-0. Current version: 3.5.16\n"
    ) in result.stderr
    assert (root / "etc/kubernetes/manifests/kube-apiserver.yaml").is_file()


# `kubeadm certs renew` on what init wrote.

RENEWED_LEAVES = ("apiserver", "apiserver-kubelet-client", "front-proxy-client")
RENEWED_KUBECONFIGS = (
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
)
RENEW_ALL_LINES = [
    "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself "
    "renewed",
    "certificate for serving the Kubernetes API renewed",
    "certificate for the API server to connect to kubelet renewed",
    "certificate embedded in the kubeconfig file for the controller manager to use renewed",
    "certificate for the front proxy client renewed",
    "certificate embedded in the kubeconfig file for the scheduler manager to use renewed",
    "certificate embedded in the kubeconfig file for the super-admin renewed",
    "",
    "Done renewing certificates. You must restart the kube-apiserver, kube-controller-manager, "
    "kube-scheduler and etcd, so that they can use the new certificates.",
]


def _certificates(root: Path) -> dict[str, tuple[x509.Certificate, bytes]]:
    """Each renewable certificate init wrote, with its key: the PKI's and the kubeconfigs'."""
    found = {}
    pki = root / "etc/kubernetes/pki"
    for base in RENEWED_LEAVES:
        found[base] = (
            x509.load_pem_x509_certificate((pki / f"{base}.crt").read_bytes()),
            (pki / f"{base}.key").read_bytes(),
        )
    for name in RENEWED_KUBECONFIGS:
        path = root / "etc/kubernetes" / name
        if path.exists():
            user = yaml.safe_load(path.read_text())["users"][0]["user"]
            found[name] = (
                x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"])),
                base64.b64decode(user["client-key-data"]),
            )
    return found


def _config_of(cert: x509.Certificate) -> tuple:
    """What renewal keeps: the subject, the SANs and the extended key usages."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = (sorted(names.get_values_for_type(x509.DNSName)),
                [str(ip) for ip in names.get_values_for_type(x509.IPAddress)])  # fmt: skip
    except x509.ExtensionNotFound:
        sans = ([], [])
    usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    return cert.subject, sans, usages


class _KubeadmConfigMap(BaseHTTPRequestHandler):
    """The kubeadm-config ConfigMap, as the apiserver answers kubeadm for it."""

    cluster_configuration = ""

    def do_GET(self):
        found = self.path == "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
        body = {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
            "data": {"ClusterConfiguration": self.cluster_configuration},
        }
        data = json.dumps(body if found else {"kind": "Status", "code": 404}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def initialized(node_root):
    """A node kubeadm init set up, with a certificateValidityPeriod of 100 h, and an
    HTTPS stand-in for its apiserver answering the kubeadm-config ConfigMap; the node's
    /cluster.conf is admin.conf pointing at the stand-in."""
    root = node_root["root"]
    docs = documents()
    docs[1]["certificateValidityPeriod"] = "100h0m0s"
    write_config(root, docs)
    result = init_files(root)
    assert result.returncode == 0, result.stderr
    pki = root / "etc/kubernetes/pki"
    ca = kubeadm_pki.load_cert((pki / "ca.crt").read_bytes())
    ca_key = kubeadm_pki.load_key((pki / "ca.key").read_bytes())
    key = kubeadm_pki.generate_key()
    cert = kubeadm_pki.new_signed_cert(
        kubeadm_pki.CertSpec("kube-apiserver", server=True, ips=["127.0.0.1"]), key, ca, ca_key
    )
    (root / "standin.crt").write_bytes(kubeadm_pki.cert_pem(cert))
    (root / "standin.key").write_bytes(kubeadm_pki.key_pem(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(root / "standin.crt", root / "standin.key")
    handler = type(
        "Handler", (_KubeadmConfigMap,), {"cluster_configuration": yaml.safe_dump(docs[1])}
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        admin = yaml.safe_load((root / "etc/kubernetes/admin.conf").read_text())
        admin["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{server.server_address[1]}"
        (root / "cluster.conf").write_text(yaml.safe_dump(admin))
        yield root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_certs_renew_all_reissues_each_certificate_with_a_new_key_for_the_cluster_validity(
    initialized,
):
    root = initialized
    before = _certificates(root)
    kubelet_conf = (root / "etc/kubernetes/kubelet.conf").read_bytes()
    cas = {name: (root / "etc/kubernetes/pki" / name).read_bytes() for name in ("ca.crt", "ca.key")}
    started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)

    result = kubeadm(
        "--rootfs", str(root), "certs", "renew", "all", "--kubeconfig", "/cluster.conf"
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        '[renew] Reading configuration from the "kubeadm-config" ConfigMap in namespace '
        '"kube-system"...',
        "[renew] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to "
        "re-upload it.",
        "",
        *RENEW_ALL_LINES,
    ]
    after = _certificates(root)
    assert sorted(after) == sorted(before)
    ca = x509.load_pem_x509_certificate(cas["ca.crt"])
    front_proxy_ca = x509.load_pem_x509_certificate(
        (root / "etc/kubernetes/pki/front-proxy-ca.crt").read_bytes()
    )
    for name, (cert, key) in after.items():
        old_cert, old_key = before[name]
        assert cert.serial_number != old_cert.serial_number, name
        assert key != old_key, f"{name}: renewal makes a new key (pkiutil.NewCertAndKey)"
        assert _config_of(cert) == _config_of(old_cert), name
        cert.verify_directly_issued_by(front_proxy_ca if name == "front-proxy-client" else ca)
        # The ClusterConfiguration's certificateValidityPeriod, from the start of the run.
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(
            hours=100, minutes=5
        ), name
        assert abs(cert.not_valid_before_utc - (started - datetime.timedelta(minutes=5))) < (
            datetime.timedelta(seconds=30)
        ), name
    admin = yaml.safe_load((root / "etc/kubernetes/admin.conf").read_text())
    assert admin["clusters"][0]["cluster"]["server"] == "https://198.18.1.100:6443"
    assert admin["current-context"] == "kubernetes-admin@kubernetes"
    assert (root / "etc/kubernetes/admin.conf").stat().st_mode & 0o777 == 0o600
    assert (root / "etc/kubernetes/pki/apiserver.key").stat().st_mode & 0o777 == 0o600
    assert (root / "etc/kubernetes/kubelet.conf").read_bytes() == kubelet_conf
    assert {n: (root / "etc/kubernetes/pki" / n).read_bytes() for n in cas} == cas


def test_certs_renew_skips_a_missing_certificate_and_etcd_s_with_an_external_etcd(initialized):
    root = initialized
    (root / "etc/kubernetes/super-admin.conf").unlink()
    before = _certificates(root)

    missing = kubeadm("--rootfs", str(root), "certs", "renew", "super-admin.conf",
                      "--config", "/kubeadm.yaml")  # fmt: skip
    assert (missing.returncode, missing.stdout) == (
        0,
        "MISSING! certificate embedded in the kubeconfig file for the super-admin\n",
    ), missing.stderr
    etcd = kubeadm("--rootfs", str(root), "certs", "renew", "etcd-server",
                   "--config", "/kubeadm.yaml")  # fmt: skip
    assert (etcd.returncode, etcd.stdout) == (0, "MISSING! certificate for serving etcd\n")
    assert not (root / "etc/kubernetes/super-admin.conf").exists()
    assert not (root / "etc/kubernetes/pki/etcd").exists()

    one = kubeadm("--rootfs", str(root), "certs", "renew", "apiserver", "--config", "/kubeadm.yaml")
    assert (one.returncode, one.stdout) == (
        0,
        "certificate for serving the Kubernetes API renewed\n",
    )
    after = _certificates(root)
    changed = [n for n in after if after[n][0].serial_number != before[n][0].serial_number]
    assert changed == ["apiserver"]

    every = kubeadm("--rootfs", str(root), "certs", "renew", "all", "--config", "/kubeadm.yaml")
    assert every.returncode == 0, every.stderr
    assert every.stdout.splitlines() == [
        *RENEW_ALL_LINES[:-3],
        "MISSING! certificate embedded in the kubeconfig file for the super-admin",
        *RENEW_ALL_LINES[-2:],
    ]


def test_certs_renew_refuses_an_unknown_certificate(initialized):
    result = kubeadm("--rootfs", str(initialized), "certs", "renew", "kubelet.conf")
    assert result.returncode == 1
    assert 'error: unknown command "kubelet.conf" for "kubeadm certs renew"' in result.stderr


@pytest.fixture
def kubeadm_configuration(import_repo_module):
    """The platform's renderer of a node's kubeadm configuration
    (_utils/paas_kubeadm_config.py)."""
    return import_repo_module("_utils/paas_kubeadm_config.py", "paas_kubeadm_config_for_double")


def test_the_platform_init_configuration_for_the_lab_passes_config_validate(
    tmp_path, kubeadm_configuration, topology_utils, lab_topology
):
    path = tmp_path / "kubeadm.yaml"
    path.write_text(
        kubeadm_configuration.render(topology_utils.kubernetes_node(lab_topology, "cp1"))
    )
    result = kubeadm("config", "validate", "--config", str(path))
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


@pytest.mark.parametrize("node", ["cp2", "worker1"])
def test_the_platform_join_configurations_pass_config_validate_with_their_secrets(
    tmp_path, kubeadm_configuration, topology_utils, lab_topology, node
):
    # As paas_kubeadm.join adds them to its temporary copy.
    docs = kubeadm_configuration.documents(topology_utils.kubernetes_node(lab_topology, node))
    discovery = docs[0]["discovery"]["bootstrapToken"]
    discovery.update(token="abcdef.0123456789abcdef", caCertHashes=["sha256:" + "ab" * 32])
    if "controlPlane" in docs[0]:
        docs[0]["controlPlane"]["certificateKey"] = kubeadm_pki.new_certificate_key()
    result = kubeadm("config", "validate", "--config", str(write_config(tmp_path, docs)))
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_the_platform_configuration_with_an_unknown_field_is_refused(
    tmp_path, kubeadm_configuration, topology_utils, lab_topology
):
    docs = kubeadm_configuration.documents(topology_utils.kubernetes_node(lab_topology, "cp1"))
    docs[1]["etcd"]["external"]["certificateFile"] = "/etc/paas/pki/x.crt"
    result = kubeadm("config", "validate", "--config", str(write_config(tmp_path, docs)))
    assert result.returncode == 1
    assert 'unknown field "etcd.external.certificateFile"' in result.stderr
