"""
The lab's command line: `python -m lab up|down|status`.

up      build the image if its recipe changed, wire the network, build (when its
        inputs changed) and serve the Kubernetes double's package repository and the
        wheelhouse of the minions' libraries on the master's private address, start
        the master, boot every machine of the lab's
        topology (lab/pillar/paas.sls), wait for their minions, converge the platform
        with orch.cluster (a line per step; Salt's output in
        /var/lib/paas-lab/converge.log). On a running lab it re-converges, then retires
        the machines that are no longer in the topology; a master whose
        main process died is cleaned up and started anew. --variant NAME adds what
        lab/variants/NAME.yaml adds (etcd5: two more etcd nodes, etcd from an archive).
down    remove every trace: machines, overlays, master, the package repository and its
        server, namespaces, bridges, state.
status  say whether the master and the package repository's server are up, list the
        machines with their roles, addresses, systemd state and minion.
power-off NODE
        cut a machine's power (SIGKILL to its PID 1) and wait until it is off; exit 0
        once it is off, also when it was: the lab's fencing double, which a topology's
        paas:dr:fencing:command may name.
power-on NODE
        boot a machine that is off (its minion comes back by itself).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from lab import (
    apt_repo,
    converge,
    etcd_archive,
    image,
    machines,
    master,
    network,
    standins,
    wheelhouse,
)
from lab.config import STATE_DIR, Lab, LabError, load_lab, topology_rules, variants
from lab.processes import lab_cgroups, remove_cgroup, wait_for
from lab.shell import fail, run, step

REQUIRED_TOOLS = ("debootstrap", "systemd-nspawn", "ip", "nft", "nsenter", "mount")
MINION_WAIT = 300


def check_host() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab makes namespaces, bridges and containers: run it as root")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise LabError(f"missing host tools: {', '.join(missing)} (run `make lab`)")
    if "overlay" not in Path("/proc/filesystems").read_text():
        raise LabError("the kernel has no overlay filesystem (modprobe overlay)")


def up(lab: Lab, converge_platform: bool) -> None:
    check_host()
    rootfs = image.ensure_image()
    network.up_guard()
    network.up_bridges(lab)
    for machine in lab.machines:
        network.up_machine_network(machine, lab)
    step(f"network: bridges and {len(lab.machines)} namespaces up")
    master.ensure_keys()
    archive = etcd_archive.ensure(rootfs) if lab.etcd_source == "archive" else None
    master.write_pillar(lab, archive)
    kubernetes = topology_rules.kubernetes(lab.topology)
    apt_repo.up(kubernetes["version"], kubernetes["repository"]["url"], lab.master_address)
    python = topology_rules.with_defaults(lab.topology)["python"]
    wheelhouse.up(python["find_links"], kubernetes["repository"]["url"], lab.master_address)
    master.up(lab)
    master.master_minion_up(lab)
    machines.up(lab, rootfs)
    wait_for_minions(lab)
    standins.up(lab)
    if converge_platform:
        converge.run("orch.cluster")
    machines.retire(lab)
    status(lab)


def minion_ids(lab: Lab) -> list[str]:
    """The lab's minions: every machine, and the master's own minion."""
    return [machine.id for machine in lab.machines] + [lab.topology["master"]["id"]]


def wait_for_minions(lab: Lab) -> None:
    ids = minion_ids(lab)
    answering: set[str] = set()

    def all_answer() -> bool:
        if master.MASTER.main() is None:
            raise master.gone()
        answering.update(master.answering(sorted(set(ids) - answering)))
        step(f"minions: {len(answering)}/{len(ids)} answering")
        return answering == set(ids)

    if not wait_for(all_answer, timeout=MINION_WAIT, interval=2):
        silent = ", ".join(sorted(set(ids) - answering))
        raise LabError(
            f"minions did not answer within {MINION_WAIT}s: {silent}; see "
            f"{STATE_DIR}/nodes/<id>/console.log and `python -m lab status`"
        )


def down() -> None:
    machines.down()
    master.down()
    apt_repo.down()
    for namespace in network.lab_namespaces():
        # Whatever a test left running inside a namespace goes with it.
        for pid in run("ip", "netns", "pids", namespace, check=False).split():
            run("kill", "-9", pid, check=False)
    network.down()
    for cgroup in lab_cgroups():
        remove_cgroup(cgroup)
    shutil.rmtree(STATE_DIR, ignore_errors=True)
    step("down: no machine, namespace, bridge or master of the lab is left")


def status(lab: Lab) -> None:
    state = master.MASTER.state()
    print(f"master: {state}")
    print(f"package repository: {apt_repo.SERVER.state()}")
    # A master whose main process died may still half answer: ask it nothing then.
    answering = master.answering(minion_ids(lab), timeout=3) if state == "up" else set()
    rows = [("NODE", "ROLES", "PUBLIC", "PRIVATE", "MACHINE", "MINION")]
    for machine in lab.machines:
        rows.append(
            (
                machine.id,
                ",".join(machine.roles),
                machine.address("public") or "-",
                machine.address("private") or "-",
                machines.systemd_state(machine),
                "up" if machine.id in answering else "down",
            )
        )
    master_id = lab.topology["master"]["id"]
    rows.append(
        (
            master_id,
            "master (this host)",
            "-",
            lab.master_address,
            "host",
            "up" if master_id in answering else "down",
        )
    )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def power(lab: Lab, node: str, on: bool) -> None:
    found = [machine for machine in lab.machines if machine.id == node]
    if not found:
        raise LabError(f"{node} is no machine of the lab ({', '.join(m.id for m in lab.machines)})")
    if on:
        machines.boot(found[0])
        step(f"machines: {node} booting")
    else:
        machines.power_off(found[0])
        step(f"machines: {node} is off")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="build, boot and converge the lab")
    up_parser.add_argument(
        "--no-converge", action="store_true", help="boot the machines but do not run orch.cluster"
    )
    up_parser.add_argument(
        "--variant",
        choices=variants(),
        help="a variant of the topology (lab/variants/); without it, lab/pillar/paas.sls as it is",
    )
    commands.add_parser("down", help="remove every trace of the lab")
    commands.add_parser("status", help="say whether the master is up, list the machines")
    for command, what in (("power-off", "cut a machine's power"), ("power-on", "boot a machine")):
        powering = commands.add_parser(command, help=what)
        powering.add_argument("node", help="a machine of the lab")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            up(load_lab(variant=args.variant), converge_platform=not args.no_converge)
        elif args.command == "down":
            down()
        elif args.command in ("power-off", "power-on"):
            power(load_lab(), args.node, on=args.command == "power-on")
        else:
            status(load_lab())
    except LabError as err:
        fail(str(err))
        return 1
    return 0
