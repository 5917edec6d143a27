"""
This etcd node's view of its own member, over HTTPS with the node's health-check client
certificate, never gRPC: what the ``etcd_health`` beacon reports to the master, and what
the master asks each etcd node in a job when it checks a report itself.

``etcd_health.report`` asks this member ``/health``, its status and its alarms, and the
other members' ``/health``, all at once with a one-second timeout each; it reads the
unit (``systemctl show``), whether the data directory holds a member's write-ahead log,
and which processes listen on etcd's client and peer ports. It loads nothing of gRPC
(``etcd3``, ``grpc``, ``protobuf``): the beacon calls it in the minion's main process,
which forks every job.

``etcd_health.signed`` signs a report with this minion's own Salt key, so that the
master can tell a report of this node from one that another minion forged: Salt puts
any event a minion sends on the master's bus as the minion wrote it, tag and data.

:depends: the ``paas_etcd_http`` and ``paas_signed_report`` utils modules; the
    ``paas_topology`` and ``paas_pki`` modules; the node's ``etcd-healthcheck-client``
    certificate
"""

from __future__ import annotations

import logging
import os
import subprocess
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "etcd_health"

CLIENT_PROFILE = "etcd-healthcheck-client"
# A listening TCP socket in /proc/net/tcp{,6}.
TCP_LISTEN = "0A"


def __virtual__():
    if "paas_etcd_http.member_view" not in __utils__:
        return (False, "etcd_health: the paas_etcd_http utils module is not synced")
    return __virtualname__


def report(endpoint: str | None = None) -> dict:
    """
    This node's member as this node sees it: ``member``, ``state`` (``down``, ``alarm``,
    ``isolated``, ``healthy``), ``serving``, ``health``, ``member_id``, ``leader``, raft
    index and term, ``revision``, ``db_size`` and ``quota_bytes``, its own ``alarms``,
    ``data_dir`` (whether it holds a write-ahead log), ``service`` (the unit's active
    state, sub-state and restarts), ``listening`` (per etcd port, the processes that
    listen on it), ``peers`` (which other members answer ``/health`` healthy) and
    ``error``.

    A certificate that cannot be loaded, or a member that refuses it, raises: that says
    nothing of the member's health.

    endpoint
        This member's client URL, when it is not the topology's.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_health.report
    """
    member = __salt__["paas_topology.etcd_member"]()
    endpoint = endpoint or member["client_url"]
    credentials = __salt__["paas_pki.profile"](CLIENT_PROFILE)
    try:
        context = __utils__["paas_etcd_http.client_context"](
            credentials["ca"], credentials["cert"], credentials["key"]
        )
    except (OSError, ValueError) as err:
        raise CommandExecutionError(
            f"etcd_health: cannot load the {CLIENT_PROFILE} certificate "
            f"({credentials['cert']}, {credentials['key']}, CA {credentials['ca']}): {err}"
        ) from err
    name = member["name"]
    requests = __utils__["paas_etcd_http.member_requests"](name, endpoint)
    peers = {peer: entry["client_url"] for peer, entry in member["members"].items() if peer != name}
    for peer, url in peers.items():
        requests[f"peer:{peer}"] = (url, "GET", "/health", None)
    answers = __utils__["paas_etcd_http.ask_all"](context, requests)
    for key in (f"{name}:health", f"{name}:status", f"{name}:alarms"):
        # A member that does not trust our certificate, or that we do not trust, still
        # answers: reporting it "down" could make the master replace a healthy member.
        if __utils__["paas_etcd_http.credential_error"](answers[key]):
            raise CommandExecutionError(
                f"etcd_health: {endpoint} and this node's {CLIENT_PROFILE} certificate do "
                f"not trust each other: {answers[key]}"
            )
    view = __utils__["paas_etcd_http.member_view"](name, endpoint, answers)
    view.pop("others_alarmed")
    view.pop("url")
    return {
        **view,
        "quota_bytes": member["quota_bytes"],
        "data_dir": has_log(member["data_dir"]),
        "service": _service(member["service"]),
        "listening": listeners({"client": member["client_port"], "peer": member["peer_port"]}),
        "peers": {
            peer: __utils__["paas_etcd_http.answered_healthy"](answers[f"peer:{peer}"])
            for peer in sorted(peers)
        },
    }


def signed(data: dict, epoch: str, sequence: int) -> dict:
    """
    ``data`` (a report) with ``epoch`` and ``sequence`` (the beacon's: a new epoch each
    time the beacon starts, the sequence counted from 1 in it), this node's ``time``, and
    a signature over all of it with this minion's own Salt key, which the master checks
    with the key it accepted for this minion id.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_health.signed '{"member": "etcd1", "state": "healthy"}' 0f3c 1
    """
    key = os.path.join(__opts__["pki_dir"], "minion.pem")
    try:
        return __utils__["paas_signed_report.sign"](
            key, {**data, "epoch": epoch, "sequence": int(sequence), "time": time.time()}
        )
    except (OSError, ValueError) as err:
        raise CommandExecutionError(f"etcd_health: cannot sign with {key}: {err}") from err


def listeners(ports: dict) -> dict:
    """
    Per name in ``ports`` (name: TCP port), the processes listening on that port on any
    address, as ``[{"pid", "command"}]`` (a socket whose process is not found has pid
    None); an empty list when none listens.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_health.listeners '{"client": 2379, "peer": 2380}'
    """
    inodes = {name: set() for name in ports}
    wanted = {int(port): name for name, port in ports.items()}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != TCP_LISTEN:
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if port in wanted:
                inodes[wanted[port]].add(fields[9])
    owners = _socket_owners(set().union(*inodes.values())) if any(inodes.values()) else {}
    return {
        name: [owners.get(inode, {"pid": None, "command": None}) for inode in sorted(found)]
        for name, found in inodes.items()
    }


def _socket_owners(inodes: set[str]) -> dict:
    """The process holding each socket inode, from /proc/<pid>/fd."""
    owners = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                owners[target[8:-1]] = {"pid": int(pid), "command": _command(pid)}
    return owners


def _command(pid: str) -> str | None:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return None


def has_log(data_dir: str | None = None) -> bool:
    """
    Return whether this node's member has its write-ahead log (a ``*.wal`` file under
    ``<data_dir>/member/wal``), which is etcd's own test of a member that was started:
    etcd 3.5's ``NewServer`` (server/etcdserver/server.go) reads ``wal.Exist``
    (server/wal/util.go) and, without a log, starts as a new member, whatever else the
    directory holds. A member whose data was emptied under a running cluster and whose
    unit started again has a fresh store (``member/snap/db``) but no log: it can only
    come back as a new member.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_health.has_log
    """
    data_dir = data_dir or __salt__["paas_topology.etcd_member"]()["data_dir"]
    wal_dir = os.path.join(data_dir, "member", "wal")
    try:
        return any(entry.endswith(".wal") for entry in os.listdir(wal_dir))
    except OSError:
        return False


def _service(name: str) -> dict:
    try:
        shown = subprocess.run(
            ["systemctl", "show", "-p", "ActiveState,SubState,NRestarts,MainPID", name],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        log.debug("etcd_health: systemctl show %s failed: %s", name, err)
        return {"active": None, "sub": None, "restarts": None, "pid": None}
    values = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    return {
        "active": values.get("ActiveState"),
        "sub": values.get("SubState"),
        "restarts": _integer(values.get("NRestarts")),
        "pid": _integer(values.get("MainPID")) or None,
    }


def _integer(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
