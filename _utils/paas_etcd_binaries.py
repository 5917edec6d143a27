"""
etcd's own binaries run from Python: a command of etcd's tools and its output, or the
error it printed (``etcd_cluster`` on the nodes, ``paas_backup`` on the master), what
``snapshot status`` reads in a snapshot, and, for the master's restore drill, a scratch
etcd that serves a snapshot on 127.0.0.1 with certificates made for that drill only.

Every failure raises ``CommandExecutionError`` with the command and what it said.

:depends: ``cryptography`` (Salt's own); etcd's binaries, in the directory the caller
    names
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import types
import urllib.error
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from salt.exceptions import CommandExecutionError

DRILL_CLIENT_PORT = 24379
DRILL_PEER_PORT = 24380
DRILL_NAME = "paas-drill"
DRILL_START_SECONDS = 120
# The drill's certificates outlive any drill; their keys are removed with it.
DRILL_CERTIFICATE_DAYS = 1


def run(command: list[str], timeout: int = 300) -> str:
    """What ``command`` (one of etcd's binaries, with etcd's v3 API) printed; raises
    ``CommandExecutionError`` with what it said when it fails."""
    result = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "ETCDCTL_API": "3"},
        timeout=timeout,
    )
    if result.returncode != 0:
        raise CommandExecutionError(
            f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


def snapshot_content(path: str, tools: types.SimpleNamespace) -> dict:
    """What etcd's ``snapshot status`` reads in ``path``; raises CommandExecutionError when
    it cannot read it."""
    output = run([tools.reader, "snapshot", "status", path, "--write-out=json"])
    try:
        status = json.loads(output)
        return {
            "revision": int(status["revision"]),
            "keys": int(status["totalKey"]),
            "hash": int(status["hash"]),
            "db_size": int(status["totalSize"]),
            "read_by": os.path.basename(tools.reader),
        }
    except (ValueError, KeyError, TypeError) as err:
        raise CommandExecutionError(
            f"{tools.reader} snapshot status {path}: no status in its output ({err}): "
            f"{output.strip()[:200]}"
        ) from err


def version(etcd: str) -> str:
    """The version the ``etcd`` binary says it is."""
    found = re.search(r"etcd Version: (\S+)", run([etcd, "--version"]))
    return found.group(1) if found else "unknown"


def check_drill_ports() -> None:
    """Raise ``CommandExecutionError`` when a port the drill's scratch etcd listens on
    is in use."""
    for port in (DRILL_CLIENT_PORT, DRILL_PEER_PORT):
        if not _port_free(port):
            raise CommandExecutionError(
                f"127.0.0.1:{port} is in use: the drill's scratch etcd needs it"
            )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As etcd binds: a port whose last connections are in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def served_revision(content_revision: int, compact_revision: int) -> int:
    """
    The revision an etcd restored from a snapshot serves, given what ``snapshot
    status`` read in it and the compaction the restored store reports.

    ``snapshot status`` reads the main revision of the last key in the key bucket: 0
    for a store with no key. etcd's restore of its store starts at revision 1 and takes
    each key's revision, then raises it to the compaction's revision when the compaction
    removed the newest ones (``restoreIntoIndex``'s ``currentRev := int64(1)`` and
    ``restore``'s ``if s.currentRev < s.compactMainRev``, server/storage/mvcc/kvstore.go
    in etcd 3.5+, mvcc/kvstore.go in 3.4). So a fresh cluster's snapshot says 0 and
    is served at 1.
    """
    return max(int(content_revision), int(compact_revision), 1)


@contextlib.contextmanager
def scratch_etcd(tools: types.SimpleNamespace, snapshot: str, quota_bytes: int):
    """
    ``snapshot`` restored and served by an etcd of its own on 127.0.0.1, reachable only
    with the drill's client certificate; yields what a client needs (``client_url``,
    ``tls``, ``etcdctl``). The process is stopped and its directory removed on the way
    out, whatever happened.
    """
    scratch = tempfile.mkdtemp(prefix="paas-dr-drill-")
    process = None
    try:
        tls = drill_certificates(scratch)
        client = f"https://127.0.0.1:{DRILL_CLIENT_PORT}"
        peer = f"https://127.0.0.1:{DRILL_PEER_PORT}"
        data_dir = os.path.join(scratch, "data")
        run(
            [
                tools.reader,
                "snapshot",
                "restore",
                snapshot,
                f"--data-dir={data_dir}",
                f"--name={DRILL_NAME}",
                f"--initial-cluster={DRILL_NAME}={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster-token={DRILL_NAME}",
            ]
        )
        os.chmod(data_dir, 0o700)
        log_path = os.path.join(scratch, "etcd.log")
        with open(log_path, "w", encoding="utf-8") as log:
            process = subprocess.Popen(
                [
                    os.path.join(tools.directory, "etcd"),
                    f"--name={DRILL_NAME}",
                    f"--data-dir={data_dir}",
                    f"--listen-client-urls={client}",
                    f"--advertise-client-urls={client}",
                    f"--listen-peer-urls={peer}",
                    f"--initial-advertise-peer-urls={peer}",
                    f"--initial-cluster={DRILL_NAME}={peer}",
                    f"--quota-backend-bytes={quota_bytes}",
                    f"--cert-file={tls['server_cert']}",
                    f"--key-file={tls['server_key']}",
                    f"--trusted-ca-file={tls['ca']}",
                    "--client-cert-auth",
                    f"--peer-cert-file={tls['server_cert']}",
                    f"--peer-key-file={tls['server_key']}",
                    f"--peer-trusted-ca-file={tls['ca']}",
                    "--peer-client-cert-auth",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _until_serving(process, client, log_path, tls)
        yield types.SimpleNamespace(
            client_url=client,
            peer_url=peer,
            scratch=scratch,
            data_dir=data_dir,
            tls=tls,
            restored_by=os.path.basename(tools.reader),
            etcdctl=[
                os.path.join(tools.directory, "etcdctl"),
                f"--endpoints={client}",
                f"--cacert={tls['ca']}",
                f"--cert={tls['client_cert']}",
                f"--key={tls['client_key']}",
            ],
        )
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def read_back(scratch: types.SimpleNamespace) -> dict:
    """What the scratch etcd serves: its revision, db size, key count, ``endpoint
    hashkv`` and compaction."""
    etcdctl = scratch.etcdctl
    status = json.loads(run([*etcdctl, "endpoint", "status", "--write-out=json"]))[0]
    hashkv = json.loads(run([*etcdctl, "endpoint", "hashkv", "--write-out=json"]))[0]
    counted = json.loads(
        run([*etcdctl, "get", "", "--prefix", "--keys-only", "--limit=1", "-w", "json"])
    )
    return {
        "revision": status["Status"]["header"]["revision"],
        "db_size": status["Status"]["dbSize"],
        "keys": counted.get("count", 0),
        "hashkv": hashkv["HashKV"]["hash"],
        "compact_revision": hashkv["HashKV"].get("compact_revision", 0),
        "restored_by": scratch.restored_by,
    }


def _until_serving(process: subprocess.Popen, client: str, log_path: str, tls: dict) -> None:
    context = ssl.create_default_context(cafile=tls["ca"])
    context.load_cert_chain(tls["client_cert"], tls["client_key"])
    deadline = time.monotonic() + DRILL_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(log_path, encoding="utf-8", errors="replace") as log:
                tail = log.read()[-1500:]
            raise CommandExecutionError(
                f"the scratch etcd exited ({process.returncode}) on the restored data: {tail}"
            )
        try:
            with urllib.request.urlopen(f"{client}/health", timeout=2, context=context) as answer:
                if json.loads(answer.read()).get("health") == "true":
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    raise CommandExecutionError(f"the scratch etcd did not serve within {DRILL_START_SECONDS} s")


def drill_certificates(directory: str) -> dict:
    """
    An authority made for one drill (its key is never written), the certificate its
    scratch etcd serves and speaks to its peer with (127.0.0.1, serverAuth and
    clientAuth: etcd's gateway dials etcd with it, decision 0004), and the drill's
    client certificate (clientAuth); files 0600 in ``directory``.
    """
    now = datetime.datetime.now(datetime.UTC)
    authority_key = ec.generate_private_key(ec.SECP256R1())
    authority_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paas drill authority")])
    authority = (
        _certificate("paas drill authority", authority_name, authority_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(authority_key, hashes.SHA256())
    )
    paths = {"ca": os.path.join(directory, "ca.crt")}
    _write_private(paths["ca"], authority.public_bytes(serialization.Encoding.PEM))
    usages = {
        "server": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
    }
    for role, usage in usages.items():
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _certificate(f"{DRILL_NAME}-{role}", authority_name, key.public_key(), now)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        if role == "server":
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        certificate = builder.sign(authority_key, hashes.SHA256())
        paths[f"{role}_cert"] = os.path.join(directory, f"{role}.crt")
        paths[f"{role}_key"] = os.path.join(directory, f"{role}.key")
        _write_private(paths[f"{role}_cert"], certificate.public_bytes(serialization.Encoding.PEM))
        _write_private(
            paths[f"{role}_key"],
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    return paths


def _certificate(subject: str, issuer: x509.Name, public_key, now: datetime.datetime):
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=DRILL_CERTIFICATE_DAYS))
    )


def _write_private(path: str, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
