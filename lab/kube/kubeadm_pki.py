"""
The kubeadm double's cryptography: keys and certificates as kubeadm makes them, the
kubeconfig files, the copycerts encryption of the kubeadm-certs Secret, the bootstrap
signer's detached JWS and the CA public key pin.

Test double of the lab (never imported by product code). Each behaviour is copied from
the Kubernetes source named beside it. Needs python3-cryptography (Debian 13 ships 43.x,
so nothing newer is used) and python3-yaml.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# cmd/kubeadm/app/constants/constants.go
CERTIFICATE_KEY_SIZE = 32
CERTIFICATE_BACKDATE = datetime.timedelta(minutes=5)
DEFAULT_CERT_VALIDITY = datetime.timedelta(hours=8760)
DEFAULT_CA_VALIDITY = datetime.timedelta(hours=87600)
GCM_NONCE_SIZE = 12


class PKIError(Exception):
    """A key, certificate or encrypted blob that cannot be used; the message is kubeadm's."""


def generate_key(algorithm: str = "RSA-2048"):
    """A private key for kubeadm's encryptionAlgorithm (cmd/kubeadm/app/util/pkiutil)."""
    if algorithm == "ECDSA-P256":
        return ec.generate_private_key(ec.SECP256R1())
    bits = {"RSA-2048": 2048, "RSA-3072": 3072, "RSA-4096": 4096}[algorithm]
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_pem(key) -> bytes:
    """keyutil.MarshalPrivateKeyToPEM: PKCS#1 "RSA PRIVATE KEY" or SEC1 "EC PRIVATE KEY"."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def public_key_pem(key) -> bytes:
    """The PKIX "PUBLIC KEY" block kubeadm writes as sa.pub."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(data: bytes):
    return serialization.load_pem_private_key(data, password=None)


def load_cert(data: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(data)


def _name(common_name: str, organizations: list[str]) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_ca(common_name: str, key, validity: datetime.timedelta = DEFAULT_CA_VALIDITY):
    """pkiutil.NewCertificateAuthority: a self-signed CA, backdated as kubeadm does."""
    now = _now()
    subject = _name(common_name, [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CERTIFICATE_BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


@dataclass
class CertSpec:
    """What certs.go's KubeadmCert says about one certificate."""

    common_name: str
    organizations: list[str] = field(default_factory=list)
    server: bool = False
    client: bool = False
    dns_names: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)


def new_signed_cert(
    spec: CertSpec,
    key,
    ca_cert: x509.Certificate,
    ca_key,
    validity: datetime.timedelta = DEFAULT_CERT_VALIDITY,
) -> x509.Certificate:
    """pkiutil.NewSignedCert: a leaf certificate signed by the CA, never outliving it."""
    now = _now()
    not_after = min(now + validity, ca_cert.not_valid_after_utc)
    usages = []
    if spec.server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if spec.client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in spec.dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in spec.ips]
    return _signed_leaf(
        _name(spec.common_name, spec.organizations),
        key,
        (now - CERTIFICATE_BACKDATE, not_after),
        usages,
        alt_names,
        issuer=(ca_cert, ca_key, authority),
    )


def _signed_leaf(subject, key, validity, usages, alt_names, *, issuer) -> x509.Certificate:
    """What NewSignedCert writes into every leaf: not a CA, digital signature and key
    encipherment, the extended usages, the CA's key id and the alternative names."""
    ca_cert, ca_key, authority = issuer
    not_before, not_after = validity
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(authority, critical=False)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


@dataclass
class CertConfig:
    """pkiutil.CertConfig: certutil.Config (subject, SANs, extended usages) with its
    NotBefore and NotAfter, as certificate renewal fills it from the current certificate
    (phases/certs/renewal/manager.go, certToConfig)."""

    common_name: str
    organizations: list[str]
    dns_names: list[str]
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address]
    usages: list[x509.ObjectIdentifier]
    not_before: datetime.datetime
    not_after: datetime.datetime


def cert_config_of(
    cert: x509.Certificate, not_before: datetime.datetime, not_after: datetime.datetime
) -> CertConfig:
    """certToConfig: the common name, organizations, DNS and IP SANs and extended key
    usages of ``cert`` (nothing else of its subject or extensions is kept)."""
    subject = cert.subject
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = names.get_values_for_type(x509.DNSName)
        ips = names.get_values_for_type(x509.IPAddress)
    except x509.ExtensionNotFound:
        dns_names, ips = [], []
    try:
        usages = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        usages = []
    return CertConfig(
        common_name=next(
            (str(a.value) for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)), ""
        ),
        organizations=[
            str(a.value) for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        ],
        dns_names=dns_names,
        ips=ips,
        usages=usages,
        not_before=not_before,
        not_after=not_after,
    )


def new_cert_and_key(config: CertConfig, algorithm: str, ca_cert: x509.Certificate, ca_key):
    """pkiutil.NewCertAndKey: a new private key (never the old one) and NewSignedCert for
    it, with the config's NotBefore and NotAfter as given (NewSignedCert does not bound
    them by the CA's)."""
    if not config.usages:
        raise PKIError("must specify at least one ExtKeyUsage")
    if not config.common_name:
        raise PKIError("unable to sign certificate: must specify a CommonName")
    key = generate_key(algorithm)
    # RemoveDuplicateAltNames: DNS names as a sorted set, IPs deduplicated in order.
    dns_names = sorted(set(config.dns_names))
    ips = list(dict.fromkeys(config.ips))
    try:
        ca_key_id = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        authority = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_id)
    except x509.ExtensionNotFound:
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    alt_names += [x509.IPAddress(ip) for ip in ips]
    cert = _signed_leaf(
        _name(config.common_name, config.organizations),
        key,
        (config.not_before, config.not_after),
        config.usages,
        alt_names,
        issuer=(ca_cert, ca_key, authority),
    )
    return cert, key


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with the mode kubeadm uses (0600 keys and kubeconfigs, 0644 certs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def spki_hash(cert: x509.Certificate) -> str:
    """pubkeypin.Hash: sha256 of the DER SubjectPublicKeyInfo, "sha256:<hex>"."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def check_pins(pins: list[str], certs: list[x509.Certificate]) -> None:
    """pubkeypin.Set.Allow then CheckAny, with its errors."""
    allowed = set()
    for pin in pins:
        parts = pin.split(":")
        if len(parts) != 2:
            raise PKIError('invalid hash, expected "format:hex-value". Known format(s) are: sha256')
        form, value = parts
        if form.lower() != "sha256":
            raise PKIError(f'unknown hash format "{form}". Known format(s) are: sha256')
        if len(value) // 2 != 32:
            raise PKIError(
                f'invalid hash "{pin}", expected a 32 byte SHA-256 hash, '
                f"found {len(value) // 2} bytes"
            )
        try:
            bytes.fromhex(value)
        except ValueError as err:
            raise PKIError(f'invalid hash "{pin}", could not decode SHA-256 from hex') from err
        allowed.add(value.lower())
    hashes_seen = []
    for cert in certs:
        actual = spki_hash(cert)
        if actual.split(":", 1)[1] in allowed:
            return
        hashes_seen.append(actual)
    raise PKIError(f'none of the public keys "{":".join(hashes_seen)}" are pinned')


def parse_pem_certs(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


# cmd/kubeadm/app/phases/copycerts/copycerts.go and cmd/kubeadm/app/util/crypto/crypto.go:
# each Secret value is AES-GCM(key) with the random nonce prepended.


def new_certificate_key() -> str:
    """copycerts.CreateCertificateKey: 32 random bytes, hex encoded."""
    return secrets.token_bytes(CERTIFICATE_KEY_SIZE).hex()


def decode_certificate_key(key: str) -> bytes:
    try:
        return bytes.fromhex(key)
    except ValueError as err:
        raise PKIError(
            f"error decoding certificate key: encoding/hex: invalid byte in {key!r}"
        ) from err


def encrypt_bytes(data: bytes, key: bytes) -> bytes:
    """crypto.EncryptBytes: gcm.Seal(nonce, nonce, data, nil)."""
    nonce = secrets.token_bytes(GCM_NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, data, None)


def decrypt_bytes(data: bytes, key: bytes) -> bytes:
    """crypto.DecryptBytes, failing with Go's error words."""
    if len(data) < GCM_NONCE_SIZE:
        raise PKIError("size of data is less than the nonce")
    try:
        return AESGCM(key).decrypt(data[:GCM_NONCE_SIZE], data[GCM_NONCE_SIZE:], None)
    except Exception as err:
        raise PKIError("cipher: message authentication failed") from err


# k8s.io/cluster-bootstrap/token/jws: the bootstrap signer's detached HS256 JWS over the
# cluster-info kubeconfig, keyed by the token secret. go-jose marshals the protected
# header from a map, so its keys are sorted.


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def detached_jws(content: str, token_id: str, token_secret: str) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    payload = _b64url(content.encode())
    signature = hmac.new(
        token_secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256
    ).digest()
    return f"{header}..{_b64url(signature)}"


def detached_jws_is_valid(token: str, content: str, token_id: str, token_secret: str) -> bool:
    return hmac.compare_digest(token, detached_jws(content, token_id, token_secret))


# Kubeconfig files: clientcmd's layout, as kubeadm's kubeconfig phase writes them.


def kubeconfig(
    server: str,
    ca_pem: bytes,
    user: str,
    *,
    cluster_name: str = "kubernetes",
    client_cert_pem: bytes | None = None,
    client_key_pem: bytes | None = None,
    token: str | None = None,
) -> str:
    credentials: dict = {}
    if client_cert_pem is not None:
        credentials["client-certificate-data"] = base64.b64encode(client_cert_pem).decode()
        credentials["client-key-data"] = base64.b64encode(client_key_pem).decode()
    if token is not None:
        credentials["token"] = token
    context = f"{user}@{cluster_name}"
    document = {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    "server": server,
                },
                "name": cluster_name,
            }
        ],
        "contexts": [{"context": {"cluster": cluster_name, "user": user}, "name": context}],
        "current-context": context,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user, "user": credentials}],
    }
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=False)


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    """The kubeconfig kubeadm's clusterinfo phase puts in kube-public/cluster-info."""
    document = {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    "server": server,
                },
                "name": "",
            }
        ],
        "contexts": None,
        "current-context": "",
        "kind": "Config",
        "preferences": {},
        "users": None,
    }
    return yaml.safe_dump(document, default_flow_style=False, sort_keys=False)
