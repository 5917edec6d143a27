"""
The lab's wheelhouse: the wheels of requirements-minion.lock, for the nodes' Python, in
a directory that the package repository's HTTP server (lab/apt_repo.py) serves at the
URL the lab's pillar names (``paas:python:find_links``), so that the platform's first
step installs the minions' libraries as it does on a machine without a way to PyPI.

It holds the lock's wheels and nothing else, copied from the wheel cache the image build
fills (lab/image.py), anew at every `lab up`: a wheel missing from the cache is an error
here, naming it, not half-way through a converge.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import urlsplit

from packaging.utils import canonicalize_name, parse_wheel_filename

from lab import apt_repo
from lab.config import LabError
from lab.image import MINION_LOCK, WHEELS
from lab.shell import step


def pins(lock: Path = MINION_LOCK) -> dict[str, str]:
    """The lock's ``name==version`` lines, by canonical name."""
    pinned = {}
    for raw in lock.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pinned[canonicalize_name(name)] = version
    return pinned


def directory(url: str, repository_url: str, master_address: str) -> Path:
    """Where the wheelhouse that ``url`` names lies: under the package repository's
    server, which must be the one ``url`` names."""
    served = apt_repo.endpoint(repository_url, master_address)[:2]
    parts = urlsplit(url)
    path = parts.path.strip("/")
    if (parts.scheme, parts.hostname, parts.port) != ("http", *served) or not path:
        raise LabError(
            f"lab/pillar/paas.sls: paas:python:find_links {url!r}: the lab serves its "
            f"wheelhouse beside its package repository, at http://{served[0]}:{served[1]}/<path>/"
        )
    return apt_repo.SERVED / path


def wheels(cache: Path, pinned: dict[str, str]) -> list[Path]:
    """The cache's wheel of each pin; an error naming every pin the cache lacks."""
    found = {}
    for wheel in cache.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        if pinned.get(name) == str(version):
            found[name] = wheel
    missing = sorted(set(pinned) - set(found))
    if missing:
        raise LabError(
            f"the wheel cache {cache} has no wheel of "
            + ", ".join(f"{name}=={pinned[name]}" for name in missing)
            + " (requirements-minion.lock): remove the image's cache entry to build them again"
        )
    return [found[name] for name in sorted(found)]


def up(url: str, repository_url: str, master_address: str) -> None:
    """Fill the wheelhouse at ``url`` with the lock's wheels, and only those."""
    target = directory(url, repository_url, master_address)
    chosen = wheels(WHEELS, pins())
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for wheel in chosen:
        shutil.copy(wheel, target / wheel.name)
    step(f"wheelhouse: {len(chosen)} wheels of requirements-minion.lock served at {url}")
