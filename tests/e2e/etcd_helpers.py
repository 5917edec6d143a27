"""etcd as the e2e tests reach it from the host: an admin client, and a writer that
remembers every write etcd acknowledged."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import etcd3
import grpc

ADDRESSES = {f"etcd{n}": f"198.18.1.{20 + n}" for n in range(1, 6)}
# The master's own minion holds the admin client certificate, on this host.
PKI = Path("/etc/paas/pki")


def client(address: str, ca=None, cert=None, key=None):
    return etcd3.client(
        host=address,
        port=2379,
        ca_cert=ca,
        cert_key=key,
        cert_cert=cert,
        timeout=5,
        # The writer's keys, read back at once, are more than gRPC's default 4 MiB.
        grpc_options=[("grpc.max_receive_message_length", 256 * 1024 * 1024)],
    )


def admin_client(address: str = ADDRESSES["etcd1"]):
    return client(
        address,
        ca=str(PKI / "etcd-ca.crt"),
        cert=str(PKI / "etcd-admin-client.crt"),
        key=str(PKI / "etcd-admin-client.key"),
    )


class Writer(threading.Thread):
    """Writes numbered keys under ``prefix`` one after the other (``pause`` seconds
    apart) until stopped, moving to the next member when one does not answer;
    remembers every write etcd acknowledged."""

    def __init__(self, members: list[str], prefix: str = "/paas/e2e/writer/", pause: float = 0):
        super().__init__(daemon=True)
        self.members, self.prefix, self.pause = members, prefix, pause
        self.acknowledged: list[str] = []
        self.failures: list[str] = []
        self.phase = "before"
        self.by_phase: dict[str, int] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        index, attempt = 0, 0
        while not self.stopping.is_set():
            address = ADDRESSES[self.members[attempt % len(self.members)]]
            key = f"{self.prefix}{index:06d}"
            try:
                with admin_client(address) as client:
                    while not self.stopping.is_set():
                        key = f"{self.prefix}{index:06d}"
                        client.put(key, str(index))
                        self.acknowledged.append(key)
                        self.by_phase[self.phase] = self.by_phase.get(self.phase, 0) + 1
                        index += 1
                        if self.pause:
                            time.sleep(self.pause)
            except (grpc.RpcError, etcd3.exceptions.Etcd3Exception) as err:
                self.failures.append(f"{address} {key}: {type(err).__name__}")
                attempt += 1
