"""
The world outside the platform, for the gateway tests: services on the host's address on
the public bridge (where a private node can only get through the gateways' NAT), and
clients that keep one connection open and count every answer on it.
"""

from __future__ import annotations

import json
import socket
import socketserver
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lab.config import load_lab
from lab.machines import leader_pid


class _WhoAmI(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{self.client_address[0]}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Echo(socketserver.StreamRequestHandler):
    def handle(self):
        self.server.peers.append(self.client_address[0])
        for line in self.rfile:
            self.wfile.write(line)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Outside:
    """An HTTP service that answers with the address it sees the client at, and a TCP
    line echo that records its clients' addresses; both on ``address``."""

    def __init__(self, address: str, http_port: int = 18080, echo_port: int = 18081):
        self.address, self.http_port, self.echo_port = address, http_port, echo_port
        self._http = ThreadingHTTPServer((address, http_port), _WhoAmI)
        self._echo = _EchoServer((address, echo_port), _Echo)
        self._echo.peers = []
        for server in (self._http, self._echo):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def echo_peers(self) -> list[str]:
        return list(self._echo.peers)

    def close(self) -> None:
        for server in (self._http, self._echo):
            server.shutdown()
            server.server_close()


# Runs inside a lab machine (its python3): one connection, a line every 50 ms, each
# echoed back on the same connection, until the test closes its stdin.
_NODE_CLIENT = r"""
import json, select, socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
conn = socket.create_connection((host, port), timeout=15)
conn.settimeout(15)
stream = conn.makefile("rwb")
print(json.dumps({"local_port": conn.getsockname()[1]}), flush=True)
sent = echoed = 0
errors, last = [], None
while not select.select([sys.stdin], [], [], 0.05)[0]:
    try:
        line = f"{sent}\n".encode()
        stream.write(line)
        stream.flush()
        sent += 1
        answer = stream.readline()
    except OSError as error:
        errors.append(repr(error))
        break
    if answer != line:
        errors.append(f"sent {line!r}, got {answer!r}")
        break
    echoed += 1
    last = time.monotonic()
print(json.dumps({"sent": sent, "echoed": echoed, "errors": errors, "last_echo": last}))
"""


class NodeFlow:
    """A long-lived TCP connection from a lab machine to the outside echo service: open
    when constructed, and counted when stopped."""

    def __init__(self, machine_id: str, host: str, port: int):
        (machine,) = [m for m in load_lab().machines if m.id == machine_id]
        self._process = subprocess.Popen(
            ["nsenter", "-t", str(leader_pid(machine)), "-a", "python3", "-c", _NODE_CLIENT,
             host, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.local_port = json.loads(self._process.stdout.readline())["local_port"]

    def stop(self) -> dict:
        """Stop sending; what was sent and echoed, the errors, when the last echo came
        (the host's and the machines' monotonic clock is the same kernel's)."""
        output, errors = self._process.communicate(input="stop\n", timeout=60)
        assert self._process.returncode == 0, errors
        return json.loads(output.splitlines()[-1])

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()


class HostFlow:
    """A long-lived TCP connection from this host to ``address``:``port`` (HTTP through
    the gateways' haproxy), one keep-alive request every 50 ms on the same connection,
    in a thread, until stopped."""

    def __init__(self, address: str, port: int):
        self._conn = socket.create_connection((address, port), timeout=15)
        self._stream = self._conn.makefile("rwb")
        self.answers, self.errors, self.last_answer = 0, [], None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(0.05):
            try:
                self._stream.write(b"GET / HTTP/1.1\r\nHost: paas\r\n\r\n")
                self._stream.flush()
                status = self._stream.readline()
                length = 0
                while (header := self._stream.readline()) not in (b"\r\n", b""):
                    if header.lower().startswith(b"content-length:"):
                        length = int(header.split(b":")[1])
                self._stream.read(length)
            except OSError as error:
                self.errors.append(repr(error))
                return
            if not status.startswith(b"HTTP/1.") or b" 200 " not in status:
                self.errors.append(f"answer {status!r}")
                return
            self.answers += 1
            self.last_answer = time.monotonic()

    def stop(self) -> dict:
        self._stopping.set()
        self._thread.join(timeout=30)
        self._conn.close()
        return {"answers": self.answers, "errors": self.errors, "last_answer": self.last_answer}
