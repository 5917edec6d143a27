"""
The lab's kube-apiserver: a test double, run by the lab's kubelet double from the static
pod manifest kubeadm wrote, with that manifest's flags. It serves the small part of the
Kubernetes API the platform uses, over HTTPS with kubeadm's certificates, and keeps every
object in the platform's real etcd under kube-apiserver's own key layout, through etcd's
JSON gateway (``/v3/kv/*``) with the ``--etcd-*`` certificates: a wrong etcd client
certificate leaves it unready, as it leaves the real one.

    kube_apiserver.py --etcd-servers=https://a:2379,... --etcd-cafile=F --etcd-certfile=F
        --etcd-keyfile=F --client-ca-file=F --tls-cert-file=F --tls-private-key-file=F
        [--secure-port=6443] [--bind-address=0.0.0.0] [--etcd-prefix=/registry]
        [--enable-bootstrap-token-auth=true] [--anonymous-auth=true] [any other flag]

This file is the program (cmd/kube-apiserver): the server its flags make, the health of
etcd (staging/src/k8s.io/apiserver/pkg/storage/storagebackend/factory/etcd3.go), the system
namespaces controller (pkg/controlplane/controller/systemnamespaces) and the listener.
The rest sits beside it, named after k8s.io/apiserver's parts: apiserver_api.py (resources,
requests, users, Status errors), apiserver_etcd.py (storage), apiserver_registry.py (the
store and the resources' strategies), apiserver_auth.py (authentication and
authorization), apiserver_patch.py, apiserver_signer.py (the controller-manager's CSR
approver and signer) and apiserver_handlers.py (HTTP, routing, discovery); kube_common.py
holds what the lab's Kubernetes doubles share.

Needs python3 with python3-cryptography; standard library otherwise. lab/kube/README.md
names the upstream source each behaviour copies.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import uuid
from pathlib import Path

try:
    from lab.kube import (
        apiserver_api,
        apiserver_auth,
        apiserver_etcd,
        apiserver_handlers,
        apiserver_registry,
        apiserver_signer,
        kube_common,
    )
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import apiserver_api  # type: ignore[no-redef]
    import apiserver_auth  # type: ignore[no-redef]
    import apiserver_etcd  # type: ignore[no-redef]
    import apiserver_handlers  # type: ignore[no-redef]
    import apiserver_registry  # type: ignore[no-redef]
    import apiserver_signer  # type: ignore[no-redef]
    import kube_common  # type: ignore[no-redef]


# The namespaces kube-apiserver's system namespaces controller keeps
# (pkg/controlplane/controller/systemnamespaces/system_namespaces_controller.go).
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
HEALTH_CACHE_SECONDS = 1.0


class ApiServer:
    """The server a process runs: its storage, signer and authenticator made from the flags,
    the health of etcd, and the system namespaces controller."""

    def __init__(self, flags: dict[str, str]):
        missing = [
            name
            for name in ("etcd-servers", "tls-cert-file", "tls-private-key-file")
            if not flags.get(name)
        ]
        if missing:
            raise SystemExit(f"--{missing[0]} must be specified")
        self.flags = flags
        self.prefix = "/" + flags.get("etcd-prefix", "/registry").strip("/")
        try:
            self.etcd = apiserver_etcd.Etcd(
                flags["etcd-servers"].split(","),
                flags.get("etcd-cafile") or None,
                flags.get("etcd-certfile"),
                flags.get("etcd-keyfile"),
            )
        except (OSError, ssl.SSLError) as error:
            raise SystemExit(
                f"failed to load the etcd client TLS configuration: {error}"
            ) from error
        self.client_ca = flags.get("client-ca-file")
        signing_cert = Path(self.client_ca or "/etc/kubernetes/pki/ca.crt")
        self.signer = apiserver_signer.Signer(signing_cert, signing_cert.with_suffix(".key"))
        self.store = apiserver_registry.Store(
            self.etcd, self.prefix, self.signer, apiserver_auth.may_auto_approve
        )
        self.authenticator = apiserver_auth.Authenticator(
            self.store,
            bootstrap_tokens=flags.get("enable-bootstrap-token-auth", "false") == "true",
            anonymous_auth=flags.get("anonymous-auth", "true") == "true",
        )
        self.health_lock = threading.Lock()
        self.health: tuple[float, str | None] = (0.0, "not checked yet")
        self.etcd_answered: bool | None = None
        self.namespaces_ready = False

    def etcd_error(self) -> str | None:
        """Why etcd does not answer (None when it does), checked at most once a second as
        the real check reads ``<prefix>/health``
        (staging/src/k8s.io/apiserver/pkg/storage/storagebackend/factory/etcd3.go)."""
        with self.health_lock:
            checked, error = self.health
            if time.monotonic() - checked < HEALTH_CACHE_SECONDS:
                return error
            try:
                self.etcd.get(f"{self.prefix}/health")
                error = None
            except apiserver_etcd.EtcdUnavailable as unavailable:
                error = str(unavailable)
            if self.etcd_answered is not (error is None):
                if error:
                    apiserver_api.log(
                        "E", f"etcd does not answer through the configured certificates: {error}"
                    )
                else:
                    apiserver_api.log("I", "etcd answers")
            self.etcd_answered = error is None
            self.health = (time.monotonic(), error)
            return error

    def checks(self, endpoint: str) -> list[tuple[str, bool]]:
        etcd_ok = self.etcd_error() is None
        checks = [("ping", True), ("log", True), ("etcd", etcd_ok)]
        if endpoint == "readyz":
            checks.append(("etcd-readiness", etcd_ok))
        if endpoint != "livez":
            checks.append(
                ("poststarthook/start-system-namespaces-controller", self.namespaces_ready)
            )
        return checks

    def maintain(self) -> None:
        """Keep the system namespaces, as the system namespaces controller does."""
        while True:
            if self.etcd_error() is None:
                try:
                    for name in SYSTEM_NAMESPACES:
                        key = self.store.key(
                            apiserver_api.BY_PATH[("", "v1", "namespaces")], None, name
                        )
                        if self.etcd.get(key) is None:
                            self.etcd.create(key, json.dumps(self.new_namespace(name)).encode())
                    if not self.namespaces_ready:
                        apiserver_api.log("I", "system namespaces present")
                    self.namespaces_ready = True
                except apiserver_etcd.EtcdUnavailable:
                    pass
            time.sleep(1)

    @staticmethod
    def new_namespace(name: str) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": kube_common.now_rfc3339(),
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }


def serving_context(flags: dict[str, str]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(flags["tls-cert-file"], flags["tls-private-key-file"])
        if flags.get("client-ca-file"):
            context.load_verify_locations(flags["client-ca-file"])
            context.verify_mode = ssl.CERT_OPTIONAL
    except (OSError, ssl.SSLError) as error:
        raise SystemExit(f"unable to load the serving certificate or client CA: {error}") from error
    return context


def main(argv: list[str]) -> None:
    flags = kube_common.parse_flags(argv)
    api = ApiServer(flags)
    context = serving_context(flags)
    address = flags.get("bind-address", "0.0.0.0")
    port = int(flags.get("secure-port", "6443"))
    apiserver_handlers.TLSServer.address_family = (
        socket.AF_INET6 if ":" in address else socket.AF_INET
    )
    try:
        server = apiserver_handlers.TLSServer((address, port), apiserver_handlers.Handler)
    except OSError as error:
        raise SystemExit(f"failed to listen on {address}:{port}: {error}") from error
    server.context, server.api = context, api
    apiserver_api.log("I", f"Serving securely on {address}:{port}, etcd {flags['etcd-servers']}")
    threading.Thread(target=api.maintain, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    kube_common.run(main, "kube_apiserver.py", name="kube-apiserver")
