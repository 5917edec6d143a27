"""
What a gateway is doing now: whether it holds the VIPs, its VRRP state, its daemons, and
its haproxy's backends as haproxy's own checks see them.

``salt-run paas.status`` asks both gateways and tells from their answers which one holds
the VIPs, or that both do (a split brain) or neither.

:depends: ``ip`` (iproute2) and haproxy's admin socket, both set up by ``salt/gateway``
:configuration: the haproxy socket, the VRRP state file and the daemons' units from the
    topology's gateway view (``paas_topology.gateway``), which the formula renders from too
"""

from __future__ import annotations

import csv
import json
import socket

from salt.exceptions import CommandExecutionError

__virtualname__ = "paas_gateway"
# The states of haproxy's runtime API ("set server ... state") the platform uses.
SERVER_STATES = ("ready", "drain")


def __virtual__():
    if "paas_topology.gateway" not in __salt__:
        return (False, "paas_gateway: the paas_topology module is not loaded")
    return __virtualname__


def vips() -> dict:
    """
    Return, per network, the VIP and whether this gateway holds it now (read live from
    the kernel, not from grains).

    CLI Example:

    .. code-block:: bash

        salt-call paas_gateway.vips
    """
    settings = __salt__["paas_topology.gateway"]()
    reply = __salt__["cmd.run_all"]("ip -j -4 addr show", python_shell=False)
    if reply["retcode"] != 0:
        raise CommandExecutionError(f"ip -j -4 addr show failed: {reply['stderr']}")
    held = {
        (link["ifname"], info["local"])
        for link in json.loads(reply["stdout"])
        for info in link.get("addr_info", [])
    }
    return {
        name: {
            "address": network["vip"],
            "interface": network["interface"],
            "held": (network["interface"], network["vip"]) in held,
        }
        for name, network in settings["networks"].items()
    }


def backends(timeout: float = 2.0) -> list[dict]:
    """
    Return haproxy's servers (proxy, server, status such as UP or DOWN, the last check's
    result, seconds since the status changed), from haproxy's admin socket.

    CLI Example:

    .. code-block:: bash

        salt-call paas_gateway.backends
    """
    lines = _haproxy("show stat", timeout).lstrip("# ").splitlines()
    return [
        {
            "proxy": row["pxname"],
            "server": row["svname"],
            "status": row["status"],
            "check": row["check_status"] or None,
            "since_s": int(row["lastchg"]) if row["lastchg"] else None,
        }
        for row in csv.DictReader(line for line in lines if line)
        if row["svname"] not in ("FRONTEND", "BACKEND")
    ]


def server_state(proxy: str, server: str, state: str, timeout: float = 2.0) -> dict:
    """
    Put one of haproxy's servers in ``state``: ``drain`` (it gets no new connection, keeps
    the ones it has, and its checks go on) or ``ready`` (back in the rotation once its
    checks pass), through haproxy's admin socket. The master's certificate renewal drains
    a control plane's apiserver before it restarts it. Return the server as ``backends``
    shows it afterwards.

    CLI Example:

    .. code-block:: bash

        salt-call paas_gateway.server_state kube-apiserver cp3 drain
    """
    if state not in SERVER_STATES:
        raise CommandExecutionError(
            f"a server's state is one of {', '.join(SERVER_STATES)}, not {state!r}"
        )
    known = {(row["proxy"], row["server"]) for row in backends(timeout)}
    if (proxy, server) not in known:
        raise CommandExecutionError(f"haproxy has no server {server} in {proxy}")
    answer = _haproxy(f"set server {proxy}/{server} state {state}", timeout).strip()
    if answer:
        raise CommandExecutionError(f"haproxy refused to set {proxy}/{server} {state}: {answer}")
    return next(
        row for row in backends(timeout) if (row["proxy"], row["server"]) == (proxy, server)
    )


def _haproxy(command: str, timeout: float) -> str:
    """haproxy's answer to one command on its admin socket."""
    path = __salt__["paas_topology.gateway"]()["haproxy_socket"]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(path)
            conn.sendall(f"{command}\n".encode())
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
    except OSError as error:
        raise CommandExecutionError(f"haproxy's admin socket {path}: {error}") from error
    return b"".join(chunks).decode()


def status() -> dict:
    """
    Return this gateway's VIPs (held or not), its last VRRP transition as keepalived's
    notify script recorded it, whether its daemons are active, and haproxy's backends
    (or why they could not be read).

    CLI Example:

    .. code-block:: bash

        salt-call paas_gateway.status
    """
    settings = __salt__["paas_topology.gateway"]()
    state_file = settings["vrrp_state_file"]
    try:
        with open(state_file, encoding="utf-8") as handle:
            state, since = handle.read().split()
        vrrp = {"state": state, "since": float(since)}
    except (OSError, ValueError):
        vrrp = {"state": None, "since": None}
    result = {
        "vips": vips(),
        "vrrp": vrrp,
        "services": {
            name: __salt__["service.status"](unit) for name, unit in settings["services"].items()
        },
    }
    try:
        result["backends"] = backends()
    except CommandExecutionError as error:
        result["backends"] = []
        result["backends_error"] = str(error)
    return result
