"""
``paas_pki.serves`` (``_modules/paas_pki.py``): whether a TLS server presents this node's
certificate of a profile as it is on disk, through a real handshake with stand-in
listeners on loopback that, like etcd, ask every client for a certificate of the etcd CA.
The profiles' files (``paas_pki.profile``) are the test's.

True for the certificate on disk, False for another one of the same CA (the one etcd
loaded before a renewal), None when nothing listens, and an error naming the address
when there is no handshake: a server of another CA, one that speaks no TLS, one that
refuses this node's client certificate.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path

import pytest
from salt.exceptions import CommandExecutionError

from tests import tls


class Listener:
    """A TLS server on 127.0.0.1 presenting ``cert`` and requiring a client certificate of
    ``client_ca`` (``tls=False``: one that accepts and closes, speaking no TLS); each
    client it accepted is in ``clients`` (its certificate's common name)."""

    def __init__(
        self,
        cert: Path | None,
        client_ca: Path | None,
        maximum: ssl.TLSVersion | None = None,
    ):
        self.context = None
        if cert is not None:
            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.context.load_cert_chain(cert, cert.with_suffix(".key"))
            self.context.load_verify_locations(client_ca)
            self.context.verify_mode = ssl.CERT_REQUIRED
            # No TLS 1.3 session tickets after the handshake, to a client that hung up.
            self.context.num_tickets = 0
            if maximum is not None:
                self.context.maximum_version = maximum
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.socket.settimeout(0.05)
        self.port = self.socket.getsockname()[1]
        self.clients: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            with connection:
                if self.context is None:
                    continue
                connection.settimeout(2)
                with (
                    contextlib.suppress(OSError),
                    self.context.wrap_socket(connection, server_side=True) as session,
                ):
                    subject = dict(item[0] for item in session.getpeercert()["subject"])
                    self.clients.append(subject["commonName"])
                    # Until the client hangs up.
                    session.recv(1)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.socket.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """etcd1's files as paas_pki keeps them: the etcd CA, its server certificate on disk
    and the one it had before (both of the etcd CA), its health-check client certificate;
    and a stranger's CA with a server and a client certificate of it."""
    directory = tmp_path_factory.mktemp("pki")
    ca = tls.authority("etcd-ca")
    tls.write(directory / "etcd-ca.crt", ca[0])
    tls.write(directory / "etcd-server.crt", *tls.issue(ca, "etcd1", ("127.0.0.1",)))
    tls.write(directory / "etcd-server-before.crt", *tls.issue(ca, "etcd1", ("127.0.0.1",)))
    tls.write(directory / "etcd-healthcheck-client.crt", *tls.issue(ca, "etcd1-healthcheck"))
    stranger = tls.authority("another-ca")
    tls.write(directory / "another-ca.crt", stranger[0])
    tls.write(directory / "stranger.crt", *tls.issue(stranger, "etcd1", ("127.0.0.1",)))
    tls.write(directory / "stranger-client.crt", *tls.issue(stranger, "etcd1-healthcheck"))
    return directory


@pytest.fixture(scope="module")
def pki_module(import_repo_module):
    return import_repo_module("_modules/paas_pki.py", "paas_pki_serves_module")


@pytest.fixture
def profiles(pki) -> dict:
    """What paas_pki.profile answers on etcd1, by profile: its files."""
    return {
        name: {
            "name": name,
            "cert": str(pki / f"{name}.crt"),
            "key": str(pki / f"{name}.key"),
            "ca": str(pki / "etcd-ca.crt"),
        }
        for name in ("etcd-server", "etcd-healthcheck-client")
    }


@pytest.fixture
def configure_loader_modules(pki_module, profiles, monkeypatch):
    monkeypatch.setattr(pki_module, "profile", lambda name, node_id=None: profiles[name])
    return {pki_module: {"__opts__": {"id": "etcd1"}, "__salt__": {}, "__utils__": {}}}


@pytest.fixture
def listeners():
    """Start listeners for one test (``listeners(cert, client_ca, ...)``); all stopped
    after it."""
    started = []

    def start(*args, **kwargs) -> Listener:
        listener = Listener(*args, **kwargs)
        started.append(listener)
        return listener

    yield start
    for listener in started:
        listener.stop()


def _serves(pki_module, port: int):
    return pki_module.serves("etcd-server", "127.0.0.1", port, "etcd-healthcheck-client")


@pytest.mark.parametrize("maximum", [None, ssl.TLSVersion.TLSv1_2], ids=["tls1.3", "tls1.2"])
def test_a_server_presenting_the_certificate_on_disk_serves_it(pki_module, pki, listeners, maximum):
    listener = listeners(pki / "etcd-server.crt", pki / "etcd-ca.crt", maximum)

    assert _serves(pki_module, listener.port) is True
    listener.stop()
    assert listener.clients == ["etcd1-healthcheck"]


def test_a_server_presenting_another_certificate_of_the_ca_does_not(pki_module, pki, listeners):
    listener = listeners(pki / "etcd-server-before.crt", pki / "etcd-ca.crt")

    assert _serves(pki_module, listener.port) is False


def test_nothing_listening_is_none(pki_module):
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]

    assert _serves(pki_module, port) is None


def test_a_server_of_another_ca_is_no_handshake(pki_module, pki, listeners):
    listener = listeners(pki / "stranger.crt", pki / "etcd-ca.crt")

    with pytest.raises(CommandExecutionError) as refused:
        _serves(pki_module, listener.port)

    message = str(refused.value)
    assert message.startswith(f"etcd1: no TLS handshake with 127.0.0.1:{listener.port}: ")
    assert "certificate verify failed" in message


def test_a_server_that_speaks_no_tls_is_no_handshake(pki_module, listeners):
    listener = listeners(None, None)

    with pytest.raises(
        CommandExecutionError, match=f"no TLS handshake with 127.0.0.1:{listener.port}"
    ):
        _serves(pki_module, listener.port)


def test_a_server_that_refuses_this_nodes_client_certificate_is_no_handshake(
    pki_module, pki, listeners
):
    # TLS 1.2: the server's refusal of the client certificate ends the handshake itself.
    listener = listeners(pki / "etcd-server.crt", pki / "another-ca.crt", ssl.TLSVersion.TLSv1_2)

    with pytest.raises(
        CommandExecutionError, match=f"no TLS handshake with 127.0.0.1:{listener.port}"
    ):
        _serves(pki_module, listener.port)
    assert listener.clients == []


def test_the_handshake_presents_the_client_profiles_certificate(
    pki_module, pki, profiles, listeners
):
    listener = listeners(pki / "etcd-server.crt", pki / "etcd-ca.crt", ssl.TLSVersion.TLSv1_2)
    profiles["etcd-healthcheck-client"].update(
        cert=str(pki / "stranger-client.crt"), key=str(pki / "stranger-client.key")
    )

    with pytest.raises(CommandExecutionError):
        _serves(pki_module, listener.port)
