"""The stand-in backends (lab/files/standin.py) on the worker machines: installed as units
in each machine and started there, so that the gateways' haproxy has real servers for
the ingress (no ingress controller runs here). The control planes' API is the
kube-apiserver double that the kubelet double runs from kubeadm's manifest (lab/kube/),
which orch.cluster's Kubernetes layers install and start."""

from __future__ import annotations

from pathlib import Path

from lab.config import REPO, Lab, Machine
from lab.machines import leader_pid
from lab.shell import run, step

SCRIPT = REPO / "lab" / "files" / "standin.py"
INSTALLED = "/usr/local/lib/paas-lab/standin.py"


def unit(kind: str, ports: list[int]) -> str:
    return (
        "# Written by the lab (lab/standins.py): a test double, not part of the platform.\n"
        "[Unit]\n"
        f"Description=paas lab stand-in {kind} (a test double)\n"
        "After=network.target\n\n"
        "[Service]\n"
        f"ExecStart=/usr/bin/python3 {INSTALLED} {kind} {' '.join(map(str, ports))}\n"
        "Restart=on-failure\n"
        "RestartSec=1\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


# Kinds a lab of an older checkout ran, which a machine that still has them stops.
RETIRED_KINDS = ("apiserver",)


def standins(machine: Machine, lab: Lab) -> dict[str, list[int]]:
    """Which stand-ins a machine runs, by kind, with their ports."""
    gateway = lab.topology["gateway"]
    kinds = {}
    if "worker" in machine.roles:
        kinds["ingress"] = [gateway["ingress"]["http_port"], gateway["ingress"]["https_port"]]
    return kinds


def install(path: Path, content: str) -> bool:
    """Write ``content`` to ``path`` in a machine's root; True when it changed."""
    if path.exists() and path.read_text() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return True


def unit_name(kind: str) -> str:
    return f"paas-lab-standin-{kind}.service"


def retire(machine: Machine) -> None:
    """Stop and remove the stand-ins of a kind the lab no longer runs (the apiserver's,
    whose port is the kube-apiserver double's now)."""
    for kind in RETIRED_KINDS:
        path = machine.root / "etc/systemd/system" / unit_name(kind)
        if not path.exists():
            continue
        run(
            "nsenter", "-t", str(leader_pid(machine)), "-a",
            "systemctl", "disable", "--now", "--quiet", unit_name(kind),
        )  # fmt: skip
        path.unlink()
        step(f"stand-in backends: {machine.id}'s {kind} stand-in stopped and removed")


def up(lab: Lab) -> None:
    started = []
    for machine in lab.machines:
        retire(machine)
        kinds = standins(machine, lab)
        if not kinds:
            continue
        changed = install(machine.root / INSTALLED.lstrip("/"), SCRIPT.read_text())
        names = []
        for kind, ports in kinds.items():
            name = unit_name(kind)
            path = machine.root / "etc/systemd/system" / name
            changed = install(path, unit(kind, ports)) or changed
            names.append(name)
        # A running stand-in whose script or unit changed is restarted; others started.
        action = "restart" if changed else "start"
        run(
            "nsenter", "-t", str(leader_pid(machine)), "-a", "sh", "-c",
            f"systemctl daemon-reload && systemctl enable --quiet {' '.join(names)} "
            f"&& systemctl {action} {' '.join(names)}",
        )  # fmt: skip
        started.append(f"{machine.id} ({', '.join(kinds)})")
    step(f"stand-in backends (test doubles): {', '.join(started)}")
