"""The lab's wiring: two bridges on the host, a network namespace per machine."""

from __future__ import annotations

import re
from pathlib import Path

from lab.config import BRIDGES, PREFIX, Lab, Machine
from lab.processes import wait_for
from lab.shell import run

NETNS_DIR = Path("/run/netns")
# The host's side of a machine's veth (Interface.host_name): pl<index>-<network>.
HOST_SIDE = re.compile(r"pl\d+-(publ|priv)")


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


# Whatever the host's own forwarding setting, nothing from the lab's bridges is routed
# anywhere but between them: the lab's machines never reach a real network.
GUARD_TABLE = f"""
table inet {PREFIX} {{
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname "{PREFIX}-*" oifname != "{PREFIX}-*" drop
        oifname "{PREFIX}-*" iifname != "{PREFIX}-*" drop
    }}
}}
"""


def up_guard() -> None:
    run("nft", "delete", "table", "inet", PREFIX, check=False)
    run("nft", "-f", "-", input=GUARD_TABLE)


def up_bridges(lab: Lab) -> None:
    """Create both bridges with the host's address on each; keep ones that exist."""
    for network, bridge in BRIDGES.items():
        if not link_exists(bridge):
            run("ip", "link", "add", bridge, "type", "bridge")
        address = f"{lab.host_address(network)}/{lab.prefix(network)}"
        if address not in run("ip", "-o", "addr", "show", "dev", bridge):
            run("ip", "addr", "add", address, "dev", bridge)
        run("ip", "link", "set", bridge, "up")


def up_machine_network(machine: Machine, lab: Lab) -> None:
    """Give a machine its namespace, one veth per network, its addresses and routes."""
    fresh = not (NETNS_DIR / machine.netns).exists()
    if fresh:
        run("ip", "netns", "add", machine.netns)
    in_ns = ("ip", "-n", machine.netns)
    run(*in_ns, "link", "set", "lo", "up")
    for interface in machine.interfaces:
        if fresh and link_exists(interface.host_name):
            # A veth whose namespace is gone (the kernel had not yet torn it down).
            run("ip", "link", "delete", interface.host_name, check=False)
        if not link_exists(interface.host_name):
            run(
                "ip", "link", "add", interface.host_name, "type", "veth",
                "peer", "name", interface.name, "netns", machine.netns,
            )  # fmt: skip
        run("ip", "link", "set", interface.host_name, "master", BRIDGES[interface.network], "up")
        address = f"{interface.address}/{interface.prefix}"
        if address not in run(*in_ns, "-o", "addr", "show", "dev", interface.name):
            run(*in_ns, "addr", "add", address, "dev", interface.name)
        run(*in_ns, "link", "set", interface.name, "up")
    # A gateway's way out is the public side's upstream router (the host, in the lab).
    if machine.address("public"):
        run(*in_ns, "route", "replace", "default", "via", lab.host_address("public"))


def forget_addresses(machine: Machine) -> None:
    """Remove what a machine added to its own links while it ran (a gateway's VIPs):
    its namespace outlives it, but a machine that boots starts with its own addresses
    only, as a real one does after a power cut."""
    for interface in machine.interfaces:
        listing = run("ip", "-n", machine.netns, "-o", "-4", "addr", "show", "dev", interface.name)
        for address in re.findall(r"inet (\S+)", listing):
            if address != f"{interface.address}/{interface.prefix}":
                run("ip", "-n", machine.netns, "addr", "del", address, "dev", interface.name)


def lab_namespaces() -> list[str]:
    """Every network namespace the lab made, whether or not it still knows the machine."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(path.name for path in NETNS_DIR.iterdir() if path.name.startswith(PREFIX))


def host_sides() -> list[str]:
    """The host's sides of the machines' veths that exist now."""
    net = Path("/sys/class/net")
    return sorted(path.name for path in net.iterdir() if HOST_SIDE.fullmatch(path.name))


def down() -> None:
    """Remove every namespace and bridge the lab made. Their veths go with them, once the
    kernel has torn the namespaces down, which it does after `ip netns delete` returns:
    wait for it, so that a `lab up` right after makes them anew."""
    for name in lab_namespaces():
        run("ip", "netns", "delete", name)
    for bridge in BRIDGES.values():
        if link_exists(bridge):
            run("ip", "link", "delete", bridge)
    if not wait_for(lambda: not host_sides(), timeout=10, interval=0.1):
        for name in host_sides():
            run("ip", "link", "delete", name, check=False)
    run("nft", "delete", "table", "inet", PREFIX, check=False)
