"""
The lab's kube-apiserver: a test double, run by the lab's kubelet double from the static
pod manifest kubeadm wrote, with that manifest's flags. It serves the small part of the
Kubernetes API the platform uses, over HTTPS with kubeadm's certificates, and keeps every
object in the platform's real etcd under kube-apiserver's own key layout, through etcd's
JSON gateway (``/v3/kv/*``) with the ``--etcd-*`` certificates: a wrong etcd client
certificate leaves it unready, as it leaves the real one.

    kube_apiserver.py --etcd-servers=https://a:2379,... --etcd-cafile=F --etcd-certfile=F
        --etcd-keyfile=F --client-ca-file=F --tls-cert-file=F --tls-private-key-file=F
        [--secure-port=6443] [--bind-address=0.0.0.0] [--etcd-prefix=/registry]
        [--enable-bootstrap-token-auth=true] [--anonymous-auth=true] [any other flag]

Needs python3 with python3-cryptography; standard library otherwise. lab/kube/README.md
names the upstream source each behaviour copies.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hmac
import http.client
import json
import os
import re
import secrets
import socket
import ssl
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VERSION = {
    "major": "1",
    "minor": "34",
    "emulationMajor": "1",
    "emulationMinor": "34",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "33",
    "gitVersion": "v1.34.2",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-11-11T00:00:00Z",
    "goVersion": "go1.24.9",
    "compiler": "gc",
    "platform": "linux/amd64",
}
# The namespaces kube-apiserver's system namespaces controller keeps
# (pkg/controlplane/controller/systemnamespaces/system_namespaces_controller.go).
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
UNDELETABLE_NAMESPACES = ("default", "kube-system", "kube-public")
# --cluster-signing-duration's default (cmd/kube-controller-manager/app/options).
SIGNING_DURATION = datetime.timedelta(days=365)
ETCD_TIMEOUT = 2.0
HEALTH_CACHE_SECONDS = 1.0
BOOTSTRAP_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# apimachinery's names generator (staging/src/k8s.io/apiserver/pkg/storage/names).
GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def log(level: str, message: str) -> None:
    """One klog-style line on stderr (journald keeps it for the kubelet's unit)."""
    now = datetime.datetime.now()
    stamp = now.strftime("%m%d %H:%M:%S.%f")
    sys.stderr.write(f"{level}{stamp} {os.getpid():>7} kube_apiserver.py] {message}\n")
    sys.stderr.flush()


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_flags(argv: list[str]) -> dict[str, str]:
    """pflag's forms: ``--name=value``, ``--name value`` and a bare boolean ``--name``."""
    flags: dict[str, str] = {}
    index = 0
    while index < len(argv):
        argument = argv[index]
        index += 1
        if not argument.startswith("-"):
            continue
        name = argument.lstrip("-")
        if "=" in name:
            name, value = name.split("=", 1)
        elif index < len(argv) and not argv[index].startswith("-"):
            value = argv[index]
            index += 1
        else:
            value = "true"
        flags[name] = value
    return flags


# Storage: etcd's JSON gateway.


class EtcdUnavailable(Exception):
    """No etcd endpoint answered."""


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _describe(error: Exception) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"transport: authentication handshake failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"transport: authentication handshake failed: {error.reason or error}"
    return str(error) or type(error).__name__


class Etcd:
    """etcd v3 through its gRPC gateway (JSON over HTTPS), trying each endpoint in turn,
    starting with the last one that answered."""

    def __init__(self, servers: list[str], cafile: str, certfile: str, keyfile: str):
        self.servers = [urlsplit(server) for server in servers]
        self.context = ssl.create_default_context(cafile=cafile)
        self.context.load_cert_chain(certfile, keyfile)
        self.preferred = 0

    def call(self, method: str, body: dict) -> dict:
        errors = []
        count = len(self.servers)
        for offset in range(count):
            index = (self.preferred + offset) % count
            server = self.servers[index]
            if server.scheme == "https":
                connection = http.client.HTTPSConnection(
                    server.hostname, server.port or 2379, context=self.context,
                    timeout=ETCD_TIMEOUT,
                )  # fmt: skip
            else:
                connection = http.client.HTTPConnection(
                    server.hostname, server.port or 2379, timeout=ETCD_TIMEOUT
                )
            try:
                connection.request(
                    "POST", f"/v3/{method}", json.dumps(body), {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"{server.geturl()}: {_describe(error)}")
                continue
            finally:
                connection.close()
            if response.status != 200:
                errors.append(f"{server.geturl()}: {response.status} {data[:200].decode()}")
                continue
            self.preferred = index
            return json.loads(data)
        raise EtcdUnavailable("; ".join(errors))

    @staticmethod
    def _kv(kv: dict) -> tuple[str, bytes, int]:
        return (
            base64.b64decode(kv["key"]).decode(),
            base64.b64decode(kv.get("value", "")),
            int(kv.get("mod_revision", 0)),
        )

    def get(self, key: str) -> tuple[bytes, int] | None:
        kvs = self.call("kv/range", {"key": _b64(key)}).get("kvs", [])
        return (self._kv(kvs[0])[1], self._kv(kvs[0])[2]) if kvs else None

    def list(self, prefix: str) -> tuple[list[tuple[str, bytes, int]], int]:
        """Every key under ``prefix`` (which ends with ``/``), and the store's revision."""
        reply = self.call("kv/range", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))})
        return [self._kv(kv) for kv in reply.get("kvs", [])], int(reply["header"]["revision"])

    def create(self, key: str, value: bytes) -> int | None:
        """Put ``key`` only if it does not exist: the new revision, or None."""
        return self._txn(key, {"target": "CREATE", "create_revision": "0"}, value)

    def update(self, key: str, value: bytes, revision: int) -> int | None:
        """Put ``key`` only if it is still at ``revision``: the new revision, or None."""
        return self._txn(key, {"target": "MOD", "mod_revision": str(revision)}, value)

    def delete(self, key: str, revision: int) -> bool:
        """Delete ``key`` only if it is still at ``revision``."""
        reply = self.call(
            "kv/txn",
            {
                "compare": [
                    {"key": _b64(key), "result": "EQUAL", "target": "MOD",
                     "mod_revision": str(revision)},
                ],
                "success": [{"request_delete_range": {"key": _b64(key)}}],
            },
        )  # fmt: skip
        return bool(reply.get("succeeded"))

    def delete_prefix(self, prefix: str) -> None:
        self.call("kv/deleterange", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))})

    def _txn(self, key: str, compare: dict, value: bytes) -> int | None:
        reply = self.call(
            "kv/txn",
            {
                "compare": [{"key": _b64(key), "result": "EQUAL", **compare}],
                "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
            },
        )
        return int(reply["header"]["revision"]) if reply.get("succeeded") else None


def _prefix_end(prefix: str) -> bytes:
    raw = prefix.encode()
    return raw[:-1] + bytes([raw[-1] + 1])


# The API's resources.


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    group: str
    version: str
    namespaced: bool
    storage: str  # the resource's directory under --etcd-prefix
    has_status: bool = False
    # Update creates a missing object (the registry strategy's AllowCreateOnUpdate).
    create_on_update: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES = [
    Resource("namespaces", "Namespace", "", "v1", False, "namespaces", has_status=True),
    Resource("nodes", "Node", "", "v1", False, "minions", has_status=True),
    Resource("configmaps", "ConfigMap", "", "v1", True, "configmaps"),
    Resource("secrets", "Secret", "", "v1", True, "secrets"),
    Resource(
        "leases", "Lease", "coordination.k8s.io", "v1", True, "leases", create_on_update=True
    ),
    Resource(
        "certificatesigningrequests", "CertificateSigningRequest", "certificates.k8s.io", "v1",
        False, "certificatesigningrequests", has_status=True,
    ),
]  # fmt: skip
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}


class ApiError(Exception):
    """An error the API answers with a Status object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(resource: Resource, name: str) -> dict:
    details = {"name": name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    return details


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource.qualified()} "{name}" not found', _details(resource, name)
    )


def conflict(resource: Resource, name: str) -> ApiError:
    # staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go's OptimisticLockErrorMsg
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource.qualified()} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        _details(resource, name),
    )


def invalid(resource: Resource, name: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{resource.kind} "{name}" is invalid: {message}',
        _details(resource, name),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


@dataclass
class User:
    name: str
    groups: list[str] = field(default_factory=list)
    uid: str = ""

    @property
    def anonymous(self) -> bool:
        return self.name == "system:anonymous"


ANONYMOUS = User("system:anonymous", ["system:unauthenticated"])


@dataclass
class Request:
    verb: str
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None


# Authorization: the roles kubeadm binds and the node authorizer's rules, reduced to
# what the platform does (cmd/kubeadm/app/phases/bootstraptoken/clusterinfo,
# cmd/kubeadm/app/phases/bootstraptoken/node, cmd/kubeadm/app/phases/copycerts,
# plugin/pkg/auth/authorizer/node, plugin/pkg/admission/noderestriction).
ADMIN_GROUPS = ("system:masters", "kubeadm:cluster-admins")
KUBEADM_CONFIGMAPS = ("kubeadm-config", "kubelet-config")


def allowed(user: User, request: Request) -> bool:
    verb, plural = request.verb, request.resource.plural
    namespace, name = request.namespace, request.name
    if any(group in user.groups for group in ADMIN_GROUPS):
        return True
    if (plural, namespace, name, verb) == ("configmaps", "kube-public", "cluster-info", "get"):
        return True
    kubeadm_configmap = (
        plural == "configmaps"
        and namespace == "kube-system"
        and name in KUBEADM_CONFIGMAPS
        and verb == "get"
    )
    csr = plural == "certificatesigningrequests" and verb in ("create", "get", "list")
    if "system:bootstrappers" in user.groups:
        kubeadm_certs = (plural, namespace, name, verb) == (
            "secrets", "kube-system", "kubeadm-certs", "get",
        )  # fmt: skip
        if kubeadm_configmap or kubeadm_certs or csr or (plural, verb) == ("nodes", "get"):
            return True
    if "system:nodes" in user.groups and user.name.startswith("system:node:"):
        node = user.name.removeprefix("system:node:")
        if kubeadm_configmap or csr:
            return True
        if plural == "nodes":
            return verb in ("get", "list") or (
                verb in ("create", "update", "patch") and name == node
            )
        if plural == "leases" and namespace == "kube-node-lease":
            return name == node and verb in ("get", "create", "update", "patch")
    return False


def forbidden(user: User, request: Request) -> ApiError:
    resource = request.resource
    what = f'{resource.qualified()} "{request.name}"' if request.name else resource.qualified()
    scope = (
        f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    )
    plural = resource.plural + (f"/{request.subresource}" if request.subresource else "")
    message = (
        f'{what} is forbidden: User "{user.name}" cannot {request.verb} resource "{plural}" '
        f'in API group "{resource.group}" {scope}'
    )
    details = {"kind": resource.plural}
    if request.name:
        details["name"] = request.name
    if resource.group:
        details["group"] = resource.group
    return ApiError(403, "Forbidden", message, details)


# Patches.


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target, patch):
    """A strategic merge patch applied as a merge patch, without its directives: lists are
    replaced whole, not merged by key (the double's one simplification here)."""
    if isinstance(patch, dict):
        patch = {
            key: strategic_merge_patch(None, value)
            for key, value in patch.items()
            if not key.startswith("$")
        }
    return merge_patch(target, patch) if target is not None else patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _walk(document, parts: list[str]):
    for part in parts:
        try:
            document = document[int(part)] if isinstance(document, list) else document[part]
        except (KeyError, IndexError, ValueError) as error:
            raise ApiError(422, "Invalid", f"path {'/'.join(parts)!r} not found") from error
    return document


def json_patch(document, operations: list) -> dict:
    """RFC 6902: add, remove, replace, test."""
    document = copy.deepcopy(document)
    for operation in operations:
        op, parts = operation.get("op"), _pointer(operation.get("path", ""))
        if not parts:
            raise ApiError(422, "Invalid", "a JSON patch may not replace the whole object")
        parent, last = _walk(document, parts[:-1]), parts[-1]
        if op == "test":
            if _walk(document, parts) != operation.get("value"):
                raise ApiError(422, "Invalid", f"test failed at {operation['path']}")
        elif op == "remove":
            _walk(document, parts)
            del parent[int(last) if isinstance(parent, list) else last]
        elif op in ("add", "replace"):
            if op == "replace":
                _walk(document, parts)
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if op == "add":
                    parent.insert(index, operation["value"])
                else:
                    parent[index] = operation["value"]
            else:
                parent[last] = operation["value"]
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON patch operation {op!r}")
    return document


# The cluster's signer and approver, played by the apiserver.


def _usages(names: list[str]) -> tuple[x509.KeyUsage, list]:
    usage = {name: name in names for name in ("digital signature", "key encipherment")}
    key_usage = x509.KeyUsage(
        digital_signature=usage["digital signature"], content_commitment=False,
        key_encipherment=usage["key encipherment"], data_encipherment=False,
        key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    extended = [
        oid
        for name, oid in (
            ("client auth", ExtendedKeyUsageOID.CLIENT_AUTH),
            ("server auth", ExtendedKeyUsageOID.SERVER_AUTH),
        )
        if name in names
    ]
    return key_usage, extended


def _not_after(certificate: x509.Certificate) -> datetime.datetime:
    utc = getattr(certificate, "not_valid_after_utc", None)
    return utc or certificate.not_valid_after.replace(tzinfo=datetime.UTC)


def node_client_request(csr: x509.CertificateSigningRequest, spec: dict) -> str | None:
    """The node's name if ``csr`` is a kubelet client certificate request as the approver
    recognises one (pkg/controller/certificates/approver/sarapprove.go, isNodeClientCert)."""
    if spec.get("signerName") != "kubernetes.io/kube-apiserver-client-kubelet":
        return None
    organizations = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    common_names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    allowed_usages = {"digital signature", "key encipherment", "client auth"}
    if (
        organizations != ["system:nodes"]
        or len(common_names) != 1
        or not common_names[0].startswith("system:node:")
        or not set(spec.get("usages", [])) <= allowed_usages
        or "client auth" not in spec.get("usages", [])
    ):
        return None
    return common_names[0].removeprefix("system:node:")


class Signer:
    """kube-controller-manager's csrsigning controller, with the cluster CA
    (pkg/controller/certificates/signer/signer.go)."""

    def __init__(self, certfile: Path, keyfile: Path):
        self.certfile, self.keyfile = certfile, keyfile

    def sign(self, csr: x509.CertificateSigningRequest, spec: dict) -> bytes:
        ca = x509.load_pem_x509_certificate(self.certfile.read_bytes())
        key = serialization.load_pem_private_key(self.keyfile.read_bytes(), password=None)
        now = datetime.datetime.now(datetime.UTC)
        duration = SIGNING_DURATION
        if spec.get("expirationSeconds"):
            duration = datetime.timedelta(seconds=max(600, int(spec["expirationSeconds"])))
        key_usage, extended = _usages(spec.get("usages", []))
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(ca.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            # The signer backdates by five minutes for clocks that lag.
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(min(now + duration, _not_after(ca)))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage, critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),
                critical=False,
            )
        )
        if extended:
            builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
        return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


# The API server.


class ApiServer:
    def __init__(self, flags: dict[str, str]):
        missing = [
            name
            for name in ("etcd-servers", "tls-cert-file", "tls-private-key-file")
            if not flags.get(name)
        ]
        if missing:
            raise SystemExit(f"--{missing[0]} must be specified")
        self.flags = flags
        self.prefix = "/" + flags.get("etcd-prefix", "/registry").strip("/")
        try:
            self.etcd = Etcd(
                flags["etcd-servers"].split(","),
                flags.get("etcd-cafile") or None,
                flags.get("etcd-certfile"),
                flags.get("etcd-keyfile"),
            )
        except (OSError, ssl.SSLError) as error:
            raise SystemExit(
                f"failed to load the etcd client TLS configuration: {error}"
            ) from error
        self.client_ca = flags.get("client-ca-file")
        signing_cert = Path(self.client_ca or "/etc/kubernetes/pki/ca.crt")
        self.signer = Signer(signing_cert, signing_cert.with_suffix(".key"))
        self.bootstrap_tokens = flags.get("enable-bootstrap-token-auth", "false") == "true"
        self.anonymous_auth = flags.get("anonymous-auth", "true") == "true"
        self.health_lock = threading.Lock()
        self.health: tuple[float, str | None] = (0.0, "not checked yet")
        self.etcd_answered: bool | None = None
        self.namespaces_ready = False

    # Health.

    def etcd_error(self) -> str | None:
        """Why etcd does not answer (None when it does), checked at most once a second as
        the real check reads ``<prefix>/health``
        (staging/src/k8s.io/apiserver/pkg/storage/storagebackend/factory/etcd3.go)."""
        with self.health_lock:
            checked, error = self.health
            if time.monotonic() - checked < HEALTH_CACHE_SECONDS:
                return error
            try:
                self.etcd.get(f"{self.prefix}/health")
                error = None
            except EtcdUnavailable as unavailable:
                error = str(unavailable)
            if self.etcd_answered is not (error is None):
                if error:
                    log("E", f"etcd does not answer through the configured certificates: {error}")
                else:
                    log("I", "etcd answers")
            self.etcd_answered = error is None
            self.health = (time.monotonic(), error)
            return error

    def checks(self, endpoint: str) -> list[tuple[str, bool]]:
        etcd_ok = self.etcd_error() is None
        checks = [("ping", True), ("log", True), ("etcd", etcd_ok)]
        if endpoint == "readyz":
            checks.append(("etcd-readiness", etcd_ok))
        if endpoint != "livez":
            checks.append(
                ("poststarthook/start-system-namespaces-controller", self.namespaces_ready)
            )
        return checks

    def maintain(self) -> None:
        """Keep the system namespaces, as the system namespaces controller does."""
        while True:
            if self.etcd_error() is None:
                try:
                    for name in SYSTEM_NAMESPACES:
                        key = self.key(BY_PATH[("", "v1", "namespaces")], None, name)
                        if self.etcd.get(key) is None:
                            self.etcd.create(key, json.dumps(self.new_namespace(name)).encode())
                    if not self.namespaces_ready:
                        log("I", "system namespaces present")
                    self.namespaces_ready = True
                except EtcdUnavailable:
                    pass
            time.sleep(1)

    @staticmethod
    def new_namespace(name: str) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now_rfc3339(),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    # Authentication (staging/src/k8s.io/apiserver/pkg/authentication/request/x509/x509.go,
    # plugin/pkg/auth/authenticator/token/bootstrap/bootstrap.go).

    def authenticate(self, peer_der: bytes | None, authorization: str | None) -> User:
        if peer_der:
            certificate = x509.load_der_x509_certificate(peer_der)
            try:
                usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
                client_auth = ExtendedKeyUsageOID.CLIENT_AUTH in usages.value
            except x509.ExtensionNotFound:
                client_auth = True
            if not client_auth:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            subject = certificate.subject
            names = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
            groups = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
            return User(names[0] if names else "", [*groups, "system:authenticated"])
        if authorization:
            scheme, _, token = authorization.partition(" ")
            user = self.bootstrap_user(token.strip()) if scheme.lower() == "bearer" else None
            if user is None:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            return user
        if not self.anonymous_auth:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return ANONYMOUS

    def bootstrap_user(self, token: str) -> User | None:
        match = BOOTSTRAP_TOKEN.match(token)
        if not self.bootstrap_tokens or not match:
            return None
        token_id, token_secret = match.groups()
        stored = self.etcd.get(self.key(BY_PATH[("", "v1", "secrets")], "kube-system",
                                        f"bootstrap-token-{token_id}"))  # fmt: skip
        if stored is None:
            return None
        secret = json.loads(stored[0])
        data = {
            key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()
        }
        if (
            secret.get("metadata", {}).get("deletionTimestamp")
            or secret.get("type") != "bootstrap.kubernetes.io/token"
            or not hmac.compare_digest(data.get("token-secret", ""), token_secret)
            or data.get("token-id") != token_id
            or expired(data.get("expiration", ""))
            or data.get("usage-bootstrap-authentication") != "true"
        ):
            return None
        extra = [group for group in data.get("auth-extra-groups", "").split(",") if group]
        if any(not group.startswith("system:bootstrappers:") for group in extra):
            return None
        groups = ["system:bootstrappers", *extra, "system:authenticated"]
        return User(f"system:bootstrap:{token_id}", groups)

    # Storage.

    def key(self, resource: Resource, namespace: str | None, name: str) -> str:
        if resource.namespaced:
            return f"{self.prefix}/{resource.storage}/{namespace}/{name}"
        return f"{self.prefix}/{resource.storage}/{name}"

    def read(self, resource: Resource, namespace: str | None, name: str) -> tuple[dict, int]:
        stored = self.etcd.get(self.key(resource, namespace, name))
        if stored is None:
            raise not_found(resource, name)
        return self.decode(stored[0], stored[1]), stored[1]

    @staticmethod
    def decode(value: bytes, revision: int) -> dict:
        obj = json.loads(value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
        return obj

    @staticmethod
    def encode(obj: dict) -> bytes:
        stored = copy.deepcopy(obj)
        stored.get("metadata", {}).pop("resourceVersion", None)
        return json.dumps(stored, separators=(",", ":")).encode()

    # Verbs.

    def get(self, request: Request) -> dict:
        return self.read(request.resource, request.namespace, request.name)[0]

    def list(self, request: Request, query: dict[str, list[str]]) -> dict:
        resource = request.resource
        prefix = f"{self.prefix}/{resource.storage}/"
        if resource.namespaced and request.namespace:
            prefix += f"{request.namespace}/"
        selector = label_selector(query.get("labelSelector", [""])[0])
        fields = field_selector(query.get("fieldSelector", [""])[0])
        kvs, revision = self.etcd.list(prefix)
        items = []
        for _, value, mod_revision in kvs:
            item = self.decode(value, mod_revision)
            if selector(item["metadata"].get("labels") or {}) and fields(item):
                item.pop("apiVersion", None)
                item.pop("kind", None)
                items.append(item)
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(revision)},
            "items": items,
        }

    def create(self, request: Request, body: dict, user: User) -> dict:
        resource = request.resource
        obj = self.admit_new(resource, request.namespace, body)
        name = obj["metadata"]["name"]
        if resource.plural == "certificatesigningrequests":
            self.prepare_csr(obj, user)
        if resource.namespaced:
            self.require_namespace(request.namespace)
        revision = self.etcd.create(self.key(resource, request.namespace, name), self.encode(obj))
        if revision is None:
            raise ApiError(
                409, "AlreadyExists", f'{resource.qualified()} "{name}" already exists',
                _details(resource, name),
            )  # fmt: skip
        obj["metadata"]["resourceVersion"] = str(revision)
        return obj

    def admit_new(self, resource: Resource, namespace: str | None, body: dict) -> dict:
        obj = copy.deepcopy(body)
        self.check_type(resource, obj)
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):
            suffix = "".join(secrets.choice(GENERATE_ALPHABET) for _ in range(5))
            metadata["name"] = metadata["generateName"] + suffix
        name = metadata.get("name", "")
        self.validate_name(resource, name)
        if resource.namespaced:
            if metadata.get("namespace", namespace) != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        for server_set in ("resourceVersion", "deletionTimestamp", "selfLink"):
            metadata.pop(server_set, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_rfc3339()
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        self.default(resource, obj)
        return obj

    @staticmethod
    def check_type(resource: Resource, obj: dict) -> None:
        if not isinstance(obj, dict):
            raise bad_request("the body of the request was not a JSON object")
        if obj.get("apiVersion") not in (None, resource.api_version):
            raise bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected "
                f"API version ({resource.api_version})"
            )
        if obj.get("kind") not in (None, resource.kind):
            raise bad_request(
                f"the kind in the data ({obj['kind']}) does not match the expected kind "
                f"({resource.kind})"
            )

    @staticmethod
    def validate_name(resource: Resource, name: str) -> None:
        if not name:
            raise invalid(resource, name, "metadata.name: Required value: name or generateName "
                                          "is required")  # fmt: skip
        label = resource.plural == "namespaces"
        pattern, limit = (DNS_LABEL, 63) if label else (DNS_SUBDOMAIN, 253)
        if len(name) > limit or not pattern.match(name):
            kind = "RFC 1123 label" if label else "RFC 1123 subdomain"
            raise invalid(resource, name, f'metadata.name: Invalid value: "{name}": a lowercase '
                                          f"{kind} must consist of lower case alphanumeric "
                                          "characters, '-' or '.'")  # fmt: skip

    @staticmethod
    def default(resource: Resource, obj: dict) -> None:
        if resource.plural == "secrets":
            # The v1 conversion folds stringData into data (pkg/apis/core/v1/conversion.go).
            data = obj.get("data") or {}
            for key, value in (obj.pop("stringData", None) or {}).items():
                data[key] = _b64(value)
            if data:
                obj["data"] = data
            obj.setdefault("type", "Opaque")
        elif resource.plural == "namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]

    def require_namespace(self, namespace: str) -> None:
        if self.etcd.get(self.key(BY_PATH[("", "v1", "namespaces")], None, namespace)) is None:
            raise not_found(BY_PATH[("", "v1", "namespaces")], namespace)

    def prepare_csr(self, obj: dict, user: User) -> None:
        """The CSR strategy records the requester; the approver and the signer act at once."""
        spec = obj.setdefault("spec", {})
        spec.update(username=user.name, groups=user.groups)
        obj["status"] = {}
        name = obj["metadata"]["name"]
        resource = BY_PATH[("certificates.k8s.io", "v1", "certificatesigningrequests")]
        try:
            csr = x509.load_pem_x509_csr(base64.b64decode(spec.get("request", "")))
        except ValueError as error:
            raise invalid(resource, name, f"spec.request: Invalid value: {error}") from error
        if not spec.get("signerName"):
            raise invalid(resource, name, "spec.signerName: Required value")
        node = node_client_request(csr, spec)
        requester_may = "system:bootstrappers" in user.groups or user.name == f"system:node:{node}"
        if node is None or not requester_may:
            return
        stamp = now_rfc3339()
        obj["status"]["conditions"] = [
            {
                "type": "Approved",
                "status": "True",
                "reason": "AutoApproved",
                "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
            }
        ]
        try:
            obj["status"]["certificate"] = _b64(self.signer.sign(csr, spec))
        except (OSError, ValueError) as error:
            log("E", f"cannot sign CertificateSigningRequest {name}: {error}")

    def update(self, request: Request, body: dict) -> dict:
        resource, name = request.resource, request.name
        self.check_type(resource, body)
        metadata = body.get("metadata") or {}
        if metadata.get("name", name) != name:
            raise bad_request(
                f"the name of the object ({metadata['name']}) does not match the name on the URL "
                f"({name})"
            )
        try:
            return self.guaranteed_update(request, lambda _old: body, body)
        except ApiError as error:
            if error.code != 404 or not resource.create_on_update:
                raise
        created = self.create(request, {**body, "metadata": {**metadata, "name": name}}, ANONYMOUS)
        return created

    def patch(self, request: Request, content_type: str, patch) -> dict:
        if content_type == "application/merge-patch+json":
            apply = merge_patch
        elif content_type == "application/strategic-merge-patch+json":
            apply = strategic_merge_patch
        elif content_type == "application/json-patch+json":
            apply = json_patch
        else:
            raise ApiError(
                415, "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: application/json-patch+json, application/merge-patch+json, "
                f"application/strategic-merge-patch+json (not {content_type})",
            )  # fmt: skip
        return self.guaranteed_update(request, lambda old: apply(old, patch), patch)

    def guaranteed_update(self, request: Request, change, given) -> dict:
        """Read, change, write if unchanged since the read, as the registry's
        GuaranteedUpdate does: a resourceVersion the caller gave is a precondition (409 when
        stale); without one, a write that lost a race is retried."""
        resource, namespace, name = request.resource, request.namespace, request.name
        precondition = None
        if isinstance(given, dict):
            precondition = (given.get("metadata") or {}).get("resourceVersion")
        for _ in range(5):
            old, revision = self.read(resource, namespace, name)
            if precondition and precondition != str(revision):
                raise conflict(resource, name)
            new = change(copy.deepcopy(old))
            if not isinstance(new, dict):
                raise bad_request("the patched object is not a JSON object")
            self.check_type(resource, new)
            new = self.keep_immutable(request, old, new)
            written = self.etcd.update(self.key(resource, namespace, name), self.encode(new),
                                       revision)  # fmt: skip
            if written is not None:
                new["metadata"]["resourceVersion"] = str(written)
                return new
            if precondition:
                raise conflict(resource, name)
        raise conflict(resource, name)

    @staticmethod
    def keep_immutable(request: Request, old: dict, new: dict) -> dict:
        resource = request.resource
        metadata = new.setdefault("metadata", {})
        for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
            if key in old["metadata"]:
                metadata[key] = old["metadata"][key]
            else:
                metadata.pop(key, None)
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        # The main resource leaves status alone and the status subresource leaves the spec
        # alone (pkg/registry/core/node/strategy.go, PrepareForUpdate).
        if resource.has_status:
            kept = "spec" if request.subresource == "status" else "status"
            if kept in old:
                new[kept] = old[kept]
            else:
                new.pop(kept, None)
        if resource.plural == "secrets":
            ApiServer.default(resource, new)
        return new

    def delete(self, request: Request, options: dict) -> dict:
        resource, namespace, name = request.resource, request.namespace, request.name
        if resource.plural == "namespaces" and name in UNDELETABLE_NAMESPACES:
            raise ApiError(
                403, "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                _details(resource, name),
            )  # fmt: skip
        preconditions = (options or {}).get("preconditions") or {}
        old, revision = self.read(resource, namespace, name)
        if preconditions.get("resourceVersion") not in (None, str(revision)):
            raise conflict(resource, name)
        if preconditions.get("uid") not in (None, old["metadata"].get("uid")):
            raise conflict(resource, name)
        if resource.plural == "namespaces":
            # What the namespace controller finishes later, done at once.
            for each in RESOURCES:
                if each.namespaced:
                    self.etcd.delete_prefix(f"{self.prefix}/{each.storage}/{name}/")
        if not self.etcd.delete(self.key(resource, namespace, name), revision):
            raise conflict(resource, name)
        if resource.plural == "namespaces":
            old["metadata"]["deletionTimestamp"] = now_rfc3339()
            old["status"] = {"phase": "Terminating"}
            return old
        details = {**_details(resource, name), "uid": old["metadata"].get("uid", "")}
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }


def expired(expiration: str) -> bool:
    """cluster-bootstrap's HasExpired: no expiration never expires, an unreadable one has."""
    if not expiration:
        return False
    try:
        moment = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    except ValueError:
        log("E", f"unparseable bootstrap token expiration {expiration!r}")
        return True
    if moment.tzinfo is None:
        return True
    return datetime.datetime.now(datetime.UTC) > moment


def label_selector(text: str):
    """Equality-based selectors (``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``) and set-based
    ``a in (b,c)``, ``a notin (b,c)``."""
    requirements = []
    for found in re.findall(r"[^,(]+(?:\([^)]*\))?", text):
        part = found.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)", part)
        if match:
            key, operator, values = match.groups()
            requirements.append((key, operator, {v.strip() for v in values.split(",")}))
        elif "!=" in part:
            key, value = part.split("!=", 1)
            requirements.append((key.strip(), "notin", {value.strip()}))
        elif "=" in part:
            key, value = re.split(r"==?", part, maxsplit=1)
            requirements.append((key.strip(), "in", {value.strip()}))
        elif part.startswith("!"):
            requirements.append((part[1:].strip(), "!", set()))
        elif re.fullmatch(r"[\w./-]+", part):
            requirements.append((part, "exists", set()))
        else:
            raise bad_request(f"unable to parse requirement: {part!r}")

    def matches(labels: dict) -> bool:
        for key, operator, values in requirements:
            if operator == "in" and labels.get(key) not in values:
                return False
            if operator == "notin" and key in labels and labels[key] in values:
                return False
            if operator == "exists" and key not in labels:
                return False
            if operator == "!" and key in labels:
                return False
        return True

    return matches


def field_selector(text: str):
    """``metadata.name``, ``metadata.namespace`` and (a Secret's) ``type`` with ``=``,
    ``==`` or ``!=``: kubeadm lists the bootstrap tokens with ``type=``."""
    requirements = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(metadata\.name|metadata\.namespace|type)\s*(!=|==|=)\s*(.*)", part)
        if not match:
            raise bad_request(f'field label not supported: "{part.split("=")[0].rstrip("!")}"')
        requirements.append(match.groups())

    def matches(obj: dict) -> bool:
        for path, operator, value in requirements:
            if path == "type":
                actual = obj.get("type", "")
            else:
                actual = obj["metadata"].get(path.split(".")[1], "")
            if (actual == value) != (operator != "!="):
                return False
        return True

    return matches


# HTTP.


def route(path: str) -> tuple[Resource, str | None, str | None, str | None] | None:
    """(resource, namespace, name, subresource) for a resource path, or None."""
    parts = [part for part in path.split("/") if part]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if (
        len(rest) >= 3
        and rest[0] == "namespaces"
        and (group, version, rest[2]) in BY_PATH
        and BY_PATH[(group, version, rest[2])].namespaced
    ):
        namespace, rest = rest[1], rest[2:]
    if not rest or (group, version, rest[0]) not in BY_PATH or len(rest) > 3:
        return None
    resource = BY_PATH[(group, version, rest[0])]
    if resource.namespaced and namespace is None and len(rest) > 1:
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if subresource not in (None, "status") or (subresource and not resource.has_status):
        return None
    return resource, namespace, name, subresource


def discovery(path: str) -> dict | None:
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    groups = sorted({(r.group, r.version) for r in RESOURCES if r.group})
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                    "preferredVersion": {"groupVersion": f"{group}/{version}", "version": version},
                }
                for group, version in groups
            ],
        }
    for group, version in [("", "v1"), *groups]:
        prefix = f"/apis/{group}/{version}" if group else "/api/v1"
        if path == prefix:
            verbs = ["create", "delete", "get", "list", "patch", "update"]
            resources = []
            for r in RESOURCES:
                if (r.group, r.version) != (group, version):
                    continue
                resources.append(
                    {
                        "name": r.plural,
                        "singularName": r.kind.lower(),
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": verbs,
                    }
                )
                if r.has_status:
                    resources.append({"name": f"{r.plural}/status", "singularName": "",
                                      "namespaced": r.namespaced, "kind": r.kind,
                                      "verbs": ["get", "patch", "update"]})  # fmt: skip
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else "v1",
                "resources": resources,
            }
    return None


HEALTH_PATHS = {"/livez": "livez", "/readyz": "readyz", "/healthz": "healthz"}
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TLSServer

    def do_GET(self):
        self.serve("GET")

    def do_POST(self):
        self.serve("POST")

    def do_PUT(self):
        self.serve("PUT")

    def do_PATCH(self):
        self.serve("PATCH")

    def do_DELETE(self):
        self.serve("DELETE")

    def log_message(self, *args):
        pass

    def reply(self, code: int, body, content_type: str = "application/json") -> None:
        data = (json.dumps(body) if content_type == "application/json" else body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as error:
            raise bad_request(f"the body of the request could not be decoded: {error}") from error

    def serve(self, method: str) -> None:
        api: ApiServer = self.server.api
        url = urlsplit(self.path)
        path, query = url.path.rstrip("/") or "/", parse_qs(url.query, keep_blank_values=True)
        try:
            peer = self.connection.getpeercert(binary_form=True)
            user = api.authenticate(peer, self.headers.get("Authorization"))
            if path in HEALTH_PATHS and method == "GET":
                self.health(HEALTH_PATHS[path], "verbose" in query)
                return
            if path == "/version" and method == "GET":
                self.reply(200, VERSION)
                return
            found = discovery(path) if method == "GET" else None
            if found is not None:
                if user.anonymous:
                    raise ApiError(403, "Forbidden", f'forbidden: User "{user.name}" cannot get '
                                                     f'path "{path}"')  # fmt: skip
                self.reply(200, found)
                return
            routed = route(path)
            if routed is None:
                self.reply(404, "404 page not found\n", "text/plain; charset=utf-8")
                return
            self.resource(api, user, method, Request("", *routed), query)
        except ApiError as error:
            self.reply(error.code, error.status())
        except EtcdUnavailable as error:
            self.reply(500, ApiError(500, "InternalError", f"etcd: {error}").status())

    def resource(
        self, api: ApiServer, user: User, method: str, request: Request, query: dict
    ) -> None:
        if method == "GET":
            if "watch" in query and query["watch"][0] in ("1", "true"):
                raise ApiError(405, "MethodNotAllowed", "the lab's apiserver double has no watch")
            request.verb = "get" if request.name else "list"
        else:
            request.verb = VERBS[method]
        if (request.name is None) != (request.verb in ("list", "create")):
            raise ApiError(405, "MethodNotAllowed", f"{method} is not allowed on {self.path}")
        body = self.body() if method in ("POST", "PUT", "PATCH", "DELETE") else None
        if request.verb == "create" and isinstance(body, dict):
            request.name = (body.get("metadata") or {}).get("name")
        if not allowed(user, request):
            raise forbidden(user, request)
        if request.verb == "create":
            request.name = None
            self.reply(201, api.create(request, body or {}, user))
        elif request.verb == "get":
            self.reply(200, api.get(request))
        elif request.verb == "list":
            self.reply(200, api.list(request, query))
        elif request.verb == "update":
            self.reply(200, api.update(request, body or {}))
        elif request.verb == "patch":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            self.reply(200, api.patch(request, content_type, body))
        else:
            self.reply(200, api.delete(request, body or {}))

    def health(self, endpoint: str, verbose: bool) -> None:
        checks = self.server.api.checks(endpoint)
        healthy = all(ok for _, ok in checks)
        if healthy and not verbose:
            self.reply(200, "ok", "text/plain; charset=utf-8")
            return
        lines = [
            f"[+]{name} ok" if ok else f"[-]{name} failed: reason withheld" for name, ok in checks
        ]
        lines.append(f"{endpoint} check passed" if healthy else f"{endpoint} check failed")
        self.reply(200 if healthy else 500, "\n".join(lines) + "\n", "text/plain; charset=utf-8")


class TLSServer(ThreadingHTTPServer):
    """TLS per connection, in the connection's own thread (as lab/files/standin.py)."""

    daemon_threads = True
    context: ssl.SSLContext
    api: ApiServer

    def finish_request(self, request, client_address):
        request.settimeout(10)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        tls.settimeout(None)
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


def serving_context(flags: dict[str, str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(flags["tls-cert-file"], flags["tls-private-key-file"])
        if flags.get("client-ca-file"):
            context.load_verify_locations(flags["client-ca-file"])
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as error:
        raise SystemExit(f"unable to load the serving certificate or client CA: {error}") from error
    return context


def main(argv: list[str]) -> None:
    flags = parse_flags(argv)
    api = ApiServer(flags)
    context = serving_context(flags)
    address = flags.get("bind-address", "0.0.0.0")
    port = int(flags.get("secure-port", "6443"))
    TLSServer.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        server = TLSServer((address, port), Handler)
    except OSError as error:
        raise SystemExit(f"failed to listen on {address}:{port}: {error}") from error
    server.context, server.api = context, api
    log("I", f"Serving securely on {address}:{port}, etcd {flags['etcd-servers']}")
    threading.Thread(target=api.maintain, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            log("E", f'"command failed" err="{exit_.code}"')
            sys.exit(1)
        raise
