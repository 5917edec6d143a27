"""
The receiving end of a file the master sends to this node alone (``paas_transfer.send``
in ``_utils``): the chunks arrive AES-256-GCM encrypted under a key sealed to this
minion's Salt key, and are opened here with ``minion.pem``.

A file may land only in ``<snapshot_dir>/restore/`` of this node's etcd member view (a
0700 root directory beside the node's own snapshots), under a plain file name: a caller
of these functions can write nowhere else. Until ``finish`` the transfer lives in
``<snapshot_dir>/restore/.transfer-<id>/`` (0700): the transfer's key, opened once from
the first chunk, in a 0600 file (never logged, never returned), the partial file, and the
transfer's progress. The partial file is made 0600 by the minion's user (root) and is
never wider. ``finish`` checks the whole file's sha256, syncs it to disk and renames it
into place; a failure of any call, or ``abort``, removes the partial file and the key.

:depends: the ``paas_transfer`` utils module (``saltutil.sync_utils``), the
    ``paas_topology`` module
:configuration: the ``paas`` pillar key (``etcd:snapshot_dir``)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "paas_receive"

RESTORE_SUBDIR = "restore"
STAGING_PREFIX = ".transfer-"
KEY_FILE = "key"
DATA_FILE = "data"
PROGRESS_FILE = "progress.json"
READ_BYTES = 1024 * 1024
# As paas_transfer.send makes them (the utils loader exposes only its functions).
TRANSFER_ID = re.compile(r"^[0-9a-f]{32}$")
KEY_BYTES = 32


def __virtual__():
    if "paas_transfer.open_chunk" not in __utils__:
        return (
            False,
            "paas_receive: the paas_transfer utils module is not synced (saltutil.sync_utils)",
        )
    return __virtualname__


def chunk(
    transfer: str, index: int, data: str, destination: str, sealed_key: str | None = None
) -> dict:
    """
    Take chunk ``index`` (from 0, in order) of ``transfer`` for ``destination``: open it
    with the transfer's key and append it to the partial file. Chunk 0 carries
    ``sealed_key``, the transfer's key sealed to this minion's Salt key; the others do
    not. A chunk that fails authentication, comes out of order or names another
    destination ends the transfer: its partial file is removed.

    Returns ``{transfer, index, bytes}`` (bytes received so far).

    CLI Example:

    .. code-block:: bash

        salt etcd1 paas_receive.chunk transfer=<id> index=0 data=<sealed chunk> \
            destination=/var/lib/paas-etcd-snapshots/restore/etcd1.db sealed_key=<sealed>
    """
    index = _index(index)
    staging = _staging(transfer, create=index == 0)
    try:
        path = _destination(destination)
        if index == 0:
            if not sealed_key:
                raise SaltInvocationError("chunk 0 must carry the transfer's sealed key")
            key = _unseal(sealed_key)
            _write_new(os.path.join(staging, KEY_FILE), key)
            progress = {"destination": path, "next": 0, "bytes": 0}
        else:
            if sealed_key:
                raise SaltInvocationError(f"chunk {index} carries a sealed key: only chunk 0 does")
            progress = _progress(staging)
            key = _read(os.path.join(staging, KEY_FILE))
        if progress["destination"] != path:
            raise SaltInvocationError(
                f"chunk {index} is for {path}, the transfer is for {progress['destination']}"
            )
        if index != progress["next"]:
            raise SaltInvocationError(f"chunk {index} came where chunk {progress['next']} was due")
        plain = __utils__["paas_transfer.open_chunk"](key, transfer, index, data)
        descriptor = os.open(
            os.path.join(staging, DATA_FILE),
            os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
        try:
            os.ftruncate(descriptor, progress["bytes"])
            os.lseek(descriptor, progress["bytes"], os.SEEK_SET)
            _write_all(descriptor, plain)
        finally:
            os.close(descriptor)
        progress.update(next=index + 1, bytes=progress["bytes"] + len(plain))
        _save_progress(staging, progress)
    except (CommandExecutionError, SaltInvocationError, ValueError, OSError) as err:
        raise _failed(transfer, staging, f"chunk {index}", err) from err
    return {"transfer": transfer, "index": index, "bytes": progress["bytes"]}


def finish(transfer: str, destination: str, chunks: int, size: int, sha256: str) -> dict:
    """
    End ``transfer``: all ``chunks`` arrived, the file is ``size`` bytes and its sha256 is
    ``sha256``; then it is synced to disk and renamed (0600, the minion's user) into
    ``destination`` (replacing a file of that name), and the transfer's key is removed.
    A mismatch removes the partial file and says what differed.

    Returns ``{node, destination, bytes, sha256}``.

    CLI Example:

    .. code-block:: bash

        salt etcd1 paas_receive.finish transfer=<id> \
            destination=/var/lib/paas-etcd-snapshots/restore/etcd1.db chunks=3 \
            size=9437184 sha256=<hex>
    """
    staging = _staging(transfer)
    try:
        path = _destination(destination)
        progress = _progress(staging)
        if progress["destination"] != path:
            raise SaltInvocationError(
                f"finish is for {path}, the transfer is for {progress['destination']}"
            )
        if progress["next"] != _index(chunks):
            raise CommandExecutionError(
                f"{progress['next']} chunks arrived, the master sent {chunks}"
            )
        descriptor = os.open(
            os.path.join(staging, DATA_FILE), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        )
        try:
            found = _sha256(descriptor)
            received = os.fstat(descriptor).st_size
            if received != size or found != str(sha256).lower():
                raise CommandExecutionError(
                    f"the file received is {received} bytes with sha256 {found}; the master "
                    f"sent {size} bytes with sha256 {sha256}"
                )
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(os.path.join(staging, DATA_FILE), path)
        _sync_directory(os.path.dirname(path))
    except (CommandExecutionError, SaltInvocationError, ValueError, OSError) as err:
        raise _failed(transfer, staging, "finish", err) from err
    shutil.rmtree(staging)
    return {"node": __opts__["id"], "destination": path, "bytes": received, "sha256": found}


def abort(transfer: str) -> dict:
    """
    Remove what ``transfer`` left on this node (its partial file and key). Nothing to
    remove is no error.

    Returns ``{transfer, removed}``.

    CLI Example:

    .. code-block:: bash

        salt etcd1 paas_receive.abort transfer=<id>
    """
    staging = _staging(transfer)
    removed = os.path.lexists(staging)
    if removed:
        shutil.rmtree(staging)
    return {"transfer": transfer, "removed": removed}


def _restore_dir(create: bool = False) -> str:
    directory = os.path.join(
        os.path.normpath(__salt__["paas_topology.etcd_member"]()["snapshot_dir"]), RESTORE_SUBDIR
    )
    if create:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        found = os.lstat(directory)
    except FileNotFoundError:
        # Made by the first chunk: without it no transfer is under way.
        return directory
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.geteuid():
        raise CommandExecutionError(
            f"{__opts__['id']}: {directory} is not a directory of this minion's user "
            "(a symbolic link, or made by someone else): remove it, it is made again"
        )
    if stat.S_IMODE(found.st_mode) != 0o700:
        os.chmod(directory, 0o700)
    return directory


def _staging(transfer: str, create: bool = False) -> str:
    if not isinstance(transfer, str) or not TRANSFER_ID.match(transfer):
        raise SaltInvocationError(f"{transfer!r} is not a transfer id (32 hex digits)")
    staging = os.path.join(_restore_dir(create), STAGING_PREFIX + transfer)
    if create:
        try:
            os.mkdir(staging, 0o700)
        except FileExistsError as err:
            raise CommandExecutionError(
                f"{__opts__['id']}: transfer {transfer} was started before: an id is used once"
            ) from err
    return staging


def _destination(destination: str) -> str:
    # The file is written to the path made here, never to the caller's string.
    allowed = _restore_dir()
    given = os.path.normpath(str(destination))
    name = os.path.basename(given)
    path = os.path.join(allowed, name)
    if given != path or not name or name.startswith("."):
        raise SaltInvocationError(
            f"{__opts__['id']}: {destination} is not a file directly in {allowed}, "
            "the only directory a transfer may write to"
        )
    return path


def _index(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SaltInvocationError(f"{value!r} is not a chunk index or count")
    return value


def _unseal(sealed: str) -> bytes:
    pem = os.path.join(__opts__["pki_dir"], "minion.pem")
    try:
        key = __utils__["paas_transfer.unseal"](pem, sealed)
    except ValueError as err:
        raise CommandExecutionError(f"the transfer's key is not for this minion: {err}") from err
    if len(key) != KEY_BYTES:
        raise CommandExecutionError(f"the transfer's key is {len(key)} bytes, not {KEY_BYTES}")
    return key


def _progress(staging: str) -> dict:
    try:
        return json.loads(_read(os.path.join(staging, PROGRESS_FILE)))
    except FileNotFoundError as err:
        raise CommandExecutionError(
            "no transfer under way with this id (never started, finished or aborted)"
        ) from err


def _save_progress(staging: str, progress: dict) -> None:
    path = os.path.join(staging, PROGRESS_FILE)
    _write_new(f"{path}.new", json.dumps(progress).encode())
    os.replace(f"{path}.new", path)


def _read(path: str) -> bytes:
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read()


def _write_new(path: str, data: bytes) -> None:
    descriptor = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    try:
        _write_all(descriptor, data)
    finally:
        os.close(descriptor)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def _sha256(descriptor: int) -> str:
    digest = hashlib.sha256()
    os.lseek(descriptor, 0, os.SEEK_SET)
    while block := os.read(descriptor, READ_BYTES):
        digest.update(block)
    return digest.hexdigest()


def _sync_directory(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _failed(transfer: str, staging: str, where: str, err: Exception) -> CommandExecutionError:
    shutil.rmtree(staging, ignore_errors=True)
    reason = f"{err.strerror}: {err.filename}" if isinstance(err, OSError) else err
    return CommandExecutionError(
        f"{__opts__['id']}: transfer {transfer}, {where}: {reason}; "
        "nothing of the transfer is left on the node"
    )
