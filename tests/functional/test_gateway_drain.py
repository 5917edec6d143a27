"""
``paas_gateway.server_state`` against a real haproxy (the host's, in the foreground, on
loopback, with the admin socket ``salt/gateway`` gives it): a drained server gets no new
connection while its checks go on, ``ready`` puts it back, and what haproxy does not
have is refused before anything is sent.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from salt.exceptions import CommandExecutionError

SERVERS = ("cp1", "cp2")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _naming_server(name: str) -> Iterator[int]:
    """A TCP server on loopback that says its name to whoever connects: a backend."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(name.encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A real haproxy balancing ``kube-apiserver`` over two naming servers: its admin
    socket and its frontend's port. Stopped by its PID."""
    sock = tmp_path / "haproxy.sock"
    front = _free_port()
    with _naming_server("cp1") as one, _naming_server("cp2") as two:
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            f"""global
    stats socket {sock} mode 600 level admin
defaults
    mode tcp
    timeout connect 3s
    timeout client 10s
    timeout server 10s
    default-server inter 200ms fastinter 200ms downinter 200ms fall 3 rise 2
listen kube-apiserver
    bind 127.0.0.1:{front}
    balance roundrobin
    server cp1 127.0.0.1:{one} check
    server cp2 127.0.0.1:{two} check
""",
            encoding="utf-8",
        )
        process = subprocess.Popen(["haproxy", "-db", "-f", str(config)])
        try:
            deadline = time.monotonic() + 20
            while not sock.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sock.exists(), "haproxy did not open its admin socket"
            yield str(sock), front
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def gateway(import_repo_module, haproxy):
    module = import_repo_module("_modules/paas_gateway.py", "paas_gateway_drain_module")
    module.__salt__ = {"paas_topology.gateway": lambda: {"haproxy_socket": haproxy[0]}}
    return module


def _status(gateway, server: str) -> str:
    return next(row["status"] for row in gateway.backends() if row["server"] == server)


def _until_up(gateway) -> None:
    deadline = time.monotonic() + 20
    while not all(_status(gateway, server) == "UP" for server in SERVERS):
        assert time.monotonic() < deadline, gateway.backends()
        time.sleep(0.2)


def _served_by(port: int, connections: int = 6) -> set[str]:
    names = set()
    for _ in range(connections):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            names.add(conn.recv(16).decode())
    return names


def test_a_drained_server_gets_no_new_connection_and_ready_puts_it_back(gateway, haproxy):
    _until_up(gateway)
    assert _served_by(haproxy[1]) == {"cp1", "cp2"}

    drained = gateway.server_state("kube-apiserver", "cp2", "drain")

    assert (drained["server"], drained["status"]) == ("cp2", "DRAIN")
    assert _served_by(haproxy[1]) == {"cp1"}

    back = gateway.server_state("kube-apiserver", "cp2", "ready")

    assert back["status"] == "UP"
    assert _served_by(haproxy[1]) == {"cp1", "cp2"}


@pytest.mark.parametrize(
    ("proxy", "server", "state", "error"),
    [
        ("kube-apiserver", "cp9", "drain", "haproxy has no server cp9 in kube-apiserver"),
        ("ingress-http", "cp1", "drain", "haproxy has no server cp1 in ingress-http"),
        ("kube-apiserver", "cp1", "maint", "a server's state is one of ready, drain, not 'maint'"),
    ],
)
def test_what_haproxy_does_not_have_is_refused_and_nothing_changes(
    gateway, proxy, server, state, error
):
    _until_up(gateway)

    with pytest.raises(CommandExecutionError, match=error):
        gateway.server_state(proxy, server, state)

    assert {_status(gateway, name) for name in SERVERS} == {"UP"}
