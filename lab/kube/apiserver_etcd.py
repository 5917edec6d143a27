"""
The apiserver double's storage backend: etcd v3 through its gRPC gateway (JSON over HTTPS,
``/v3/kv/range``, ``/v3/kv/txn``, ``/v3/kv/deleterange``) with the ``--etcd-*``
certificates, each endpoint tried in turn, as
staging/src/k8s.io/apiserver/pkg/storage/etcd3 uses etcd (conditional puts and deletes on
the key's mod_revision).

Part of the lab's kube-apiserver double (kube_apiserver.py); never imported by product code.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from urllib.parse import urlsplit

try:
    from lab.kube import kube_common
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kube_common  # type: ignore[no-redef]


ETCD_TIMEOUT = 2.0


class EtcdUnavailable(Exception):
    """No etcd endpoint answered."""


def _describe(error: Exception) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"transport: authentication handshake failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        return f"transport: authentication handshake failed: {error.reason or error}"
    return str(error) or type(error).__name__


class Etcd:
    """etcd v3 through its gRPC gateway (JSON over HTTPS), trying each endpoint in turn,
    starting with the last one that answered."""

    def __init__(self, servers: list[str], cafile: str, certfile: str, keyfile: str):
        self.servers = [urlsplit(server) for server in servers]
        self.context = ssl.create_default_context(cafile=cafile)
        self.context.load_cert_chain(certfile, keyfile)
        self.preferred = 0

    def call(self, method: str, body: dict) -> dict:
        errors = []
        count = len(self.servers)
        for offset in range(count):
            index = (self.preferred + offset) % count
            server = self.servers[index]
            if server.scheme == "https":
                connection = http.client.HTTPSConnection(
                    server.hostname,
                    server.port or 2379,
                    context=self.context,
                    timeout=ETCD_TIMEOUT,
                )
            else:
                connection = http.client.HTTPConnection(
                    server.hostname, server.port or 2379, timeout=ETCD_TIMEOUT
                )
            try:
                connection.request(
                    "POST", f"/v3/{method}", json.dumps(body), {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"{server.geturl()}: {_describe(error)}")
                continue
            finally:
                connection.close()
            if response.status != 200:
                errors.append(f"{server.geturl()}: {response.status} {data[:200].decode()}")
                continue
            self.preferred = index
            return json.loads(data)
        raise EtcdUnavailable("; ".join(errors))

    @staticmethod
    def _kv(kv: dict) -> tuple[str, bytes, int]:
        return (
            base64.b64decode(kv["key"]).decode(),
            base64.b64decode(kv.get("value", "")),
            int(kv.get("mod_revision", 0)),
        )

    def get(self, key: str) -> tuple[bytes, int] | None:
        kvs = self.call("kv/range", {"key": kube_common.b64(key)}).get("kvs", [])
        return (self._kv(kvs[0])[1], self._kv(kvs[0])[2]) if kvs else None

    def list(self, prefix: str) -> tuple[list[tuple[str, bytes, int]], int]:
        """Every key under ``prefix`` (which ends with ``/``), and the store's revision."""
        reply = self.call(
            "kv/range",
            {"key": kube_common.b64(prefix), "range_end": kube_common.b64(_prefix_end(prefix))},
        )
        return [self._kv(kv) for kv in reply.get("kvs", [])], int(reply["header"]["revision"])

    def create(self, key: str, value: bytes) -> int | None:
        """Put ``key`` only if it does not exist: the new revision, or None."""
        return self._txn(key, {"target": "CREATE", "create_revision": "0"}, value)

    def update(self, key: str, value: bytes, revision: int) -> int | None:
        """Put ``key`` only if it is still at ``revision``: the new revision, or None."""
        return self._txn(key, {"target": "MOD", "mod_revision": str(revision)}, value)

    def delete(self, key: str, revision: int) -> bool:
        """Delete ``key`` only if it is still at ``revision``."""
        reply = self.call(
            "kv/txn",
            {
                "compare": [
                    {
                        "key": kube_common.b64(key),
                        "result": "EQUAL",
                        "target": "MOD",
                        "mod_revision": str(revision),
                    },
                ],
                "success": [{"request_delete_range": {"key": kube_common.b64(key)}}],
            },
        )
        return bool(reply.get("succeeded"))

    def delete_prefix(self, prefix: str) -> None:
        self.call(
            "kv/deleterange",
            {"key": kube_common.b64(prefix), "range_end": kube_common.b64(_prefix_end(prefix))},
        )

    def _txn(self, key: str, compare: dict, value: bytes) -> int | None:
        reply = self.call(
            "kv/txn",
            {
                "compare": [{"key": kube_common.b64(key), "result": "EQUAL", **compare}],
                "success": [
                    {
                        "request_put": {
                            "key": kube_common.b64(key),
                            "value": kube_common.b64(value),
                        }
                    }
                ],
            },
        )
        return int(reply["header"]["revision"]) if reply.get("succeeded") else None


def _prefix_end(prefix: str) -> bytes:
    raw = prefix.encode()
    return raw[:-1] + bytes([raw[-1] + 1])
