"""
etcd snapshot files, the same on the etcd nodes and on the master: their names, the
record of their digest beside them, and etcd's own integrity check of their bytes.

A snapshot is named ``<member>-<UTC %Y%m%dT%H%M%SZ>-r<revision>.db``: the member that
took it, when, and the revision etcd's ``snapshot status`` read in it when it was
taken. The name is a label for people and for ordering; what a snapshot holds is read
from its content. Beside it, ``<name>.sha256`` holds the whole file's sha256 in
``sha256sum``'s format, as its node recorded it.

``etcdctl snapshot save`` appends the sha256 of the database to the file, and ``etcdutl
snapshot restore`` refuses a file whose trailer does not match (unless told to skip the
check). ``check`` verifies that trailer, and the whole file's digest when one is given,
in pure Python: no etcd binary is needed.

Plain Python used on both sides: by the ``etcd_snapshot`` execution module on the etcd
nodes (``__utils__``, synced with ``saltutil.sync_utils`` or ``sync_all``) and by the
master's ``paas_backup`` runner. The utils loader exposes only functions.

:depends: nothing outside Python's standard library
"""

from __future__ import annotations

import calendar
import hashlib
import os
import re
import time

NAME = re.compile(r"^(?P<member>.+)-(?P<time>\d{8}T\d{6}Z)-r(?P<revision>\d+)\.db$")
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
DIGEST_SUFFIX = ".sha256"
DIGEST_SIZE = hashlib.sha256().digest_size
# etcd's own test of a trailer (etcdutl/snapshot/v3_snapshot.go, hasChecksum): bolt
# writes whole pages, so a snapshot with its digest is a multiple of 512 bytes plus 32.
SECTOR = 512
CHUNK = 1 << 20


def format_name(member: str, taken: float, revision: int) -> str:
    """The file name of ``member``'s snapshot taken at ``taken`` (unix seconds) that holds
    ``revision``."""
    return f"{member}-{time.strftime(TIME_FORMAT, time.gmtime(taken))}-r{int(revision)}.db"


def parse_name(name: str) -> dict | None:
    """The member, UTC time (unix seconds) and revision a snapshot's file name carries,
    or None when ``name`` is not a snapshot's."""
    found = NAME.match(name)
    if not found:
        return None
    try:
        taken = calendar.timegm(time.strptime(found["time"], TIME_FORMAT))
    except ValueError:
        return None
    return {"member": found["member"], "time": float(taken), "revision": int(found["revision"])}


def digest_name(name: str) -> str:
    """The file name of the digest record beside snapshot ``name``."""
    return f"{name}{DIGEST_SUFFIX}"


def snapshot_of_digest(name: str) -> str | None:
    """The snapshot whose digest record ``name`` is, or None when it is none."""
    if not name.endswith(DIGEST_SUFFIX):
        return None
    snapshot = name[: -len(DIGEST_SUFFIX)]
    return snapshot if parse_name(snapshot) else None


def digest_record(sha256: str, name: str) -> str:
    """The text of ``<name>.sha256``: ``sha256sum``'s format."""
    return f"{sha256}  {name}\n"


def recorded_digest(path: str, limit: int = 4096) -> str | None:
    """The sha256 recorded in the digest file ``path``, or None when there is none (no
    file, empty, or longer than any digest record is)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read(limit + 1)
    except FileNotFoundError:
        return None
    fields = text.split()
    return fields[0] if fields and len(text) <= limit else None


def check(path: str, expected_sha256: str | None = None) -> dict:
    """
    Check a snapshot file as ``etcdutl snapshot restore`` does before it uses one: the
    sha256 etcd appended must match the bytes before it. With ``expected_sha256``, the
    whole file must also have that digest. Returns ``{"verified": True, "sha256",
    "size"}``, or ``{"verified": False, "error"}`` saying what is wrong.
    """
    size = os.path.getsize(path)
    if size <= DIGEST_SIZE or size % SECTOR != DIGEST_SIZE:
        return {
            "verified": False,
            "error": f"{path}: {size} bytes, no whole etcd snapshot (corrupt or truncated: "
            f"etcd's are a multiple of {SECTOR} bytes and its {DIGEST_SIZE}-byte sha256)",
        }
    contents, whole = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as stream:
        remaining = size - DIGEST_SIZE
        while remaining:
            chunk = stream.read(min(remaining, CHUNK))
            if not chunk:
                break
            contents.update(chunk)
            whole.update(chunk)
            remaining -= len(chunk)
        trailer = stream.read()
        whole.update(trailer)
    if remaining or contents.digest() != trailer:
        return {
            "verified": False,
            "error": f"{path}: the snapshot's sha256 does not match its contents "
            "(corrupt or truncated)",
        }
    if expected_sha256 is not None and whole.hexdigest() != expected_sha256:
        return {
            "verified": False,
            "error": f"{path}: its sha256 is {whole.hexdigest()}, its node recorded "
            f"{expected_sha256}",
        }
    return {"verified": True, "sha256": whole.hexdigest(), "size": size}
