"""
The reactor's decisions on etcd's health, pure functions of what they are given: what
the members' recorded reports suspect (``suspect``), what the master's own probe
confirms (``decide``), when the same remediation waits after failures (``backoff``) or a
suspicion after a probe that found nothing to do (``held_off``), and how a signed report
is recorded in its member's entry (``record_report``). They read nothing else and change
nothing but the records they are handed.

The ``paas_dr`` runner calls them through ``__utils__``; ``paas_dr.suspect``,
``paas_dr.decide`` and ``paas_dr.backoff`` are their names for an operator.
"""

from __future__ import annotations

# A report is fresh for this many beacon intervals; an unhealthy member reports on every
# interval, so a member silent for longer is silent.
FRESH_INTERVALS = 3
# What etcd raises on a member whose data no longer matches the others': the member,
# not the cluster, is to be replaced.
CORRUPT = "CORRUPT"
# After a remediation failed, the same one waits this long before it runs again, twice
# as long after each further failure in a row, at most BACKOFF_MAX_S.
BACKOFF_S = 60
BACKOFF_MAX_S = 1800
# After a probe that found nothing to do (contradicted, blocked, a partition), the same
# suspicion is probed again only after this long (or two beacon intervals, if longer):
# an unhealthy member reports every interval, and a probe publishes a job.
PROBE_HOLDOFF_S = 10


def new_decision(action: str, member: str | None, rule: str, reason: str) -> dict:
    """A decision: ``action`` (none, recover, restore) on ``member``, by ``rule``,
    because of ``reason``; ``owner`` and ``outcome`` are filled in when it is acted on."""
    return {
        "action": action,
        "member": member,
        "rule": rule,
        "reason": reason,
        "owner": None,
        "outcome": None,
    }


def suspect(reports: dict, settings: dict, now: float) -> dict:
    """
    What the members' reports (``reports.json``'s ``members``: per member ``latest`` and
    ``recent``, timed by the master's receive time) suspect at time ``now``, with the
    ``paas:dr`` view ``settings``. A pure function: it reads nothing else and changes
    nothing. Only a probe confirms a suspicion.

    - restore: no member reports healthy, and every member that reports has its last N
      reports (N = ``unhealthy_reports_before_action``) ``down`` or ``isolated``;
    - recover member X: X's own last N reports are all ``down`` or a ``CORRUPT`` alarm
      (a healthy report between resets the count), the newest within 3 beacon intervals;
      or all healthy and a learner (a member added and never promoted: a join that
      stopped half-way leaves it so, and nothing else would ever promote it);
    - anything else, or stale reports: none.
    """
    voters = list(settings["etcd"]["members"])
    needed = debounce(settings)
    fresh = {
        member: reports[member]
        for member in voters
        if member in reports and _fresh(reports[member]["latest"], settings, now)
    }
    if not fresh:
        return new_decision(
            "none", None, "stale", "no member reported within 3 beacon intervals; nothing to act on"
        )
    if not any(_state(entry) == "healthy" for entry in fresh.values()):
        for member, entry in fresh.items():
            if not _streak(entry, needed, _quorum_lost):
                return new_decision(
                    "none",
                    member,
                    "debounce",
                    f"no member reports healthy, but {member}'s last {needed} reports are not "
                    "all down or isolated",
                )
        silent = [member for member in voters if member not in fresh]
        return new_decision(
            "restore",
            None,
            "restore",
            f"no member reports healthy: {', '.join(fresh)} down or isolated {needed} times in "
            f"a row" + (f"; {', '.join(silent)} silent" if silent else ""),
        )
    waiting, learners = [], []
    for member, entry in fresh.items():
        if _state(entry) == "healthy":
            if _streak(entry, needed, _healthy_learner):
                learners.append(member)
            continue
        if _streak(entry, needed, _replaceable):
            return new_decision(
                "recover",
                member,
                "recover",
                f"{member} reported {_state(entry)} {needed} times in a row",
            )
        waiting.append(f"{member} ({_state(entry)})")
    if learners:
        return new_decision(
            "recover",
            learners[0],
            "learner",
            f"{learners[0]} reported itself a healthy learner {needed} times in a row: a "
            "member added and never promoted",
        )
    if waiting:
        return new_decision("none", None, "debounce", f"waiting: {'; '.join(waiting)}")
    return new_decision("none", None, "healthy", "every reporting member is healthy")


def _streak(entry: dict, needed: int, test) -> bool:
    recent = entry.get("recent", [])[-needed:]
    return len(recent) >= needed and all(test(report) for report in recent)


def decide(hint: dict, probe: dict, settings: dict) -> dict:
    """
    What to do about the suspicion ``hint`` (from ``suspect``), given the master's own
    ``probe``. A pure function.

    recover X, only when: the master does not reach X healthy, X's minion answers and
    does not see its member healthy either (a member the master alone cannot reach is a
    problem between the master and X), X is not isolated while the others hold quorum
    (a partition), X is down or corrupt, and the others that the master reaches healthy
    under one leader hold quorum without X: never at the cost of quorum. Or X is healthy
    and a learner, by its own status or the others' member list: it is promoted, which
    etcd allows only once it has caught up.

    restore, only when: the master reaches no member healthy, no etcd node's minion sees
    its member healthy, and every etcd node's minion answers; those that do not answer
    are named (``silent``) for fencing, or the restore is blocked.

    Anything the probe contradicts: none, saying what it found.
    """
    if probe.get("error"):
        return new_decision(
            "none", hint["member"], "blocked", f"the master cannot probe etcd: {probe['error']}"
        )
    if hint["action"] == "recover":
        return _decide_recover(hint["member"], probe)
    if hint["action"] == "restore":
        return _decide_restore(probe, settings)
    return hint


def _decide_recover(member: str, probe: dict) -> dict:
    seen = probe["members"][member]
    node = probe["nodes"].get(member)
    if seen["state"] == "healthy":
        group, _ = _quorum_group(probe, exclude=member)
        if seen.get("learner") or member in _learners(probe, group):
            return new_decision(
                "recover",
                member,
                "learner",
                f"the master reaches {member} healthy and a learner still: it is promoted",
            )
        return new_decision(
            "none",
            member,
            "contradicted",
            f"the master reaches {member} healthy (leader {seen['leader']}, revision "
            f"{seen['revision']})",
        )
    if not isinstance(node, dict):
        return new_decision(
            "none",
            member,
            "blocked",
            f"{member}'s minion does not answer ({node}): a replacement runs on {member} "
            "itself; bring its machine back (docs/dr.md, a dead machine)",
        )
    if node.get("state") == "healthy":
        return new_decision(
            "none",
            member,
            "contradicted",
            f"{member}'s minion sees its member healthy while the master cannot reach it "
            f"({seen['error'] or seen['state']}): a problem between the master and "
            f"{member}, not a lost member",
        )
    group, voters = _quorum_group(probe, exclude=member)
    learners = [name for name in _learners(probe, group) if name != member]
    if learners:
        # etcd takes one learner at a time: a member left a learner (a run that stopped
        # half-way) keeps the lost one from being added until it is promoted.
        return new_decision(
            "recover",
            learners[0],
            "learner",
            f"{learners[0]} is a learner still, which keeps {member} from joining: it is "
            "promoted first",
        )
    if "isolated" in (seen["state"], node.get("state")) and len(group) >= _quorum(len(voters)):
        return new_decision(
            "none",
            member,
            "partition",
            f"{member} is isolated while {', '.join(group)} hold quorum: a partition, not "
            "a lost member; never acted on",
        )
    if not (_replaceable(seen) or _replaceable(node)):
        return new_decision(
            "none",
            member,
            "contradicted",
            f"the master sees {member} {seen['state']} and its minion {node.get('state')}: "
            "neither down nor corrupt",
        )
    remaining = [voter for voter in voters if voter != member]
    needed = _quorum(len(remaining)) if member in voters else _quorum(len(voters))
    if len(group) < needed:
        return new_decision(
            "none",
            member,
            "quorum",
            f"the master reaches {len(group)} healthy members under one leader "
            f"({', '.join(group) or 'none'}) besides {member}; replacing it needs {needed} of "
            f"the {len(remaining if member in voters else voters)} voters",
        )
    return new_decision(
        "recover",
        member,
        "recover",
        f"the master confirms {member} {seen['state']} (its minion: {node.get('state')}, "
        f"unit {node.get('service', {}).get('active')}) while {', '.join(group)} hold quorum",
    )


def _decide_restore(probe: dict, settings: dict) -> dict:
    healthy = [name for name, seen in probe["members"].items() if seen["state"] == "healthy"]
    if healthy:
        return new_decision(
            "none",
            None,
            "contradicted",
            f"the master reaches {', '.join(healthy)} healthy: quorum holds",
        )
    locally = [
        name
        for name, node in probe["nodes"].items()
        if isinstance(node, dict) and node.get("state") == "healthy"
    ]
    if locally:
        return new_decision(
            "none",
            None,
            "contradicted",
            f"{', '.join(locally)} see their member healthy while the master reaches none: "
            "a problem between the master and etcd, not a lost quorum",
        )
    members = list(settings["etcd"]["members"])
    silent = [name for name in members if not isinstance(probe["nodes"].get(name), dict)]
    decision = new_decision(
        "restore",
        None,
        "restore",
        "the master reaches no member healthy and no etcd node sees its member healthy"
        + (f"; {', '.join(silent)} do not answer" if silent else ""),
    )
    return {**decision, "silent": silent}


def _learners(probe: dict, group: list[str]) -> list[str]:
    """The topology's members that the member list of the healthy ``group`` names as
    learners."""
    listed = next(
        (
            probe["members"][name]["members"]
            for name in group
            if probe["members"][name].get("members")
        ),
        {},
    )
    return [name for name, entry in listed.items() if entry["learner"] and name in probe["members"]]


def _quorum_group(probe: dict, exclude: str) -> tuple[list[str], list[str]]:
    """The members other than ``exclude`` that the master reaches healthy under the
    leader most of them follow, and the voters their member list names (the topology's
    members when none lists any)."""
    leaders: dict[str, list[str]] = {}
    for name, seen in probe["members"].items():
        if name != exclude and seen["state"] == "healthy" and seen["leader"]:
            leaders.setdefault(seen["leader"], []).append(name)
    group = max(leaders.values(), key=len, default=[])
    listed = next(
        (
            probe["members"][name].get("members")
            for name in group
            if probe["members"][name].get("members")
        ),
        None,
    )
    if listed is None:
        return group, list(probe["members"])
    return group, [name for name, entry in listed.items() if not entry["learner"]]


def blocked(decision: dict, silent: list, found: dict, fencing: dict, unattended: bool) -> dict:
    """A restore blocked by the ``silent`` etcd nodes that no fencing took out: why each
    one blocks it (what the probe ``found`` of its etcd, how its fencing failed) and the
    operator's way on."""
    why = []
    for node in silent:
        seen = found["members"][node]
        alive = (
            f"its etcd answers at {seen['url']} ({seen['state']}): alive behind a silent minion"
            if seen["serving"]
            else "its etcd does not answer the master either"
        )
        fenced = fencing.get(node)
        tried = f"; fencing failed: {fenced['error']}" if fenced else ""
        why.append(f"{node}'s minion does not answer ({found['nodes'].get(node)}); {alive}{tried}")
    runbook = "once you confirmed the machine is off: salt-run paas.restore fenced=" + ",".join(
        silent
    )
    return {
        **new_decision(
            "none",
            None,
            "blocked",
            f"a restore needs every etcd node's minion: {'; '.join(why)}; {runbook}"
            if unattended
            else f"{'; '.join(why)}; {runbook}",
        ),
        "silent": silent,
    }


def backoff(decision: dict, remediations: list[dict], now: float, acknowledged: float = 0) -> dict:
    """The decision, unless the same remediation (action and member) failed the last
    times it ran: then none until BACKOFF_S doubled for each failure in a row (at most
    BACKOFF_MAX_S) has passed since the last one ended, so that a remediation that cannot
    succeed does not run again on every report. Failures an operator acknowledged (at
    ``acknowledged``: they mended the cause) no longer count. An operator's run is not
    held back."""
    if decision["action"] == "none":
        return decision
    failures = 0
    last_end = 0.0
    for entry in reversed(remediations):
        if (entry.get("finished") or 0) <= acknowledged:
            break
        if (entry.get("action"), entry.get("member")) != (decision["action"], decision["member"]):
            continue
        if entry.get("outcome") in ("ok", "interrupted"):
            break
        failures += 1
        last_end = max(last_end, entry.get("finished") or 0.0)
    if not failures:
        return decision
    wait = min(BACKOFF_S * 2 ** (failures - 1), BACKOFF_MAX_S)
    if now - last_end >= wait:
        return decision
    return new_decision(
        "none",
        decision["member"],
        "backoff",
        f"{decision['action']} failed {failures} time(s) in a row, the last "
        f"{now - last_end:.0f} s ago: the next try waits {wait} s ({decision['reason']})",
    )


def held_off(hint: dict, last_probe: dict | None, sender: str, settings: dict, now: float) -> dict:
    """The suspicion, unless the same one was probed a moment ago and found nothing to
    do: then none until the hold-off has passed, or until a node whose silence blocked
    that probe reports again (its minion is back)."""
    if hint["action"] == "none" or not last_probe:
        return hint
    if (last_probe.get("hint"), last_probe.get("member")) != (hint["action"], hint["member"]):
        return hint
    if sender in last_probe.get("silent", []):
        return hint
    wait = max(PROBE_HOLDOFF_S, 2 * settings["beacon_interval_seconds"])
    if last_probe.get("action") != "none" or now - last_probe.get("time", 0) >= wait:
        return hint
    return new_decision(
        "none",
        hint["member"],
        "holdoff",
        f"the same suspicion was probed {now - last_probe['time']:.0f} s ago "
        f"({last_probe.get('rule')}: {last_probe.get('reason')}); the next probe in {wait} s",
    )


def debounce(settings: dict) -> int:
    """How many unhealthy reports in a row a suspicion needs (N)."""
    return max(1, int(settings["unhealthy_reports_before_action"]))


def _replaceable(report: dict) -> bool:
    """A state that replacing the member mends: it does not answer, or its data is corrupt."""
    return report.get("state") == "down" or (
        report.get("state") == "alarm" and CORRUPT in (report.get("alarms") or [])
    )


def _healthy_learner(report: dict) -> bool:
    return report.get("state") == "healthy" and report.get("learner") is True


def _quorum_lost(report: dict) -> bool:
    return report.get("state") in ("down", "isolated")


def _quorum(voters: int) -> int:
    return voters // 2 + 1


def _state(entry: dict | None) -> str | None:
    return None if entry is None else entry["latest"].get("state")


def _fresh(report: dict, settings: dict, now: float) -> bool:
    """An unhealthy member reports every beacon interval; a healthy one once per heartbeat."""
    interval = settings["beacon_interval_seconds"]
    window = FRESH_INTERVALS * interval
    if report.get("state") == "healthy":
        window += settings["heartbeat_seconds"]
    return now - report["received"] <= window
