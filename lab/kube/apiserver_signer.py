"""
The cluster's CSR approver and signer, played by the apiserver double since no
kube-controller-manager runs in the lab: a kubelet client certificate request is approved
as pkg/controller/certificates/approver/sarapprove.go recognises one and signed by the
cluster CA as pkg/controller/certificates/signer/signer.go signs.

Part of the lab's kube-apiserver double (kube_apiserver.py); never imported by product code.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# --cluster-signing-duration's default (cmd/kube-controller-manager/app/options).
SIGNING_DURATION = datetime.timedelta(days=365)


def _usages(names: list[str]) -> tuple[x509.KeyUsage, list]:
    usage = {name: name in names for name in ("digital signature", "key encipherment")}
    key_usage = x509.KeyUsage(
        digital_signature=usage["digital signature"],
        content_commitment=False,
        key_encipherment=usage["key encipherment"],
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
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
