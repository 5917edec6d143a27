"""
Secrets and files for one node only: the one way this platform seals anything to a
minion's Salt key, and a file sent from the master to one node under it.

Salt publishes every job to every minion under one AES key that they all hold, and the
master keeps each job's arguments in its job cache and fires them on its event bus: a
file sent in plain job arguments (``salt-cp --chunked``, ``cp.recv_chunked``) can be
read by every minion. Here the file travels as AES-256-GCM ciphertext under a fresh
256-bit key made for this transfer only, and that key is sealed to the receiving node's
own Salt key (RSA-OAEP, Salt's default padding for its own key exchange): the master, its
job cache, its event bus and every other minion hold ciphertext; only the node's
``minion.pem`` opens it (the ``paas_receive`` execution module).

Each chunk has a random 96-bit nonce and is authenticated with the transfer's id and
the chunk's index as associated data: a chunk moved to another position, or taken from
another transfer, fails authentication. The node checks the whole file's sha256 before
it renames the file into place.

A secret sealed with ``seal`` is one string, ``paas-sealed/1:`` and the base64 of the
RSA-OAEP ciphertext: a join's bootstrap token and certificate key (sealed on the first
control plane by ``paas_kubeadm.credentials``, opened on the joining node by the
``kubeadm.joined`` state) and a transfer's key travel in that one format; ``unseal``
names a value of another format or version instead of guessing at it.

Plain Python used on both sides: ``send`` by the master's runners
(``__utils__["paas_transfer.send"]``), ``seal`` by ``paas_kubeadm`` on the first control
plane, ``unseal`` and ``open_chunk`` by ``paas_receive`` and ``kubeadm.joined`` on the
node (``__utils__``, synced with ``saltutil.sync_utils`` or ``sync_all``).

:depends: ``cryptography`` and ``salt.crypt`` (both Salt's own)
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import struct
import time

import salt.crypt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from salt.exceptions import CommandExecutionError, InvalidKeyError

CHUNK_BYTES = 4 * 1024 * 1024
KEY_BYTES = 32
NONCE_BYTES = 12
# What every chunk's associated data starts with: a chunk of another scheme or version
# never opens as one of these.
FORMAT = b"paas-transfer/1"
# What every sealed secret starts with (``seal``): its scheme and version.
SEALED = "paas-sealed/1:"
TRANSFER_ID = re.compile(r"^[0-9a-f]{32}$")


def seal(public_key: str, secret: bytes, recipient: str = "the recipient") -> str:
    """
    ``secret`` encrypted to a minion's Salt public key (PEM): ``SEALED`` and the base64
    of RSA-OAEP as Salt's own key exchange, so only that minion's ``minion.pem`` opens it
    (``unseal``). Raises ValueError naming ``recipient`` when the key is unusable.
    """
    try:
        key = salt.crypt.PublicKey.from_str(public_key)
    except (InvalidKeyError, ValueError, TypeError) as err:
        raise ValueError(f"the public key given for {recipient} is unusable: {err}") from err
    return SEALED + base64.b64encode(key.encrypt(secret)).decode()


def unseal(private_key_path: str, sealed: str) -> bytes:
    """
    What ``seal`` sealed, opened with the private key at ``private_key_path`` (a minion's
    ``<pki_dir>/minion.pem``). Raises ValueError when it is not of ``seal``'s format and
    version, or was sealed to another key.
    """
    if not isinstance(sealed, str) or not sealed.startswith(SEALED):
        scheme = sealed.partition(":")[0] if isinstance(sealed, str) and ":" in sealed else None
        raise ValueError(
            f"it is not a {SEALED[:-1]} sealed value" + (f" (it says {scheme})" if scheme else "")
        )
    key = salt.crypt.PrivateKey.from_file(private_key_path)
    try:
        return key.decrypt(base64.b64decode(sealed[len(SEALED) :], validate=True))
    except (ValueError, TypeError) as err:
        raise ValueError(f"it was not sealed to the key {private_key_path}") from err


def _associated_data(transfer: str, index: int) -> bytes:
    return FORMAT + b"\0" + transfer.encode() + b"\0" + struct.pack(">Q", index)


def seal_chunk(key: bytes, transfer: str, index: int, data: bytes) -> str:
    """Chunk ``index`` of ``transfer`` encrypted under ``key`` (AES-256-GCM), base64 of
    the nonce followed by the ciphertext and its tag."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, data, _associated_data(transfer, index))
    return base64.b64encode(nonce + sealed).decode()


def open_chunk(key: bytes, transfer: str, index: int, sealed: str) -> bytes:
    """
    The plaintext of ``seal_chunk``'s answer for chunk ``index`` of ``transfer``. Raises
    ValueError when it fails authentication: changed, out of its place, of another
    transfer, or under another key.
    """
    try:
        raw = base64.b64decode(sealed, validate=True)
    except ValueError as err:
        raise ValueError(f"chunk {index} is not base64: {err}") from err
    if len(raw) < NONCE_BYTES + 16:
        raise ValueError(f"chunk {index} is too short ({len(raw)} bytes) to be a sealed chunk")
    try:
        return AESGCM(key).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated_data(transfer, index)
        )
    except InvalidTag as err:
        raise ValueError(
            f"chunk {index} failed authentication: changed, out of order, of another "
            "transfer, or under another key"
        ) from err


def send(
    local_client,
    recipient_key: str,
    node: str,
    source: str,
    destination: str,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    timeout: int = 120,
) -> dict:
    """
    Send the master's file ``source`` to ``node``'s ``destination`` (a path the node's
    ``paas_receive`` allows: ``<snapshot_dir>/restore/<name>`` on an etcd node), readable
    on the way by that node only.

    A fresh 256-bit key, sealed to ``recipient_key``, the node's Salt public key as this
    master accepted it (``paas_master.public_key``); the file in chunks of ``chunk_bytes``, each
    AES-256-GCM encrypted, sent one at a time by ``local_client`` (a
    ``salt.client.LocalClient``), each call's return read from the master's job cache
    (memory stays at one chunk; ``timeout`` seconds for each call to answer); then
    ``paas_receive.finish`` with the file's sha256: the node checks it, syncs the file
    (0600, root from its first byte) to disk and renames it into place. A failure
    anywhere removes the partial file on the node (``paas_receive.abort``) and raises
    CommandExecutionError naming the node and the reason.

    Returns ``{node, destination, bytes, sha256, chunks, seconds}``.
    """
    if not isinstance(chunk_bytes, int) or chunk_bytes < 1:
        raise CommandExecutionError(f"chunk_bytes must be a positive integer, not {chunk_bytes!r}")
    started = time.monotonic()
    try:
        key = secrets.token_bytes(KEY_BYTES)
        sealed_key = seal(recipient_key, key, node)
    except ValueError as err:
        raise CommandExecutionError(f"{node}: {err}") from err
    transfer = secrets.token_hex(16)
    try:
        chunks, size, sha256 = _send_chunks(
            local_client,
            source,
            node=node,
            destination=destination,
            transfer=transfer,
            key=key,
            sealed_key=sealed_key,
            chunk_bytes=chunk_bytes,
            timeout=timeout,
        )
        arrived = _call(
            local_client,
            node,
            "paas_receive.finish",
            {
                "transfer": transfer,
                "destination": destination,
                "chunks": chunks,
                "size": size,
                "sha256": sha256,
            },
            timeout,
        )
    except (CommandExecutionError, OSError) as err:
        reason = f"{err.strerror or err}: {source}" if isinstance(err, OSError) else err
        raise CommandExecutionError(
            f"{node}: sending {source} to {destination} failed: {reason}; "
            f"{_abort(local_client, node, transfer, timeout)}"
        ) from err
    return {
        "node": node,
        "destination": arrived["destination"],
        "bytes": size,
        "sha256": arrived["sha256"],
        "chunks": chunks,
        "seconds": round(time.monotonic() - started, 3),
    }


def _send_chunks(
    local_client,
    source: str,
    *,
    node: str,
    destination: str,
    transfer: str,
    key: bytes,
    sealed_key: str,
    chunk_bytes: int,
    timeout: int,
) -> tuple[int, int, str]:
    digest = hashlib.sha256()
    size = index = 0
    with open(source, "rb") as handle:
        while True:
            data = handle.read(chunk_bytes)
            # An empty file still sends one (empty) chunk: the first carries the key.
            if not data and index:
                break
            digest.update(data)
            size += len(data)
            arguments = {
                "transfer": transfer,
                "index": index,
                "data": seal_chunk(key, transfer, index, data),
                "destination": destination,
            }
            if index == 0:
                arguments["sealed_key"] = sealed_key
            _call(local_client, node, "paas_receive.chunk", arguments, timeout)
            index += 1
            if not data:
                break
    return index, size, digest.hexdigest()


def _call(local_client, node: str, function: str, kwargs: dict, timeout: int) -> dict:
    # Not LocalClient.cmd: it reads the master's event bus 4 KiB at a time, this job's own
    # publish event with the chunk in it too (tens of seconds for a 4 MiB chunk). The
    # master's job cache holds the node's return as soon as it arrives. Keyword arguments
    # travel as a dict: a base64 string with "=" in a positional one would be key=value.
    jid = local_client.cmd_async([node], function, kwarg=kwargs, tgt_type="list")
    if not jid:
        raise CommandExecutionError(f"{function} could not be published to {node}")
    deadline = time.monotonic() + timeout
    pause = 0.02
    while node not in (answers := local_client.get_cache_returns(jid)):
        if time.monotonic() >= deadline:
            raise CommandExecutionError(f"{function} got no answer within {timeout} s (job {jid})")
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
    answer = answers[node].get("ret")
    # A failed call's return is the minion's error text; ours return dicts.
    if not isinstance(answer, dict):
        raise CommandExecutionError(f"{function}: {answer}")
    return answer


def _abort(local_client, node: str, transfer: str, timeout: int) -> str:
    try:
        _call(local_client, node, "paas_receive.abort", {"transfer": transfer}, timeout)
    except CommandExecutionError as err:
        return f"removing the partial file failed too: {err}"
    return "nothing of the transfer is left on the node"
