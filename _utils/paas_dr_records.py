"""
The reactor's records read and written as data: how a signed report is kept in its
member's entry of ``reports.json`` (timed by the master's receive time, its signer's
epoch and sequences remembered to refuse a replay, its signer's clock offset sampled),
and what the records say an operator should look at (``problems``).

The ``paas_dr`` runner reads and writes the files, under its records lock, and hands
them here (``__utils__``).
"""

from __future__ import annotations

import copy
import time

# How many of a member's recent states reports.json keeps (at least the debounce's N).
RECENT = 10
# The signer's epochs a member's entry remembers, and of each the sequences: a report
# whose sequence is among those of its epoch is a replay; an older one not among them
# came late (the reactor's threads reorder), and is left out.
EPOCHS_KEPT = 20
SEQUENCES_KEPT = 100
# A signer clock this far from the master's (the smallest offset of its last reports) is
# a problem: time sync is broken on one side.
MAX_CLOCK_OFFSET_S = 5
CLOCK_SAMPLES = 10
# The fields of a signed report that reports.json keeps.
REPORT_FIELDS = (
    "member",
    "state",
    "serving",
    "health",
    "member_id",
    "leader",
    "raft_index",
    "raft_term",
    "revision",
    "db_size",
    "learner",
    "quota_bytes",
    "alarms",
    "data_dir",
    "service",
    "peers",
    "error",
    "reason",
    "epoch",
    "sequence",
)


def late(reports: dict, report: dict) -> bool:
    """Whether ``report`` is older than its member's latest of the same epoch (the
    reactor's threads may deliver a member's reports out of order)."""
    seen = reports.get("members", {}).get(report["member"], {}).get("seen", {})
    return report["sequence"] < max(seen.get(report["epoch"], [0]))


def record_report(reports: dict, report: dict, now: float, needed: int) -> None:
    """Add the signed report to its member's entry, timed by the master's clock."""
    members = reports.setdefault("members", {})
    member = report["member"]
    kept = {key: copy.deepcopy(report[key]) for key in REPORT_FIELDS if key in report}
    kept["received"] = now
    kept["signed_time"] = report.get("time")
    entry = members.get(member) or {}
    recent = [
        *entry.get("recent", []),
        {key: kept.get(key) for key in ("state", "alarms", "learner", "received")},
    ][-max(RECENT, needed) :]
    seen = dict(entry.get("seen", {}))
    sequences = seen.pop(report["epoch"], [])
    seen[report["epoch"]] = [*sequences, report["sequence"]][-SEQUENCES_KEPT:]
    offsets = entry.get("clock_offsets", [])
    if isinstance(report.get("time"), int | float):
        offsets = [*offsets, round(now - report["time"], 3)][-CLOCK_SAMPLES:]
    # The newest revision the member ever reported: a member that is down reports none,
    # and a restore from a snapshot counts its loss against this.
    revisions = [
        revision
        for revision in (report.get("revision"), entry.get("last_revision"))
        if isinstance(revision, int)
    ]
    members[member] = {
        "latest": kept,
        "recent": recent,
        "consecutive_unhealthy": (
            0 if kept.get("state") == "healthy" else entry.get("consecutive_unhealthy", 0) + 1
        ),
        "last_revision": max(revisions, default=None),
        "epoch": report["epoch"],
        "sequence": report["sequence"],
        # The newest epochs last.
        "seen": dict(list(seen.items())[-EPOCHS_KEPT:]),
        "clock_offsets": offsets,
    }


def problems(found: dict, remediations: list, probes: list, acknowledged: float) -> list[str]:
    problems = []
    last = found["last_remediation"]
    if last and last["outcome"] == "failed" and last.get("finished", 0) > acknowledged:
        problems.append(
            f"the last remediation ({last['action']} {last.get('member') or 'the cluster'}) "
            "failed: "
            + "; ".join(f"{step['step']}: {step['comment']}" for step in last["failed_steps"])
            + (
                ""
                if last.get("control_planes_back", "ok") == "ok"
                else f"; the control planes were not put back: {last['control_planes_back']}"
            )
        )
    if last and last.get("fenced") and last.get("finished", 0) > acknowledged:
        back = [
            node
            for node in last["fenced"]
            if found["members"].get(node, {}).get("state") == "healthy"
            and found["members"][node]["age_s"] < time.time() - last["finished"]
        ]
        away = [node for node in last["fenced"] if node not in back]
        if away:
            problems.append(
                f"{', '.join(away)} fenced by the restore of {last['owner']}: power "
                "them on; their members are replaced as they come back (or run "
                "salt-run state.orchestrate orch.etcd)"
            )
    if probes and probes[-1]["rule"] == "blocked" and probes[-1]["time"] > acknowledged:
        after = [entry for entry in remediations if entry.get("started", 0) > probes[-1]["time"]]
        if not after:
            problems.append(f"the reactor is blocked: {probes[-1]['reason']}")
    senders: dict = {}
    for entry in found["refused"]:
        senders.setdefault(entry.get("sender"), []).append(entry)
    for sender, entries in senders.items():
        claimed = sorted({str(entry.get("member")) for entry in entries})
        last = entries[-1]
        problems.append(
            f"refused {len(entries)} report(s) from "
            f"{sender if sender else 'a sender the event does not name'} claiming "
            f"{', '.join(claimed)}: {last['reason']} (the last, tag {last.get('tag')})"
        )
    for entry in found["contradicted"]:
        problems.append(
            f"{entry['sender']}'s report ({entry['hint']} {entry['member'] or 'the cluster'}) "
            f"was contradicted by the master's probe: {entry['reason']}"
        )
    for member, entry in found["members"].items():
        offset = entry["clock_offset_s"]
        if offset is not None and abs(offset) > MAX_CLOCK_OFFSET_S:
            problems.append(
                f"{member}'s clock is {abs(offset):.1f} s "
                f"{'behind' if offset > 0 else 'ahead of'} the master's"
            )
    if found["lock"] and found["lock"]["expired"]:
        problems.append(
            f"the remediation lock of {found['lock']['owner']} has no live holder: the next "
            "remediation or salt-run paas_dr.tidy clears it"
        )
    return problems


def clock_offset(entry: dict) -> float | None:
    """How far the master's clock is ahead of the signer's: the smallest of (receive
    time - signed time) over the last reports, which leaves the delivery delay out."""
    samples = entry.get("clock_offsets") or []
    return round(min(samples), 3) if samples else None


def probe_record(hint: dict, decision: dict, found: dict, sender: str, fencing: dict) -> dict:
    """What ``probes.json`` keeps of a probe: the suspicion and its sender, the decision,
    the fencing, and per member what the master and its minion saw."""
    return {
        "time": time.time(),
        "hint": hint["action"],
        "member": hint["member"],
        "hint_reason": hint["reason"],
        "sender": sender,
        "action": decision["action"],
        "rule": decision["rule"],
        "reason": decision["reason"],
        "silent": decision.get("silent", []),
        "fenced": decision.get("fenced", []),
        "fencing": fencing,
        "seconds": found.get("seconds"),
        "seen": {
            name: {
                "state": seen["state"],
                "leader": seen["leader"],
                "revision": seen["revision"],
                "node": _node_state(found["nodes"].get(name)),
            }
            for name, seen in found["members"].items()
        },
    }


def _node_state(node):
    """What a node's minion said of its member: its state, or why it said nothing."""
    return node.get("state") if isinstance(node, dict) else node
