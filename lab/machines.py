"""The lab's machines: systemd-nspawn containers booted on overlays of the image."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

import salt.crypt

from lab import master, network
from lab.config import NODES_DIR, PREFIX, Lab, Machine
from lab.processes import lab_cgroups, remove_cgroup, running, start, stop
from lab.shell import run, step

# Lets the machine set its own network namespace's sysctls (ip_forward, for one),
# which systemd-nspawn otherwise mounts read-only.
NSPAWN_ENV = {"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}


def cgroups(machine_id: str) -> list[Path]:
    """The machine's own cgroup tree: the machines must not share one (with a shared
    tree, one machine's systemd waits for another machine's processes to leave "its"
    service's cgroup)."""
    return lab_cgroups("machines", machine_id)


def pidfile(machine: Machine) -> Path:
    return machine.dir / "nspawn.pid"


def is_mounted(path: Path) -> bool:
    return any(
        line.split()[1] == str(path) for line in Path("/proc/self/mounts").read_text().splitlines()
    )


def prepare(machine: Machine, lab: Lab, image: Path) -> None:
    """Mount the machine's root (the image under its own writable layer) and give it
    its identity: machine-id, minion id and config, and a pre-accepted key pair."""
    for part in ("upper", "work", "root"):
        (machine.dir / part).mkdir(parents=True, exist_ok=True)
    if not is_mounted(machine.root):
        run(
            "mount", "-t", "overlay", "overlay", "-o",
            f"lowerdir={image},upperdir={machine.dir / 'upper'},workdir={machine.dir / 'work'}",
            str(machine.root),
        )  # fmt: skip
    identity = f"{lab.topology['cluster']['name']}/{machine.id}"
    (machine.root / "etc/machine-id").write_text(
        hashlib.sha256(identity.encode()).hexdigest()[:32] + "\n"
    )
    (machine.root / "etc/salt/minion.d/lab.conf").write_text(
        "# Written by the lab (lab/machines.py).\n"
        f"id: {machine.id}\n"
        f"master: {lab.master_address}\n"
        "# The lab's master is on the same host: retry fast instead of salt's 10 s.\n"
        "acceptance_wait_time: 1\n"
        "random_reauth_delay: 0\n"
    )
    pki = machine.root / "etc/salt/pki/minion"
    if not (pki / "minion.pem").exists():
        pki.mkdir(parents=True, exist_ok=True, mode=0o700)
        with tempfile.TemporaryDirectory() as scratch:
            salt.crypt.write_keys(scratch, "minion", 2048)
            (pki / "minion.pem").write_bytes(Path(scratch, "minion.pem").read_bytes())
            (pki / "minion.pem").chmod(0o400)
            (pki / "minion.pub").write_bytes(Path(scratch, "minion.pub").read_bytes())
    (pki / "minion_master.pub").write_text(master.master_public_key())
    master.accept(machine.id, (pki / "minion.pub").read_text())


def boot(machine: Machine) -> bool:
    """Boot the machine unless it runs already; True when it was started now."""
    if running(pidfile(machine), "systemd-nspawn"):
        return False
    network.forget_addresses(machine)
    command = [
        "systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--quiet",
        f"--machine={machine.id}", f"--directory={machine.root}",
        f"--network-namespace-path=/run/netns/{machine.netns}",
        "--console=read-only", "--resolv-conf=off", "--timezone=off", "--link-journal=no",
        # Its own network namespace is the machine's to manage: addresses (a gateway's
        # VIPs), routes, the firewall, connection tracking.
        "--capability=CAP_NET_ADMIN",
    ]  # fmt: skip
    start(
        command,
        log=machine.dir / "console.log",
        pidfile=pidfile(machine),
        env=NSPAWN_ENV,
        cgroups=cgroups(machine.id),
    )
    return True


def up(lab: Lab, image: Path) -> None:
    master.ensure_keys()
    for machine in lab.machines:
        prepare(machine, lab, image)
    started = [machine.id for machine in lab.machines if boot(machine)]
    if started:
        step(f"machines: booting {', '.join(started)}")
    else:
        step("machines: all running")


def down() -> None:
    """Power off every lab machine (a graceful shutdown first) and unmount its root."""
    if not NODES_DIR.is_dir():
        return
    machine_dirs = sorted(path for path in NODES_DIR.iterdir() if path.is_dir())
    processes = [
        process
        for process in (running(path / "nspawn.pid", "systemd-nspawn") for path in machine_dirs)
        if process
    ]
    if processes:
        step(f"machines: powering off {len(processes)}")
        stop(processes, grace=30)
    for path in machine_dirs:
        root = path / "root"
        if is_mounted(root):
            run("umount", str(root))
    for cgroup in lab_cgroups("machines"):
        remove_cgroup(cgroup)


def retire(lab: Lab) -> None:
    """Power off and remove the machines that are no longer in the lab's topology (a
    variant's nodes, once the lab is back to the plain topology), with their network
    namespace and accepted key."""
    if not NODES_DIR.is_dir():
        return
    wanted = {machine.id for machine in lab.machines}
    for path in sorted(NODES_DIR.iterdir()):
        if not path.is_dir() or path.name in wanted:
            continue
        process = running(path / "nspawn.pid", "systemd-nspawn")
        if process:
            stop([process], grace=30)
        if is_mounted(path / "root"):
            run("umount", str(path / "root"))
        for cgroup in cgroups(path.name):
            remove_cgroup(cgroup)
        shutil.rmtree(path)
        run("ip", "netns", "delete", f"{PREFIX}-{path.name}", check=False)
        master.forget(path.name)
        step(f"machines: retired {path.name}, which the topology no longer has")


def power_off(machine: Machine, timeout: float = 60) -> None:
    """Cut the machine's power, as a cloud's "stop server" does: SIGKILL to its PID 1,
    so that everything in it ends at once, then wait until systemd-nspawn has exited.
    A machine that is off already is left off. The lab's fencing double (docs/lab.md)."""
    process = running(pidfile(machine), "systemd-nspawn")
    if process is None:
        return
    pid = leader_pid(machine)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    process.wait(timeout=timeout)


def leader_pid(machine: Machine) -> int | None:
    """The PID, on the host, of the machine's own PID 1 (its systemd)."""
    process = running(pidfile(machine), "systemd-nspawn")
    if not process:
        return None
    children = process.children()
    return children[0].pid if children else None


def systemd_state(machine: Machine) -> str:
    """What systemd says of the machine (running, starting, degraded...) or 'off'."""
    if leader_pid(machine) is None:
        return "off"
    output = run(
        "nsenter", "-t", str(leader_pid(machine)), "-a", "systemctl", "is-system-running",
        check=False,
    )  # fmt: skip
    return re.sub(r"\s+", " ", output).strip() or "unknown"
