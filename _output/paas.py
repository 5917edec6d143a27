"""
The tables of ``salt-run paas.status``, ``paas.certs``, ``paas.dr`` and ``paas.restore``,
drawn from the reports those runners return (``_runners/paas.py``) and from nothing
else: ``--out=json`` or ``--out=yaml`` show the same reports as data.

salt-run picks this outputter from a report's ``outputter`` key unless ``--out`` names
another; the master finds it through ``outputter_dirs`` (etc/salt/master).
"""

from __future__ import annotations

import time

__virtualname__ = "paas"

# A Node's Ready condition as kubectl shows it (Unknown: its kubelet has gone silent).
CONDITIONS = {"True": "Ready", "False": "NotReady", "Unknown": "Unknown"}


def __virtual__():
    return __virtualname__


def output(data: dict, **kwargs) -> str:
    """
    A report as a person reads it: the verdict and every problem first, then each part.
    """
    if "gateways" in data:
        title = "paas"
        parts = [
            _gateways(data["gateways"]),
            _etcd(data["etcd"]),
            _kubernetes(data["kubernetes"]),
            _pki(data["pki"]),
        ]
    elif "certificates" in data:
        title = "certificates"
        parts = [
            _certificate_table(data["certificates"])
            + f"\nrenewal window: the last {data['renew_days']} days"
            + _renewal(data.get("renewal"))
        ]
    elif data.get("kind") == "dr":
        title = "disaster recovery"
        parts = [_backups(data), _drill(data.get("last_drill")), _reactor(data)]
    elif data.get("kind") == "preflight":
        title = "preflight"
        parts = [_preflight(data)]
    elif data.get("kind") == "restore":
        title = "restore"
        parts = [f"outcome: {data['outcome']} (remediation {data['owner']})"]
    else:
        title, parts = "paas", []
    return "\n\n".join([_verdict(title, data) + _maintenance(data.get("maintenance")), *parts])


def _snapshot_cell(entry: dict | None) -> str:
    if not entry:
        return "-"
    age = round(time.time() - entry["time"]) if entry.get("time") is not None else None
    # A snapshot received before the master could read it has no revision yet.
    revision = "r?" if entry.get("revision") is None else f"r{entry['revision']}"
    return f"{revision}, {_duration(age)} old, {entry.get('size', 0)} B"


def _backups(report: dict) -> str:
    header = ("NODE", "ON THE NODE", "OFF THE NODE (VERIFIED)", "STALE")
    rows = [header] + [
        (
            node,
            _snapshot_cell(entry["on_node"]),
            _snapshot_cell(entry["offsite"]),
            "yes" if entry["stale"] else "no",
        )
        for node, entry in sorted(report["nodes"].items())
    ]
    stale_after = _duration(report["stale_after_seconds"])
    return f"snapshots (stale after {stale_after}):\n" + _table(rows)


def _drill(drill: dict | None) -> str:
    if not drill:
        return "last drill: none yet"
    verdict = "passed" if drill.get("passed") else f"FAILED: {drill.get('error')}"
    return (
        f"last drill: {verdict}; {drill.get('snapshot')} "
        f"(revision {drill.get('revision')}, {drill.get('keys')} keys)"
    )


def _reactor(report: dict) -> str:
    lines = []
    last = report.get("last_remediation")
    if last:
        took = f" in {last['duration_s']} s" if last.get("duration_s") is not None else ""
        lines.append(
            f"last remediation: {last['action']} {last.get('member') or 'the cluster'}, "
            f"{last['outcome']}{took} ({last['reason']})"
        )
    else:
        lines.append("last remediation: none")
    probe = report.get("last_probe")
    if probe:
        lines.append(
            f"last probe: {probe['hint']} {probe.get('member') or 'the cluster'} suspected by "
            f"{probe['sender']}, {probe['rule']} ({probe['reason']})"
        )
    lock = report.get("lock")
    if lock:
        state = "expired" if lock.get("expired") else "held"
        lines.append(f"lock: {state} by {lock['owner']} ({lock['action']})")
    else:
        lines.append("lock: free")
    paused = report.get("paused")
    if paused:
        lines.append(f"reactor paused: {paused.get('reason') or 'no reason given'}")
    if report.get("dropped"):
        lines.append(f"events dropped lately: {len(report['dropped'])}")
    for key, what in (("refused", "reports refused"), ("contradicted", "reports contradicted")):
        if report.get(key):
            lines.append(f"{what} since the last acknowledgement: {len(report[key])}")
    return "\n".join(lines)


def _verdict(title: str, report: dict) -> str:
    if report["severity"] == "ok":
        return f"{title}: ok"
    count = len(report["problems"])
    lines = [f"{title}: {report['severity'].upper()} ({count} problem{'s' * (count != 1)})"]
    lines.extend(f"  - {problem}" for problem in report["problems"])
    return "\n".join(lines)


def _maintenance(maintenance: dict | None) -> str:
    if not maintenance:
        return ""
    lines = ["maintenance:"]
    lines.extend(
        f"  {window['node']}: {window['why']}, since {window['since']}"
        + (f", done {window['ended']}" if window["ended"] else ", going on")
        for window in maintenance["nodes"]
    )
    lines.append("expected meanwhile, not counted:")
    lines.extend(f"  - {problem}" for problem in maintenance["expected"] or ["nothing seen"])
    return "\n" + "\n".join(lines)


def _flag(section: dict) -> str:
    return "" if section["severity"] == "ok" else f" ({section['severity'].upper()})"


def _gateways(gateways: dict) -> str:
    if gateways["holder"]:
        summary = f"gateways: both VIPs on {gateways['holder']}"
    else:
        summary = "gateways: " + ", ".join(
            f"{network} VIP on {' and '.join(held) or 'no gateway'}"
            for network, held in gateways["holders"].items()
        )
    header = ("GATEWAY", "VRRP", "PUBLIC VIP", "PRIVATE VIP")
    services = ("keepalived", "haproxy", "conntrackd", "nftables")
    rows = [(*header, *(service.upper() for service in services))]
    for node, reply in sorted(gateways["nodes"].items()):
        rows.append(
            (
                node,
                reply["vrrp"]["state"] or "-",
                *("held" if reply["vips"][net]["held"] else "-" for net in ("public", "private")),
                *("active" if reply["services"].get(name) else "INACTIVE" for name in services),
            )
        )
    nodes = sorted(gateways["nodes"])
    states = {
        (node, backend["proxy"], backend["server"]): backend["status"]
        for node in nodes
        for backend in gateways["nodes"][node]["backends"]
    }
    servers = sorted({(proxy, server) for _, proxy, server in states})
    backends = [("BACKEND", "SERVER", *(node.upper() for node in nodes))] + [
        (proxy, server, *(states.get((node, proxy, server), "-") for node in nodes))
        for proxy, server in servers
    ]
    parts = [summary + _flag(gateways)]
    if len(rows) > 1:
        parts.append(_table(rows))
    if len(backends) > 1:
        parts.extend(["", _table(backends)])
    return "\n".join(parts)


def _etcd(etcd: dict) -> str:
    if "members" not in etcd:
        return "etcd: " + "; ".join(etcd["problems"]) + _flag(etcd)
    state = "healthy" if etcd["healthy"] else ("degraded" if etcd["quorum"] else "NO QUORUM")
    alarms = ", ".join(f"{alarm['alarm']} on {alarm['member']}" for alarm in etcd["alarms"])
    summary = (
        f"etcd: {state}, {etcd['healthy_voters']} of {etcd['voters']} voting members healthy, "
        f"leader {etcd['leader'] or 'none'}, alarms: {alarms or 'none'} "
        f"(seen by {etcd['seen_by']}){_flag(etcd)}"
    )
    header = ("MEMBER", "ID", "ROLE", "HEALTH", "LEADER", "DB SIZE", "RAFT INDEX", "VERSION")
    table = [header] + [
        (
            name,
            member["id"],
            "learner" if member["learner"] else "voter",
            "healthy" if member["healthy"] else f"unhealthy: {member['error']}",
            "*" if member["is_leader"] else "",
            _text(member["db_size"]),
            _text(member["raft_index"]),
            _text(member["version"]),
        )
        for name, member in sorted(etcd["members"].items())
    ]
    return "\n".join([summary, _table(table)])


def _kubernetes(kubernetes: dict) -> str:
    """The Nodes as a control plane lists them, then each control plane's apiserver."""
    if kubernetes["initialized"] is None:
        return "kubernetes: " + "; ".join(kubernetes["problems"]) + _flag(kubernetes)
    title = f"kubernetes v{kubernetes['version']}"
    if not kubernetes["initialized"]:
        return f"{title}: not initialized{_flag(kubernetes)}"
    nodes = kubernetes["nodes"]
    if kubernetes["seen_by"] is None:
        summary = f"{title}: no control plane could list the Nodes"
    else:
        ready = sum(1 for node in nodes if node["ready"])
        summary = f"{title}: {len(nodes)} Nodes, {ready} Ready (seen by {kubernetes['seen_by']})"
    parts = [summary + _flag(kubernetes)]
    if nodes:
        header = ("NODE", "READY", "ROLES", "KUBELET", "AGE", "LEASE")
        parts.append(
            _table(
                [header]
                + [
                    (
                        node["name"],
                        CONDITIONS.get(node["condition"], "-"),
                        ",".join(node["roles"]) or "<none>",
                        _text(node["kubelet"]),
                        _duration(node["age_s"]),
                        "none"
                        if node["lease_age_s"] is None
                        else _duration(node["lease_age_s"]) + " ago",
                    )
                    for node in nodes
                ]
            )
        )
    apiservers = [
        (cp, *(_readiness(apiserver, check) for check in ("direct", "private_vip", "public_vip")))
        for cp, apiserver in kubernetes["apiservers"].items()
    ]
    if any(apiserver for apiserver in kubernetes["apiservers"].values()):
        header = ("CONTROL PLANE", "DIRECT", "VIA PRIVATE VIP", "VIA PUBLIC VIP")
        parts.extend(["", _table([header, *apiservers])])
    return "\n".join(parts)


def _readiness(apiserver: dict | None, check: str) -> str:
    if apiserver is None:
        return "-"
    return "ready" if apiserver[check]["ready"] else "NOT READY"


def _duration(seconds: int | None) -> str:
    """Seconds as kubectl shows an age: 45s, 12m, 5h, 3d."""
    if seconds is None:
        return "-"
    for unit, size, below in (("s", 1, 120), ("m", 60, 7200), ("h", 3600, 172800)):
        if seconds < below:
            return f"{seconds // size}{unit}"
    return f"{seconds // 86400}d"


def _label(row: dict) -> str:
    """A certificate's name in the tables: kubeadm's carry their source."""
    if row.get("source") != "kubeadm":
        return row["profile"]
    return "kubeadm" if row["profile"] == "-" else f"kubeadm {row['profile']}"


def _pki(pki: dict) -> str:
    """One line: the table of every certificate is paas.certs'."""
    dated = [row for row in pki["certificates"] if row.get("days_left") is not None]
    nodes = {row["node"] for row in dated}
    summary = f"certificates: {len(dated)} on {len(nodes)} nodes"
    if dated:
        soonest = min(dated, key=lambda row: row["days_left"])
        summary += (
            f", the soonest ends in {soonest['days_left']} days "
            f"({soonest['node']} {_label(soonest)})"
        )
    return f"{summary}; renewal window {pki['renew_days']} days{_flag(pki)}"


def _certificate_table(rows: list[dict]) -> str:
    header = ("NODE", "PROFILE", "SERIAL", "NOT AFTER", "DAYS", "RENEWS", "PROBLEMS")
    table = [header] + [
        (
            row["node"],
            _label(row),
            row.get("serial", "-")[:23],
            row.get("not_after", "-"),
            _text(row.get("days_left")),
            _text(row.get("renews")),
            "; ".join(row["problems"]) or "ok",
        )
        for row in rows
    ]
    return _table(table)


def _renewal(renewal: dict | None) -> str:
    """The master's schedule: how often it renews, its last run, its next."""
    if not renewal:
        return ""
    every = renewal["every_minutes"]
    line = f"; the master renews every {'minute' if every == 1 else f'{every} minutes'}"
    if renewal.get("stalled"):
        line += f", but {renewal['stalled']}"
    last = renewal["last_run"]
    if last is None:
        return line
    outcome = (
        f"failed: {last['failed']}"
        if last["failed"]
        else f"skipped: {last['skipped']}"
        if last["skipped"]
        else f"renewed {'; '.join(last['renewed'])}"
        if last["renewed"]
        else "nothing due"
    )
    return f"{line} (last {last['time']}: {outcome}; next {renewal['next_check']})"


def _preflight(report: dict) -> str:
    lines = [f"{report['nodes']} nodes checked"]
    for key, what in (("failures", "failed"), ("ignored", "ignored (paas:preflight:ignore)")):
        if report[key]:
            rows = [("NODE", "CHECK", "FOUND", "WANTED", "FIX")]
            rows += [
                (row["node"], row["check"], row["found"], row["wanted"], row["fix"])
                for row in report[key]
            ]
            lines.append(f"{what}:\n{_table(rows)}")
    return "\n\n".join(lines)


def _text(value) -> str:
    return "-" if value is None else str(value)


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(line[column]) for line in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in rows
    )
