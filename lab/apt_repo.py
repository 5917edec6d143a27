"""
The lab's Kubernetes package repository: the .deb files of the lab's Kubernetes double
(``lab.kube.packages``: kubeadm, kubelet, kubectl) in a signed flat apt repository laid
out as pkgs.k8s.io's, served to the machines by a plain HTTP server on the master's
private address, so that the platform's repository, signed-by key, pin and hold go
through apt for real.

The repository sits at the path of the URL the lab's pillar names
(``paas:kubernetes:repository:url``, ``/core:/stable:/v1.34/deb/``): ``Packages``,
``Packages.gz``, ``Release``, ``InRelease``, ``Release.gpg``, ``Release.key`` (the
armored public key) and ``amd64/<package>_<version>_amd64.deb``. The signing key is a
throwaway one made at the first build, with no passphrase, in a GnuPG home of its own
under /var/lib/paas-lab (never in the checkout), and goes with `lab down`. The
repository is rebuilt only when what makes it changed: the double's sources under
lab/kube/, the version, this module.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import shutil
import socket
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from lab.config import REPO, STATE_DIR, LabError
from lab.kube import packages
from lab.processes import HostDaemon, alive, wait_for
from lab.shell import run, step

ROOT = STATE_DIR / "package-repository"
# What the HTTP server serves: the repository at its URL's path, nothing else.
SERVED = ROOT / "www"
GNUPG_HOME = ROOT / "gnupg"
INPUTS = ROOT / "inputs.sha256"
SOURCES = REPO / "lab" / "kube"
ARCHITECTURE = "amd64"
KEY_NAME = "paas lab package repository (a throwaway key of the lab) <lab@paas.lab>"
SERVER = HostDaemon("http.server", ROOT / "server", "package-repository")
SERVER_WAIT = 15


def inputs_digest(version: str) -> str:
    """A digest of everything the repository is made from."""
    digest = hashlib.sha256(f"{version}\n".encode())
    digest.update(Path(__file__).read_bytes())
    for path in sorted(SOURCES.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(f"\n{path.relative_to(SOURCES)}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def endpoint(url: str, master_address: str) -> tuple[str, int, str]:
    """Where the lab serves the repository that ``url`` names: address, port, path;
    refused unless it is the master's own address over plain HTTP."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname != master_address or not parts.port:
        raise LabError(
            f"lab/pillar/paas.sls: paas:kubernetes:repository:url {url!r}: the lab serves "
            f"its package repository at http://{master_address}:<port>/<path>/"
        )
    return parts.hostname, parts.port, parts.path.strip("/")


def _package_paragraph(deb: Path, filename: str) -> str:
    control = run("dpkg-deb", "--field", str(deb)).rstrip("\n")
    data = deb.read_bytes()
    return (
        f"{control}\n"
        f"Filename: {filename}\n"
        f"Size: {len(data)}\n"
        f"MD5sum: {hashlib.md5(data).hexdigest()}\n"
        f"SHA1: {hashlib.sha1(data).hexdigest()}\n"
        f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
    )


def _release(directory: Path, label: str) -> str:
    """A flat repository's Release: no suite or components, the indexes' digests."""
    indexes = [directory / "Packages", directory / "Packages.gz"]
    lines = [
        "Origin: paas-lab",
        f"Label: {label}",
        f"Architectures: {ARCHITECTURE}",
        f"Date: {email.utils.format_datetime(datetime.now(UTC), usegmt=True)}",
        "Description: the lab's Kubernetes double (lab/kube), not Kubernetes",
    ]
    for field, algorithm in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256")):
        lines.append(f"{field}:")
        for index in indexes:
            data = index.read_bytes()
            digest = hashlib.new(algorithm, data).hexdigest()
            lines.append(f" {digest} {len(data):>8} {index.name}")
    return "\n".join(lines) + "\n"


def _gpg(*argv: str) -> str:
    return run("gpg", "--homedir", str(GNUPG_HOME), "--batch", "--quiet", *argv)


def signing_key() -> str:
    """The fingerprint of the lab's signing key, made on first use."""
    if not GNUPG_HOME.is_dir():
        GNUPG_HOME.mkdir(parents=True, mode=0o700)
    listed = _gpg("--with-colons", "--list-secret-keys")
    if "\nfpr:" not in f"\n{listed}":
        _gpg(
            "--passphrase", "", "--quick-generate-key", KEY_NAME, "ed25519", "sign", "never",
        )  # fmt: skip
        listed = _gpg("--with-colons", "--list-secret-keys")
    return next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:"))


def build(debs: list[Path], directory: Path, label: str) -> None:
    """Make ``directory`` a signed flat repository of ``debs``, signed with the lab's key."""
    pool = directory / ARCHITECTURE
    pool.mkdir(parents=True)
    paragraphs = []
    for deb in sorted(debs):
        shutil.copy(deb, pool / deb.name)
        paragraphs.append(_package_paragraph(pool / deb.name, f"{ARCHITECTURE}/{deb.name}"))
    packages = "\n".join(paragraphs).encode()
    (directory / "Packages").write_bytes(packages)
    with gzip.GzipFile(directory / "Packages.gz", "wb", mtime=0) as compressed:
        compressed.write(packages)
    (directory / "Release").write_text(_release(directory, label))
    key = signing_key()
    try:
        sign = ("--local-user", key, "--digest-algo", "SHA512", "--yes")
        release = str(directory / "Release")
        _gpg(*sign, "--clearsign", "--output", str(directory / "InRelease"), release)
        _gpg(*sign, "--armor", "--detach-sign", "--output", str(directory / "Release.gpg"), release)
        (directory / "Release.key").write_text(_gpg("--armor", "--export", key))
    finally:
        # gpg started an agent for the secret key: it is not to outlive the build.
        run("gpgconf", "--homedir", str(GNUPG_HOME), "--kill", "all", check=False)


def ensure(version: str, path: str) -> Path:
    """The repository of the double's packages at ``version``, served at ``path``:
    rebuilt when its inputs changed, kept otherwise. The directory it is in."""
    directory = SERVED / path
    digest = inputs_digest(version)
    if directory.is_dir() and INPUTS.is_file() and INPUTS.read_text().strip() == digest:
        step(f"package repository: kubeadm, kubelet, kubectl {version} (doubles) unchanged")
        return directory
    ROOT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT) as scratch:
        debs = packages.build(version, Path(scratch) / "debs")
        building = Path(scratch) / "repository"
        build(debs, building, label=f"paas-lab {path}")
        shutil.rmtree(SERVED, ignore_errors=True)
        directory.parent.mkdir(parents=True)
        building.rename(directory)
    INPUTS.write_text(f"{digest}\n")
    names = ", ".join(deb.name for deb in debs)
    step(f"package repository: built and signed ({names})")
    return directory


def _answers(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
    except OSError:
        return False
    return True


def up(version: str, url: str, master_address: str) -> None:
    """Build the repository if needed and serve it at ``url`` unless it is served."""
    address, port, path = endpoint(url, master_address)
    ensure(version, path)
    if SERVER.main() is not None:
        return
    pid = SERVER.start(
        [sys.executable, "-m", "http.server", "--bind", address,
         "--directory", str(SERVED), str(port)],
    )  # fmt: skip
    if not wait_for(lambda: _answers(address, port) or not alive(pid), timeout=SERVER_WAIT):
        raise LabError(f"the package repository's server did not listen on {address}:{port}")
    if not alive(pid):
        raise LabError(
            f"the package repository's server stopped as it started; see {SERVER.console}"
        )
    step(f"package repository: served at {url} (log {SERVER.console})")


def down() -> None:
    SERVER.stop(grace=5)
