"""
Kubernetes as one control plane sees it, through the ``kubernetes`` Python client with
kubeadm's admin kubeconfig: the Nodes and their Leases, the apiserver's readiness (this
node's own, and through both VIPs from here), and kubeadm's certificates with their
expiry, the ones ``kubeadm certs check-expiration`` lists.

It runs on a control plane, where kubeadm wrote ``/etc/kubernetes/admin.conf``: the admin
credentials are used on the node and never leave it; what returns is data, which
``salt-run paas.status`` and ``paas.certs`` ask every control plane for. The
``paas_control_plane`` state manages the same control plane (paused and resumed around
an etcd restore).

:depends: ``kubernetes`` (the Python client) in the minion's Python; Salt's ``x509_v2``
    (cryptography); the ``paas_topology`` module
:configuration: the ``paas`` pillar key (the ``kubernetes`` view, ``pki:renew_days``)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import os
import tempfile
import types
from importlib.util import find_spec

import salt.utils.files
import salt.utils.yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

# The client takes about a second to import: it is imported on first use, not when the
# loader scans the module (see _library()).
_lib = types.SimpleNamespace(client=None, urllib3=None)

__virtualname__ = "paas_control_plane"

# Seconds each request to an apiserver may take, so that a report comes back well
# within salt-run's own timeout even when every address is silent.
TIMEOUT = 3
NODE_LEASE_NAMESPACE = "kube-node-lease"
ROLE_LABEL = "node-role.kubernetes.io/"
SOURCE = "kubeadm"
# kubeadm's certificates as `kubeadm certs check-expiration` lists them (with an external
# etcd, no etcd rows): name, where it is (a file of the PKI directory, or a kubeconfig's
# embedded client certificate) and the CA that signs it.
CERTIFICATES = (
    ("admin.conf", "kubeconfig", "ca"),
    ("apiserver", "pki", "ca"),
    ("apiserver-kubelet-client", "pki", "ca"),
    ("controller-manager.conf", "kubeconfig", "ca"),
    ("front-proxy-client", "pki", "front-proxy-ca"),
    ("scheduler.conf", "kubeconfig", "ca"),
    ("super-admin.conf", "kubeconfig", "ca"),
)
CERTIFICATE_AUTHORITIES = ("ca", "front-proxy-ca")
# kubeadm writes super-admin.conf on init only: the control planes that joined have none.
ONLY_ON_THE_FIRST = ("super-admin.conf",)


def __virtual__():
    if find_spec("kubernetes") is None:
        return (False, "paas_control_plane: the kubernetes Python client is not installed")
    if "x509.read_certificate" not in __salt__:
        return (False, "paas_control_plane: Salt's x509_v2 module (cryptography) is not available")
    if "paas_topology.kubernetes_node" not in __salt__:
        return (False, "paas_control_plane: the paas_topology module is not synced")
    return __virtualname__


def status(timeout: float = TIMEOUT) -> dict:
    """
    Return Kubernetes as this control plane sees it, with the admin kubeconfig:

    - ``nodes``: every Node with its Ready condition, roles (from the
      ``node-role.kubernetes.io/*`` labels), kubelet version, age and the age of its
      Lease's last renewal in ``kube-node-lease`` (seconds); or ``nodes_error`` when
      they cannot be listed;
    - ``apiserver``: ``/readyz`` of this node's own apiserver (``direct``) and through
      each VIP from this node (``private_vip``, ``public_vip``), each with its URL,
      ``ready`` and the error.

    Without the admin kubeconfig (Kubernetes not initialized, or this node not joined
    as a control plane) it says so: ``initialized`` is ``False``, with the ``reason``.

    timeout
        Seconds each request may take.

    CLI Example:

    .. code-block:: bash

        salt-call paas_control_plane.status
    """
    view = __salt__["paas_topology.kubernetes_node"]()
    kubeconfig = view["admin_kubeconfig"]
    report = {"node": view["id"], "initialized": os.path.isfile(kubeconfig)}
    if not report["initialized"]:
        return {**report, "reason": f"{kubeconfig} is absent"}
    try:
        credentials = _kubeconfig(kubeconfig)
    except CommandExecutionError as err:
        return {**report, "error": str(err)}
    library = _library()
    port = view["endpoint"]["port"]
    targets = {
        "direct": view["address"],
        "private_vip": view["vips"]["private"],
        "public_vip": view["vips"]["public"],
    }
    with (
        _admin_configuration(credentials, library) as configuration,
        library.client.ApiClient(configuration) as api_client,
        contextlib.closing(api_client.rest_client),
    ):
        try:
            report["nodes"] = _nodes(api_client, library, timeout)
        except _errors(library) as err:
            report["nodes_error"] = _reason(err, library)
        report["apiserver"] = {
            name: _readiness(api_client, library, f"https://{address}:{port}/readyz", timeout)
            for name, address in targets.items()
        }
    return report


def certificates() -> list[dict]:
    """
    Return kubeadm's certificates on this control plane, the ones ``kubeadm certs
    check-expiration`` lists (``admin.conf``, ``apiserver``, ``apiserver-kubelet-client``,
    ``controller-manager.conf``, ``front-proxy-client``, ``scheduler.conf``,
    ``super-admin.conf`` where kubeadm wrote it, and the CAs ``ca`` and
    ``front-proxy-ca``), each as ``paas_pki.certificates`` lists the platform's: serial,
    subject, names, expiry, days left, whether it is due for renewal
    (``paas:pki:renew_days``) and problems; with ``source: kubeadm`` and the CA that
    signs it (``signed_by``). Empty where Kubernetes is not initialized.

    CLI Example:

    .. code-block:: bash

        salt-call paas_control_plane.certificates
    """
    view = __salt__["paas_topology.kubernetes_node"]()
    if not os.path.isfile(view["admin_kubeconfig"]):
        return []
    renew_days = __salt__["paas_topology.get"]()["pki"]["renew_days"]
    kubeconfig_dir = os.path.dirname(view["admin_kubeconfig"])
    pki_dir = view["pki_dir"]
    listed = [
        {
            "name": name,
            "path": os.path.join(kubeconfig_dir, name)
            if where == "kubeconfig"
            else os.path.join(pki_dir, f"{name}.crt"),
            "kubeconfig": where == "kubeconfig",
            "ca": ca,
            "ca_path": os.path.join(pki_dir, f"{ca}.crt"),
        }
        for name, where, ca in CERTIFICATES
    ]
    listed.extend(
        {
            "name": name,
            "path": os.path.join(pki_dir, f"{name}.crt"),
            "kubeconfig": False,
            "ca": None,
        }
        for name in CERTIFICATE_AUTHORITIES
    )
    return [
        _certificate(view["id"], entry, renew_days)
        for entry in listed
        if entry["name"] not in ONLY_ON_THE_FIRST or os.path.exists(entry["path"])
    ]


def _certificate(node: str, entry: dict, renew_days: int) -> dict:
    """One row: a certificate of kubeadm's, read from its file or its kubeconfig."""
    path = entry["path"]
    row = {
        "node": node,
        "profile": entry["name"],
        "source": SOURCE,
        "path": path,
        "signed_by": entry["ca"],
    }
    if not os.path.isfile(path):
        return {**row, "problems": [f"{path} is missing"]}
    try:
        certificate = _kubeconfig(path)["cert"] if entry["kubeconfig"] else path
        details = __salt__["x509.read_certificate"](certificate)
    except (CommandExecutionError, SaltInvocationError, ValueError) as err:
        return {**row, "problems": [f"{path}: no readable certificate: {err}"]}
    not_after = datetime.datetime.strptime(details["not_after"], "%Y-%m-%d %H:%M:%S")
    days_left = (not_after - _now().replace(tzinfo=None)).days
    row.update(
        serial=details["serial_number"],
        subject=details["subject_str"],
        names=details["extensions"].get("subjectAltName", {}).get("value", []),
        not_after=details["not_after"],
        days_left=days_left,
        renewal_due=days_left <= renew_days,
    )
    problems = []
    # A missing CA is named by its own row.
    ca_path = entry.get("ca_path")
    if (
        ca_path
        and os.path.isfile(ca_path)
        and not __salt__["x509.verify_signature"](certificate, ca_path)
    ):
        problems.append(f"it is not signed by kubeadm's {entry['ca']} ({ca_path})")
    if days_left < 0:
        problems.append(f"it expired on {details['not_after']}")
    return {**row, "problems": problems}


def _nodes(api_client, library, timeout: float) -> list[dict]:
    nodes = library.client.CoreV1Api(api_client).list_node(_request_timeout=timeout)
    leases = library.client.CoordinationV1Api(api_client).list_namespaced_lease(
        NODE_LEASE_NAMESPACE, _request_timeout=timeout
    )
    renewed = {
        lease.metadata.name: lease.spec.renew_time
        for lease in leases.items
        if lease.metadata and lease.spec and lease.spec.renew_time
    }
    now = _now()
    return [_node(node, renewed.get(node.metadata.name), now) for node in nodes.items]


def _node(node, renewed: datetime.datetime | None, now: datetime.datetime) -> dict:
    status = node.status
    conditions = (status.conditions if status else None) or []
    ready = next((condition for condition in conditions if condition.type == "Ready"), None)
    if ready is None:
        reason = "no Ready condition: its kubelet has not reported"
    elif ready.status != "True":
        reason = ": ".join(part for part in (ready.reason, ready.message) if part) or None
    else:
        reason = None
    labels = node.metadata.labels or {}
    created = node.metadata.creation_timestamp
    return {
        "name": node.metadata.name,
        "ready": ready is not None and ready.status == "True",
        # The condition's status: "True", "False", or "Unknown" once the
        # controller-manager has heard nothing from the kubelet for its grace period.
        "condition": ready.status if ready else None,
        "reason": reason,
        "roles": sorted(
            label[len(ROLE_LABEL) :]
            for label in labels
            if label.startswith(ROLE_LABEL) and label != ROLE_LABEL
        ),
        "kubelet": status.node_info.kubelet_version if status and status.node_info else None,
        "age_s": _seconds(now, created),
        "lease_age_s": _seconds(now, renewed),
    }


def _readiness(api_client, library, url: str, timeout: float) -> dict:
    """An apiserver's ``/readyz``: ready on 200; else the checks that failed."""
    try:
        response = api_client.call_api("GET", url, _request_timeout=timeout)
        body = response.read().decode("utf-8", errors="replace")
    except _errors(library) as err:
        return {"url": url, "ready": False, "error": _reason(err, library)}
    if response.status == 200:
        return {"url": url, "ready": True, "error": None}
    # On failure kube-apiserver lists every check, "[-]etcd failed: reason withheld" for
    # those that failed.
    failed = [line[3:] for line in body.splitlines() if line.startswith("[-]")]
    detail = "; ".join(failed) or body.strip() or response.reason
    return {"url": url, "ready": False, "error": f"HTTP {response.status}: {detail}"}


def _kubeconfig(path: str) -> dict:
    """A kubeconfig's current context: the server, and the CA, client certificate and
    key (PEM), embedded (``*-data``) or in the files it names."""
    try:
        with salt.utils.files.fopen(path) as handle:
            document = salt.utils.yaml.safe_load(handle)
        context = _named(document, "contexts", document["current-context"])["context"]
        cluster = _named(document, "clusters", context["cluster"])["cluster"]
        user = _named(document, "users", context["user"])["user"]
        return {
            "server": cluster["server"],
            "ca": _pem(cluster, "certificate-authority"),
            "cert": _pem(user, "client-certificate"),
            "key": _pem(user, "client-key"),
        }
    except KeyError as err:
        raise CommandExecutionError(f"the kubeconfig {path} has no {err.args[0]}") from err
    except (OSError, TypeError, ValueError, salt.utils.yaml.YAMLError) as err:
        raise CommandExecutionError(f"the kubeconfig {path} is not usable: {err}") from err


def _named(document: dict, section: str, name: str) -> dict:
    for entry in document[section]:
        if entry["name"] == name:
            return entry
    raise KeyError(f"{section[:-1]} named {name}")


def _pem(section: dict, key: str) -> str:
    if f"{key}-data" in section:
        try:
            return base64.b64decode(section[f"{key}-data"], validate=True).decode()
        except binascii.Error as err:
            raise ValueError(f"{key}-data is not base64: {err}") from err
    with salt.utils.files.fopen(section[key]) as handle:
        return handle.read()


@contextlib.contextmanager
def _admin_configuration(credentials: dict, library):
    """The client's configuration with the admin credentials. urllib3 takes a client
    certificate and key only as files: they live in a private directory for this call
    and go with it. (The client's own kubeconfig loader writes them to the temporary
    directory and deletes them at interpreter exit, which a minion's job process never
    reaches: a copy of the admin key would stay behind after every call.)"""
    with tempfile.TemporaryDirectory(prefix="paas-kubernetes-") as directory:
        files = {}
        for name in ("cert", "key"):
            files[name] = os.path.join(directory, f"admin.{name}")
            descriptor = os.open(files[name], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(credentials[name])
        configuration = library.client.Configuration(
            host=credentials["server"],
            ca_cert_data=credentials["ca"],
            cert_file=files["cert"],
            key_file=files["key"],
            # One attempt: a health check reports what it saw, within its timeout.
            retries=False,
        )
        yield configuration


def _errors(library) -> tuple[type[BaseException], ...]:
    # ValueError: an answer the client's models refuse (a malformed object).
    return (library.client.ApiException, library.urllib3.exceptions.HTTPError, OSError, ValueError)


def _reason(err: BaseException, library) -> str:
    if isinstance(err, library.client.ApiException):
        if err.status:
            return f"HTTP {err.status} {err.reason}"
        # Status 0: TLS failed; the reason is "SSLError\n<what failed>".
        return " ".join(str(err.reason).split())
    return str(err) or type(err).__name__


def _seconds(now: datetime.datetime, then: datetime.datetime | None) -> int | None:
    if then is None:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=datetime.UTC)
    return int((now - then).total_seconds())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _library():
    if _lib.client is None:
        import kubernetes.client  # noqa: PLC0415
        import urllib3  # noqa: PLC0415

        _lib.client, _lib.urllib3 = kubernetes.client, urllib3
    return _lib
