"""
The cluster's CSR approver and signer, played by the apiserver double since no
kube-controller-manager runs in the lab: a kubelet client certificate request is approved
as pkg/controller/certificates/approver/sarapprove.go recognises and authorizes one (a
node's renewal of its own as selfnodeclient, a bootstrap as nodeclient) and signed by the
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


# pkg/apis/certificates/helpers.go: the usages a kubelet client CSR may ask for, with or
# without key encipherment (that one for an RSA key).
KUBELET_CLIENT_USAGES = (
    {"digital signature", "key encipherment", "client auth"},
    {"digital signature", "client auth"},
)


def node_client_request(csr: x509.CertificateSigningRequest, spec: dict) -> str | None:
    """The node's name if ``csr`` is a kubelet client certificate request as the approver
    recognises one (pkg/controller/certificates/approver/sarapprove.go isNodeClientCert,
    pkg/apis/certificates/helpers.go ValidateKubeletClientCSR): the kubelet client signer,
    O=system:nodes alone, CN=system:node:<name>, no SANs, exactly one of the two usage
    sets."""
    if spec.get("signerName") != "kubernetes.io/kube-apiserver-client-kubelet":
        return None
    organizations = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    common_names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return None
    except x509.ExtensionNotFound:
        pass
    if (
        organizations != ["system:nodes"]
        or len(common_names) != 1
        or not common_names[0].startswith("system:node:")
        or set(spec.get("usages") or []) not in KUBELET_CLIENT_USAGES
    ):
        return None
    return common_names[0]


def approval(csr: x509.CertificateSigningRequest, spec: dict, may) -> str | None:
    """sarapprove.go's handle: the recognizers in their order, selfnodeclient (a node's
    own client certificate, requested by the user the CSR names: its renewal) then
    nodeclient (any node's, as TLS bootstrap asks), each approved only when the requester
    may ``create`` ``certificatesigningrequests/<recognizer>`` (the SubjectAccessReview,
    answered by ``may(subresource)``); the approval's message, or None (left pending)."""
    common_name = node_client_request(csr, spec)
    if common_name is None:
        return None
    recognizers = [
        ("nodeclient", "Auto approving kubelet client certificate after SubjectAccessReview.")
    ]
    if spec.get("username") == common_name:
        recognizers.insert(
            0,
            (
                "selfnodeclient",
                "Auto approving self kubelet client certificate after SubjectAccessReview.",
            ),
        )
    for subresource, message in recognizers:
        if may(subresource):
            return message
    return None


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
