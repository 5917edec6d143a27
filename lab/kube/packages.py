"""
The lab's kubeadm, kubelet and kubectl packages, and the cri-tools and kubernetes-cni
packages they depend on: Debian packages named and versioned as pkgs.k8s.io's
("1.34.2-1.1", amd64), holding the lab's test doubles, with the real packages'
dependency fields, so that the platform's repository, pin and hold, and apt's resolution
of what they pull in, go through apt for real.

Each package ships its programs and the modules they import under
/usr/lib/paas-lab-kube/<package>/ (a directory of its own: dpkg refuses two packages that
ship one path, and the doubles share kube_common.py) and a /usr/bin wrapper;
kubelet ships the real deb's systemd unit and kubeadm drop-in (lab/kube/files/, from
kubernetes/release's kubelet packaging) and the apiserver double the kubelet double runs,
since the images it would run cannot be had here. Each package depends on what the real
one depends on (``REAL_DEPENDS``), and the doubles on what they run on (python3,
python3-cryptography, python3-yaml). kubernetes-cni holds the real CNI reference plugins:
/opt/cni/bin/<plugin> links to Debian's containernetworking-plugins in /usr/lib/cni.
cri-tools is a double without its program: crictl cannot be had here, and nothing the
platform runs calls it. What these depend on from the distribution, the lab's image
carries (``distribution_depends``), as a machine's mirror would give it.

Builds are deterministic (fixed modes, owners and times), so an unchanged double makes
byte-identical packages. Needs dpkg-deb; no network.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

KUBE_DIR = Path(__file__).resolve().parent
FILES = KUBE_DIR / "files"
LIB = "usr/lib/paas-lab-kube"
# The doubles copy this release; a package of another version would lie about its contents.
DOUBLE_VERSION = "1.34.2"
# pkgs.k8s.io's Debian revision for its builds.
DEBIAN_REVISION = "1.1"
# 2025-11-11T00:00:00Z: every file's time, and dpkg-deb's (SOURCE_DATE_EPOCH).
FIXED_TIME = 1762819200
MAINTAINER = "paas-salt lab <lab@paas-lab.invalid>"

# What the real packages depend on: kubernetes/release, cmd/krel/templates/latest/
# metadata.yaml (the packages of pkgs.k8s.io since 1.28) and its kubelet.spec.
REAL_DEPENDS = {
    "kubeadm": "cri-tools (>= 1.30.0)",
    "kubelet": (
        "iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), iproute2, mount, socat, "
        "util-linux, ethtool, ebtables, conntrack"
    ),
    "kubectl": "",
    "cri-tools": "",
    "kubernetes-cni": "",
}
# The CNI reference plugins Debian 13's containernetworking-plugins (1.1.1) ships in
# /usr/lib/cni, which the real kubernetes-cni ships in /opt/cni/bin.
CNI_PLUGINS = (
    "bandwidth", "bridge", "dhcp", "firewall", "host-device", "host-local", "ipvlan",
    "loopback", "macvlan", "portmap", "ptp", "sbr", "static", "tuning", "vlan", "vrf",
)  # fmt: skip
CRI_TOOLS_README = """\
The paas-salt lab's cri-tools package (a double): named, versioned and depended on as
pkgs.k8s.io's, without crictl, which cannot be had on the lab's machines. Nothing the
platform runs calls crictl.
"""

PACKAGES = {
    "kubeadm": {
        "programs": {"kubeadm": "kubeadm.py"},
        "libraries": [
            "kubeadm.py",
            "kubeadm_api.py",
            "kubeadm_certs.py",
            "kubeadm_client.py",
            "kubeadm_config.py",
            "kubeadm_constants.py",
            "kubeadm_controlplane.py",
            "kubeadm_copycerts.py",
            "kubeadm_discovery.py",
            "kubeadm_init.py",
            "kubeadm_join.py",
            "kubeadm_kubeconfig.py",
            "kubeadm_kubelet.py",
            "kubeadm_pki.py",
            "kubeadm_preflight.py",
            "kubeadm_reset.py",
            "kubeadm_token.py",
            "kubeadm_util.py",
            "kubeadm_validation.py",
            "kube_common.py",
        ],
        "depends": "python3, python3-cryptography, python3-yaml",
        "summary": "Command-line utility for administering a Kubernetes cluster (lab double)",
    },
    "kubelet": {
        "programs": {"kubelet": "kubelet.py"},
        "libraries": [
            "kubelet.py",
            "kube_apiserver.py",
            "apiserver_api.py",
            "apiserver_auth.py",
            "apiserver_etcd.py",
            "apiserver_handlers.py",
            "apiserver_patch.py",
            "apiserver_registry.py",
            "apiserver_signer.py",
            "kube_common.py",
        ],
        "depends": "python3, python3-cryptography, python3-yaml",
        "summary": "Node agent for Kubernetes clusters (lab double)",
        "units": {
            "usr/lib/systemd/system/kubelet.service": FILES / "kubelet.service",
            "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": FILES / "10-kubeadm.conf",
        },
    },
    "kubectl": {
        "programs": {"kubectl": "kubectl.py"},
        "libraries": ["kubectl.py", "kube_common.py"],
        "depends": "python3, python3-yaml",
        "summary": "Command-line utility for interacting with a Kubernetes cluster (lab double)",
    },
    "cri-tools": {
        # pkgs.k8s.io's v1.34 repository holds cri-tools of its own line.
        "version": "1.34.0-1.1",
        "programs": {},
        "libraries": [],
        "files": {"usr/share/doc/cri-tools/README.paas-lab": CRI_TOOLS_README},
        "depends": "",
        "summary": "Command-line utility for interacting with a container runtime (lab double)",
    },
    "kubernetes-cni": {
        "version": "1.7.1-1.1",
        "programs": {},
        "libraries": [],
        "links": {f"opt/cni/bin/{plugin}": f"/usr/lib/cni/{plugin}" for plugin in CNI_PLUGINS},
        "depends": "containernetworking-plugins",
        "summary": "Binaries required to provision kubernetes container networking "
        "(Debian's reference plugins)",
    },
}

DESCRIPTION = (
    " The paas-salt lab's test double: it behaves like the real {name} {version} where\n"
    " the platform's states can tell, on the lab's other Kubernetes doubles.\n"
    " It is not Kubernetes."
)

WRAPPER = """#!/bin/sh
# The lab's {name} double (paas-salt lab/kube/{program}).
exec /usr/bin/python3 -B /{lib}/{program} "$@"
"""

# What debhelper's dh_installsystemd writes for a unit enabled and started on install,
# as the real kubelet deb does (the kubelet then restarts every 10 s until kubeadm runs).
KUBELET_POSTINST = """#!/bin/sh
set -e
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || \\
	[ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ]; then
	if deb-systemd-helper debian-installed 'kubelet.service'; then
		deb-systemd-helper unmask 'kubelet.service' >/dev/null || true
		if deb-systemd-helper --quiet was-enabled 'kubelet.service'; then
			deb-systemd-helper enable 'kubelet.service' >/dev/null || true
		fi
		deb-systemd-helper update-state 'kubelet.service' >/dev/null || true
	else
		deb-systemd-helper enable 'kubelet.service' >/dev/null || true
	fi
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		if [ -n "$2" ]; then _dh_action=restart; else _dh_action=start; fi
		deb-systemd-invoke $_dh_action 'kubelet.service' >/dev/null || true
	fi
fi
"""

KUBELET_PRERM = """#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	deb-systemd-invoke stop 'kubelet.service' >/dev/null || true
fi
"""

KUBELET_POSTRM = """#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = "remove" ]; then
	deb-systemd-helper mask 'kubelet.service' >/dev/null || true
fi
if [ "$1" = "purge" ]; then
	deb-systemd-helper purge 'kubelet.service' >/dev/null || true
	deb-systemd-helper unmask 'kubelet.service' >/dev/null || true
fi
"""


def package_version(version: str) -> str:
    """ "1.34.2" -> "1.34.2-1.1" (pkgs.k8s.io's style); a full version is kept."""
    upstream = version.split("-", 1)[0]
    if upstream != DOUBLE_VERSION:
        raise ValueError(
            f"the lab's Kubernetes doubles copy {DOUBLE_VERSION}; they cannot be packaged as "
            f"{version}: set paas:versions:kubernetes to {DOUBLE_VERSION} for the lab"
        )
    return version if "-" in version else f"{version}-{DEBIAN_REVISION}"


def depends(name: str) -> str:
    """A package's Depends field: the real package's, then what its double runs on."""
    fields = [REAL_DEPENDS[name], PACKAGES[name]["depends"]]
    return ", ".join(field for field in fields if field)


def distribution_depends() -> list[str]:
    """The packages these depend on that the lab's repository does not hold: the
    distribution's, which the lab's image carries for want of a mirror."""
    names = set()
    for name in PACKAGES:
        for alternative in depends(name).split(","):
            names.add(alternative.split("(")[0].strip())
    return sorted(names - set(PACKAGES) - {""})


def build(version: str, out_dir: Path) -> list[Path]:
    """Build the .deb files in ``out_dir``: kubeadm, kubelet and kubectl of ``version``,
    cri-tools and kubernetes-cni of the versions their line's repository has."""
    full_version = package_version(version)
    out_dir.mkdir(parents=True, exist_ok=True)
    built = []
    for name, spec in PACKAGES.items():
        own_version = spec.get("version", full_version)
        with tempfile.TemporaryDirectory(prefix=f"paas-lab-{name}-") as scratch:
            root = Path(scratch) / name
            _stage(name, spec, root, own_version)
            deb = out_dir / f"{name}_{own_version}_amd64.deb"
            _dpkg_deb(root, deb)
            built.append(deb)
    return built


def _source(file_name: str) -> Path:
    path = KUBE_DIR / file_name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: a double the packages ship is missing")
    return path


def _put(root: Path, relative: str, data: bytes, mode: int) -> None:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    target.chmod(mode)


def _stage(name: str, spec: dict, root: Path, full_version: str) -> None:
    for library in spec["libraries"]:
        _put(root, f"{LIB}/{name}/{library}", _source(library).read_bytes(), 0o644)
    for program, library in spec["programs"].items():
        wrapper = WRAPPER.format(name=program, program=library, lib=f"{LIB}/{name}")
        _put(root, f"usr/bin/{program}", wrapper.encode(), 0o755)
    for relative, source in spec.get("units", {}).items():
        _put(root, relative, source.read_bytes(), 0o644)
    for relative, text in spec.get("files", {}).items():
        _put(root, relative, text.encode(), 0o644)
    for relative, target in spec.get("links", {}).items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).symlink_to(target)
    payload = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    md5sums = "".join(
        f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.relative_to(root)}\n" for p in payload
    )
    installed_kib = (sum(p.stat().st_size for p in payload) + 1023) // 1024
    control = (
        f"Package: {name}\n"
        f"Version: {full_version}\n"
        "Architecture: amd64\n"
        f"Maintainer: {MAINTAINER}\n"
        f"Installed-Size: {installed_kib}\n"
        + (f"Depends: {depends(name)}\n" if depends(name) else "")
        + "Section: admin\n"
        "Priority: optional\n"
        "Homepage: https://kubernetes.io\n"
        f"Description: {spec['summary']}\n"
        + DESCRIPTION.format(name=name, version=full_version.split("-", maxsplit=1)[0])
        + "\n"
    )
    _put(root, "DEBIAN/control", control.encode(), 0o644)
    _put(root, "DEBIAN/md5sums", md5sums.encode(), 0o644)
    if name == "kubelet":
        _put(root, "DEBIAN/postinst", KUBELET_POSTINST.encode(), 0o755)
        _put(root, "DEBIAN/prerm", KUBELET_PRERM.encode(), 0o755)
        _put(root, "DEBIAN/postrm", KUBELET_POSTRM.encode(), 0o755)
    for path in [root, *root.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
        os.utime(path, (FIXED_TIME, FIXED_TIME), follow_symlinks=False)


def _dpkg_deb(root: Path, deb: Path) -> None:
    environment = dict(os.environ, SOURCE_DATE_EPOCH=str(FIXED_TIME))
    result = subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(deb)],
        check=False,
        capture_output=True,
        text=True,
        env=environment,
    )
    if result.returncode != 0:
        raise RuntimeError(f"dpkg-deb --build {root.name}: {result.stderr.strip()}")


def _main() -> None:
    for deb in build(sys.argv[1], Path(sys.argv[2])):
        print(deb)


if __name__ == "__main__":
    _main()
