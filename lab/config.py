"""Where the lab keeps its things, and the names it gives them on the host."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = Path(os.environ.get("PAAS_LAB_STATE_DIR", "/var/lib/paas-lab"))
CACHE_DIR = Path(os.environ.get("PAAS_LAB_CACHE_DIR", "/var/cache/paas-lab"))
# The lab's own pillar: its topology and top file (pillar/ is the operator's).
PILLAR_DIR = REPO / "lab" / "pillar"
TOPOLOGY_FILE = PILLAR_DIR / "paas.sls"
MASTER_CONFIG_DIR = REPO / "etc" / "salt"
MASTER_LAB_CONFIG = MASTER_CONFIG_DIR / "master.d" / "lab.conf"
MASTER_ROOT = STATE_DIR / "master"
NODES_DIR = STATE_DIR / "nodes"
VARIANTS_DIR = REPO / "lab" / "variants"
# What the lab adds to the master's roots: a pillar overlay (the variant) and files.
PILLAR_OVERLAY_DIR = STATE_DIR / "pillar"
LAB_FILES_DIR = STATE_DIR / "files"

# Every host-side name the lab creates starts with this, so that `lab down` finds
# them all, also after a crash that lost the lab's own records.
PREFIX = "paas-lab"
BRIDGES = {"public": f"{PREFIX}-pub", "private": f"{PREFIX}-priv"}


def _load_topology_module():
    spec = importlib.util.spec_from_file_location(
        "paas_topology", REPO / "_utils" / "paas_topology.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


topology_rules = _load_topology_module()


class LabError(Exception):
    """Something the lab could not do, said so that a person can act on it."""


@dataclass(frozen=True)
class Interface:
    """One of a machine's network interfaces: its network, names and address."""

    network: str
    name: str
    host_name: str
    address: str
    prefix: int


@dataclass(frozen=True)
class Machine:
    """One node of the topology as the lab runs it."""

    id: str
    roles: tuple[str, ...]
    interfaces: tuple[Interface, ...]

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.id}"

    @property
    def dir(self) -> Path:
        return NODES_DIR / self.id

    @property
    def root(self) -> Path:
        return self.dir / "root"

    def address(self, network: str) -> str | None:
        for interface in self.interfaces:
            if interface.network == network:
                return interface.address
        return None


@dataclass(frozen=True)
class Lab:
    """The lab's view of a topology: its machines and the host's own addresses."""

    topology: dict
    machines: tuple[Machine, ...]
    variant: str | None = None
    # Added to the master's pillar as it is (nodes of a variant).
    overlay: dict | None = None
    etcd_source: str | None = None

    @property
    def master_address(self) -> str:
        return self.topology["master"]["address"]

    def host_address(self, network: str) -> str:
        if network == "public":
            return self.topology["networks"]["public"]["gateway"]
        return self.master_address

    def prefix(self, network: str) -> int:
        return int(self.topology["networks"][network]["cidr"].split("/")[1])


def variants() -> list[str]:
    return sorted(path.stem for path in VARIANTS_DIR.glob("*.yaml"))


def load_lab(path: Path = TOPOLOGY_FILE, variant: str | None = None) -> Lab:
    """Read and validate the topology the lab builds (lab/pillar/paas.sls, with the
    nodes a variant adds); refuse an invalid one."""
    with path.open() as handle:
        document = yaml.safe_load(handle)
    if not isinstance(document, dict) or "paas" not in document:
        raise LabError(f"{path}: no top-level paas key")
    paas, overlay, etcd_source = document["paas"], {}, None
    if variant is not None:
        if variant not in variants():
            raise LabError(f"unknown lab variant {variant!r}; variants: {', '.join(variants())}")
        spec = yaml.safe_load((VARIANTS_DIR / f"{variant}.yaml").read_text())
        overlay["nodes"] = [*paas["nodes"], *spec.get("add_nodes", [])]
        paas = {**paas, "nodes": overlay["nodes"]}
        etcd_source = spec.get("etcd_source")
    errors = topology_rules.validate(paas)
    if errors:
        listing = "\n  ".join(str(error) for error in errors)
        where = f"{path} with variant {variant}" if variant else str(path)
        raise LabError(f"{where}: the topology is invalid:\n  {listing}")
    topology = topology_rules.with_defaults(paas)
    machines = []
    for index, node in enumerate(topology["nodes"]):
        interfaces = []
        # Gateways see the public side first, as eth0; every node has the private side.
        for network in ("public", "private"):
            address = node["addresses"].get(network)
            if address is None:
                continue
            interfaces.append(
                Interface(
                    network=network,
                    name=f"eth{len(interfaces)}",
                    host_name=f"pl{index}-{network[:4]}",
                    address=address,
                    prefix=int(topology["networks"][network]["cidr"].split("/")[1]),
                )
            )
        machines.append(Machine(node["id"], tuple(node["roles"]), tuple(interfaces)))
    return Lab(topology, tuple(machines), variant, overlay, etcd_source)
