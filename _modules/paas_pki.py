"""
The platform's PKI: certificate profiles derived from the topology, signing on the CA
host, and the checks etcd and kube-apiserver need.

Salt's ``x509_v2`` module does the cryptography (keys, CSRs, signing); this module adds
what it lacks. Each node's profiles (etcd server, peer and health-check client, the
apiserver's etcd client, the admin client) follow from its roles. A node makes its key and
CSR locally and sends only the CSR, over the master's peer interface, to ``paas_pki.sign``
on the CA minion (the master's own minion), which refuses anything the topology does not
grant the requesting minion and signs the rest with the profile's exact names and usages.
Private keys never leave the node that made them.

:depends: ``cryptography`` (through ``x509_v2``); the ``paas_topology`` module
:configuration: ``paas:pki`` in the pillar (``pillar.example``); on the master,
    ``peer: {".*": ["paas_pki.sign"]}`` (``etc/salt/master``)
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import socket
import ssl
import tempfile

import salt.utils.files
import salt.utils.user
from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    import salt.utils.x509
    from cryptography.hazmat.primitives.asymmetric import ec

    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

log = logging.getLogger(__name__)

__virtualname__ = "paas_pki"

KEY_USAGE_CA = "critical, keyCertSign, cRLSign"


def __virtual__():
    if not HAS_CRYPTOGRAPHY or "x509.create_certificate" not in __salt__:
        return (False, "paas_pki: Salt's x509_v2 module (cryptography) is not available")
    if "paas_topology.get" not in __salt__ or "paas_topology.node" not in __utils__:
        return (False, "paas_pki: the paas_topology modules are not synced")
    return __virtualname__


def profiles(node_id: str | None = None) -> list[str]:
    """
    Return the names of the certificate profiles a node gets from its roles.

    The master's own minion (``paas:master:id``) holds the CA and gets the admin client.

    CLI Example:

    .. code-block:: bash

        salt-call paas_pki.profiles
        salt-call paas_pki.profiles etcd1
    """
    return __utils__["paas_topology.certificate_profiles"](
        __salt__["paas_topology.get"](), node_id or __opts__["id"]
    )


def holders() -> list[str]:
    """
    Return the minions that hold certificates, in topology order, tolerating a malformed
    topology like ``paas_topology.node_ids`` (orchestrations target with it while they
    render, before their first step validates the topology).

    CLI Example:

    .. code-block:: bash

        salt-run salt.cmd paas_pki.holders
    """
    roles = set(__utils__["paas_topology.certificate_profile_roles"]().values())
    ids = __salt__["paas_topology.node_ids"]()
    holding = [
        node
        for node in ids
        if any(node in __salt__["paas_topology.node_ids"](role) for role in roles)
    ]
    if "master" in roles:
        holding.append(__salt__["paas_topology.master_id"]())
    return holding


def profile(name: str, node_id: str | None = None) -> dict:
    """
    Return what a node's certificate of profile ``name`` must be: subject, names,
    usages, lifetime, file paths and owner (the topology's PKI view).

    CLI Example:

    .. code-block:: bash

        salt-call paas_pki.profile etcd-server
        salt-call paas_pki.profile etcd-peer node_id=etcd2
    """
    try:
        return __utils__["paas_topology.certificate_profile"](
            __salt__["paas_topology.get"](), node_id or __opts__["id"], name
        )
    except ValueError as error:
        raise SaltInvocationError(str(error)) from error


def ca_certificate() -> str | None:
    """
    Return the CA certificate (PEM) when this minion holds the CA, else ``None``.

    Nodes fetch it through the master's peer interface to trust the current CA.

    CLI Example:

    .. code-block:: bash

        salt-call paas_pki.ca_certificate
    """
    path = os.path.join(_ca_dir(), "ca.crt")
    if not os.path.isfile(path):
        return None
    with salt.utils.files.fopen(path) as handle:
        return handle.read()


def create_ca() -> dict:
    """
    Create the etcd CA on this minion (the master's): a key readable by root only and a
    self-signed certificate. Refuses when a CA exists, so a CA is never replaced by
    accident.

    CLI Example:

    .. code-block:: bash

        salt-call paas_pki.create_ca
    """
    topology = __salt__["paas_topology.get"]()
    if __opts__["id"] != topology["master"]["id"]:
        raise CommandExecutionError(
            f"the CA lives on the master's minion {topology['master']['id']}, "
            f"not on {__opts__['id']}"
        )
    ca_dir = _ca_dir()
    key_path = os.path.join(ca_dir, "ca.key")
    if os.path.exists(key_path):
        raise CommandExecutionError(f"a CA exists already in {ca_dir}; it is never replaced")
    pki = topology["pki"]
    os.makedirs(os.path.join(ca_dir, "issued"), mode=0o700, exist_ok=True)
    os.chmod(ca_dir, 0o700)
    key = __salt__["x509.create_private_key"](**_key_args(pki["key_type"]))
    _write(key_path, key, mode=0o400, owner="root")
    certificate = __salt__["x509.create_certificate"](
        signing_private_key=key_path,
        CN=f"{topology['cluster']['name']} etcd CA",
        basicConstraints="critical, CA:TRUE, pathlen:0",
        keyUsage=KEY_USAGE_CA,
        subjectKeyIdentifier="hash",
        days_valid=pki["ca_days"],
    )
    _write(os.path.join(ca_dir, "ca.crt"), certificate, mode=0o644, owner="root")
    return _summary(certificate)


def sign(csr: str, profile_name: str, **kwargs) -> dict:
    """
    Sign a node's CSR with the CA, as the topology allows for the requesting minion.

    Called by nodes through the master's peer interface; the master tells which minion
    asks. A request for a profile the node's roles do not have, for names that are not
    the node's own, or for a CA certificate, is refused with the reason.
    Returns ``{"certificate": PEM, "ca": PEM}`` or ``{"error": reason}``.

    CLI Example:

    .. code-block:: bash

        salt-call publish.publish paas-master paas_pki.sign arg='["<csr>", "etcd-server"]'
    """
    requester = kwargs.get("__pub_id")
    if not requester:
        return {
            "error": "the requesting minion is unknown: ask through the master's peer interface"
        }
    try:
        signed = _sign(csr, profile_name, requester)
    except (CommandExecutionError, SaltInvocationError) as err:
        log.warning("paas_pki: refused %s for %s: %s", profile_name, requester, err)
        return {"error": f"refused {profile_name} for {requester}: {err}"}
    return {"certificate": signed, "ca": ca_certificate()}


def _sign(csr: str, profile_name: str, requester: str) -> str:
    ca_dir = _ca_dir()
    if ca_certificate() is None:
        raise CommandExecutionError(f"{__opts__['id']} holds no CA (no {ca_dir}/ca.crt)")
    if profile_name not in __utils__["paas_topology.certificate_profile_roles"]():
        raise SaltInvocationError(
            f"{profile_name!r} is not a profile a node may ask for (a CA certificate never is)"
        )
    expected = profile(profile_name, requester)
    request = __salt__["x509.read_csr"](csr)
    extensions = request.get("extensions", {})
    if extensions.get("basicConstraints", {}).get("ca"):
        raise SaltInvocationError("the CSR asks for a CA certificate, which no node may have")
    asked = set(extensions.get("subjectAltName", {}).get("value", []))
    foreign = sorted(asked - set(expected["subjectAltName"]))
    if foreign:
        raise SaltInvocationError(
            f"the CSR asks for names that are not {requester}'s: {', '.join(foreign)}"
        )
    common_name = request["subject"].get("CN")
    if common_name != expected["CN"]:
        raise SaltInvocationError(
            f"the CSR's subject CN={common_name} is not {expected['CN']}, the profile's"
        )
    ca_cert = __salt__["x509.read_certificate"](os.path.join(ca_dir, "ca.crt"))
    not_after = datetime.datetime.strptime(ca_cert["not_after"], "%Y-%m-%d %H:%M:%S")
    if not_after <= _now():
        raise CommandExecutionError(f"the CA certificate expired on {ca_cert['not_after']}")
    # A profile without names (the clients) gets none: any the CSR asked for were refused.
    names = _names_argument(expected)
    certificate = __salt__["x509.create_certificate"](
        signing_private_key=os.path.join(ca_dir, "ca.key"),
        signing_cert=os.path.join(ca_dir, "ca.crt"),
        csr=csr,
        CN=expected["CN"],
        keyUsage=expected["keyUsage"],
        extendedKeyUsage=expected["extendedKeyUsage"],
        basicConstraints="critical, CA:FALSE",
        authorityKeyIdentifier="keyid:always",
        days_valid=expected["days_valid"],
        **names,
    )
    summary = _summary(certificate)
    record = {"node": requester, "profile": profile_name, **summary}
    _write(
        os.path.join(ca_dir, "issued", summary["serial"].replace(":", "") + ".json"),
        json.dumps(record, indent=2, sort_keys=True),
        mode=0o600,
        owner="root",
    )
    return certificate


def csr(profile_name: str) -> str:
    """
    Return a CSR for one of this node's profiles, making the profile's private key first
    if there is none (0600, owned by the service's user). The key never leaves the node.

    CLI Example:

    .. code-block:: bash

        salt-call paas_pki.csr etcd-peer
    """
    wanted = profile(profile_name)
    if not _key_fits(wanted):
        key = __salt__["x509.create_private_key"](**_key_args(wanted["key_type"]))
        _write(wanted["key"], key, mode=0o600, owner=wanted["owner"])
    return __salt__["x509.create_csr"](
        private_key=wanted["key"], CN=wanted["CN"], **_names_argument(wanted)
    )


def install(profile_name: str, certificate: str, ca: str) -> dict:
    """
    Install a signed certificate and the CA certificate for one of this node's profiles,
    after checking that it matches the node's key and the profile. Files are replaced
    atomically.

    CLI Example:

    .. code-block:: bash

        salt-call paas_pki.install etcd-peer certificate="$(cat peer.crt)" ca="$(cat ca.crt)"
    """
    wanted = profile(profile_name)
    if not __salt__["x509.verify_private_key"](wanted["key"], certificate):
        raise CommandExecutionError(
            f"the certificate for {profile_name} does not match {wanted['key']}"
        )
    problems = _problems(wanted, certificate, ca)
    if problems:
        raise CommandExecutionError(
            f"the certificate for {profile_name} is not what the profile needs: "
            + "; ".join(problems)
        )
    _write(wanted["ca"], ca, mode=0o644, owner="root")
    _write(wanted["cert"], certificate, mode=0o644, owner=wanted["owner"])
    return _summary(certificate)


def request(profile_name: str) -> dict:
    """
    Get one of this node's certificates from the CA: a new CSR from the node's key, signed
    on the master's minion through the peer interface, then installed.

    CLI Example:

    .. code-block:: bash

        salt-call paas_pki.request etcd-server
    """
    ca_id = __salt__["paas_topology.get"]()["master"]["id"]
    signing_request = csr(profile_name)
    replies = __salt__["publish.publish"](
        ca_id, "paas_pki.sign", arg=[signing_request, profile_name], timeout=60
    )
    reply = replies.get(ca_id) if isinstance(replies, dict) else None
    if not isinstance(reply, dict):
        raise CommandExecutionError(
            f"the CA minion {ca_id} did not answer the signing request "
            f"(is it up, and does the master's peer config allow paas_pki.sign?): {reply!r}"
        )
    if "error" in reply:
        raise CommandExecutionError(reply["error"])
    return install(profile_name, reply["certificate"], reply["ca"])


def check(profile_name: str, ca: str | None = None) -> list[str]:
    """
    Return what is wrong with this node's certificate of a profile (an empty list when
    nothing is): missing files, a key that does not match, another CA, names, usages,
    expiry.

    ca
        The CA certificate (PEM) to check against; the node's copy by default.

    CLI Example:

    .. code-block:: bash

        salt-call paas_pki.check etcd-server
    """
    wanted = profile(profile_name)
    for path in (wanted["cert"], wanted["key"], wanted["ca"]):
        if not os.path.isfile(path):
            return [f"{path} is missing"]
    if ca is None:
        with salt.utils.files.fopen(wanted["ca"]) as handle:
            ca = handle.read()
    with salt.utils.files.fopen(wanted["cert"]) as handle:
        certificate = handle.read()
    problems = _problems(wanted, certificate, ca)
    if not __salt__["x509.verify_private_key"](wanted["key"], certificate):
        problems.append(f"{wanted['cert']} does not match the key {wanted['key']}")
    return problems


def certificates() -> list[dict]:
    """
    Return the inventory of this node's certificates: profile, serial, names, expiry,
    days left, whether it is due for renewal (``renewal_due``) and problems.

    CLI Example:

    .. code-block:: bash

        salt-call paas_pki.certificates
    """
    inventory = []
    for name in profiles():
        wanted = profile(name)
        entry = {"node": __opts__["id"], "profile": name, "path": wanted["cert"]}
        if os.path.isfile(wanted["cert"]):
            entry.update(_summary(__salt__["x509.read_certificate"](wanted["cert"])))
            entry["renewal_due"] = _due(entry["days_left"], wanted["renew_days"])
        entry["problems"] = check(name)
        inventory.append(entry)
    return inventory


def serves(profile_name: str, address: str, port: int, client: str) -> bool | None:
    """
    Whether the TLS server at ``address:port`` presents this node's certificate of
    ``profile_name`` as it is on disk now; None when nothing listens there. The handshake
    uses this node's ``client`` certificate (etcd asks every client for one) and checks
    the server against the etcd CA.

    CLI Example:

    .. code-block:: bash

        salt-call paas_pki.serves etcd-server 198.18.1.21 2379 etcd-healthcheck-client
    """
    wanted, credentials = profile(profile_name), profile(client)
    with salt.utils.files.fopen(wanted["cert"]) as handle:
        on_disk = ssl.PEM_cert_to_DER_cert(handle.read())
    context = ssl.create_default_context(cafile=credentials["ca"])
    # The server is checked against the CA; its names are the profile's, not the address.
    context.check_hostname = False
    context.load_cert_chain(credentials["cert"], credentials["key"])
    try:
        with (
            socket.create_connection((address, int(port)), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            presented = tls.getpeercert(binary_form=True)
    except ConnectionRefusedError:
        return None
    except (OSError, ssl.SSLError) as err:
        raise CommandExecutionError(
            f"{__opts__['id']}: no TLS handshake with {address}:{port}: {err}"
        ) from err
    return presented == on_disk


def renewal_due(profile_name: str) -> bool:
    """
    Whether this node's certificate of a profile is inside its renewal window.

    CLI Example:

    .. code-block:: bash

        salt-call paas_pki.renewal_due etcd-server
    """
    wanted = profile(profile_name)
    if not os.path.isfile(wanted["cert"]):
        return True
    days_left = _summary(__salt__["x509.read_certificate"](wanted["cert"]))["days_left"]
    return _due(days_left, wanted["renew_days"])


def _due(days_left: int, renew_days: int) -> bool:
    return days_left <= renew_days


def _problems(wanted: dict, certificate: str, ca: str) -> list[str]:
    problems = []
    if not __salt__["x509.verify_signature"](certificate, ca):
        problems.append("it is not signed by the platform's CA")
    details = __salt__["x509.read_certificate"](certificate)
    extensions = details["extensions"]
    if details["subject"].get("CN") != wanted["CN"]:
        problems.append(f"subject CN is {details['subject'].get('CN')}, not {wanted['CN']}")
    names = extensions.get("subjectAltName", {}).get("value", [])
    if sorted(names) != sorted(wanted["subjectAltName"]):
        problems.append(f"names are {names}, not {wanted['subjectAltName']}")
    usage = extensions.get("keyUsage", {})
    for bit in wanted["keyUsage"].replace("critical,", "").replace(" ", "").split(","):
        if not usage.get(bit):
            problems.append(f"keyUsage lacks {bit}")
    extended = sorted(extensions.get("extendedKeyUsage", {}).get("value", []))
    if extended != sorted(part.strip() for part in wanted["extendedKeyUsage"].split(",")):
        problems.append(f"extendedKeyUsage is {extended}, not {wanted['extendedKeyUsage']}")
    if extensions.get("basicConstraints", {}).get("ca"):
        problems.append("it is a CA certificate")
    if _summary(details)["days_left"] < 0:
        problems.append(f"it expired on {details['not_after']}")
    return problems


def _summary(certificate) -> dict:
    details = (
        certificate
        if isinstance(certificate, dict)
        else __salt__["x509.read_certificate"](certificate)
    )
    not_after = datetime.datetime.strptime(details["not_after"], "%Y-%m-%d %H:%M:%S")
    days_left = (not_after - _now()).days
    return {
        "serial": details["serial_number"],
        "subject": details["subject_str"],
        "names": details["extensions"].get("subjectAltName", {}).get("value", []),
        "not_after": details["not_after"],
        "days_left": days_left,
    }


def _now() -> datetime.datetime:
    # x509_v2 reports times as naive UTC.
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _key_fits(wanted: dict) -> bool:
    """Whether the profile's key exists and is of the topology's key type."""
    if not os.path.isfile(wanted["key"]):
        return False
    key = salt.utils.x509.load_privkey(wanted["key"])
    return isinstance(key, ec.EllipticCurvePrivateKey) == (wanted["key_type"] == "ec")


def _names_argument(wanted: dict) -> dict:
    return (
        {"subjectAltName": ", ".join(wanted["subjectAltName"])} if wanted["subjectAltName"] else {}
    )


def _key_args(key_type: str) -> dict:
    return {"algo": "ec", "keysize": 256} if key_type == "ec" else {"algo": "rsa", "keysize": 2048}


def _write(path: str, contents: str, mode: int, owner: str) -> None:
    """Write a file atomically with its mode and owner set before it is in place."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    uid = salt.utils.user.get_uid(owner)
    if uid is None:
        raise CommandExecutionError(f"cannot give {path} to {owner}: no such user")
    # mkstemp creates the file 0600, so a key is never readable by others, not even
    # for a moment; the mode and owner are set before the file takes the final name.
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(descriptor, "w") as handle:
            os.fchmod(handle.fileno(), mode)
            os.fchown(handle.fileno(), uid, 0)
            handle.write(contents)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _ca_dir() -> str:
    return __salt__["paas_topology.get"]()["pki"]["ca_dir"]
