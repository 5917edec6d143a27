"""Certificates and HTTPS stand-ins on loopback, for tests that go through real TLS."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )


def authority(name: str) -> tuple:
    """A CA (ECDSA: quick to make): its certificate and key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        _builder(subject, subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(ca: tuple, name: str, ips: tuple[str, ...] = ()) -> tuple:
    """A certificate of ``ca`` for ``name`` (with IP SANs ``ips``) and its key."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = _builder(subject, ca_cert.subject, key.public_key())
    if ips:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def pem(cert) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def write(path: Path, cert, key=None) -> None:
    """``cert`` as PEM at ``path``, and ``key`` beside it (``.key``)."""
    path.write_text(pem(cert))
    if key is not None:
        path.with_suffix(".key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


class HttpsStandIn(http.server.ThreadingHTTPServer):
    """An HTTPS server on 127.0.0.1 (``port``, or any free one) answering GETs from
    ``routes`` (path -> (status, body)); client certificates of ``client_ca`` required
    when given. Call ``stop``."""

    def __init__(self, cert: Path, routes: dict, client_ca: Path | None = None, port: int = 0):
        super().__init__(("127.0.0.1", port), _Handler)
        self.routes = routes
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, cert.with_suffix(".key"))
        if client_ca is not None:
            context.load_verify_locations(client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status, body = self.server.routes.get(self.path, (404, "not found"))
        payload = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.send_response(status)
        kind = "application/json" if isinstance(body, dict) else "text/plain; charset=utf-8"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass
