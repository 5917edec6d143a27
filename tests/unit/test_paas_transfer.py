"""
``paas_transfer.send`` (``_utils/paas_transfer.py``, the master's side) against
``paas_receive`` (``_modules/paas_receive.py``, the node's side, under Salt's loader
dunders with the real util as ``__utils__``), joined by a stand-in for the master's
``LocalClient`` that runs each job in this process and keeps every argument it carried:
what the master's job cache, its event bus and every other minion would see.

Each node has an RSA key pair as a minion's Salt key: its ``minion.pem``, and the public
half where the master keeps the keys it accepted.

Proven here: a file arrives byte-identical, 0600 root, in the restore directory only,
with no plaintext and no key in any job argument, return or log record; a changed chunk,
a chunk out of its place, a skipped chunk, a key sealed to another node, a wrong sha256,
a node that does not answer: each refused with the node and the reason, and the partial
file (which existed) and the key removed from the node.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from salt.exceptions import CommandExecutionError, SaltInvocationError

NODE = "etcd1"
UTILS_FUNCTIONS = ("seal", "unseal", "seal_chunk", "open_chunk")


def _key_pair() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


NODE_KEY, NODE_PUBLIC = _key_pair()
OTHER_KEY, OTHER_PUBLIC = _key_pair()


@pytest.fixture(scope="module")
def transfer(import_repo_module):
    return import_repo_module("_utils/paas_transfer.py", "paas_transfer_utils")


@pytest.fixture(scope="module")
def receive(import_repo_module):
    return import_repo_module("_modules/paas_receive.py", "paas_receive_module")


@pytest.fixture
def snapshot_dir(tmp_path) -> Path:
    directory = tmp_path / "node" / "snapshots"
    directory.mkdir(parents=True, mode=0o700)
    return directory


@pytest.fixture
def configure_loader_modules(receive, transfer, tmp_path, snapshot_dir):
    pki = tmp_path / "node" / "pki"
    pki.mkdir()
    (pki / "minion.pem").write_bytes(NODE_KEY)
    os.chmod(pki / "minion.pem", 0o600)
    return {
        receive: {
            "__opts__": {"id": NODE, "pki_dir": str(pki)},
            "__salt__": {
                "paas_topology.etcd_member": lambda: {
                    "name": NODE,
                    "snapshot_dir": str(snapshot_dir),
                }
            },
            "__utils__": {
                f"paas_transfer.{name}": getattr(transfer, name) for name in UTILS_FUNCTIONS
            },
        }
    }


# What a test's ``change`` returns for a job that the stand-in answers as done but
# never delivers.
HELD = object()


class LocalClient:
    """
    The master's LocalClient for one node, run in this process: each job published with
    ``cmd_async`` is a call of the ``paas_receive`` function, and its return is in the
    job cache as the minion returns it (a failed call's error text). ``change`` may
    rewrite a job's keyword arguments on the way (what a test breaks), hold it back
    (``HELD``: answered as done, never delivered) or leave it unanswered (None);
    ``sent`` keeps every job delivered.
    """

    def __init__(self, receive, change=None):
        self.receive = receive
        self.change = change
        self.sent: list[tuple[str, dict]] = []
        self.answers: list = []
        self.cache: dict[str, dict] = {}

    def cmd_async(self, tgt, fun, *, tgt_type="glob", kwarg=None):
        assert tgt == [NODE] and tgt_type == "list"
        jid = str(len(self.cache) + 1)
        kwargs = dict(kwarg)
        if self.change:
            kwargs = self.change(fun, kwargs)
        if kwargs is None:
            self.cache[jid] = {}
        elif kwargs is HELD:
            self.cache[jid] = {NODE: {"ret": {}}}
        else:
            self.sent.append((fun, kwargs))
            try:
                answer = getattr(self.receive, fun.split(".")[1])(**kwargs)
            except (CommandExecutionError, SaltInvocationError) as err:
                answer = f"ERROR: {err}"
            self.answers.append(answer)
            self.cache[jid] = {NODE: {"ret": answer}}
        return jid

    def get_cache_returns(self, jid):
        return self.cache[jid]


class Bench:
    """The master's side and the node's, with a source file of the master's."""

    def __init__(self, transfer, receive, restore_dir, tmp_path):
        self.transfer = transfer
        self.receive = receive
        self.restore_dir = restore_dir
        self.source = tmp_path / "etcd1-20261126T120000Z-r42.db"

    def write_source(self, size: int) -> bytes:
        data = os.urandom(size)
        self.source.write_bytes(data)
        return data

    def destination(self, name: str = "etcd1.db") -> str:
        return str(self.restore_dir / name)

    def send(self, client, destination=None, **options) -> dict:
        return self.transfer.send(
            client,
            # The node's key as the master accepted it (paas_master.public_key).
            options.pop("recipient_key", NODE_PUBLIC),
            options.pop("node", NODE),
            str(self.source),
            destination or self.destination(),
            **{"chunk_bytes": 1000, **options},
        )

    def refused(self, change=None, destination=None, **options) -> str:
        """The error of a send through a LocalClient with ``change``."""
        with pytest.raises(CommandExecutionError) as failed:
            self.send(LocalClient(self.receive, change), destination, **options)
        return str(failed.value)

    def left_on_node(self) -> list[str]:
        if not self.restore_dir.exists():
            return []
        return sorted(path.name for path in self.restore_dir.iterdir())

    def partial_size(self) -> int:
        (staging,) = self.restore_dir.glob(".transfer-*")
        return (staging / "data").stat().st_size


@pytest.fixture
def bench(transfer, receive, snapshot_dir, tmp_path) -> Bench:
    return Bench(transfer, receive, snapshot_dir / "restore", tmp_path)


def _slices(data: bytes) -> list[bytes]:
    """64-byte slices of ``data`` from its start, middle and end, raw, and as base64
    would show them at any alignment."""
    found = []
    for start in (0, len(data) // 2, len(data) - 66):
        found.append(data[start : start + 64])
        found += [base64.b64encode(data[start + shift : start + shift + 63]) for shift in range(3)]
    return found


def test_a_file_arrives_whole_0600_root_and_is_nowhere_in_the_clear_on_the_way(
    bench, monkeypatch, caplog
):
    key = b"k" * 32
    monkeypatch.setattr(bench.transfer.secrets, "token_bytes", lambda size: key[:size])
    data = bench.write_source(10_500)
    client = LocalClient(bench.receive)
    with caplog.at_level(logging.DEBUG):
        sent = bench.send(client)
    arrived = Path(bench.destination())
    assert arrived.read_bytes() == data
    status = arrived.stat()
    assert stat.S_IMODE(status.st_mode) == 0o600 and (status.st_uid, status.st_gid) == (0, 0)
    assert stat.S_IMODE(bench.restore_dir.stat().st_mode) == 0o700
    assert bench.left_on_node() == [arrived.name]
    assert sent["node"] == NODE and sent["destination"] == str(arrived)
    assert (sent["bytes"], sent["chunks"]) == (10_500, 11)
    assert sent["sha256"] == hashlib.sha256(data).hexdigest()
    assert [fun for fun, _ in client.sent] == ["paas_receive.chunk"] * 11 + ["paas_receive.finish"]
    seen = json.dumps([client.sent, client.answers, caplog.text]).encode()
    for secret in [*_slices(data), key, base64.b64encode(key), key.hex().encode()]:
        assert secret not in seen


def test_an_empty_file_arrives_too(bench):
    bench.write_source(0)
    sent = bench.send(LocalClient(bench.receive))
    assert sent["chunks"] == 1 and sent["bytes"] == 0
    assert Path(bench.destination()).read_bytes() == b""


def test_a_file_replaces_one_of_the_same_name(bench):
    Path(bench.destination()).parent.mkdir(mode=0o700)
    Path(bench.destination()).write_bytes(b"older")
    data = bench.write_source(2500)
    bench.send(LocalClient(bench.receive))
    assert Path(bench.destination()).read_bytes() == data


def test_a_changed_chunk_is_refused_and_the_partial_file_removed(bench):
    bench.write_source(5000)
    partial = []

    def change(fun, kwargs):
        if fun == "paas_receive.chunk" and kwargs["index"] == 2:
            partial.append(bench.partial_size())
            raw = bytearray(base64.b64decode(kwargs["data"]))
            raw[40] ^= 1
            kwargs["data"] = base64.b64encode(bytes(raw)).decode()
        return kwargs

    error = bench.refused(change)
    assert error.startswith(f"{NODE}: sending {bench.source} to {bench.destination()} failed")
    assert "chunk 2 failed authentication" in error
    assert error.endswith("nothing of the transfer is left on the node")
    assert partial == [2000]
    assert bench.left_on_node() == []


def test_a_chunk_out_of_its_place_is_refused(bench):
    bench.write_source(5000)
    held = []

    def change(fun, kwargs):
        # Chunk 2's ciphertext sent as chunk 1: the index is its associated data.
        if fun == "paas_receive.chunk" and kwargs["index"] == 1:
            held.append(kwargs)
            return HELD
        if fun == "paas_receive.chunk" and kwargs["index"] == 2:
            return {**held[0], "data": kwargs["data"]}
        return kwargs

    assert "chunk 1 failed authentication" in bench.refused(change)
    assert bench.left_on_node() == []


def test_a_skipped_chunk_is_refused(bench):
    bench.write_source(5000)

    def change(fun, kwargs):
        return HELD if fun == "paas_receive.chunk" and kwargs["index"] == 1 else kwargs

    assert "chunk 2 came where chunk 1 was due" in bench.refused(change)
    assert bench.left_on_node() == []


def test_a_key_sealed_to_another_node_opens_nothing(bench):
    bench.write_source(5000)
    error = bench.refused(recipient_key=OTHER_PUBLIC)
    assert f"{NODE}: transfer " in error and "the transfer's key is not for this minion" in error
    assert bench.left_on_node() == []


def test_chunks_under_another_key_are_refused(bench):
    bench.write_source(5000)

    def change(fun, kwargs):
        if fun == "paas_receive.chunk" and kwargs["index"] == 1:
            other = bench.transfer.seal_chunk(b"o" * 32, kwargs["transfer"], 1, b"x" * 1000)
            kwargs["data"] = other
        return kwargs

    assert "chunk 1 failed authentication" in bench.refused(change)
    assert bench.left_on_node() == []


def test_a_file_whose_sha256_differs_is_not_put_in_place(bench):
    bench.write_source(5000)

    def change(fun, kwargs):
        if fun == "paas_receive.finish":
            kwargs["sha256"] = "0" * 64
        return kwargs

    error = bench.refused(change)
    assert "the file received is 5000 bytes with sha256" in error and "0" * 64 in error
    assert bench.left_on_node() == []


def test_a_node_that_does_not_answer_is_named_and_its_partial_file_removed(bench):
    bench.write_source(5000)

    def change(fun, kwargs):
        return None if fun == "paas_receive.chunk" and kwargs["index"] == 3 else kwargs

    client = LocalClient(bench.receive, change)
    with pytest.raises(CommandExecutionError) as failed:
        bench.send(client, timeout=0.1)
    assert "paas_receive.chunk got no answer within 0.1 s (job 4)" in str(failed.value)
    assert str(failed.value).endswith("nothing of the transfer is left on the node")
    assert client.sent[-1][0] == "paas_receive.abort"
    assert client.answers[-1]["removed"] is True
    assert bench.left_on_node() == []


@pytest.mark.parametrize(
    "destination",
    ["/etc/paas-transfer-test", "{restore}/../elsewhere.db", "{restore}/.hidden", "{restore}/"],
)
def test_a_destination_outside_the_restore_directory_is_refused(bench, destination):
    bench.write_source(100)
    destination = destination.format(restore=bench.restore_dir)
    error = bench.refused(destination=destination)
    assert f"{destination} is not a file directly in {bench.restore_dir}" in error
    assert not os.path.isfile(destination) and not os.path.islink(destination)
    assert not (bench.restore_dir.parent / "elsewhere.db").exists()
    assert bench.left_on_node() == []


def test_a_node_whose_key_is_unusable_gets_nothing(bench):
    bench.write_source(100)
    client = LocalClient(bench.receive)
    with pytest.raises(CommandExecutionError, match="etcd2: the public key given for etcd2"):
        bench.send(client, node="etcd2", recipient_key="not a key")
    assert client.sent == []


def test_an_unreadable_source_is_named_and_nothing_stays_on_the_node(bench):
    error = bench.refused()
    assert f"No such file or directory: {bench.source}" in error
    assert bench.left_on_node() == []


def test_a_transfer_id_is_used_once(bench):
    key = b"k" * 32
    sealed = bench.transfer.seal(NODE_PUBLIC, key, NODE)
    first = bench.transfer.seal_chunk(key, "a" * 32, 0, b"one")
    bench.receive.chunk("a" * 32, 0, first, bench.destination(), sealed_key=sealed)
    with pytest.raises(CommandExecutionError, match="was started before"):
        bench.receive.chunk("a" * 32, 0, first, bench.destination(), sealed_key=sealed)
    assert bench.receive.abort("a" * 32) == {"transfer": "a" * 32, "removed": True}
    assert bench.left_on_node() == []


def test_the_node_removes_its_partial_file_by_itself_when_a_chunk_is_refused(bench):
    key = b"k" * 32
    sealed = bench.transfer.seal(NODE_PUBLIC, key, NODE)
    transfer = "b" * 32
    first = bench.transfer.seal_chunk(key, transfer, 0, b"one")
    bench.receive.chunk(transfer, 0, first, bench.destination(), sealed_key=sealed)
    assert bench.partial_size() == 3
    second = bench.transfer.seal_chunk(key, transfer, 0, b"two")
    with pytest.raises(CommandExecutionError) as failed:
        bench.receive.chunk(transfer, 1, second, bench.destination())
    assert str(failed.value) == (
        f"{NODE}: transfer {transfer}, chunk 1: chunk 1 failed authentication: changed, out "
        "of order, of another transfer, or under another key; nothing of the transfer is "
        "left on the node"
    )
    assert bench.left_on_node() == []


def test_nothing_under_way_is_said_so(bench):
    assert bench.receive.abort("c" * 32) == {"transfer": "c" * 32, "removed": False}
    with pytest.raises(CommandExecutionError, match="no transfer under way with this id"):
        bench.receive.finish("c" * 32, bench.destination(), 1, 0, "0" * 64)
    with pytest.raises(CommandExecutionError, match="no transfer under way with this id"):
        bench.receive.chunk("c" * 32, 1, "AAAA", bench.destination())
    assert not bench.restore_dir.exists()


def test_a_restore_directory_that_is_a_symbolic_link_is_refused(bench, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bench.restore_dir.symlink_to(elsewhere)
    bench.write_source(100)
    assert "is not a directory of this minion's user (a symbolic link" in bench.refused()
    assert list(elsewhere.iterdir()) == []


def test_a_transfer_id_names_no_path(bench):
    with pytest.raises(SaltInvocationError, match="is not a transfer id"):
        bench.receive.abort("../../etc")
