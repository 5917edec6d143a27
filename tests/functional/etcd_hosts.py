"""
What the functional tests need to run a real etcd cluster on this host: a topology on a
test network, minions made of Salt's loaders, certificates issued as the CA issues them,
a bridge with a network namespace per member (etcd checks a peer's certificate against
the address it speaks from), and etcd processes in those namespaces, stopped by PID.
"""

from __future__ import annotations

import copy
import os
import shlex
import socket
import subprocess
import time
from pathlib import Path

import salt.config
from saltfactories.utils.functional import Loaders

REPO = Path(__file__).resolve().parents[2]
# A module dir holding the test double of Salt's service module (the unit double's).
SERVICE_DOUBLE_DIR = Path(__file__).resolve().parent / "service_double"


def topology(prefix: str, etcd_count: int = 3) -> dict:
    """A valid topology whose private network is ``<prefix>.1.0/24`` (like 198.19.1)."""
    base, third = prefix.rsplit(".", 1)
    public, private = f"{base}.{int(third) - 1}", prefix
    return {
        "cluster": {"name": "ft", "domain": "ft.test"},
        "networks": {
            "public": {
                "cidr": f"{public}.0/24",
                "gateway": f"{public}.1",
                "vip": f"{public}.10",
                "vrrp_router_id": 51,
            },
            "private": {"cidr": f"{private}.0/24", "vip": f"{private}.10", "vrrp_router_id": 52},
        },
        "master": {"id": "paas-master", "address": f"{private}.1"},
        "nodes": [
            {
                "id": "gw1",
                "roles": ["gateway"],
                "addresses": {"public": f"{public}.11", "private": f"{private}.11"},
            },
            {
                "id": "gw2",
                "roles": ["gateway"],
                "addresses": {"public": f"{public}.12", "private": f"{private}.12"},
            },
            *[
                {
                    "id": f"etcd{number}",
                    "roles": ["etcd"],
                    "addresses": {"private": f"{private}.{20 + number}"},
                }
                for number in range(1, etcd_count + 1)
            ],
            {"id": "cp1", "roles": ["control-plane"], "addresses": {"private": f"{private}.31"}},
            {"id": "worker1", "roles": ["worker"], "addresses": {"private": f"{private}.41"}},
        ],
        # The host's etcd, from Debian 12: older than kubeadm accepts, and no kubeadm runs.
        "versions": {"etcd": "3.4"},
        "kubernetes": {"ignore_preflight_errors": ["ExternalEtcdVersion"]},
    }


def etcd_addresses(topology_: dict) -> dict[str, str]:
    return {
        node["id"]: node["addresses"]["private"]
        for node in topology_["nodes"]
        if "etcd" in node["roles"]
    }


def pillar(minion_id: str, tmp: Path, topology_: dict) -> dict:
    """The ``paas`` pillar of a minion: ``topology_`` with the node's PKI and etcd's
    directories (configuration, data, snapshots) under ``tmp/<minion_id>``."""
    node_dir = tmp / minion_id
    node_dir.mkdir(parents=True, exist_ok=True)
    pillar_topology = copy.deepcopy(topology_)
    pillar_topology["pki"] = {
        **pillar_topology.get("pki", {}),
        "dir": str(node_dir / "pki"),
        "ca_dir": str(tmp / "ca"),
    }
    pillar_topology["etcd"] = {
        **pillar_topology.get("etcd", {}),
        "config_dir": str(node_dir / "etcd"),
        "data_dir": str(node_dir / "etcd-data"),
        "snapshot_dir": str(node_dir / "etcd-snapshots"),
    }
    return pillar_topology


def minion(minion_id: str, tmp: Path, topology_: dict, unit_double: bool = False) -> Loaders:
    """
    A minion's loaders, with the topology in its pillar and its PKI under ``tmp``.

    With ``unit_double``, Salt's ``providers`` option gives it the ``service`` module of
    tests/functional/service_double/, which acts on the test's ``Unit`` objects (``UNITS``)
    instead of on this host's systemd.
    """
    opts = salt.config.minion_config(None)
    opts.update(
        id=minion_id,
        file_client="local",
        cachedir=str(tmp / minion_id / "cache"),
        pillar={"paas": pillar(minion_id, tmp, topology_)},
        module_dirs=[str(REPO / "_modules")],
        states_dirs=[str(REPO / "_states")],
        utils_dirs=[str(REPO / "_utils")],
    )
    if unit_double:
        opts["module_dirs"].append(str(SERVICE_DOUBLE_DIR))
        opts["providers"] = {"service": "paas_service_double"}
    # Each minion gets its own module namespace, as it would in its own process.
    return Loaders(opts, loaded_base_name=f"salt.loaded.{minion_id.replace('-', '_')}_{id(opts)}")


def issue(node: Loaders, ca: Loaders, profile: str) -> dict:
    """Issue ``node`` its certificate of ``profile``, signed by ``ca`` as a peer call would."""
    reply = ca.modules.paas_pki.sign(
        node.modules.paas_pki.csr(profile), profile, __pub_id=node.opts["id"]
    )
    assert "error" not in reply, reply
    return node.modules.paas_pki.install(profile, reply["certificate"], reply["ca"])


def issue_all(
    tmp: Path, topology_: dict, node_ids: list[str], unit_double: bool = False
) -> dict[str, Loaders]:
    """A CA and every certificate of ``node_ids`` and the master's minion; minions by id
    (the nodes' with the unit double, given ``unit_double``)."""
    ca = minion("paas-master", tmp, topology_)
    ca.modules.paas_pki.create_ca()
    minions = {node: minion(node, tmp, topology_, unit_double) for node in node_ids}
    minions["paas-master"] = ca
    for each in minions.values():
        for profile in each.modules.paas_pki.profiles():
            issue(each, ca, profile)
    return minions


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True)


class Hosts:
    """A bridge ``paas-<tag>-br`` with this host on it, and a namespace per address."""

    def __init__(self, tag: str, host_address: str, addresses: dict[str, str]):
        self.tag = tag
        self.bridge = f"paas-{tag}-br"
        self.host_address = host_address
        self.addresses = addresses
        self.namespaces: dict[str, str] = {}

    def __enter__(self) -> Hosts:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.host_address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for node, address in self.addresses.items():
                namespace = f"paas-{self.tag}-{node}"
                _ip("netns", "add", namespace)
                self.namespaces[node] = namespace
                host_end = f"p{self.tag}-{node}"
                _ip(
                    "link",
                    "add",
                    host_end,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    namespace,
                )
                _ip("link", "set", host_end, "master", self.bridge, "up")
                _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
                _ip("-n", namespace, "link", "set", "eth0", "up")
                _ip("-n", namespace, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for namespace in self.namespaces.values():
            subprocess.run(["ip", "netns", "delete", namespace], check=False)
        subprocess.run(["ip", "link", "delete", self.bridge], check=False, capture_output=True)


class Member:
    """One etcd process for ``node``, in its namespace (or on this host's loopback when
    ``namespace`` is None), with the node's certificates; stopped by its PID."""

    def __init__(self, node: str, address: str, namespace: str | None, pki: dict, workdir: Path):
        self.node, self.address, self.namespace = node, address, namespace
        self.server, self.peer = pki["etcd-server"], pki["etcd-peer"]
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.process: subprocess.Popen | None = None
        self.client_port, self.peer_port = 2379, 2380
        self.started_with: tuple = ()

    @property
    def client_url(self) -> str:
        return f"https://{self.address}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{self.address}:{self.peer_port}"

    def start(
        self,
        initial_cluster: str,
        state: str,
        token: str = "functional",
        client_port: int = 2379,
        peer_port: int = 2380,
    ) -> None:
        self.started_with = (initial_cluster, state, token, client_port, peer_port)
        self.client_port, self.peer_port = client_port, peer_port
        self._spawn(
            [
                f"--name={self.node}",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={self.client_url}",
                f"--advertise-client-urls={self.client_url}",
                f"--listen-peer-urls={self.peer_url}",
                f"--initial-advertise-peer-urls={self.peer_url}",
                f"--initial-cluster={initial_cluster}",
                f"--initial-cluster-state={state}",
                f"--initial-cluster-token={token}",
                "--client-cert-auth",
                f"--trusted-ca-file={self.server['ca']}",
                f"--cert-file={self.server['cert']}",
                f"--key-file={self.server['key']}",
                "--peer-client-cert-auth",
                f"--peer-trusted-ca-file={self.peer['ca']}",
                f"--peer-cert-file={self.peer['cert']}",
                f"--peer-key-file={self.peer['key']}",
            ]
        )

    def start_configured(self, environment: dict) -> None:
        """etcd with no flags and only ``environment`` (ETCD_* variables), as the
        paas-etcd unit runs it."""
        self._spawn([], {"PATH": "/usr/bin:/bin", **environment})

    def _spawn(self, flags: list[str], environment: dict | None = None) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        in_namespace = ["ip", "netns", "exec", self.namespace] if self.namespace else []
        with (self.workdir / "etcd.log").open("a") as log:
            self.process = subprocess.Popen(
                [*in_namespace, "etcd", *flags],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def restart(self) -> None:
        """Start again as last started (etcd ignores the initial flags once it has data)."""
        self.start(*self.started_with)

    def log_tail(self) -> str:
        path = self.workdir / "etcd.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def exited(self) -> bool:
        """Started, and no longer running."""
        return self.process is not None and self.process.poll() is not None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


# The units the service double acts on, by (minion id, unit name).
UNITS: dict[tuple[str, str], Unit] = {}


class Unit:
    """
    A test double of one systemd unit of a node, for the minions whose ``service`` module
    is the double: it runs the unit file's ``ExecStart`` with the variables of its
    ``EnvironmentFile`` lines (``-`` for an optional one), in the node's network namespace;
    a start returns once the service says ``READY=1`` on its notify socket (the unit's
    ``Type=notify``), or fails when it exits first. Unlike systemd, it does not switch to
    the unit's ``User=``: the test's files are in root's temporary directory.
    """

    def __init__(self, minion_id: str, name: str, unit_file: Path, namespace: str, workdir: Path):
        self.minion_id, self.name, self.unit_file = minion_id, name, unit_file
        self.namespace, self.workdir = namespace, workdir
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Unit:
        UNITS[(self.minion_id, self.name)] = self
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        UNITS.pop((self.minion_id, self.name), None)

    def _service(self) -> dict[str, list[str]]:
        section, settings = None, {}
        for line in map(str.strip, self.unit_file.read_text().splitlines()):
            if line.startswith("["):
                section = line
            elif section == "[Service]" and "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                settings.setdefault(key, []).append(value)
        assert settings.get("Type") == ["notify"], f"{self.unit_file}: not a Type=notify unit"
        return settings

    def _environment(self, files: list[str]) -> dict[str, str] | None:
        environment = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        for entry in files:
            path = Path(entry.removeprefix("-"))
            if not path.exists():
                if entry.startswith("-"):
                    continue
                return None
            for line in path.read_text().splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    key, value = line.split("=", 1)
                    environment[key.strip()] = value.strip()
        return environment

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 120) -> bool:
        if self.running():
            return True
        service = self._service()
        environment = self._environment(service.get("EnvironmentFile", []))
        if environment is None:
            return False
        self.workdir.mkdir(parents=True, exist_ok=True)
        notify_path = self.workdir / "notify"
        notify_path.unlink(missing_ok=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.bind(str(notify_path))
            notify.settimeout(0.5)
            environment["NOTIFY_SOCKET"] = str(notify_path)
            with (self.workdir / "service.log").open("a") as log:
                self.process = subprocess.Popen(
                    ["ip", "netns", "exec", self.namespace, *shlex.split(service["ExecStart"][0])],
                    env=environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.running():
                try:
                    message = notify.recv(4096)
                except TimeoutError:
                    continue
                if "READY=1" in message.decode().splitlines():
                    return True
        self.stop()
        return False

    def stop(self) -> bool:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        return True

    def restart(self) -> bool:
        self.stop()
        return self.start()

    def log_tail(self) -> str:
        path = self.workdir / "service.log"
        return path.read_text()[-2000:] if path.exists() else ""


def wait_for(check, what: str, members: list[Member], timeout: float = 60) -> None:
    """Wait until ``check()`` is true; fail with the members' logs if it never is, or
    as soon as one of them exits."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline or any(member.exited() for member in members):
            logs = {member.node: member.log_tail() for member in members}
            raise AssertionError(f"{what} did not happen: {logs}")
        time.sleep(0.5)


def etcdctl(ca: str, cert: str, key: str, endpoints: list[str], *argv: str):
    """The host's etcdctl (API v3) with the given client certificate."""
    return subprocess.run(
        [
            "etcdctl",
            f"--endpoints={','.join(endpoints)}",
            f"--cacert={ca}",
            f"--cert={cert}",
            f"--key={key}",
            "--dial-timeout=3s",
            "--command-timeout=5s",
            *argv,
        ],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "ETCDCTL_API": "3"},
    )
