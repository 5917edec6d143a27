"""
The lab's stand-in backends: test doubles for what cannot run here (no kube-apiserver,
no ingress controller), so that the gateways' haproxy has real servers to check and
forward to. Runs inside a lab machine, with the machine's own python3.

    standin.py apiserver PORT          TLS on PORT: /healthz answers "ok", any other path
                                       the node's name (a self-signed certificate)
    standin.py ingress PORT [PORT...]  plain HTTP on each PORT: the node's name and port

Every answer names the node and the port, so a test sees which backend served it.
"""

import socket
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

STATE = Path("/run/paas-lab-standin")


class Handler(BaseHTTPRequestHandler):
    # Keep-alive: a client may send request after request on one connection.
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        port = self.server.server_address[1]
        if self.server.healthz and self.path == "/healthz":
            body = "ok"
        else:
            body = f"{socket.gethostname()} {self.server.kind} {port}"
        data = (body + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class TLSServer(ThreadingHTTPServer):
    """TLS per connection, in the connection's own thread: a client that connects and
    says nothing holds up only itself, not the server's accept loop."""

    context = None

    def finish_request(self, request, client_address):
        request.settimeout(10)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        tls.settimeout(None)
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


def server(kind, port, healthz=False, context=None):
    httpd = (TLSServer if context else ThreadingHTTPServer)(("0.0.0.0", port), Handler)
    httpd.kind, httpd.healthz, httpd.context = kind, healthz, context
    return httpd


def certificate():
    key, cert = STATE / "key.pem", STATE / "cert.pem"
    if not cert.exists():
        STATE.mkdir(mode=0o700, parents=True, exist_ok=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "30", "-subj", f"/CN={socket.gethostname()}",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
    return key, cert


def main(kind, ports):
    servers = []
    if kind == "apiserver":
        key, cert = certificate()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        servers.append(server(kind, ports[0], healthz=True, context=context))
    elif kind == "ingress":
        servers.extend(server(kind, port) for port in ports)
    else:
        sys.exit(f"unknown stand-in {kind!r}: apiserver or ingress")
    for httpd in servers[1:]:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], [int(port) for port in sys.argv[2:]])
