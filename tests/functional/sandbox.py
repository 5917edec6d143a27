"""
A minion that applies the formula's states for real on this host without changing it:
a real ``salt-call --local`` (file_roots on the repository's ``salt/``, its custom modules,
a pillar of the test's topology), run in a mount namespace of its own in which this host's
``/etc`` and ``/usr/local``, the trees the formula writes, are copy-on-write overlays whose
upper directories live under the test's temporary directory; and, for a gateway, in a
network namespace holding the gateway's interfaces and addresses, where its sysctls apply.

Everything the states write lands in those upper directories, so a test sees exactly
which files a run wrote, and this host's own files are never touched. ``/run/systemd`` is
hidden as well, so that neither Salt nor systemctl reaches this host's service manager
(Salt then runs its systemd functions in offline mode).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from tests.functional.etcd_hosts import REPO

SALT_CALL = Path(sys.executable).with_name("salt-call")
# The trees the formula's states write on a node.
OVERLAID = ("/etc", "/usr/local")


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


class Interfaces:
    """A network namespace whose interfaces (each a veth whose other end stays in the
    namespace, both up) hold the given addresses: ``{"eth0": "198.18.0.11/24"}``."""

    def __init__(self, name: str, addresses: dict[str, str]):
        self.name = name
        self.addresses = addresses

    def __enter__(self) -> str:
        subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
            for interface, address in self.addresses.items():
                peer = f"{interface}-peer"
                _ip("-n", self.name, "link", "add", interface, "type", "veth", "peer", peer)
                for link in (interface, peer):
                    _ip("-n", self.name, "link", "set", link, "up")
                _ip("-n", self.name, "addr", "add", address, "dev", interface)
        except BaseException:
            self.__exit__()
            raise
        return self.name

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)


class Sandbox:
    """The minion ``minion_id`` with ``topology`` as its ``paas`` pillar, its state under
    ``workdir``, run in the network namespace ``namespace`` (or this host's network)."""

    def __init__(self, minion_id: str, workdir: Path, topology: dict, namespace: str | None = None):
        self.minion_id = minion_id
        self.workdir = workdir
        self.namespace = namespace
        self.config_dir = workdir / "config"
        pillar_dir = workdir / "pillar"
        for directory in (self.config_dir, pillar_dir):
            directory.mkdir(parents=True, exist_ok=True)
        (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - paas\n")
        (pillar_dir / "paas.sls").write_text(yaml.safe_dump({"paas": topology}))
        (self.config_dir / "minion").write_text(
            yaml.safe_dump(
                {
                    "id": minion_id,
                    "file_client": "local",
                    "root_dir": str(workdir / "root"),
                    "file_roots": {"base": [str(REPO / "salt")]},
                    "pillar_roots": {"base": [str(pillar_dir)]},
                    "module_dirs": [str(REPO / "_modules")],
                    "states_dirs": [str(REPO / "_states")],
                    "utils_dirs": [str(REPO / "_utils")],
                }
            )
        )
        self.overlays = {}
        for tree in OVERLAID:
            overlay = workdir / "overlay" / tree.strip("/").replace("/", "-")
            for part in ("upper", "work"):
                (overlay / part).mkdir(parents=True, exist_ok=True)
            self.overlays[tree] = overlay

    def _argv(self, argv: list[str]) -> list[str]:
        mounts = [
            f"mount -t overlay paas-sandbox -o lowerdir={tree},"
            f"upperdir={overlay / 'upper'},workdir={overlay / 'work'} {tree}"
            for tree, overlay in self.overlays.items()
        ]
        mounts.append("if [ -d /run/systemd ]; then mount -t tmpfs paas-sandbox /run/systemd; fi")
        script = " && ".join(mounts) + ' && exec "$@"'
        inner = ["ip", "netns", "exec", self.namespace, *argv] if self.namespace else argv
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "sandbox",
            *inner,
        ]

    def run(self, argv: list[str]) -> subprocess.CompletedProcess:
        """Run ``argv`` in the sandbox (it sees the files the states wrote)."""
        return subprocess.run(self._argv(argv), capture_output=True, text=True, check=False)

    def salt_call(self, *argv: str):
        """``salt-call --local <argv>``: its return code and its return (JSON)."""
        result = self.run(
            [
                str(SALT_CALL),
                "-c",
                str(self.config_dir),
                "--local",
                "--retcode-passthrough",
                "--out=json",
                *argv,
            ]
        )
        try:
            data = json.loads(result.stdout)["local"]
        except (ValueError, KeyError) as err:
            raise AssertionError(
                f"salt-call {shlex.join(argv)} on {self.minion_id} returned no JSON "
                f"(exit {result.returncode}): {result.stdout}{result.stderr}"
            ) from err
        return result.returncode, data

    def apply(self, sls: str, pillar: dict | None = None, **kwargs: str) -> dict[str, dict]:
        """``state.sls sls`` (with a pillar override): each state's return, by state id."""
        argv = ["state.sls", sls]
        if pillar:
            argv.append(f"pillar={json.dumps(pillar)}")
        argv += [f"{key}={value}" for key, value in kwargs.items()]
        _returncode, data = self.salt_call(*argv)
        if not isinstance(data, dict):
            raise AssertionError(f"state.sls {sls} on {self.minion_id} did not run: {data}")
        return {state["__id__"]: state for state in data.values()}

    def written(self) -> dict[str, Path]:
        """Every file the sandbox's runs wrote: its path on the node, and where it is."""
        files = {}
        for tree, overlay in self.overlays.items():
            upper = overlay / "upper"
            for path in upper.rglob("*"):
                if path.is_file() or path.is_symlink():
                    files[f"{tree}/{path.relative_to(upper)}"] = path
        return files

    def file(self, node_path: str) -> Path:
        """Where the file the states wrote at ``node_path`` (say /etc/haproxy/haproxy.cfg) is."""
        written = self.written()
        assert node_path in written, f"{node_path} was not written (written: {sorted(written)})"
        return written[node_path]


def tree_state(paths: list[str]) -> dict[str, tuple]:
    """What is at each of ``paths`` on this host (recursively for a directory): each entry's
    mode, owner and modification time, and a regular file's digest."""
    state = {}
    for top in paths:
        root = Path(top)
        entries = [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]
        for entry in entries:
            if not os.path.lexists(entry):
                state[str(entry)] = ("absent",)
                continue
            info = entry.lstat()
            digest = (
                hashlib.sha256(entry.read_bytes()).hexdigest()
                if entry.is_file() and not entry.is_symlink()
                else None
            )
            state[str(entry)] = (info.st_mode, info.st_uid, info.st_mtime_ns, digest)
    return state
