"""
The lab's kubelet: a test double, run by the ``kubelet`` package's systemd unit as the real
one is (``kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS
$KUBELET_EXTRA_ARGS``). It runs no containers: it runs the ``kube-apiserver`` static pod
as the lab's apiserver double (kube_apiserver.py beside this file) with the manifest's
flags, registers its Node, renews its Lease, reports Ready while containerd answers on its
socket and serves ``/healthz``, through the API server its kubeconfig names. It gets its
client certificate by TLS bootstrap and, with ``rotateCertificates: true``, rotates it as
client-go's certificate manager does.

    kubelet.py --config=/var/lib/kubelet/config.yaml --kubeconfig=/etc/kubernetes/kubelet.conf
        [--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf] [--node-ip=ADDRESS]
        [--hostname-override=NAME] [--cert-dir=/var/lib/kubelet/pki]
        [--container-runtime-endpoint=unix:///run/containerd/containerd.sock]
        [--node-labels=k=v,...] [--register-with-taints=k=v:Effect,...] [--v=N]
        [any other flag]

Needs python3 with python3-cryptography and python3-yaml. lab/kube/README.md names the
upstream source each behaviour copies.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

try:
    from lab.kube import kube_common
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kube_common  # type: ignore[no-redef]

KUBELET_VERSION = kube_common.KUBERNETES_VERSION
APISERVER = Path(__file__).resolve().parent / "kube_apiserver.py"
# KubeletConfiguration's defaults (pkg/kubelet/apis/config/v1beta1/defaults.go).
DEFAULTS = {
    "staticPodPath": "",
    "healthzPort": 10248,
    "healthzBindAddress": "127.0.0.1",
    "nodeLeaseDurationSeconds": 40,
    "nodeStatusUpdateFrequency": "10s",
    "nodeStatusReportFrequency": "5m",
    "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
}
# The lease is renewed at a quarter of its duration (pkg/kubelet/kubelet.go,
# nodeLeaseRenewIntervalFraction).
LEASE_RENEW_FRACTION = 0.25
# CrashLoopBackOff: 10 s doubling to 5 min (pkg/kubelet/kubelet.go).
BACKOFF_START, BACKOFF_MAX = 10.0, 300.0
API_TIMEOUT = 5.0
CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
# certificates.KubeAPIServerClientKubeletSignerName; also the certificate manager's name
# in its log lines.
SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
# certificate_manager.go: certificateWaitTimeout, and rotateCerts' retries: wait.Backoff
# {Duration: 2s, Factor: 2, Jitter: 0.1, Steps: 5}, then wait.PollInfinite(32s).
CERTIFICATE_WAIT_TIMEOUT = 15 * 60.0
BACKOFF_DURATION, BACKOFF_FACTOR, BACKOFF_JITTER, BACKOFF_STEPS = 2.0, 2.0, 0.1, 5
BACKOFF_POLL = 32.0


def log(level: str, message: str) -> None:
    """One klog line on stderr (journald keeps it for the unit)."""
    kube_common.klog(level, "kubelet.py", message)


def duration(text: str | int | float) -> float:
    """A Go duration (``10s``, ``1m30s``, ``500ms``) in seconds."""
    if isinstance(text, int | float):
        return float(text)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(amount) * units[unit] for amount, unit in parts)


def load_config(path: str) -> dict:
    """The KubeletConfiguration file; exit 1 as the real kubelet does when it is missing
    (cmd/kubelet/app/server.go, loadConfigFile), which systemd's restart loop repeats until
    kubeadm has written it."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        reason = f"open {path}: {error.strerror.lower()}" if error.strerror else str(error)
        raise SystemExit(
            f"failed to load kubelet config file, path: {path}, error: failed to load Kubelet "
            f'config file {path}, error failed to read kubelet config file "{path}", error: '
            f"{reason}"
        ) from error
    loaded = yaml.safe_load(text) or {}
    if not isinstance(loaded, dict) or loaded.get("kind") != "KubeletConfiguration":
        raise SystemExit(f"failed to load kubelet config file, path: {path}, error: not a "
                         "KubeletConfiguration")  # fmt: skip
    return {**DEFAULTS, **loaded}


# Kubeconfigs and the API.


class ApiUnreachable(Exception):
    """The API server did not answer."""


def _relative(path: str, kubeconfig_path: Path) -> str:
    return str(kubeconfig_path.parent / path) if not os.path.isabs(path) else path


class Api:
    """A client of the API server a kubeconfig names: its CA, and a client certificate or
    a bearer token. With ``pair``, the client certificate is that pair instead of the
    kubeconfig's credentials (client rotation: server.go's AnonymousClientConfig with the
    certificate manager's current pair, or none while it has none); ``use`` swaps it, and
    every request after uses the new one (each request is a new connection)."""

    def __init__(self, kubeconfig_path: Path, pair: Pair | None = None, *, rotated: bool = False):
        kubeconfig = yaml.safe_load(kubeconfig_path.read_text())
        cluster, user = kube_common.current_cluster_and_user(kubeconfig)
        self.server = urlsplit(cluster["server"])

        def path(name: str) -> Path:
            return Path(_relative(name, kubeconfig_path))

        self.ca_pem = kube_common.kubeconfig_pem(
            cluster, "certificate-authority-data", "certificate-authority", path
        )
        if rotated or pair is not None:
            self.token = None
            self.use(pair)
            return
        cert_pem = kube_common.kubeconfig_pem(
            user, "client-certificate-data", "client-certificate", path
        )
        self.context = kube_common.client_context(
            self.ca_pem,
            cert_pem,
            # The kubelet's own kubeconfig names one file holding both.
            kube_common.kubeconfig_pem(user, "client-key-data", "client-key", path) or cert_pem,
        )
        self.token = user.get("token")

    def use(self, pair: Pair | None) -> None:
        """Present ``pair`` from the next request on (nothing when None)."""
        self.context = kube_common.client_context(
            self.ca_pem, pair.cert_pem if pair else None, pair.key_pem if pair else None
        )

    @property
    def url(self) -> str:
        return self.server.geturl()

    def request(
        self, method: str, path: str, body=None, content_type: str = "application/json"
    ) -> tuple[int, dict]:
        connection = http.client.HTTPSConnection(
            self.server.hostname, self.server.port or 443, context=self.context,
            timeout=API_TIMEOUT,
        )  # fmt: skip
        headers = {"Accept": "application/json", "Content-Type": content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            connection.request(method, path, json.dumps(body) if body is not None else None,
                               headers)  # fmt: skip
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise ApiUnreachable(f"{self.url}: {error}") from error
        finally:
            connection.close()
        try:
            return response.status, json.loads(data) if data else {}
        except ValueError:
            return response.status, {"message": data[:200].decode(errors="replace")}


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by root only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as output:
        output.write(data)
    temporary.replace(path)


# The kubelet's client certificate: its CSR (k8s.io/client-go/util/certificate/csr), the
# file store (certificate_store.go), TLS bootstrap (pkg/kubelet/certificate/bootstrap)
# and rotation (certificate_manager.go, as pkg/kubelet/certificate/kubelet.go configures
# it and cmd/kubelet/app/server.go runs it).


class BootstrapFailed(Exception):
    """The CSR was refused, denied or failed."""


def _utc(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


class Pair:
    """A client certificate and its key, as PEM (tls.X509KeyPair with its Leaf)."""

    def __init__(self, cert_pem: bytes, key_pem: bytes):
        self.cert_pem, self.key_pem = cert_pem, key_pem
        self.leaf = x509.load_pem_x509_certificate(cert_pem)
        serialization.load_pem_private_key(key_pem, password=None)

    @property
    def not_before(self) -> datetime.datetime:
        leaf = self.leaf
        return getattr(leaf, "not_valid_before_utc", None) or _utc(leaf.not_valid_before)

    @property
    def not_after(self) -> datetime.datetime:
        leaf = self.leaf
        return getattr(leaf, "not_valid_after_utc", None) or _utc(leaf.not_valid_after)

    def valid(self) -> bool:
        return datetime.datetime.now(datetime.UTC) < self.not_after


PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----\n?", re.S)


def _split_pem(data: bytes) -> tuple[bytes, bytes]:
    """The certificates and the private key of PEM data holding both (a store's pair file,
    or a certificate file and a key file read one after the other)."""
    blocks = list(PEM_BLOCK.finditer(data))
    certs = b"".join(m.group(0) for m in blocks if m.group(1) == b"CERTIFICATE")
    keys = [m.group(0) for m in blocks if m.group(1).endswith(b"PRIVATE KEY")]
    if not certs or not keys:
        raise ValueError("no certificate and private key in the file")
    return certs, keys[0]


class FileStore:
    """certificate_store.go's fileStore for ``kubelet-client`` (pkg/kubelet/certificate:
    NewFileStore("kubelet-client", certDir, certDir, certFile, keyFile)): the current pair
    is ``<dir>/kubelet-client-current.pem`` (certificate and key in one file), else the
    kubeconfig's ``certFile``/``keyFile``, else ``<dir>/kubelet-client.crt``/``.key``; an
    update writes ``kubelet-client-<time>.pem`` (0600) and moves the ``current`` symlink
    to it through ``kubelet-client-updated.pem``."""

    PREFIX = "kubelet-client"

    def __init__(self, directory: Path, cert_file: str = "", key_file: str = ""):
        self.directory, self.cert_file, self.key_file = directory, cert_file, key_file
        self.recover()

    @property
    def current_path(self) -> Path:
        return self.directory / f"{self.PREFIX}-current.pem"

    @property
    def updated_path(self) -> Path:
        return self.directory / f"{self.PREFIX}-updated.pem"

    def recover(self) -> None:
        """An update cut short: the 'updated' link becomes 'current'."""
        if not self.current_path.exists() and self.updated_path.is_symlink():
            self.updated_path.replace(self.current_path)

    def current(self) -> Pair | None:
        """The current pair, or None (NoCertKeyError) when no file holds one; a file that
        does not hold a pair is an error, as loading it is for the real store."""
        if self.current_path.exists():
            log("I", f'Loading cert/key pair from "{self.current_path}".')
            return Pair(*_split_pem(self.current_path.read_bytes()))
        fallback = self.directory / self.PREFIX
        for cert_file, key_file in (
            (self.cert_file, self.key_file),
            (f"{fallback}.crt", f"{fallback}.key"),
        ):
            if cert_file and key_file and Path(cert_file).exists() and Path(key_file).exists():
                log("I", f'Loading cert/key pair from ("{cert_file}", "{key_file}").')
                return Pair(*_split_pem(Path(cert_file).read_bytes() + Path(key_file).read_bytes()))
        return None

    def update(self, cert_pem: bytes, key_pem: bytes) -> Pair:
        """Write the pair to ``kubelet-client-<time>.pem`` and point 'current' at it."""
        pair = Pair(cert_pem, key_pem)
        stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
        path = (self.directory / f"{self.PREFIX}-{stamp}.pem").absolute()
        write_private(path, cert_pem.rstrip(b"\n") + b"\n" + key_pem)
        if self.current_path.exists() and not self.current_path.is_symlink():
            raise OSError(f'expected "{self.current_path}" to be a symlink but it is a file')
        self.updated_path.unlink(missing_ok=True)
        self.updated_path.symlink_to(path)
        self.updated_path.replace(self.current_path)
        return pair


def client_usages(key) -> list[str]:
    """certificate.DefaultKubeletClientGetUsages: key encipherment for an RSA key only."""
    if isinstance(key, rsa.RSAPrivateKey):
        return ["digital signature", "key encipherment", "client auth"]
    return ["digital signature", "client auth"]


def submit_client_csr(api: Api, node: str) -> tuple[dict, bytes]:
    """A new ECDSA P-256 key (the certificate manager's generateCSR, and bootstrap's) and
    its CSR for ``CN=system:node:<node>, O=system:nodes`` sent to the kubelet client
    signer (csr.RequestCertificate); the created CSR and the key's PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}"),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    status, created = api.request(
        "POST", CSR_PATH,
        {
            "apiVersion": "certificates.k8s.io/v1",
            "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {
                "request": base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode(),
                "signerName": SIGNER,
                "usages": client_usages(key),
            },
        },
    )  # fmt: skip
    if status != 201:
        raise BootstrapFailed(f"creating the CSR: {status} {created.get('message')}")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return created, key_pem


def issued_certificate(csr: dict) -> bytes | None:
    """csr.WaitForCertificate's check: the certificate once issued, None while pending,
    BootstrapFailed when the CSR was denied or failed."""
    status = csr.get("status") or {}
    refused = [c for c in status.get("conditions") or [] if c.get("type") in ("Denied", "Failed")]
    if refused:
        name = csr.get("metadata", {}).get("name")
        raise BootstrapFailed(f"CSR {name} {refused[0]['type']}: {refused[0].get('message')}")
    certificate = status.get("certificate")
    return base64.b64decode(certificate) if certificate else None


def tls_bootstrap(bootstrap_path: Path, kubeconfig_path: Path, cert_dir: Path, node: str) -> None:
    """The kubelet's TLS bootstrap (pkg/kubelet/certificate/bootstrap/bootstrap.go): a key
    and a CSR for ``system:node:<node>`` in ``system:nodes``, sent with the bootstrap
    kubeconfig's token, the signed certificate and its key in
    ``<cert-dir>/kubelet-client-<time>.pem`` linked from ``kubelet-client-current.pem``,
    and a kubeconfig at ``kubeconfig_path`` that uses it. A valid current pair is reused."""
    store = FileStore(cert_dir)
    bootstrap = yaml.safe_load(bootstrap_path.read_text())
    cluster, _ = kube_common.current_cluster_and_user(bootstrap)
    try:
        current = store.current()
    except (OSError, ValueError):
        current = None
    if current is None or not current.valid():
        api = Api(bootstrap_path)
        created, key_pem = submit_client_csr(api, node)
        name = created["metadata"]["name"]
        deadline = time.monotonic() + 60
        while (certificate := issued_certificate(created)) is None:
            if time.monotonic() > deadline:
                raise BootstrapFailed(f"CSR {name} not signed within 60 s")
            time.sleep(1)
            _, created = api.request("GET", f"{CSR_PATH}/{name}")
        store.update(certificate, key_pem)
        log("I", f"TLS bootstrap: client certificate from CSR {name} in "
                 f"{os.readlink(store.current_path)}")  # fmt: skip
    ca = {
        key: cluster[key]
        for key in ("certificate-authority-data", "certificate-authority")
        if cluster.get(key)
    }
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": {"server": cluster["server"], **ca}}],
        "contexts": [
            {
                "name": "default-context",
                "context": {
                    "cluster": "default-cluster",
                    "namespace": "default",
                    "user": "default-auth",
                },
            }
        ],
        "current-context": "default-context",
        "preferences": {},
        "users": [
            {
                "name": "default-auth",
                "user": {
                    "client-certificate": str(store.current_path),
                    "client-key": str(store.current_path),
                },
            }
        ],
    }
    write_private(kubeconfig_path, yaml.safe_dump(kubeconfig, sort_keys=False).encode())


class ClientCertificateManager:
    """The certificate manager of the kubelet's client certificate
    (k8s.io/client-go/util/certificate/certificate_manager.go, configured as
    pkg/kubelet/certificate/kubelet.go NewKubeletClientCertificateManager does), run when
    the KubeletConfiguration says ``rotateCertificates: true``
    (cmd/kubelet/app/server.go, buildKubeletClientConfig).

    It starts from the store's current pair; when there is none, or it has expired, from
    the certificate embedded in the kubeconfig (kubeadm's kubelet.conf on the first
    control plane), which it writes to the store and rotates out at once. The rotation
    deadline is the certificate's NotBefore plus 70 to 90 % (jittered) of its life; the
    CSR is sent with the current certificate (the bootstrap kubeconfig only when there is
    no valid one); after a failure it tries again after 2, 4, 8 and 16 s (10 % jitter),
    then every 32 s. ``tick`` is called from the kubelet's loop: it does at most one API
    request, so it never holds the loop for longer than a request's timeout; a CSR not
    signed at once is looked at again on the next tick, for up to 15 minutes."""

    def __init__(self, node: str, kubeconfig_path: Path, bootstrap_path: Path | None,
                 cert_dir: Path, verbosity: int):  # fmt: skip
        self.node, self.kubeconfig_path, self.bootstrap_path = node, kubeconfig_path, bootstrap_path
        self.verbosity = verbosity
        kubeconfig = yaml.safe_load(kubeconfig_path.read_text())
        _, user = kube_common.current_cluster_and_user(kubeconfig)

        def path(name: str) -> str:
            return _relative(name, kubeconfig_path) if name else ""

        self.store = FileStore(
            cert_dir, path(user.get("client-certificate", "")), path(user.get("client-key", ""))
        )
        self.on_rotate: list = []
        self.current: Pair | None = None
        self.force = True
        try:
            current = self.store.current()
        except (OSError, ValueError) as error:
            log("E", f'"Unable to load the current client certificate" err="{error}"')
            current = None
        if current is not None and current.valid():
            self.current, self.force = current, False
        elif user.get("client-certificate-data") and user.get("client-key-data"):
            # getCurrentCertificateOrBootstrap: the kubeconfig's own pair, rotated at once.
            seed = Pair(
                base64.b64decode(user["client-certificate-data"]),
                base64.b64decode(user["client-key-data"]),
            )
            try:
                self.store.update(seed.cert_pem, seed.key_pem)
            except OSError as error:
                self.error("Unable to set the cert/key pair to the bootstrap certificate", error)
            self.current = seed
        self.deadline: datetime.datetime | None = None
        self.pending: dict | None = None
        self.failures = 0
        self.retry_at = 0.0

    def info(self, message: str, **values) -> None:
        """One of the manager's structured lines, logged at V(2) (``--v=2`` or more)."""
        if self.verbosity >= 2:
            pairs = "".join(f' {key}="{value}"' for key, value in values.items())
            log("I", f'"{message}"{pairs} logger="{SIGNER}"')

    def error(self, message: str, error) -> None:
        log("E", f'"{message}" err="{error}" logger="{SIGNER}"')

    def tick(self) -> None:
        """One step: look at a pending CSR, or rotate when the deadline has passed and no
        retry is waiting."""
        if self.pending is not None:
            self.wait_for_certificate()
            return
        if time.monotonic() < self.retry_at:
            return
        if self.deadline is None:
            self.deadline = self.next_rotation_deadline()
        if datetime.datetime.now(datetime.UTC) >= self.deadline:
            self.rotate()

    def satisfies_template(self) -> bool:
        """certSatisfiesTemplate: the template's common name and organization."""
        if self.current is None:
            return False
        subject = self.current.leaf.subject
        names = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        organizations = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        return names == [f"system:node:{self.node}"] and "system:nodes" in organizations

    def next_rotation_deadline(self) -> datetime.datetime:
        """nextRotationDeadline: now when forced or the certificate does not satisfy the
        template, else NotBefore + jitteryDuration(total): wait.Jitter(total, 0.2) - 0.3
        total, 70 to 90 % of the certificate's life."""
        now = datetime.datetime.now(datetime.UTC)
        if self.force:
            self.force = False
            return now
        if not self.satisfies_template():
            return now
        total = (self.current.not_after - self.current.not_before).total_seconds()
        deadline = self.current.not_before + datetime.timedelta(
            seconds=total + random.random() * 0.2 * total - 0.3 * total
        )
        self.info("Certificate rotation deadline determined", expiration=self.current.not_after,
                  deadline=deadline)  # fmt: skip
        return deadline

    def csr_client(self) -> Api:
        """The manager's ClientsetFn: the current certificate while it is valid, else the
        bootstrap kubeconfig (its token), else the kubeconfig's own credentials."""
        if self.current is not None and self.current.valid():
            return Api(self.kubeconfig_path, self.current)
        if self.bootstrap_path is not None and self.bootstrap_path.exists():
            return Api(self.bootstrap_path)
        return Api(self.kubeconfig_path)

    def rotate(self) -> None:
        """rotateCerts' first half: a new key and CSR sent; the certificate, when signed
        at once, is taken in the same step."""
        self.info("Rotating certificates")
        try:
            api = self.csr_client()
        except (OSError, ValueError, KeyError, TypeError) as error:
            self.failed("Unable to load a client to request certificates", error)
            return
        try:
            created, key_pem = submit_client_csr(api, self.node)
        except (ApiUnreachable, BootstrapFailed) as error:
            self.failed("Failed while requesting a signed certificate from the control plane",
                        error)  # fmt: skip
            return
        self.pending = {"api": api, "csr": created, "key_pem": key_pem,
                        "until": time.monotonic() + CERTIFICATE_WAIT_TIMEOUT}  # fmt: skip
        self.wait_for_certificate()

    def wait_for_certificate(self) -> None:
        """rotateCerts' second half (csr.WaitForCertificate): the issued certificate
        stored and made current; a denied or failed CSR, or none within 15 minutes, is a
        failure."""
        pending = self.pending
        name = pending["csr"].get("metadata", {}).get("name")
        try:
            certificate = issued_certificate(pending["csr"])
            if certificate is None:
                if time.monotonic() > pending["until"]:
                    raise BootstrapFailed(f"CSR {name}: timed out waiting for the condition")
                try:
                    status, csr = pending["api"].request("GET", f"{CSR_PATH}/{name}")
                except ApiUnreachable:
                    return
                if status == 200:
                    pending["csr"] = csr
                    certificate = issued_certificate(csr)
                if certificate is None:
                    return
        except BootstrapFailed as error:
            self.pending = None
            self.failed("Certificate request was not signed", error)
            return
        self.pending = None
        try:
            pair = self.store.update(certificate, pending["key_pem"])
        except (OSError, ValueError) as error:
            self.failed("Unable to store the new cert/key pair", error)
            return
        self.current, self.deadline, self.failures, self.retry_at = pair, None, 0, 0.0
        for callback in self.on_rotate:
            callback(pair)
        # pkg/kubelet/certificate/transport.go, when the manager's current pair changes.
        log("I", '"Certificate rotation detected, shutting down client connections to start '
                 'using new credentials"')  # fmt: skip
        log("I", f"client certificate rotated: CSR {name}, {os.readlink(self.store.current_path)}"
                 f" valid until {pair.not_after:%Y-%m-%d %H:%M:%S} UTC")  # fmt: skip

    def failed(self, message: str, error) -> None:
        """wait.ExponentialBackoff{2s, x2, jitter 0.1, 5 steps}, then PollInfinite(32s)."""
        self.error(message, error)
        self.failures += 1
        if self.failures < BACKOFF_STEPS:
            delay = BACKOFF_DURATION * BACKOFF_FACTOR ** (self.failures - 1)
            delay += random.random() * BACKOFF_JITTER * delay
        else:
            if self.failures == BACKOFF_STEPS:
                self.error("Reached backoff limit, still unable to rotate certs", error)
            delay = BACKOFF_POLL
        self.retry_at = time.monotonic() + delay


# Static pods.


class StaticPods:
    """The manifests in staticPodPath: the ``kube-apiserver`` one runs as the apiserver
    double with its command and args, restarted when it exits (with CrashLoopBackOff's
    delays) or its manifest changes, stopped when its manifest goes; the others are
    recorded as not run."""

    def __init__(self, directory: str, node: str):
        self.directory = Path(directory) if directory else None
        self.node = node
        self.pods: dict[Path, dict] = {}
        self.reported: dict[Path, str] = {}

    def sync(self) -> None:
        manifests = {}
        if self.directory and self.directory.is_dir():
            manifests = {
                path: path.read_bytes()
                for path in sorted(self.directory.iterdir())
                if path.is_file() and not path.name.startswith(".")
            }
        for path in list(self.pods):
            pod = self.pods[path]
            if manifests.get(path) != pod["manifest"]:
                self.stop(
                    path, "its manifest changed" if path in manifests else "its manifest went"
                )
        for path, manifest in manifests.items():
            pod = self.pods.get(path)
            if pod is None:
                command = self.command(path, manifest)
                if command is not None:
                    self.pods[path] = {"manifest": manifest, "command": command, "process": None,
                                       "backoff": 0.0, "next_start": 0.0}  # fmt: skip
                    self.start(path)
            elif pod["process"] is not None and pod["process"].poll() is not None:
                code = pod["process"].returncode
                pod["backoff"] = min(max(pod["backoff"] * 2, BACKOFF_START), BACKOFF_MAX)
                pod["next_start"] = time.monotonic() + pod["backoff"]
                pod["process"] = None
                log("E", f"{self.pod_name(path)} exited with code {code}; back-off "
                         f"{pod['backoff']:.0f}s restarting it")  # fmt: skip
            elif pod["process"] is None and time.monotonic() >= pod["next_start"]:
                self.start(path)
        for path in set(self.reported) - set(manifests):
            del self.reported[path]

    def command(self, path: Path, manifest: bytes) -> list[str] | None:
        """The apiserver double's argv for a kube-apiserver manifest, else None."""
        try:
            pod = yaml.safe_load(manifest) or {}
            container = pod["spec"]["containers"][0]
            argv = [*(container.get("command") or []), *(container.get("args") or [])]
        except (yaml.YAMLError, KeyError, IndexError, TypeError) as error:
            self.report(path, f"static pod manifest {path} cannot be read: {error}")
            return None
        if argv and os.path.basename(argv[0]) == "kube-apiserver":
            return [sys.executable, str(APISERVER), *argv[1:]]
        self.report(
            path,
            f"static pod {self.pod_name(path)} ({argv[0] if argv else 'no command'}): not run "
            "by the lab's kubelet double",
        )
        return None

    def report(self, path: Path, message: str) -> None:
        if self.reported.get(path) != message:
            self.reported[path] = message
            log("W", message)

    def pod_name(self, path: Path) -> str:
        return f"kube-system/{path.stem}-{self.node}"

    def start(self, path: Path) -> None:
        pod = self.pods[path]
        pod["process"] = subprocess.Popen(pod["command"], stdin=subprocess.DEVNULL)
        log("I", f"started {self.pod_name(path)} (pid {pod['process'].pid})")

    def stop(self, path: Path, why: str) -> None:
        process = self.pods.pop(path)["process"]
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log("I", f"stopped {self.pod_name(path)}: {why}")

    def stop_all(self) -> None:
        for path in list(self.pods):
            self.stop(path, "the kubelet is stopping")


# The node.


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def default_route_address() -> str:
    """The address this machine speaks from on its default route (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            return probe.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def runtime_answers(endpoint: str) -> bool:
    path = endpoint.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


def containerd_version() -> str:
    if shutil.which("containerd") is None:
        return "containerd://unknown"
    result = subprocess.run(["containerd", "--version"], capture_output=True, text=True,
                            check=False)  # fmt: skip
    fields = result.stdout.split()
    return f"containerd://{fields[2] if len(fields) > 2 else 'unknown'}"


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def memory_kib() -> str:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return f"{line.split()[1]}Ki"
    return "0Ki"


def parse_taints(text: str) -> list[dict]:
    taints = []
    for entry in filter(None, text.split(",")):
        key_value, _, effect = entry.partition(":")
        key, _, value = key_value.partition("=")
        taint = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        taints.append(taint)
    return taints


class Node:
    """The Node, its Lease and its status, as the kubelet keeps them
    (pkg/kubelet/kubelet_node_status.go, pkg/kubelet/nodelease)."""

    def __init__(self, flags: dict[str, str], config: dict):
        self.name = (flags.get("hostname-override") or socket.gethostname()).lower()
        self.address = flags.get("node-ip") or default_route_address()
        self.runtime = flags.get("container-runtime-endpoint") or config["containerRuntimeEndpoint"]
        self.lease_seconds = int(config["nodeLeaseDurationSeconds"])
        self.status_every = duration(config["nodeStatusUpdateFrequency"])
        self.report_every = duration(config["nodeStatusReportFrequency"])
        self.labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
        }
        for pair in filter(None, flags.get("node-labels", "").split(",")):
            key, _, value = pair.partition("=")
            self.labels[key] = value
        self.taints = parse_taints(flags.get("register-with-taints", ""))
        self.uid: str | None = None
        self.lease: dict | None = None
        self.ready: bool | None = None
        self.started = self.ready_since = kube_common.now_rfc3339()
        self.reported_at = 0.0
        self.runtime_version = containerd_version()

    def status(self, ready: bool) -> dict:
        now = kube_common.now_rfc3339()
        capacity = {"cpu": str(os.cpu_count() or 1), "memory": memory_kib(), "pods": "110",
                    "ephemeral-storage": "0"}  # fmt: skip
        pressure = [
            {
                "type": kind,
                "status": "False",
                "reason": f"KubeletHas{reason}",
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self.started,
            }
            for kind, reason, message in (
                ("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory available"),
                ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"),
            )
        ]
        ready_condition = {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": "kubelet is posting ready status" if ready else "container runtime is down",
            "lastHeartbeatTime": now,
            "lastTransitionTime": self.ready_since,
        }
        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [*pressure, ready_condition],
            "addresses": [
                {"type": "InternalIP", "address": self.address},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": _read("/etc/machine-id"),
                "systemUUID": _read("/sys/class/dmi/id/product_uuid"),
                "bootID": _read("/proc/sys/kernel/random/boot_id"),
                "kernelVersion": platform.release(),
                "osImage": os_image(),
                "containerRuntimeVersion": self.runtime_version,
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def register(self, api: Api) -> bool:
        """POST the Node; an existing one is taken as ours (kubelet_node_status.go,
        registerWithAPIServer)."""
        ready = runtime_answers(self.runtime)
        self.observe(ready)
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": self.labels,
                "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
            },
            "spec": {"taints": self.taints} if self.taints else {},
            "status": self.status(ready),
        }
        code, reply = api.request("POST", "/api/v1/nodes", body)
        if code == 409:
            code, reply = api.request("GET", f"/api/v1/nodes/{self.name}")
        if code not in (200, 201):
            log("E", f"Unable to register node {self.name} with API server {api.url}: "
                     f"{code} {reply.get('message')}")  # fmt: skip
            return False
        self.uid = reply["metadata"]["uid"]
        self.reported_at = time.monotonic()
        log("I", f"Successfully registered node {self.name} ({self.address}) with {api.url}")
        return True

    def observe(self, ready: bool) -> bool:
        """Record the Ready state; True when it changed."""
        if ready == self.ready:
            return False
        if self.ready is not None:
            log("I", f"Node {self.name} {'Ready' if ready else 'NotReady'}: container runtime "
                     f"{'answers' if ready else 'is down'} on {self.runtime}")  # fmt: skip
        self.ready, self.ready_since = ready, kube_common.now_rfc3339()
        return True

    def update_status(self, api: Api) -> None:
        """PATCH the status when Ready changed or nodeStatusReportFrequency passed."""
        ready = runtime_answers(self.runtime)
        changed = self.observe(ready)
        if not changed and time.monotonic() - self.reported_at < self.report_every:
            return
        code, reply = api.request(
            "PATCH", f"/api/v1/nodes/{self.name}/status", {"status": self.status(ready)},
            "application/strategic-merge-patch+json",
        )  # fmt: skip
        if code != 200:
            log("E", f"Error updating node status: {code} {reply.get('message')}")
            return
        self.reported_at = time.monotonic()

    def renew_lease(self, api: Api) -> None:
        """Renew kube-node-lease/<node> (pkg/kubelet/nodelease, controller.go): create it
        when missing, else update the last one read; on a conflict read it again."""
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.name}"
        for _ in range(2):
            if self.lease is None:
                code, reply = api.request("GET", path)
                if code == 404:
                    code, reply = api.request(
                        "POST", path.rsplit("/", 1)[0], self.lease_body({"name": self.name})
                    )
                if code not in (200, 201):
                    log("E", f"failed to ensure lease {self.name}: {code} {reply.get('message')}")
                    return
                self.lease = reply
                if code == 201:
                    return
            code, reply = api.request("PUT", path, self.lease_body(self.lease["metadata"]))
            if code == 200:
                self.lease = reply
                return
            self.lease = None
            if code != 409:
                log("E", f"failed to update lease {self.name}: {code} {reply.get('message')}")
                return

    def lease_body(self, metadata: dict) -> dict:
        metadata = {**metadata, "name": self.name, "namespace": "kube-node-lease"}
        if self.uid:
            metadata["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.name, "uid": self.uid}
            ]
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.name,
                "leaseDurationSeconds": self.lease_seconds,
                "renewTime": kube_common.now_rfc3339(micro=True),
            },
        }


class Healthz(BaseHTTPRequestHandler):
    def do_GET(self):
        found = self.path.split("?")[0] == "/healthz"
        data = b"ok" if found else b"404 page not found\n"
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Kubelet:
    def __init__(self, flags: dict[str, str]):
        self.flags = flags
        self.config = load_config(flags.get("config", "/var/lib/kubelet/config.yaml"))
        self.node = Node(flags, self.config)
        self.pods = StaticPods(self.config["staticPodPath"], self.node.name)
        self.stopping = threading.Event()
        self.api_error: str | None = None
        self.certificates: ClientCertificateManager | None = None

    def run(self) -> None:
        """Serve /healthz, run the static pods and keep the Node until stopped, then stop
        the static pods (in the lab they live in the kubelet's unit; the real kubelet
        leaves containers running)."""
        port = int(self.config["healthzPort"])
        if port:
            server = ThreadingHTTPServer((self.config["healthzBindAddress"], port), Healthz)
            threading.Thread(target=server.serve_forever, daemon=True).start()
        pods = threading.Thread(target=self.run_pods)
        pods.start()
        try:
            self.keep_node()
        finally:
            self.stopping.set()
            pods.join()
            self.pods.stop_all()

    def keep_node(self) -> None:
        api = self.client()
        if api is None:
            log("I", "No API server defined - no node status update will be sent")
            self.stopping.wait()
            return
        registered = False
        renew_every = self.node.lease_seconds * LEASE_RENEW_FRACTION
        next_lease = next_status = 0.0
        while not self.stopping.is_set():
            if self.certificates is not None:
                self.certificates.tick()
            now = time.monotonic()
            try:
                if not registered:
                    registered = self.node.register(api)
                if registered and now >= next_lease:
                    self.node.renew_lease(api)
                    next_lease = now + renew_every
                if registered and now >= next_status:
                    self.node.update_status(api)
                    next_status = now + self.node.status_every
                self.reachable(api, None)
            except ApiUnreachable as error:
                self.reachable(api, str(error))
            wake = min(next_lease, next_status) if registered else now + 1
            self.stopping.wait(max(0.1, min(wake - time.monotonic(), 1.0)))

    def reachable(self, api: Api, error: str | None) -> None:
        if (error is None) != (self.api_error is None):
            if error:
                log("E", f"API server {api.url} does not answer, retrying: {error}")
            else:
                log("I", f"API server {api.url} answers")
        self.api_error = error

    def client(self) -> Api | None:
        """The API client of --kubeconfig, after TLS bootstrap through
        --bootstrap-kubeconfig when the kubeconfig does not exist yet."""
        kubeconfig = Path(self.flags.get("kubeconfig", ""))
        bootstrap = Path(self.flags.get("bootstrap-kubeconfig", ""))
        cert_dir = Path(self.flags.get("cert-dir", "/var/lib/kubelet/pki"))
        if not self.flags.get("kubeconfig"):
            return None
        if not kubeconfig.exists() and self.flags.get("bootstrap-kubeconfig"):
            if not bootstrap.exists():
                return None
            failure = None
            while not self.stopping.is_set():
                try:
                    tls_bootstrap(bootstrap, kubeconfig, cert_dir, self.node.name)
                    break
                except (ApiUnreachable, BootstrapFailed) as error:
                    if str(error) != failure:
                        log("E", f"TLS bootstrap through {bootstrap} failed, retrying: {error}")
                    failure = str(error)
                    self.stopping.wait(2)
        if not kubeconfig.exists():
            return None
        if not self.config.get("rotateCertificates"):
            return Api(kubeconfig)
        # server.go buildKubeletClientConfig with client rotation: the API client presents
        # the certificate manager's current pair, whatever the kubeconfig names.
        log("I", '"Client rotation is on, will bootstrap in background"')
        self.certificates = ClientCertificateManager(
            self.node.name,
            kubeconfig,
            bootstrap if self.flags.get("bootstrap-kubeconfig") else None,
            cert_dir,
            int(self.flags.get("v", "0") or 0),
        )
        api = Api(kubeconfig, self.certificates.current, rotated=True)
        self.certificates.on_rotate.append(api.use)
        return api

    def run_pods(self) -> None:
        while not self.stopping.is_set():
            self.pods.sync()
            self.stopping.wait(1)

    def stop(self, *_) -> None:
        self.stopping.set()


def main(argv: list[str]) -> None:
    flags = kube_common.parse_flags(argv)
    kubelet = Kubelet(flags)
    signal.signal(signal.SIGTERM, kubelet.stop)
    signal.signal(signal.SIGINT, kubelet.stop)
    log("I", f"kubelet double {KUBELET_VERSION} for node {kubelet.node.name}")
    kubelet.run()


if __name__ == "__main__":
    kube_common.run(main, "kubelet.py", name="kubelet")
