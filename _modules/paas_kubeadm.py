"""
kubeadm on a Kubernetes node of the platform: initialize the cluster on the first control
plane, join the other nodes, and the short-lived credentials a join needs.

Every kubeadm (and kubectl) call runs with ``output_loglevel: quiet`` and without a shell: kubeadm's
output holds tokens and certificate keys, so it is never logged, and no secret is ever on
a command line. A join's bootstrap token and certificate key reach kubeadm through a 0600
copy of the node's kubeadm configuration in a 0700 directory under ``/run``, deleted
after the join; errors name the node and kubeadm's own message with every secret in it
replaced. A failed ``kubeadm init`` or ``kubeadm join`` leaves the node cleaned by
``kubeadm reset -f`` (which never touches the external etcd's data), ready for a re-run.

The state of a node is read from the files kubeadm writes: joined (never to be joined
again) when ``/etc/kubernetes/kubelet.conf`` exists, as kubeadm's own preflight
(``FileAvailable--etc-kubernetes-kubelet.conf``) sees it; initialized when the
kube-apiserver manifest and ``admin.conf`` exist.

:depends: kubeadm (and, on the first control plane, kubectl) on the node,
    ``cryptography`` (the CA hash), the ``paas_topology`` module's Kubernetes views
:configuration: the ``paas`` pillar key (``kubernetes``, ``versions:kubernetes``)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import ssl
import tempfile
import urllib.request

import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "paas_kubeadm"

# A tmpfs on every systemd machine: a join's secrets never reach a disk.
RUNTIME_DIR = "/run"
ETCD_PREFLIGHT = "ExternalEtcdVersion"
TOKEN_DESCRIPTION = "paas: joins of one orchestration run, deleted when they are done"
CERTIFICATES_SECRET = ("kube-system", "kubeadm-certs")
# How much of kubeadm's error output a failure report keeps.
ERROR_LINES = 6
HTTP_TIMEOUT = 5
_TOKEN = re.compile(r"\b([a-z0-9]{6})\.([a-z0-9]{16})\b")
_TOKEN_ID = re.compile(r"^[a-z0-9]{6}$")
_CERTIFICATE_KEY = re.compile(r"^[a-f0-9]{64}$")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def __virtual__():
    if "paas_topology.kubernetes_node" not in __salt__:
        return (False, "paas_kubeadm: the paas_topology module's Kubernetes views are not loaded")
    for needed in ("paas_transfer.seal", "paas_kubeadm_config.upload_documents"):
        if needed not in __utils__:
            utils = needed.partition(".")[0]
            return (False, f"paas_kubeadm: the {utils} utils module is not synced")
    return __virtualname__


def _apiserver_manifest(node: dict) -> str:
    return os.path.join(node["manifests_dir"], "kube-apiserver.yaml")


def _node() -> dict:
    return __salt__["paas_topology.kubernetes_node"]()


def joined() -> bool:
    """
    Return whether this node has joined a cluster (or initialized one): its kubelet
    has a kubeconfig (``/etc/kubernetes/kubelet.conf``). Such a node is never joined
    again.

    CLI Example:

    .. code-block:: bash

        salt-call paas_kubeadm.joined
    """
    return os.path.isfile(_node()["kubelet_kubeconfig"])


def initialized() -> bool:
    """
    Return whether this node runs a control plane that kubeadm set up: the
    kube-apiserver's static pod manifest and ``/etc/kubernetes/admin.conf`` exist.

    CLI Example:

    .. code-block:: bash

        salt-call paas_kubeadm.initialized
    """
    node = _node()
    return os.path.isfile(_apiserver_manifest(node)) and os.path.isfile(node["admin_kubeconfig"])


# kubeadm, quietly.


def _kubeadm(*args: str) -> dict:
    return _tool("kubeadm", *args)


def _tool(tool: str, *args: str) -> dict:
    try:
        return __salt__["cmd.run_all"](
            [tool, *args],
            python_shell=False,
            output_loglevel="quiet",
            ignore_retcode=True,
        )
    except CommandExecutionError as err:
        raise CommandExecutionError(
            f"{__opts__['id']}: {tool} could not be run ({err}); is the kubernetes role "
            "applied (salt-call state.apply kubernetes)?"
        ) from err


def _redact(text: str, secrets: tuple = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    # A token kubeadm printed that this module did not know of (say, init's own).
    return _TOKEN.sub(r"\1.<redacted>", text)


def _kubeadm_error(result: dict, secrets: tuple = ()) -> str:
    """kubeadm's own words: the last lines of what it said on stderr (on stdout when
    stderr is empty), without its hint about --v=5."""
    output = result.get("stderr") or result.get("stdout") or ""
    lines = [
        line.strip()
        for line in output.splitlines()
        if line.strip() and not line.strip().startswith("To see the stack trace")
    ]
    said = "\n".join(lines[-ERROR_LINES:]) or "no output"
    return _redact(f"(exit code {result.get('retcode')}) {said}", secrets)


def _failure(what: str, result: dict, secrets: tuple = ()) -> str:
    return f"{__opts__['id']}: {what} failed {_kubeadm_error(result, secrets)}"


def _reset(message: str) -> CommandExecutionError:
    """Clean the node after a failed init or join, so that a re-run starts afresh; the
    error to raise says the node was cleaned, or that it could not be."""
    result = _kubeadm("reset", "-f")
    if result["retcode"] == 0:
        return CommandExecutionError(
            f"{message}\nThe node was cleaned with kubeadm reset -f; a re-run tries again."
        )
    return CommandExecutionError(
        f"{message}\nkubeadm reset -f failed too {_kubeadm_error(result)}; clean the node by "
        "hand before a re-run."
    )


def _last_line(output: str) -> str:
    lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# The external etcd's version, as kubeadm's ExternalEtcdVersion preflight reads it.


def _version(text: str) -> tuple[int, int, int] | None:
    found = _VERSION.match(text or "")
    return tuple(int(part) for part in found.groups()) if found else None


def _etcd_server_version(endpoint: str, etcd: dict) -> str:
    context = ssl.create_default_context(cafile=etcd["ca"])
    context.load_cert_chain(etcd["cert"], etcd["key"])
    url = f"{endpoint.rstrip('/')}/version"
    with urllib.request.urlopen(url, context=context, timeout=HTTP_TIMEOUT) as response:
        reply = json.loads(response.read())
    return str(reply.get("etcdserver", ""))


def etcd_version_check(reachable: bool = True) -> dict:
    """
    Check, before ``kubeadm init``, what kubeadm's ``ExternalEtcdVersion`` preflight
    checks: GET ``/version`` on every etcd endpoint of the cluster configuration with the
    kube-apiserver's etcd client certificate, and refuse an etcd older than the minimum
    this Kubernetes version's kubeadm accepts. The error names each endpoint, the
    version found, the minimum, the reason and the fix.

    Skipped only when the topology lists ``ExternalEtcdVersion`` in
    ``paas:kubernetes:ignore_preflight_errors`` (kubeadm init is then told to ignore it).

    reachable
        Require every endpoint to answer, as kubeadm does. Without it, endpoints that do
        not answer are listed under ``unreachable`` (a prediction before etcd runs).

    CLI Example:

    .. code-block:: bash

        salt-call paas_kubeadm.etcd_version_check
    """
    node = _node()
    minimum = node["min_etcd_version"]
    if ETCD_PREFLIGHT in node["ignore_preflight_errors"]:
        return {
            "checked": False,
            "minimum": minimum,
            "reason": f"paas:kubernetes:ignore_preflight_errors lists {ETCD_PREFLIGHT}",
        }
    versions, unreachable, too_old = {}, [], []
    for endpoint in node["etcd"]["endpoints"]:
        try:
            found = _etcd_server_version(endpoint, node["etcd"])
        except (OSError, ValueError) as err:
            unreachable.append(f"{endpoint}: {getattr(err, 'reason', err)}")
            continue
        versions[endpoint] = found
        parsed = _version(found)
        if parsed is None or parsed < _version(minimum):
            too_old.append(f"{endpoint} runs etcd {found or '(no version)'}")
    if too_old:
        raise CommandExecutionError(
            f"{node['id']}: {'; '.join(too_old)}, and kubeadm {node['version']} refuses an "
            f"external etcd older than {minimum} (its {ETCD_PREFLIGHT} preflight check, run "
            "by kubeadm init). Fix: run etcd from a release kubeadm accepts: set "
            f"paas:etcd:source: archive with paas:etcd:archive's version (>= {minimum}), url "
            "and sha256, and run salt-run state.orchestrate orch.etcd (the members move one "
            f"at a time). To go on with this etcd knowingly, list {ETCD_PREFLIGHT} in "
            "paas:kubernetes:ignore_preflight_errors."
        )
    if unreachable and reachable:
        raise CommandExecutionError(
            f"{node['id']}: the version of the external etcd could not be read (kubeadm "
            f"init's {ETCD_PREFLIGHT} check would fail the same way): {'; '.join(unreachable)}"
        )
    return {"checked": True, "minimum": minimum, "versions": versions, "unreachable": unreachable}


# kubeadm init, on the first control plane.


def _api_answers(endpoint: dict) -> bool:
    """Whether a Kubernetes API already answers at the cluster's endpoint. Only its
    existence is asked, anonymously, before this node has a CA to check it with."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = f"https://{endpoint['host']}:{endpoint['port']}/version"
    try:
        with urllib.request.urlopen(url, context=context, timeout=HTTP_TIMEOUT) as response:
            return "gitVersion" in json.loads(response.read())
    except (OSError, ValueError):
        return False


def init_refusal() -> str | None:
    """
    Return why ``kubeadm init`` must not run on this node, or None when it may: it is
    not the first control plane, it is initialized already, it holds a kubelet
    kubeconfig without a control plane (an init stopped half-way, or files removed from
    a working node, whose CA ``kubeadm reset`` would destroy), or a Kubernetes API
    already answers at the cluster's endpoint (an init here would start a second
    cluster on the same etcd).

    CLI Example:

    .. code-block:: bash

        salt-call paas_kubeadm.init_refusal
    """
    node = _node()
    name = node["id"]
    if not node["first"]:
        return (
            f"{name} is not the first control plane of the topology "
            f"({node['first_control_plane']}): only that one initializes the cluster"
        )
    if initialized():
        return f"{name} is initialized already: kubeadm init runs once"
    if joined():
        return (
            f"{name} holds {node['kubelet_kubeconfig']} but no control plane (no "
            f"{_apiserver_manifest(node)} or {node['admin_kubeconfig']}): a kubeadm init "
            "stopped half-way, or files were removed from a working node. kubeadm reset -f "
            "would delete its CA: if no cluster runs on it, run kubeadm reset -f on it and "
            "run again"
        )
    endpoint = node["endpoint"]
    if _api_answers(endpoint):
        return (
            f"a Kubernetes API already answers at {endpoint['host']}:{endpoint['port']}: "
            f"kubeadm init on {name} would start a second cluster on the same etcd. To "
            "replace the first control plane, put a running control plane first in the "
            "topology's nodes; this one then joins as a control plane"
        )
    return None


def init() -> dict:
    """
    Initialize the cluster on this node, the first control plane: the platform's checks
    (``init_refusal``, ``etcd_version_check``), then ``kubeadm init --config <file>``
    (with ``--ignore-preflight-errors=ExternalEtcdVersion`` only when the topology lists
    it; without ``--upload-certs``: each run of joins uploads for itself, ``credentials``).
    On failure the node is cleaned with ``kubeadm reset -f`` and the error names the node
    and kubeadm's message. kubeadm's output, which holds a bootstrap token, is never
    logged or returned; delete init's tokens afterwards (``tokens``, ``revoke``).

    CLI Example:

    .. code-block:: bash

        salt-call paas_kubeadm.init
    """
    refusal = init_refusal()
    if refusal:
        raise CommandExecutionError(refusal)
    node = _node()
    if not os.path.isfile(node["config_file"]):
        raise CommandExecutionError(
            f"{node['id']} has no kubeadm configuration ({node['config_file']}): apply the "
            "kubernetes role first (salt-call state.apply kubernetes)"
        )
    check = etcd_version_check()
    # No --upload-certs: the joins upload the certificates for their own run, without
    # this node's etcd client key (_upload_certificates).
    args = ["init", "--config", node["config_file"]]
    if not check["checked"]:
        args.append(f"--ignore-preflight-errors={ETCD_PREFLIGHT}")
    result = _kubeadm(*args)
    if result["retcode"] != 0:
        raise _reset(_failure("kubeadm init", result))
    return {"node": node["id"], "etcd": check}


# Bootstrap tokens, the certificate key and the CA hash, on the first control plane.


def renew_certificates() -> dict:
    """
    Renew kubeadm's certificates on this control plane with ``kubeadm certs renew all``
    (its local CAs sign them again, for the cluster's ``certificateValidityPeriod``;
    kubeadm skips what the node does not have, the external etcd's files among them),
    and return each certificate's serial before and after. The components that read them
    must restart after (the ``paas_control_plane.certificates_loaded`` state).

    CLI Example:

    .. code-block:: bash

        salt-call paas_kubeadm.renew_certificates
    """
    node = _node()
    if not initialized():
        raise CommandExecutionError(f"{node['id']} holds no control plane of kubeadm's")
    serials = __salt__["paas_control_plane.certificates"]
    before = {row["profile"]: row.get("serial") for row in serials()}
    result = _kubeadm("certs", "renew", "all")
    if result["retcode"] != 0:
        raise CommandExecutionError(_failure("kubeadm certs renew all", result))
    after = {row["profile"]: row.get("serial") for row in serials()}
    return {
        name: {"old": before.get(name), "new": serial}
        for name, serial in after.items()
        if serial != before.get(name)
    }


def _json_documents(text: str) -> list:
    """kubeadm token list -o json prints one JSON object per token, one after another."""
    decoder = json.JSONDecoder()
    documents, position = [], 0
    text = text or ""
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return documents
        document, position = decoder.raw_decode(text, position)
        documents.append(document)


def tokens() -> list[dict]:
    """
    Return the cluster's bootstrap tokens by id (never their secret half): id,
    description, expiry, usages.

    CLI Example:

    .. code-block:: bash

        salt-call paas_kubeadm.tokens
    """
    result = _kubeadm("token", "list", "-o", "json")
    if result["retcode"] != 0:
        raise CommandExecutionError(_failure("kubeadm token list", result))
    try:
        documents = _json_documents(result["stdout"])
    except ValueError as err:
        raise CommandExecutionError(
            f"{__opts__['id']}: kubeadm token list -o json printed no JSON ({err.msg})"
        ) from err
    found = []
    for document in documents:
        items = document.get("items", [document]) if isinstance(document, dict) else document
        for item in items:
            token = _TOKEN.search(str(item.get("token", "")))
            if token:
                found.append(
                    {
                        "id": token.group(1),
                        "description": item.get("description", ""),
                        "expires": item.get("expires"),
                        "usages": item.get("usages", []),
                    }
                )
    return found


def ca_certificate() -> str:
    """
    Return the cluster CA's certificate (PEM; public), ``/etc/kubernetes/pki/ca.crt``.

    CLI Example:

    .. code-block:: bash

        salt-call paas_kubeadm.ca_certificate
    """
    path = os.path.join(_node()["pki_dir"], "ca.crt")
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except OSError as err:
        raise CommandExecutionError(
            f"{__opts__['id']}: cannot read the cluster CA {path}: {err.strerror}"
        ) from err


def ca_hash() -> str:
    """
    Return the cluster CA's hash as a join pins it: ``sha256:`` and the hex SHA-256 of
    the CA certificate's DER SubjectPublicKeyInfo.

    CLI Example:

    .. code-block:: bash

        salt-call paas_kubeadm.ca_hash
    """
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    certificate = x509.load_pem_x509_certificate(ca_certificate().encode("ascii"))
    info = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"sha256:{hashlib.sha256(info).hexdigest()}"


def credentials(ttl_minutes: int = 15, control_plane: bool = False, recipients=None) -> dict:
    """
    Make what joins need, for one run only: a new bootstrap token living
    ``ttl_minutes``, the CA hash and, with ``control_plane``, a certificate key for the
    control-plane certificates uploaded (``kubeadm init phase upload-certs
    --upload-certs --config <file>``, the file naming the external etcd's CA but no client
    certificate or key: each control plane keeps its own, and this node's key never goes
    into the ``kube-system/kubeadm-certs`` Secret). Runs on the first control plane.
    Delete them with ``revoke`` when the joins are done.

    recipients
        The joining nodes, ``{minion id: its Salt public key (PEM)}``. The token and the
        certificate key leave this node only sealed to each of them (RSA-OAEP with the
        minion's own key pair): the master, its job cache, its event bus and
        every other minion see ciphertext that only that node's ``minion.pem`` opens.
        The answer: ``token_id`` and ``ca_hash`` (neither is secret), ``ttl_minutes``,
        and ``sealed`` ``{minion id: {token, certificate_key}}``.

    CLI Example:

    .. code-block:: bash

        salt-call paas_kubeadm.credentials 15 control_plane=True \
            recipients='{"worker1": "-----BEGIN PUBLIC KEY-----..."}'
    """
    if not recipients or not isinstance(recipients, dict):
        raise SaltInvocationError(
            "recipients must name the joining nodes with their Salt public keys: the "
            "credentials leave this node only sealed to them"
        )
    node = _node()
    if not initialized():
        raise CommandExecutionError(
            f"{node['id']} is not initialized: there is no cluster to join yet"
        )
    ttl = int(ttl_minutes)
    if ttl < 1:
        raise SaltInvocationError(f"ttl_minutes must be at least 1, not {ttl_minutes}")
    result = _kubeadm("token", "create", "--ttl", f"{ttl}m", "--description", TOKEN_DESCRIPTION)
    token = _TOKEN.fullmatch(_last_line(result["stdout"])) if result["retcode"] == 0 else None
    if token is None:
        raise CommandExecutionError(_failure("kubeadm token create", result))
    made = {"token_id": token.group(1), "ca_hash": None, "ttl_minutes": ttl, "sealed": {}}
    try:
        made["ca_hash"] = ca_hash()
        certificate_key = _upload_certificates(node, token.group(0)) if control_plane else None
        for recipient, public_key in recipients.items():
            made["sealed"][recipient] = {
                "token": _seal(public_key, token.group(0), recipient),
                "certificate_key": certificate_key
                and _seal(public_key, certificate_key, recipient),
            }
    except (CommandExecutionError, SaltInvocationError) as err:
        # Nothing half-made outlives a failed call.
        try:
            revoke(made["token_id"])
        except CommandExecutionError as cleanup:
            raise CommandExecutionError(
                f"{err}\nThe token {made['token_id']} made for it was not deleted: {cleanup}"
            ) from err
        raise
    return made


def _seal(public_key: str, secret: str, recipient: str) -> str:
    # Only that minion's private key opens it (the kubeadm.joined state does, on the node).
    try:
        return __utils__["paas_transfer.seal"](public_key, secret.encode(), recipient)
    except ValueError as err:
        raise SaltInvocationError(str(err)) from err


@contextlib.contextmanager
def _configuration_file(purpose: str, documents: list[dict]):
    """``documents`` in a 0600 file of a 0700 directory under ``RUNTIME_DIR``, for one
    kubeadm call; the directory is removed afterwards, whatever happened."""
    directory = tempfile.mkdtemp(prefix=f"paas-kubeadm-{purpose}-", dir=RUNTIME_DIR)
    try:
        path = os.path.join(directory, f"kubeadm-{purpose}.yaml")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            yaml.safe_dump_all(documents, handle, sort_keys=False)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _upload_certificates(node: dict, token: str) -> str:
    documents = __utils__["paas_kubeadm_config.upload_documents"](node)
    with _configuration_file("upload-certs", documents) as path:
        result = _kubeadm("init", "phase", "upload-certs", "--upload-certs", "--config", path)
    key = _last_line(result["stdout"])
    if result["retcode"] != 0 or not _CERTIFICATE_KEY.fullmatch(key):
        raise CommandExecutionError(
            _failure("kubeadm init phase upload-certs", result, (token.partition(".")[2], key))
        )
    return key


def revoke(*token_ids: str) -> dict:
    """
    Delete bootstrap tokens (by id) and the ``kube-system/kubeadm-certs`` Secret, so
    that neither a token nor the certificate key can serve a join any more; check that
    the tokens are gone. A token or Secret already gone is fine.

    CLI Example:

    .. code-block:: bash

        salt-call paas_kubeadm.revoke abcdef
    """
    node = _node()
    for token_id in token_ids:
        if not _TOKEN_ID.fullmatch(str(token_id)):
            raise SaltInvocationError(f"{token_id!r} is not a bootstrap token id ([a-z0-9]{{6}})")
    listed = {token["id"] for token in tokens()}
    for token_id in token_ids:
        if token_id in listed:
            result = _kubeadm("token", "delete", token_id)
            if result["retcode"] != 0:
                raise CommandExecutionError(_failure(f"kubeadm token delete {token_id}", result))
    left = sorted(set(token_ids) & {token["id"] for token in tokens()})
    if left:
        raise CommandExecutionError(f"{node['id']}: bootstrap tokens {', '.join(left)} remain")
    namespace, name = CERTIFICATES_SECRET
    result = _tool(
        "kubectl",
        "--kubeconfig",
        node["admin_kubeconfig"],
        "--namespace",
        namespace,
        "delete",
        "secret",
        name,
        "--ignore-not-found",
    )
    if result["retcode"] != 0:
        raise CommandExecutionError(
            _failure(f"kubectl delete of the {namespace}/{name} Secret", result)
        )
    # kubectl says "secret "kubeadm-certs" deleted", or nothing when there was none.
    secret = "deleted" if "deleted" in result["stdout"] else "absent"
    return {"tokens": list(token_ids), "kubeadm_certs_secret": secret}


# kubeadm join, on the other nodes.


def _join_configuration(node: dict, token: str, ca_hash: str, certificate_key: str | None):
    try:
        with open(node["config_file"], encoding="utf-8") as handle:
            documents = [doc for doc in yaml.safe_load_all(handle) if doc]
    except (OSError, yaml.YAMLError) as err:
        raise CommandExecutionError(
            f"{node['id']}: cannot read its kubeadm configuration {node['config_file']}: {err}"
        ) from err
    joins = [doc for doc in documents if doc.get("kind") == "JoinConfiguration"]
    if len(joins) != 1:
        raise CommandExecutionError(
            f"{node['id']}: {node['config_file']} holds {len(joins)} JoinConfiguration "
            "documents, not one"
        )
    discovery = joins[0].setdefault("discovery", {}).setdefault("bootstrapToken", {})
    discovery["token"] = token
    discovery["caCertHashes"] = [ca_hash]
    if certificate_key:
        joins[0].setdefault("controlPlane", {})["certificateKey"] = certificate_key
    return documents


def join(token: str, ca_hash: str, certificate_key: str | None = None) -> dict:
    """
    Join this node to the cluster with the run's credentials (the ``kubeadm.joined``
    state passes them; never give them on a command line): a 0600 copy of the node's
    kubeadm configuration with ``discovery.bootstrapToken.token``, ``caCertHashes`` and,
    on a control plane, ``controlPlane.certificateKey``, in a 0700 directory under
    ``/run``, checked by ``kubeadm config validate``, then ``kubeadm join --config``; the
    copy is always deleted. A failed join is reported with the node and kubeadm's
    message, and the node cleaned with ``kubeadm reset -f``. A joined node is refused.

    CLI Example:

    .. code-block:: bash

        salt-call state.apply kubernetes.join pillar='{"kubeadm_join": {...}}'
    """
    node = _node()
    name = node["id"]
    if joined():
        raise CommandExecutionError(
            f"{name} has joined already ({node['kubelet_kubeconfig']} exists): a node is never "
            "joined again"
        )
    control_plane = node["role"] == "control-plane"
    if control_plane and not certificate_key:
        raise SaltInvocationError(f"{name} is a control plane: its join needs the certificate key")
    if not control_plane and certificate_key:
        raise SaltInvocationError(f"{name} is a worker: it joins without the certificate key")
    # The token's id is public (the name of its Secret): only its secret half goes.
    secrets = (token.partition(".")[2], certificate_key)
    documents = _join_configuration(node, token, ca_hash, certificate_key)
    with _configuration_file("join", documents) as path:
        result = _kubeadm("config", "validate", "--config", path)
        if result["retcode"] != 0:
            raise CommandExecutionError(
                _failure("kubeadm config validate of its join configuration", result, secrets)
            )
        result = _kubeadm("join", "--config", path)
        if result["retcode"] != 0:
            raise _reset(_failure("kubeadm join", result, secrets))
    return {"node": name, "role": node["role"]}
