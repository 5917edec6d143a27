"""
An etcd release archive built from the image's packaged binaries, laid out as upstream's
(``etcd-v<version>-linux-amd64/{etcd,etcdctl,etcdutl}``), so that the lab proves the
platform's archive install path (version and sha256 pinned) with no way to the internet.
The master serves it from the lab's own file root, as ``salt://lab-etcd/<name>``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
from pathlib import Path

from lab.config import LAB_FILES_DIR, LabError
from lab.shell import run

BINARIES = ("etcd", "etcdctl", "etcdutl")


def version(rootfs: Path) -> str:
    output = run(str(rootfs / "usr/bin/etcd"), "--version")
    found = re.search(r"etcd Version: (\d+\.\d+\.\d+)", output)
    if not found:
        raise LabError(f"cannot read etcd's version from {rootfs}/usr/bin/etcd: {output!r}")
    return found.group(1)


def ensure(rootfs: Path) -> dict:
    """Build the archive unless it exists; return its version, URL and sha256."""
    release = version(rootfs)
    name = f"etcd-v{release}-linux-amd64"
    path = LAB_FILES_DIR / "lab-etcd" / f"{name}.tar.gz"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        # Fixed times and owners: the same binaries always give the same digest.
        with (
            gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,
            tarfile.open(fileobj=compressed, mode="w") as archive,
        ):
            top = tarfile.TarInfo(name)
            top.type, top.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(top)
            for binary in BINARIES:
                data = (rootfs / "usr/bin" / binary).read_bytes()
                entry = tarfile.TarInfo(f"{name}/{binary}")
                entry.size, entry.mode = len(data), 0o755
                archive.addfile(entry, io.BytesIO(data))
        partial = path.with_suffix(".partial")
        partial.write_bytes(buffer.getvalue())
        partial.rename(path)
    return {
        "version": release,
        "url": f"salt://lab-etcd/{path.name}",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
