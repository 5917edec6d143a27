"""
What a platform engineer runs on the master.

``salt-run paas.validate`` checks the topology in the pillar, or in a YAML file;
``salt-run paas.certs`` lists every certificate; ``salt-run paas.status`` shows the
platform's state (its etcd cluster: members, leader, health, db size, alarms).

:depends: the ``paas_topology`` utils module (``utils_dirs`` in the master config)
"""

from __future__ import annotations

import salt.client
import salt.pillar
import salt.utils.files
import salt.utils.yaml
from salt.exceptions import SaltRunnerError

__virtualname__ = "paas"


def __virtual__():
    if "paas_topology.validate" not in __utils__:
        return (False, "paas: the paas_topology utils module is not on the master's utils_dirs")
    return __virtualname__


def validate(topology: str | None = None) -> dict:
    """
    Check the platform's topology and list every error with its node and field.

    Exits non-zero when the topology is invalid.

    topology
        A YAML file holding a ``paas:`` key, to check instead of the pillar.

    CLI Example:

    .. code-block:: bash

        salt-run paas.validate
        salt-run paas.validate topology=pillar.example
    """
    if topology is None:
        source = "pillar"
        pillar = _master_pillar()
        if pillar.get("_errors"):
            errors = [f"paas: the pillar did not render: {error}" for error in pillar["_errors"]]
        elif "paas" not in pillar:
            errors = ["paas: the pillar has no paas key (is pillar/top.sls assigning it?)"]
        else:
            data = pillar["paas"]
            errors = []
    else:
        source = topology
        try:
            data = _load_topology_file(topology)
            errors = []
        except SaltRunnerError as err:
            errors = [str(err)]
    if not errors:
        errors = [str(error) for error in __utils__["paas_topology.validate"](data)]
    # salt-run takes its exit code from the "retcode" of the return; an orchestration's
    # salt.runner step takes the run's success from __context__.
    if errors:
        __context__["retcode"] = 1
        return {"valid": False, "source": source, "errors": errors, "retcode": 1}
    nodes = __utils__["paas_topology.node_ids"](data)
    return {"valid": True, "source": source, "nodes": len(nodes), "retcode": 0}


def certs(timeout: int = 30) -> list[dict] | str:
    """
    The inventory of every certificate the platform issued, as installed on the nodes
    and the master's minion: node, profile, serial, names, expiry, days left, problems.

    A readable table by default; the data itself with ``--out=json`` or ``--out=yaml``.
    A minion that does not answer is listed with the problem.

    CLI Example:

    .. code-block:: bash

        salt-run paas.certs
        salt-run paas.certs --out=json
    """
    topology = _valid_topology()
    minions = [
        *__utils__["paas_topology.node_ids"](topology),
        __utils__["paas_topology.master_id"](topology),
    ]
    replies = _ask(minions, "paas_pki.certificates", timeout)
    rows = []
    for minion in minions:
        reply = replies.get(minion)
        if not isinstance(reply, list):
            rows.append({"node": minion, "profile": "-", "problems": [f"no answer: {reply!r}"]})
            continue
        rows.extend(reply)
    if __opts__.get("output") in (None, "nested", "txt"):
        return _certificate_table(rows)
    return rows


def status(timeout: int = 30) -> dict | str:
    """
    The platform's state. Its etcd part: health and quorum, the leader, alarms, and per
    member its role (voter or learner), health, db size, raft index and version, as the
    first etcd node that answers sees them (each asks the cluster with its health-check
    client certificate).

    A readable table by default; the data itself with ``--out=json`` or ``--out=yaml``.

    CLI Example:

    .. code-block:: bash

        salt-run paas.status
        salt-run paas.status --out=json
    """
    topology = _valid_topology()
    etcd_nodes = __utils__["paas_topology.node_ids"](topology, "etcd")
    replies = _ask(etcd_nodes, "etcd_cluster.overview", timeout)
    answers = {node: reply for node, reply in replies.items() if isinstance(reply, dict)}
    if answers:
        seen_by = next(node for node in etcd_nodes if node in answers)
        etcd = {**answers[seen_by], "seen_by": seen_by}
    else:
        etcd = {
            "healthy": False,
            "quorum": False,
            "error": "no etcd node answered: "
            + "; ".join(f"{node}: {replies.get(node, 'no reply')}" for node in etcd_nodes),
        }
    gateway_nodes = __utils__["paas_topology.node_ids"](topology, "gateway")
    gateways = _gateways(gateway_nodes, _ask(gateway_nodes, "paas_gateway.status", timeout))
    if __opts__.get("output") in (None, "nested", "txt"):
        return "\n\n".join([_gateway_table(gateways), _etcd_table(etcd)])
    return {"gateways": gateways, "etcd": etcd}


def _gateways(nodes: list[str], replies: dict) -> dict:
    """Who holds each VIP, as the gateways themselves say: exactly one gateway holding
    both is the healthy case; two holders is a split brain (VRRP between them is lost)."""
    answers = {node: replies[node] for node in nodes if isinstance(replies.get(node), dict)}
    holders = {
        network: [node for node, reply in answers.items() if reply["vips"][network]["held"]]
        for network in ("public", "private")
    }
    every_holder = sorted({node for held in holders.values() for node in held})
    problems = []
    for network, held in holders.items():
        if len(held) > 1:
            problems.append(f"split brain: {' and '.join(held)} each hold the {network} VIP")
        elif not held:
            problems.append(f"no gateway holds the {network} VIP")
    if all(len(held) == 1 for held in holders.values()) and len(every_holder) == 2:
        problems.append(
            f"the VIPs are on different gateways: public on {holders['public'][0]}, "
            f"private on {holders['private'][0]}"
        )
    for node in nodes:
        if node not in answers:
            problems.append(f"{node} did not answer: {replies.get(node, 'no reply')}")
    return {
        "holder": every_holder[0] if len(every_holder) == 1 and not problems else None,
        "holders": holders,
        "split_brain": any(len(held) > 1 for held in holders.values()),
        "problems": problems,
        "nodes": answers,
    }


def _gateway_table(gateways: dict) -> str:
    if gateways["holder"]:
        summary = f"gateways: both VIPs on {gateways['holder']}"
    else:
        summary = "gateways: " + "; ".join(gateways["problems"]).upper()
    header = ("GATEWAY", "VRRP", "PUBLIC VIP", "PRIVATE VIP", "KEEPALIVED", "HAPROXY", "CONNTRACKD")
    rows = [header]
    for node, reply in sorted(gateways["nodes"].items()):
        services = reply["services"]
        rows.append(
            (
                node,
                reply["vrrp"]["state"] or "-",
                *("held" if reply["vips"][net]["held"] else "-" for net in ("public", "private")),
                *("active" if services[name.lower()] else "INACTIVE" for name in header[4:]),
            )
        )
    servers = sorted(
        {
            (b["proxy"], b["server"])
            for reply in gateways["nodes"].values()
            for b in reply["backends"]
        }
    )
    states = {
        (node, b["proxy"], b["server"]): b["status"]
        for node, reply in gateways["nodes"].items()
        for b in reply["backends"]
    }
    nodes = sorted(gateways["nodes"])
    backends = [("BACKEND", "SERVER", *(node.upper() for node in nodes))] + [
        (proxy, server, *(states.get((node, proxy, server), "-") for node in nodes))
        for proxy, server in servers
    ]
    errors = [
        f"{node}: {reply['backends_error']}"
        for node, reply in sorted(gateways["nodes"].items())
        if "backends_error" in reply
    ]
    return "\n".join([summary, _table(rows), "", _table(backends), *errors])


def _etcd_table(etcd: dict) -> str:
    if "members" not in etcd:
        return f"etcd: {etcd['error']}"
    state = "healthy" if etcd["healthy"] else ("degraded" if etcd["quorum"] else "NO QUORUM")
    alarms = ", ".join(f"{alarm['alarm']} on {alarm['member']}" for alarm in etcd["alarms"])
    lines = [
        f"etcd: {state}, {etcd['healthy_voters']} of {etcd['voters']} voting members healthy, "
        f"leader {etcd['leader'] or 'none'}, alarms: {alarms or 'none'} (seen by {etcd['seen_by']})"
    ]
    header = ("MEMBER", "ID", "ROLE", "HEALTH", "LEADER", "DB SIZE", "RAFT INDEX", "VERSION")
    table = [header] + [
        (
            name,
            member["id"],
            "learner" if member["learner"] else "voter",
            "healthy" if member["healthy"] else f"unhealthy: {member['error']}",
            "*" if member["is_leader"] else "",
            str(member["db_size"] if member["db_size"] is not None else "-"),
            str(member["raft_index"] if member["raft_index"] is not None else "-"),
            member["version"] or "-",
        )
        for name, member in sorted(etcd["members"].items())
    ]
    return "\n".join([*lines, _table(table)])


def _certificate_table(rows: list[dict]) -> str:
    header = ("NODE", "PROFILE", "SERIAL", "NOT AFTER", "DAYS", "PROBLEMS")
    table = [header] + [
        (
            row["node"],
            row["profile"],
            row.get("serial", "-")[:23],
            row.get("not_after", "-"),
            str(row.get("days_left", "-")),
            "; ".join(row.get("problems", [])) or "ok",
        )
        for row in rows
    ]
    return _table(table)


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(line[column]) for line in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in rows
    )


def _valid_topology() -> dict:
    topology = _master_pillar().get("paas")
    if __utils__["paas_topology.validate"](topology or {}):
        raise SaltRunnerError("the paas topology is invalid: run salt-run paas.validate")
    return topology


def _ask(minions: list[str], function: str, timeout: int) -> dict:
    with salt.client.LocalClient(mopts=__opts__) as client:
        return client.cmd(minions, function, tgt_type="list", timeout=timeout)


def _master_pillar() -> dict:
    # The pillar the master's own minion (the one that runs orchestrations) sees.
    pillar = salt.pillar.get_pillar(
        __opts__, {}, __opts__["id"], saltenv=__opts__.get("saltenv") or "base"
    )
    return pillar.compile_pillar()


def _load_topology_file(path: str) -> dict:
    try:
        with salt.utils.files.fopen(path) as handle:
            document = salt.utils.yaml.safe_load(handle)
    except OSError as err:
        raise SaltRunnerError(f"cannot read topology file {path}: {err.strerror}") from err
    except salt.utils.yaml.YAMLError as err:
        raise SaltRunnerError(f"topology file {path} is not valid YAML: {err}") from err
    if not isinstance(document, dict) or "paas" not in document:
        raise SaltRunnerError(f"topology file {path} has no top-level paas key")
    return document["paas"]
