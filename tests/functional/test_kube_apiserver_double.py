"""
The lab's kube-apiserver and kubelet doubles (lab/kube/) against a real etcd cluster (the
host's 3.4, three members, each in a network namespace of its own) with the PKI's
certificates: the apiserver stores through etcd's JSON gateway with the
``kube-apiserver-etcd-client`` certificate, under kube-apiserver's own key layout, and
answers the ``kubernetes`` client; with an etcd client certificate of another CA it is not
ready. The apiserver runs in cp1's namespace from the flags kubeadm's static pod manifest
gives it; the kubelet double runs in cp2's namespace, starts its apiserver from a static pod
manifest, joins by TLS bootstrap with a bootstrap token, registers its Node and renews its
Lease. Kubernetes' own certificates are made here as kubeadm makes them.
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
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.functional import etcd_hosts

REPO = Path(__file__).resolve().parents[2]
APISERVER = REPO / "lab/kube/kube_apiserver.py"
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


def with_client_auth(certificate_path: str, ca_dir: Path) -> None:
    """Re-issue the etcd server certificate at ``certificate_path`` from the same CA, key,
    subject and names, with clientAuth beside serverAuth. etcd's gRPC gateway (the JSON
    API the apiserver double uses) dials etcd itself presenting the server certificate as
    its client certificate, which etcd refuses without clientAuth (etcd-io/etcd#9785;
    kubeadm's own etcd server certificate has both usages for this, kubernetes#65020); the
    PKI's etcd-server profile has serverAuth only."""
    ca = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    old = x509.load_pem_x509_certificate(Path(certificate_path).read_bytes())
    builder = (
        x509.CertificateBuilder()
        .subject_name(old.subject)
        .issuer_name(ca.subject)
        .public_key(old.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(old.not_valid_before_utc)
        .not_valid_after(old.not_valid_after_utc)
    )
    for extension in old.extensions:
        if isinstance(extension.value, x509.ExtendedKeyUsage):
            continue
        builder = builder.add_extension(extension.value, extension.critical)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    Path(certificate_path).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


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
    for node in ETCD_NODES:
        with_client_auth(minions[node].modules.paas_pki.profile("etcd-server")["cert"], tmp / "ca")
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
