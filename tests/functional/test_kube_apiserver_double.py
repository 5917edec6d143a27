"""
The lab's kube-apiserver and kubelet doubles (lab/kube/) against a real etcd cluster (the
host's 3.4, three members, each in a network namespace of its own) with the PKI's
certificates: the apiserver stores through etcd's JSON gateway with the
``kube-apiserver-etcd-client`` certificate, under kube-apiserver's own key layout, and
answers the ``kubernetes`` client; with an etcd client certificate of another CA it is not
ready. The apiserver runs in cp1's namespace from the flags kubeadm's static pod manifest
gives it; the kubelet double runs in cp2's namespace, starts its apiserver from a static pod
manifest, joins by TLS bootstrap with a bootstrap token, registers its Node and renews its
Lease. The CSR approver approves a node's renewal of its own client certificate and no
other node's; kubelets whose client certificate is past its rotation deadline (or is the
one kubeadm embeds in kubelet.conf) rotate it when rotateCertificates is true, and keep it
when it is false. Kubernetes' own certificates are made here as kubeadm makes them.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.functional import etcd_hosts

REPO = Path(__file__).resolve().parents[2]
APISERVER = REPO / "lab/kube/kube_apiserver.py"
KUBELET = REPO / "lab/kube/kubelet.py"
TOPOLOGY = etcd_hosts.topology("198.19.13")
ETCD_NODES = etcd_hosts.etcd_addresses(TOPOLOGY)
CONTROL_PLANES = {"cp1": "198.19.13.31", "cp2": "198.19.13.32"}
HOST = "198.19.13.1"
ETCD_ENDPOINTS = [f"https://{address}:2379" for address in ETCD_NODES.values()]


# Kubernetes' certificates, as kubeadm's certs phase makes them.


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write(directory: Path, name: str, certificate, key) -> dict[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return {"cert": str(cert_path), "key": str(key_path)}


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def _certificate(subject, public_key, issuer, issuer_key, *, ca=False, usage=None, sans=None):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def kubernetes_pki(directory: Path, addresses: list[str]) -> dict:
    """A cluster CA with its key, the apiserver's serving certificate for ``addresses``,
    an admin client certificate (kubeadm:cluster-admins) and a node's (cp1's)."""
    ca_key = _key()
    ca_name = _name("kubernetes")
    ca = _certificate(ca_name, ca_key.public_key(), ca_name, ca_key, ca=True)
    paths = {"ca": _write(directory, "ca", ca, ca_key)}
    sans = [x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default")]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    for name, subject, usage, extra in (
        ("apiserver", _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans),
        (
            "admin",
            _name("kubernetes-admin", ("kubeadm:cluster-admins",)),
            ExtendedKeyUsageOID.CLIENT_AUTH,
            None,
        ),
        (
            "node-cp1",
            _name("system:node:cp1", ("system:nodes",)),
            ExtendedKeyUsageOID.CLIENT_AUTH,
            None,
        ),
    ):
        key = _key()
        certificate = _certificate(
            subject, key.public_key(), ca_name, ca_key, usage=usage, sans=extra
        )
        paths[name] = _write(directory, name, certificate, key)
    return paths


def apiserver_command(kube: dict, etcd: dict, advertise: str, port: int = 6443) -> list[str]:
    """The command of kubeadm's kube-apiserver static pod with external etcd."""
    return [
        "kube-apiserver",
        f"--advertise-address={advertise}",
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        f"--client-ca-file={kube['ca']['cert']}",
        "--enable-admission-plugins=NodeRestriction",
        "--enable-bootstrap-token-auth=true",
        f"--etcd-cafile={etcd['ca']}",
        f"--etcd-certfile={etcd['cert']}",
        f"--etcd-keyfile={etcd['key']}",
        f"--etcd-servers={','.join(ETCD_ENDPOINTS)}",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        "--requestheader-allowed-names=front-proxy-client",
        f"--secure-port={port}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-cluster-ip-range=10.96.0.0/12",
        f"--tls-cert-file={kube['apiserver']['cert']}",
        f"--tls-private-key-file={kube['apiserver']['key']}",
    ]


class Process:
    """A program in a network namespace, its output in a log file, stopped by its PID
    (and its process group: the kubelet double's children with it)."""

    def __init__(self, argv: list[str], namespace: str, log: Path):
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as output:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", namespace, *argv],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def wait_until(check, what: str, process: Process | None = None, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if process is not None and not process.running():
            raise AssertionError(f"{what}: the process exited: {process.output()[-3000:]}")
        if time.monotonic() > deadline:
            output = process.output()[-3000:] if process else ""
            raise AssertionError(f"{what} did not happen in {timeout} s: {output}")
        time.sleep(0.2)


def _get(url: str, **kwargs) -> requests.Response | None:
    try:
        return requests.get(url, timeout=5, **kwargs)
    except requests.RequestException:
        return None


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    """The PKI's certificates, a three-member etcd cluster, Kubernetes' certificates,
    and a namespace per control plane with a default route through this host."""
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed (make test installs etcd-server)")
    tmp = tmp_path_factory.mktemp("kube-doubles")
    minions = etcd_hosts.issue_all(tmp, TOPOLOGY, [*ETCD_NODES, "cp1"])
    kube = kubernetes_pki(tmp / "kubernetes", list(CONTROL_PLANES.values()))
    with contextlib.ExitStack() as stack:
        hosts = stack.enter_context(etcd_hosts.Hosts("fk", HOST, {**ETCD_NODES, **CONTROL_PLANES}))
        for node in CONTROL_PLANES:
            subprocess.run(
                ["ip", "-n", hosts.namespaces[node], "route", "add", "default", "via", HOST],
                check=True,
            )
        cluster = ",".join(f"{node}=https://{address}:2380" for node, address in ETCD_NODES.items())
        members = []
        for node, address in ETCD_NODES.items():
            profiles = ("etcd-server", "etcd-peer")
            member = etcd_hosts.Member(
                node,
                address,
                hosts.namespaces[node],
                {profile: minions[node].modules.paas_pki.profile(profile) for profile in profiles},
                tmp / node,
            )
            stack.callback(member.stop)
            member.start(cluster, "new", token="kube-doubles")
            members.append(member)
        admin = minions["paas-master"].modules.paas_pki.profile("etcd-admin-client")
        etcd_hosts.wait_for(
            lambda: (
                etcd_hosts.etcdctl(
                    admin["ca"], admin["cert"], admin["key"], ETCD_ENDPOINTS, "endpoint", "health"
                ).returncode
                == 0
            ),
            "the etcd cluster becoming healthy",
            members,
        )
        yield {
            "tmp": tmp,
            "minions": minions,
            "kube": kube,
            "hosts": hosts,
            "members": members,
            "etcd_admin": admin,
            "etcd_client": minions["cp1"].modules.paas_pki.profile("kube-apiserver-etcd-client"),
            "stack": stack,
        }


def etcd_value(platform, key: str) -> dict | None:
    admin = platform["etcd_admin"]
    result = etcd_hosts.etcdctl(
        admin["ca"], admin["cert"], admin["key"], ETCD_ENDPOINTS, "get", key, "--print-value-only"
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def start_apiserver(platform, node: str, etcd: dict, port: int, log: str) -> Process:
    command = apiserver_command(platform["kube"], etcd, CONTROL_PLANES[node], port)
    process = Process(
        [sys.executable, str(APISERVER), *command[1:]],
        platform["hosts"].namespaces[node],
        platform["tmp"] / log,
    )
    platform["stack"].callback(process.stop)
    return process


@pytest.fixture(scope="module")
def apiserver(platform):
    """The apiserver double in cp1's namespace with the PKI's etcd client certificate."""
    process = start_apiserver(platform, "cp1", platform["etcd_client"], 6443, "apiserver.log")
    url = f"https://{CONTROL_PLANES['cp1']}:6443"
    ca = platform["kube"]["ca"]["cert"]
    wait_until(
        lambda: (r := _get(f"{url}/readyz", verify=ca)) is not None and r.status_code == 200,
        "the apiserver double becoming ready",
        process,
    )
    yield {"url": url, "process": process, "ca": ca}
    process.stop()


def api_client(apiserver, platform, identity: str = "admin") -> client.ApiClient:
    configuration = client.Configuration()
    configuration.host = apiserver["url"]
    configuration.ssl_ca_cert = apiserver["ca"]
    configuration.cert_file = platform["kube"][identity]["cert"]
    configuration.key_file = platform["kube"][identity]["key"]
    return client.ApiClient(configuration)


NODE_INFO = {
    "architecture": "amd64",
    "bootID": "b",
    "containerRuntimeVersion": "containerd://1.7.24",
    "kernelVersion": "6.1.0",
    "kubeProxyVersion": "",
    "kubeletVersion": "v1.34.2",
    "machineID": "m",
    "operatingSystem": "linux",
    "osImage": "Debian GNU/Linux 13 (trixie)",
    "systemUUID": "s",
}


def node_body(name: str, labels: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels or {}},
        "status": {"nodeInfo": NODE_INFO},
    }


# The apiserver double.


def test_health_and_version_answer_anonymously(apiserver):
    for path in ("/livez", "/readyz", "/healthz"):
        response = requests.get(apiserver["url"] + path, verify=apiserver["ca"], timeout=5)
        assert (response.status_code, response.text) == (200, "ok")
    verbose = requests.get(apiserver["url"] + "/readyz?verbose", verify=apiserver["ca"], timeout=5)
    assert "[+]etcd ok" in verbose.text
    version = requests.get(apiserver["url"] + "/version", verify=apiserver["ca"], timeout=5)
    assert version.json()["gitVersion"] == "v1.34.2"
    assert (version.json()["major"], version.json()["minor"]) == ("1", "34")


def test_system_namespaces_exist_in_etcd(apiserver, platform):
    core = client.CoreV1Api(api_client(apiserver, platform))
    names = {item.metadata.name for item in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    stored = etcd_value(platform, "/registry/namespaces/kube-node-lease")
    assert stored["kind"] == "Namespace"
    assert stored["status"]["phase"] == "Active"


def test_node_lifecycle_through_the_client_and_in_etcd(apiserver, platform):
    core = client.CoreV1Api(api_client(apiserver, platform))
    created = core.create_node(node_body("n1", {"tier": "test"}))
    assert created.metadata.uid and created.metadata.creation_timestamp
    stored = etcd_value(platform, "/registry/minions/n1")
    assert stored["metadata"]["name"] == "n1"
    assert stored["metadata"]["uid"] == created.metadata.uid
    with pytest.raises(ApiException) as exists:
        core.create_node(node_body("n1"))
    assert exists.value.status == 409
    assert json.loads(exists.value.body)["reason"] == "AlreadyExists"

    assert core.read_node("n1").metadata.labels == {"tier": "test"}
    listed = core.list_node(label_selector="tier=test")
    assert [item.metadata.name for item in listed.items] == ["n1"]
    assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)
    assert core.list_node(label_selector="tier=other").items == []

    stale = created.metadata.resource_version
    body = node_body("n1", {"tier": "test", "updated": "yes"})
    body["metadata"]["resourceVersion"] = stale
    updated = core.replace_node("n1", body)
    assert updated.metadata.labels["updated"] == "yes"
    assert int(updated.metadata.resource_version) > int(stale)
    with pytest.raises(ApiException) as conflict:
        core.replace_node("n1", body)
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["reason"] == "Conflict"

    patched = core.patch_node_status(
        "n1", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    )
    assert patched.status.conditions[0].status == "True"
    assert etcd_value(platform, "/registry/minions/n1")["status"]["conditions"][0]["type"] == (
        "Ready"
    )

    core.delete_node("n1")
    assert etcd_value(platform, "/registry/minions/n1") is None
    with pytest.raises(ApiException) as missing:
        core.read_node("n1")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["reason"] == "NotFound"


def test_lease_lifecycle_in_kube_node_lease(apiserver, platform):
    leases = client.CoordinationV1Api(api_client(apiserver, platform))
    body = {
        "metadata": {"name": "n2"},
        "spec": {"holderIdentity": "n2", "leaseDurationSeconds": 40},
    }
    created = leases.create_namespaced_lease("kube-node-lease", body)
    stored = etcd_value(platform, "/registry/leases/kube-node-lease/n2")
    assert stored["kind"] == "Lease"
    assert stored["spec"]["holderIdentity"] == "n2"
    renewed = {
        "metadata": {"name": "n2", "resourceVersion": created.metadata.resource_version},
        "spec": {"holderIdentity": "n2", "leaseDurationSeconds": 40,
                 "renewTime": "2026-01-01T00:00:00.000000Z"},
    }  # fmt: skip
    leases.replace_namespaced_lease("n2", "kube-node-lease", renewed)
    assert leases.read_namespaced_lease("n2", "kube-node-lease").spec.renew_time.year == 2026
    with pytest.raises(ApiException) as conflict:
        leases.replace_namespaced_lease("n2", "kube-node-lease", renewed)
    assert conflict.value.status == 409
    names = [i.metadata.name for i in leases.list_namespaced_lease("kube-node-lease").items]
    assert names == ["n2"]
    leases.delete_namespaced_lease("n2", "kube-node-lease")
    assert etcd_value(platform, "/registry/leases/kube-node-lease/n2") is None


def test_configmaps_and_secrets_in_their_namespace(apiserver, platform):
    core = client.CoreV1Api(api_client(apiserver, platform))
    core.create_namespace({"metadata": {"name": "scratch"}})
    core.create_namespaced_config_map("scratch", {"metadata": {"name": "c"}, "data": {"a": "1"}})
    core.create_namespaced_secret("scratch", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert core.read_namespaced_secret("s", "scratch").data == {
        "k": base64.b64encode(b"v").decode()
    }
    assert etcd_value(platform, "/registry/configmaps/scratch/c")["data"] == {"a": "1"}
    with pytest.raises(ApiException) as no_namespace:
        core.create_namespaced_config_map("absent", {"metadata": {"name": "c"}})
    assert no_namespace.value.status == 404
    core.delete_namespace("scratch")
    assert etcd_value(platform, "/registry/configmaps/scratch/c") is None
    assert etcd_value(platform, "/registry/namespaces/scratch") is None


def test_anonymous_requests_are_forbidden_and_a_bad_token_unauthorized(apiserver, platform):
    url, ca = apiserver["url"], apiserver["ca"]
    anonymous = requests.get(f"{url}/api/v1/nodes", verify=ca, timeout=5)
    assert anonymous.status_code == 403
    assert 'User "system:anonymous" cannot list resource "nodes"' in anonymous.json()["message"]
    token = {"Authorization": "Bearer abcdef.0123456789abcdef"}
    unknown = requests.get(f"{url}/api/v1/nodes", verify=ca, timeout=5, headers=token)
    assert (unknown.status_code, unknown.json()["reason"]) == (401, "Unauthorized")


def test_a_node_may_write_only_its_own_node_and_lease(apiserver, platform):
    node = client.CoreV1Api(api_client(apiserver, platform, "node-cp1"))
    node.create_node(node_body("cp1"))
    with pytest.raises(ApiException) as other:
        node.create_node(node_body("cp9"))
    assert other.value.status == 403
    leases = client.CoordinationV1Api(api_client(apiserver, platform, "node-cp1"))
    leases.create_namespaced_lease("kube-node-lease", {"metadata": {"name": "cp1"}, "spec": {}})
    with pytest.raises(ApiException) as foreign:
        leases.create_namespaced_lease("kube-node-lease", {"metadata": {"name": "cp9"}})
    assert foreign.value.status == 403
    admin = client.CoreV1Api(api_client(apiserver, platform))
    admin.delete_node("cp1")
    client.CoordinationV1Api(api_client(apiserver, platform)).delete_namespaced_lease(
        "cp1", "kube-node-lease"
    )


def bootstrap_token_secret(token_id: str, token_secret: str, expiration: str) -> dict:
    """The Secret ``kubeadm token create`` writes."""
    return {
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": {
            "token-id": token_id,
            "token-secret": token_secret,
            "expiration": expiration,
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
        },
    }


def _rfc3339(delta: datetime.timedelta) -> str:
    return (datetime.datetime.now(datetime.UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_csr(node: str) -> tuple[str, object]:
    key = _key()
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(f"system:node:{node}", ("system:nodes",)))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(request.public_bytes(serialization.Encoding.PEM)).decode(), key


def test_bootstrap_token_authenticates_until_it_expires(apiserver, platform):
    admin = client.CoreV1Api(api_client(apiserver, platform))
    url, ca = apiserver["url"], apiserver["ca"]
    admin.create_namespaced_secret(
        "kube-system",
        bootstrap_token_secret(
            "abcdef", "0123456789abcdef", _rfc3339(datetime.timedelta(minutes=5))
        ),
    )
    admin.create_namespaced_secret(
        "kube-system",
        bootstrap_token_secret(
            "zyxwvu", "0123456789abcdef", _rfc3339(-datetime.timedelta(seconds=1))
        ),
    )
    valid = {"Authorization": "Bearer abcdef.0123456789abcdef"}
    expired = {"Authorization": "Bearer zyxwvu.0123456789abcdef"}
    wrong = {"Authorization": "Bearer abcdef.0123456789abcdee"}
    node = f"{url}/api/v1/nodes/joiner"
    assert requests.get(node, verify=ca, headers=valid, timeout=5).status_code == 404
    listed = requests.get(f"{url}/api/v1/nodes", verify=ca, headers=valid, timeout=5)
    assert listed.status_code == 403
    assert 'User "system:bootstrap:abcdef"' in listed.json()["message"]
    for refused in (expired, wrong):
        response = requests.get(node, verify=ca, headers=refused, timeout=5)
        assert (response.status_code, response.json()["reason"]) == (401, "Unauthorized")

    request, key = node_csr("joiner")
    csr = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"},
        "spec": {
            "request": request,
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
        },
    }
    created = requests.post(
        f"{url}/apis/certificates.k8s.io/v1/certificatesigningrequests",
        json=csr, verify=ca, headers=valid, timeout=5,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert created.json()["spec"]["username"] == "system:bootstrap:abcdef"
    assert created.json()["status"]["conditions"][0]["type"] == "Approved"
    issued = x509.load_pem_x509_certificate(
        base64.b64decode(created.json()["status"]["certificate"])
    )
    ca_cert = x509.load_pem_x509_certificate(Path(ca).read_bytes())
    assert issued.issuer == ca_cert.subject
    assert issued.subject == _name("system:node:joiner", ("system:nodes",))
    assert issued.public_key() == key.public_key()
    name = created.json()["metadata"]["name"]
    stored = etcd_value(platform, f"/registry/certificatesigningrequests/{name}")
    assert stored["status"]["certificate"] == created.json()["status"]["certificate"]
    for token_id in ("abcdef", "zyxwvu"):
        admin.delete_namespaced_secret(f"bootstrap-token-{token_id}", "kube-system")
    gone = requests.get(node, verify=ca, headers=valid, timeout=5)
    assert gone.status_code == 401


def test_etcd_client_certificate_of_another_ca_leaves_it_unready(platform, tmp_path):
    other = etcd_hosts.minion("paas-master", tmp_path, TOPOLOGY)
    other.modules.paas_pki.create_ca()
    cp1 = etcd_hosts.minion("cp1", tmp_path, TOPOLOGY)
    etcd_hosts.issue(cp1, other, "kube-apiserver-etcd-client")
    foreign = cp1.modules.paas_pki.profile("kube-apiserver-etcd-client")
    etcd = {**foreign, "ca": platform["etcd_client"]["ca"]}
    process = start_apiserver(platform, "cp1", etcd, 6444, "apiserver-other-ca.log")
    try:
        url = f"https://{CONTROL_PLANES['cp1']}:6444/readyz"
        ca = platform["kube"]["ca"]["cert"]
        response = wait_until(
            lambda: _get(url, verify=ca) is not None, "the apiserver answering", process
        ) and _get(url, verify=ca)
        assert response.status_code == 500
        assert "[-]etcd failed" in response.text
        assert requests.get(url.replace("readyz", "healthz"), verify=ca, timeout=5).status_code == (
            500
        )
        wait_until(
            lambda: "etcd does not answer" in process.output(), "the reason on stderr", process
        )
        assert "authentication handshake failed" in process.output()
    finally:
        process.stop()


def test_a_missing_etcd_client_certificate_stops_it(platform, tmp_path):
    etcd = {**platform["etcd_client"], "cert": str(tmp_path / "absent.crt")}
    process = start_apiserver(platform, "cp1", etcd, 6445, "apiserver-no-cert.log")
    assert process.process.wait(timeout=30) == 1
    assert "etcd client TLS configuration" in process.output()
    assert "absent.crt" in process.output() or "No such file" in process.output()


def test_it_reads_through_the_next_endpoint_while_one_member_is_down(apiserver, platform):
    core = client.CoreV1Api(api_client(apiserver, platform))
    first = platform["members"][0]
    first.stop()
    try:
        assert "kube-system" in {n.metadata.name for n in core.list_namespace().items}
    finally:
        first.restart()
    etcd_hosts.wait_for(
        lambda: _get(apiserver["url"] + "/readyz", verify=apiserver["ca"]).status_code == 200,
        "the apiserver ready again",
        platform["members"],
    )


# The kubelet double.


def test_kubelet_exits_until_its_config_file_exists(platform, tmp_path):
    process = Process(
        [sys.executable, str(KUBELET), f"--config={tmp_path / 'config.yaml'}"],
        platform["hosts"].namespaces["cp2"],
        tmp_path / "kubelet.log",
    )
    assert process.process.wait(timeout=30) == 1
    assert (
        f'"command failed" err="failed to load kubelet config file, path: {tmp_path}/config.yaml'
        in process.output()
    )
    assert "no such file or directory" in process.output()


def kubeconfig(server: str, ca: str, user: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(Path(ca).read_bytes()).decode(),
        }}],
        "contexts": [{"name": "ctx", "context": {"cluster": "kubernetes", "user": "u"}}],
        "current-context": "ctx",
        "users": [{"name": "u", "user": user}],
    }  # fmt: skip


class Containerd:
    """A listening socket where the kubelet looks for containerd."""

    def __init__(self, path: Path):
        self.path, self.socket = path, None

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.socket.bind(str(self.path))
        self.socket.listen(16)

    def stop(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        self.path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def kubelet(platform, apiserver):
    """cp2's kubelet double, as kubeadm join leaves it: config.yaml, the kube-apiserver and
    kube-scheduler manifests, a bootstrap kubeconfig with a bootstrap token for cp2's own
    apiserver (the VIP's stand-in), no kubelet.conf yet."""
    node_dir = platform["tmp"] / "cp2"
    manifests = node_dir / "manifests"
    manifests.mkdir(parents=True)
    containerd = Containerd(node_dir / "containerd.sock")
    containerd.start()
    platform["stack"].callback(containerd.stop)
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "staticPodPath": str(manifests),
        "containerRuntimeEndpoint": f"unix://{containerd.path}",
        # A lease of 4 s is renewed every second, a status computed every second: the
        # real kubelet's own fields (nodeLeaseDurationSeconds, nodeStatusUpdateFrequency).
        "nodeLeaseDurationSeconds": 4,
        "nodeStatusUpdateFrequency": "1s",
    }
    (node_dir / "config.yaml").write_text(yaml.safe_dump(config))
    command = apiserver_command(platform["kube"], platform["etcd_client"], CONTROL_PLANES["cp2"])
    apiserver_manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-apiserver", "namespace": "kube-system"},
        "spec": {"containers": [{"name": "kube-apiserver", "command": command}]},
    }
    (manifests / "kube-apiserver.yaml").write_text(yaml.safe_dump(apiserver_manifest))
    scheduler = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
        "spec": {"containers": [{"name": "kube-scheduler", "command": ["kube-scheduler"]}]},
    }
    (manifests / "kube-scheduler.yaml").write_text(yaml.safe_dump(scheduler))
    admin = client.CoreV1Api(api_client(apiserver, platform))
    admin.create_namespaced_secret(
        "kube-system",
        bootstrap_token_secret(
            "kubcp2", "0123456789abcdef", _rfc3339(datetime.timedelta(minutes=5))
        ),
    )
    server = f"https://{CONTROL_PLANES['cp2']}:6443"
    bootstrap = kubeconfig(server, apiserver["ca"], {"token": "kubcp2.0123456789abcdef"})
    (node_dir / "bootstrap-kubelet.conf").write_text(yaml.safe_dump(bootstrap))
    process = Process(
        [
            sys.executable, str(KUBELET),
            f"--bootstrap-kubeconfig={node_dir / 'bootstrap-kubelet.conf'}",
            f"--kubeconfig={node_dir / 'kubelet.conf'}",
            f"--config={node_dir / 'config.yaml'}",
            f"--cert-dir={node_dir / 'pki'}",
            "--hostname-override=cp2",
        ],
        platform["hosts"].namespaces["cp2"],
        platform["tmp"] / "kubelet.log",
    )  # fmt: skip
    platform["stack"].callback(process.stop)
    yield {
        "process": process,
        "dir": node_dir,
        "manifests": manifests,
        "containerd": containerd,
        "admin": admin,
        "leases": client.CoordinationV1Api(api_client(apiserver, platform)),
        "server": server,
    }
    process.stop()


def _node(kubelet, name: str = "cp2"):
    try:
        return kubelet["admin"].read_node(name)
    except ApiException:
        return None


def _ready(node) -> str | None:
    conditions = {c.type: c.status for c in (node.status.conditions or [])} if node else {}
    return conditions.get("Ready")


def test_kubelet_bootstraps_and_registers_its_node(kubelet, platform):
    node = wait_until(lambda: _node(kubelet), "cp2's Node registered", kubelet["process"])
    assert node.metadata.labels["kubernetes.io/hostname"] == "cp2"
    assert node.metadata.labels["kubernetes.io/os"] == "linux"
    assert node.status.node_info.kubelet_version == "v1.34.2"
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses["InternalIP"] == CONTROL_PLANES["cp2"]
    assert etcd_value(platform, "/registry/minions/cp2")["metadata"]["name"] == "cp2"
    wait_until(lambda: _ready(_node(kubelet)) == "True", "cp2 Ready", kubelet["process"])

    written = yaml.safe_load((kubelet["dir"] / "kubelet.conf").read_text())
    current = kubelet["dir"] / "pki/kubelet-client-current.pem"
    assert written["users"][0]["user"] == {
        "client-certificate": str(current),
        "client-key": str(current),
    }
    assert written["clusters"][0]["cluster"]["server"] == kubelet["server"]
    assert current.is_symlink() and current.stat().st_mode & 0o777 == 0o600
    certificate = x509.load_pem_x509_certificate(current.read_bytes())
    assert certificate.subject == _name("system:node:cp2", ("system:nodes",))
    assert "PRIVATE KEY" in current.read_text()


def test_kubelet_runs_the_apiserver_manifest_and_not_the_others(kubelet):
    url = kubelet["server"] + "/readyz"
    ca = kubelet["admin"].api_client.configuration.ssl_ca_cert
    wait_until(
        lambda: (r := _get(url, verify=ca)) is not None and r.status_code == 200,
        "cp2's apiserver ready", kubelet["process"],
    )  # fmt: skip
    output = kubelet["process"].output()
    assert "started kube-system/kube-apiserver-cp2" in output
    assert "kube-system/kube-scheduler-cp2 (kube-scheduler): not run" in output

    manifest = kubelet["manifests"] / "kube-apiserver.yaml"
    saved = manifest.read_text()
    manifest.unlink()
    wait_until(lambda: _get(url, verify=ca) is None, "cp2's apiserver stopped", kubelet["process"])
    manifest.write_text(saved)
    wait_until(
        lambda: (r := _get(url, verify=ca)) is not None and r.status_code == 200,
        "cp2's apiserver back", kubelet["process"],
    )  # fmt: skip


def _renew_time(kubelet):
    try:
        return kubelet["leases"].read_namespaced_lease("cp2", "kube-node-lease").spec.renew_time
    except ApiException:
        return None


def test_kubelet_renews_its_lease(kubelet, platform):
    wait_until(lambda: _node(kubelet), "cp2's Node registered", kubelet["process"])
    seen = [wait_until(lambda: _renew_time(kubelet), "cp2's Lease", kubelet["process"])]
    for _ in range(2):
        seen.append(
            wait_until(
                lambda: (t := _renew_time(kubelet)) != seen[-1] and t,
                "cp2's Lease renewed",
                kubelet["process"],
            )
        )
    assert seen == sorted(seen)
    lease = kubelet["leases"].read_namespaced_lease("cp2", "kube-node-lease")
    assert (lease.spec.holder_identity, lease.spec.lease_duration_seconds) == ("cp2", 4)
    assert lease.metadata.owner_references[0].name == "cp2"
    stored = etcd_value(platform, "/registry/leases/kube-node-lease/cp2")
    assert stored["spec"]["holderIdentity"] == "cp2"


def test_kubelet_is_ready_only_while_containerd_answers(kubelet):
    wait_until(lambda: _ready(_node(kubelet)) == "True", "cp2 Ready", kubelet["process"])
    kubelet["containerd"].stop()
    wait_until(lambda: _ready(_node(kubelet)) == "False", "cp2 NotReady", kubelet["process"])
    kubelet["containerd"].start()
    wait_until(lambda: _ready(_node(kubelet)) == "True", "cp2 Ready again", kubelet["process"])
    output = kubelet["process"].output()
    assert output.count("NotReady: container runtime is down") == 1


def test_kubelet_serves_healthz(kubelet, platform):
    result = subprocess.run(
        ["ip", "netns", "exec", platform["hosts"].namespaces["cp2"],
         "curl", "-s", "http://127.0.0.1:10248/healthz"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.stdout == "ok"


def test_kubelet_stops_its_static_pods_when_it_stops(kubelet):
    wait_until(lambda: _node(kubelet), "cp2's Node registered", kubelet["process"])
    kubelet["process"].process.send_signal(signal.SIGTERM)
    assert kubelet["process"].process.wait(timeout=20) == 0
    assert _get(kubelet["server"] + "/livez", verify=False) is None
    assert "stopped kube-system/kube-apiserver-cp2: the kubelet is stopping" in (
        kubelet["process"].output()
    )


# The approver's SubjectAccessReview and the kubelet's client certificate rotation.


def _csr_body(request: str) -> dict:
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"},
        "spec": {
            "request": request,
            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
            "usages": ["digital signature", "client auth"],
        },
    }


def test_a_node_gets_its_own_client_certificate_renewed_and_no_other_node_s(apiserver, platform):
    url, ca = apiserver["url"], apiserver["ca"]
    node = platform["kube"]["node-cp1"]
    as_cp1 = {"verify": ca, "cert": (node["cert"], node["key"]), "timeout": 5}
    csrs = f"{url}/apis/certificates.k8s.io/v1/certificatesigningrequests"

    own = requests.post(csrs, json=_csr_body(node_csr("cp1")[0]), **as_cp1)
    assert own.status_code == 201, own.text
    assert own.json()["spec"]["username"] == "system:node:cp1"
    condition = own.json()["status"]["conditions"][0]
    assert (condition["type"], condition["reason"], condition["message"]) == (
        "Approved",
        "AutoApproved",
        "Auto approving self kubelet client certificate after SubjectAccessReview.",
    )
    assert own.json()["status"]["certificate"]

    # Recognised as a node client certificate, but system:nodes may not create
    # certificatesigningrequests/nodeclient: left pending, as sarapprove.go leaves it.
    other = requests.post(csrs, json=_csr_body(node_csr("cp9")[0]), **as_cp1)
    assert other.status_code == 201, other.text
    assert other.json()["status"] == {}
    wrong_usages = _csr_body(node_csr("cp1")[0])
    wrong_usages["spec"]["usages"].append("server auth")
    refused = requests.post(csrs, json=wrong_usages, **as_cp1)
    assert refused.status_code == 201 and refused.json()["status"] == {}


def _node_client_pair(platform, node: str, lived: float, left: float) -> tuple[bytes, bytes]:
    """A kubelet client certificate of the cluster CA for ``node``, ``lived`` seconds old
    with ``left`` seconds to go, and its key."""
    ca = platform["kube"]["ca"]
    ca_cert = x509.load_pem_x509_certificate(Path(ca["cert"]).read_bytes())
    ca_key = serialization.load_pem_private_key(Path(ca["key"]).read_bytes(), password=None)
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(f"system:node:{node}", ("system:nodes",)))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(seconds=lived))
        .not_valid_after(now + datetime.timedelta(seconds=left))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture
def node_kubelet(platform, apiserver, tmp_path):
    """Start kubelet doubles in cp2's namespace against cp1's apiserver. Each has a
    kubeconfig and no bootstrap kubeconfig, so a client certificate is its only
    credential: ``stored`` (a pair file linked from ``kubelet-client-current.pem``, which
    the kubeconfig names, as kubeadm's kubelet-finalize leaves it) or ``embedded`` in the
    kubeconfig (kubeadm's kubelet.conf on the first control plane). No static pods, no
    healthz port. Every kubelet is stopped by its PID at the end, also on failure."""
    started: list[Process] = []

    def start(node: str, rotate: bool, *, stored: bytes = b"", embedded: tuple = ()) -> dict:
        directory = tmp_path / node
        cert_dir = directory / "pki"
        cert_dir.mkdir(parents=True)
        current = cert_dir / "kubelet-client-current.pem"
        if stored:
            pair = cert_dir / "kubelet-client-2020-01-01-00-00-00.pem"
            pair.write_bytes(stored)
            pair.chmod(0o600)
            current.symlink_to(pair)
            user = {"client-certificate": str(current), "client-key": str(current)}
        else:
            user = {
                "client-certificate-data": base64.b64encode(embedded[0]).decode(),
                "client-key-data": base64.b64encode(embedded[1]).decode(),
            }
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "rotateCertificates": rotate,
            "healthzPort": 0,
            "containerRuntimeEndpoint": f"unix://{directory / 'containerd.sock'}",
            "nodeLeaseDurationSeconds": 4,
            "nodeStatusUpdateFrequency": "1s",
        }
        (directory / "config.yaml").write_text(yaml.safe_dump(config))
        kubeconfig_path = directory / "kubelet.conf"
        kubeconfig_path.write_text(
            yaml.safe_dump(kubeconfig(apiserver["url"], apiserver["ca"], user))
        )
        process = Process(
            [
                sys.executable, str(KUBELET), f"--kubeconfig={kubeconfig_path}",
                f"--config={directory / 'config.yaml'}", f"--cert-dir={cert_dir}",
                f"--hostname-override={node}",
            ],
            platform["hosts"].namespaces["cp2"],
            directory / "kubelet.log",
        )  # fmt: skip
        started.append(process)
        return {"process": process, "cert_dir": cert_dir, "current": current}

    try:
        yield start
    finally:
        for process in started:
            process.stop()


def _lease_renew_time(apiserver, platform, node: str):
    leases = client.CoordinationV1Api(api_client(apiserver, platform))
    try:
        return leases.read_namespaced_lease(node, "kube-node-lease").spec.renew_time
    except ApiException:
        return None


def _lease_renewed_after(apiserver, platform, node: str, process: Process, after=None):
    """The Lease's renewTime once it is there (and later than ``after`` when given)."""

    def renewed():
        renew_time = _lease_renew_time(apiserver, platform, node)
        return renew_time if renew_time and (after is None or renew_time > after) else None

    return wait_until(renewed, f"{node}'s Lease renewed", process)


def _csrs_of(apiserver, platform, user: str) -> list:
    csrs = client.CertificatesV1Api(api_client(apiserver, platform))
    return [c for c in csrs.list_certificate_signing_request().items if c.spec.username == user]


def _pair_file(current: Path) -> tuple[x509.Certificate, bytes]:
    data = current.read_bytes()
    return x509.load_pem_x509_certificate(data), data


def test_kubelet_rotates_a_client_certificate_past_its_deadline_and_uses_the_new_one(
    node_kubelet, apiserver, platform
):
    # 95 % of its life gone (past any deadline the jitter draws, 70 to 90 %), 6 s left.
    cert_pem, key_pem = _node_client_pair(platform, "rot1", lived=120, left=6)
    old = x509.load_pem_x509_certificate(cert_pem)
    expires = time.monotonic() + 6
    kubelet = node_kubelet("rot1", rotate=True, stored=cert_pem + key_pem)
    current, process = kubelet["current"], kubelet["process"]
    first = current.resolve()

    wait_until(lambda: current.resolve() != first, "rot1's client certificate rotated", process)
    new, data = _pair_file(current)
    assert current.is_symlink() and current.resolve().parent == kubelet["cert_dir"]
    assert current.resolve().name.startswith("kubelet-client-20")
    assert current.resolve().stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in data
    ca = x509.load_pem_x509_certificate(Path(apiserver["ca"]).read_bytes())
    new.verify_directly_issued_by(ca)
    assert new.subject == _name("system:node:rot1", ("system:nodes",))
    assert new.serial_number != old.serial_number
    assert new.public_key() != old.public_key()
    # The signer's duration (a year, bounded by this test CA's one day), not the old one's.
    assert new.not_valid_after_utc == min(
        new.not_valid_before_utc + datetime.timedelta(days=365, minutes=5), ca.not_valid_after_utc
    )
    assert first.read_bytes() == cert_pem + key_pem, "the old pair file is kept as it was"

    (csr,) = _csrs_of(apiserver, platform, "system:node:rot1")
    assert csr.spec.signer_name == "kubernetes.io/kube-apiserver-client-kubelet"
    assert csr.spec.usages == ["digital signature", "client auth"]
    assert "system:nodes" in csr.spec.groups
    assert csr.status.conditions[0].message == (
        "Auto approving self kubelet client certificate after SubjectAccessReview."
    )
    assert (
        '"Certificate rotation detected, shutting down client connections to start using new '
        'credentials"'
    ) in process.output()

    # Once the old certificate has expired (the apiserver refuses it in the handshake),
    # the kubelet still renews its Lease: its connections present the new one.
    wait_until(lambda: time.monotonic() > expires + 1, "the old certificate expired", process)
    seen = _lease_renewed_after(apiserver, platform, "rot1", process)
    _lease_renewed_after(apiserver, platform, "rot1", process, after=seen)
    assert "does not answer" not in process.output()


def test_kubelet_keeps_its_client_certificate_when_rotation_is_off(
    node_kubelet, apiserver, platform
):
    cert_pem, key_pem = _node_client_pair(platform, "rot2", lived=150, left=60)
    kubelet = node_kubelet("rot2", rotate=False, stored=cert_pem + key_pem)
    current, process = kubelet["current"], kubelet["process"]
    first = current.resolve()
    seen = _lease_renewed_after(apiserver, platform, "rot2", process)
    for _ in range(2):
        seen = _lease_renewed_after(apiserver, platform, "rot2", process, after=seen)
    assert current.resolve() == first
    assert current.read_bytes() == cert_pem + key_pem
    assert sorted(p.name for p in kubelet["cert_dir"].iterdir()) == [
        "kubelet-client-2020-01-01-00-00-00.pem",
        "kubelet-client-current.pem",
    ]
    assert _csrs_of(apiserver, platform, "system:node:rot2") == []
    assert "Certificate rotation detected" not in process.output()


def test_kubelet_stores_the_certificate_its_kubeconfig_embeds_and_rotates_it_out_at_once(
    node_kubelet, apiserver, platform
):
    # kubeadm init's kubelet.conf: a certificate and key in the kubeconfig, a year to go.
    cert_pem, key_pem = _node_client_pair(platform, "rot3", lived=60, left=365 * 86400)
    kubelet = node_kubelet("rot3", rotate=True, embedded=(cert_pem, key_pem))
    current, process = kubelet["current"], kubelet["process"]
    wait_until(
        lambda: current.exists() and _pair_file(current)[1] != cert_pem + key_pem,
        "rot3's embedded certificate stored and rotated out",
        process,
    )
    new, _ = _pair_file(current)
    assert new.subject == _name("system:node:rot3", ("system:nodes",))
    assert new.public_key() != x509.load_pem_x509_certificate(cert_pem).public_key()
    (csr,) = _csrs_of(apiserver, platform, "system:node:rot3")
    assert csr.status.conditions[0].type == "Approved"
