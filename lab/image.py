"""
The lab's machine image: Debian 13 with systemd, Salt in a venv, the role packages.

Salt's venv holds Salt and nothing more: the libraries the platform's modules import
(requirements-minion.lock) and protobuf's .pth file are installed by the platform's own
first step (salt/salt_python) from the lab's wheelhouse (lab/wheelhouse.py), as on a
real machine. The image build also makes those wheels, for the nodes' Python, into the
wheel cache the wheelhouse is filled from.

The image is built once per recipe and cached under CACHE_DIR/images/<hash>, where the
hash covers everything that goes into it (this file, the package lists, the Python
requirements and their pins), so a change to any of them builds a new image and an
unchanged recipe reuses the old one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import yaml

from lab.config import CACHE_DIR, REPO, LabError
from lab.kube import packages as kube_packages
from lab.shell import run, step

SUITE = "trixie"
MIRROR = "http://deb.debian.org/debian"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
NODE_REQUIREMENTS = REPO / "lab" / "requirements-node.txt"
CONSTRAINTS = REPO / "requirements.lock"
MINION_LOCK = REPO / "requirements-minion.lock"
MINION_UNIT = REPO / "lab" / "files" / "salt-minion.service"
# Wheels for the nodes' Python (3.13): Salt's, and the minion lock's for the wheelhouse.
WHEELS = CACHE_DIR / "wheels" / "trixie"

# A booting systemd, and what building Salt's wheels needs (timelib has no wheel).
SYSTEM_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "iproute2", "iputils-ping", "procps",
    "ca-certificates", "python3", "python3-venv", "python3-dev", "gcc",
]  # fmt: skip
# The roles' packages, so that pkg.installed finds them on machines with no way out.
ROLE_PACKAGES = [
    "etcd-server", "etcd-client", "keepalived", "haproxy", "nftables",
    "conntrackd", "conntrack", "openssl", "curl", "containerd", "runc", "gnupg",
]  # fmt: skip
# What the packages of the lab's Kubernetes repository (lab/kube/packages.py: the real
# packages' dependencies, and what the doubles run on) need from the distribution, which
# the machines install from that repository at converge time and apt resolves there.
# debootstrap resolves no virtual package: python3-cffi-backend provides the cffi API
# that python3-cryptography depends on.
DOUBLE_PACKAGES = [*kube_packages.distribution_depends(), "python3-cffi-backend"]
# Daemons the packages enable; the platform's states decide when and where they run
# (containerd only on Kubernetes nodes, once its configuration is written).
DISABLED_SERVICES = ["etcd", "haproxy", "keepalived", "conntrackd", "nftables", "containerd"]


def formula_packages() -> list[str]:
    """Every package a formula's defaults.yaml lists, so the image always has them."""
    packages = []
    for defaults in sorted((REPO / "salt").glob("*/defaults.yaml")):
        for settings in (yaml.safe_load(defaults.read_text()) or {}).values():
            packages.extend(settings.get("packages", []))
    return packages


def packages() -> list[str]:
    return sorted(set(SYSTEM_PACKAGES + ROLE_PACKAGES + DOUBLE_PACKAGES + formula_packages()))


def recipe_hash() -> str:
    recipe = {
        "suite": SUITE,
        "mirror": MIRROR,
        "packages": packages(),
        "builder": Path(__file__).read_text(),
        "requirements": NODE_REQUIREMENTS.read_text(),
        "constraints": CONSTRAINTS.read_text(),
        "minion_lock": MINION_LOCK.read_text(),
        "minion_unit": MINION_UNIT.read_text(),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def ensure_image() -> Path:
    """Return the root of the image for the current recipe, building it if needed."""
    digest = recipe_hash()
    final = CACHE_DIR / "images" / digest
    if (final / "rootfs").is_dir():
        step(f"image {digest}: cached in {final}")
        return final / "rootfs"
    building = final.with_name(f"{digest}.building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    rootfs = building / "rootfs"
    step(f"image {digest}: debootstrap {SUITE} ({len(packages())} packages, a few minutes)")
    run(
        "debootstrap", "--variant=minbase", f"--include={','.join(packages())}",
        SUITE, str(rootfs), MIRROR,
    )  # fmt: skip
    step(f"image {digest}: Salt venv in /opt/salt, the wheelhouse's wheels (built here)")
    _install_salt(rootfs)
    step(f"image {digest}: configure")
    _configure(rootfs)
    building.rename(final)
    step(f"image {digest}: ready in {final}")
    return final / "rootfs"


def _in_image(rootfs: Path, *argv: str, binds: tuple[str, ...] = ()) -> str:
    # A one-shot container (not booted) on the host's network: /proc, /dev and DNS are
    # set up by systemd-nspawn, which a bare chroot would need done by hand.
    options = [f"--bind={bind}" for bind in binds]
    return run(
        "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--pipe",
        f"--directory={rootfs}", *options, *argv,
    )  # fmt: skip


def _install_salt(rootfs: Path) -> None:
    WHEELS.mkdir(parents=True, exist_ok=True)
    staging = rootfs / "var/tmp/lab"
    staging.mkdir(parents=True)
    shutil.copy(NODE_REQUIREMENTS, staging / "requirements.txt")
    shutil.copy(CONSTRAINTS, staging / "constraints.txt")
    shutil.copy(MINION_LOCK, staging / "minion.lock")
    shutil.copy(HOST_CA_BUNDLE, staging / "ca-bundle.crt")
    binds = (f"{WHEELS}:/var/cache/lab-wheels",)
    requirements = ("-r", "/var/tmp/lab/requirements.txt", "-c", "/var/tmp/lab/constraints.txt")
    wheel = (
        "/opt/salt/bin/pip", "wheel", "--quiet", "--cert", "/var/tmp/lab/ca-bundle.crt",
        "--wheel-dir", "/var/cache/lab-wheels",
    )  # fmt: skip
    _in_image(rootfs, "python3", "-m", "venv", "/opt/salt")
    _in_image(rootfs, *wheel, *requirements, binds=binds)
    _in_image(rootfs, *wheel, "--no-deps", "-r", "/var/tmp/lab/minion.lock", binds=binds)
    _in_image(
        rootfs, "/opt/salt/bin/pip", "install", "--quiet", "--no-index",
        "--find-links", "/var/cache/lab-wheels", *requirements, binds=binds,
    )  # fmt: skip
    shutil.rmtree(staging)
    for tool in ("salt-call", "salt-minion"):
        (rootfs / "usr/local/bin" / tool).symlink_to(f"/opt/salt/bin/{tool}")


def _configure(rootfs: Path) -> None:
    unit = rootfs / "etc/systemd/system/salt-minion.service"
    shutil.copy(MINION_UNIT, unit)
    wants = rootfs / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "salt-minion.service").symlink_to("/etc/systemd/system/salt-minion.service")
    for service in DISABLED_SERVICES:
        _in_image(rootfs, "systemctl", "disable", "--quiet", f"{service}.service")
    # The machines have no way to a mirror: apt has no sources, so a refresh is a no-op.
    for sources in [rootfs / "etc/apt/sources.list", *rootfs.glob("etc/apt/sources.list.d/*")]:
        sources.unlink(missing_ok=True)
    _in_image(rootfs, "apt-get", "clean")
    # The lab has no DNS (names come from /etc/hosts): no resolver of the host's, which
    # the machines could not reach and would wait for.
    (rootfs / "etc/resolv.conf").unlink(missing_ok=True)
    (rootfs / "etc/resolv.conf").write_text("# The lab has no DNS: names come from /etc/hosts.\n")
    # Each machine gets its own machine-id and host name from the lab at boot.
    (rootfs / "etc/machine-id").write_text("")
    (rootfs / "etc/hostname").unlink(missing_ok=True)
    (rootfs / "etc/salt/minion.d").mkdir(parents=True, exist_ok=True)
    if not (rootfs / "opt/salt/bin/salt-minion").exists():
        raise LabError(f"image build: {rootfs}/opt/salt/bin/salt-minion is missing")
