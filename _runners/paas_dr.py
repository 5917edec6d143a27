"""
The master's decision on etcd health reports: recover a lost member, restore a cluster
that lost quorum, or do nothing.

The reactor (``reactor/etcd_health.sls``) hands every ``salt/beacon/*/etcd_health/``
event to ``react``, which records the report, decides with ``decide`` (a pure function
of the reports, the ``paas:dr`` settings and the time) and, when the decision is to act,
takes the master-side lock, runs ``orch.etcd_recover`` or ``orch.etcd_restore`` and
records the outcome. One remediation runs at a time: an event that would start another
while the lock is held is recorded and dropped.

Records, in the ``paas:dr`` view's ``state_dir`` on the master, each written whole (a
temporary file, then renamed over the old one):

- ``reports.json``: per member the latest report, its recent states and its count of
  consecutive unhealthy reports; the last decision;
- ``lock.json``: the remediation running (owner, action, member, taken, expires);
- ``remediations.json``: the last 50 remediations and their outcomes;
- ``dropped.json``: the last 50 events dropped because a remediation held the lock.

:depends: the ``paas_topology`` utils module (``utils_dirs`` in the master config)
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import logging
import os
import socket
import tempfile
import time

from salt.exceptions import SaltRunnerError

__virtualname__ = "paas_dr"

log = logging.getLogger(__name__)

REPORTS = "reports.json"
REMEDIATIONS = "remediations.json"
DROPPED = "dropped.json"
LOCK = "lock.json"
PAUSED = "paused.json"
# Held around every read-modify-write of the records and the lock: the reactor runs
# reactions in threads of one process, and an operator's salt-run is another process.
RECORDS_LOCK = ".records.lock"
KEEP = 50
# How many of a member's recent states reports.json keeps (at least the debounce's N).
RECENT = 10
# A report is fresh for this many beacon intervals; an unhealthy member reports on every
# interval, so a member silent for longer is silent.
FRESH_INTERVALS = 3
# What etcd raises on a member whose data no longer matches the others': the member,
# not the cluster, is to be replaced.
CORRUPT = "CORRUPT"
# How long react reuses the topology's settings: compiling the master's pillar takes a
# second or more, and an unhealthy member reports every beacon interval. A changed
# paas:dr applies within this time.
SETTINGS_TTL_S = 60
ORCHESTRATIONS = {"recover": "orch.etcd_recover", "restore": "orch.etcd_restore"}
# After a remediation failed, the same one waits this long before it runs again, twice
# as long after each further failure in a row, at most BACKOFF_MAX_S.
BACKOFF_S = 60
BACKOFF_MAX_S = 1800
# The fields of a beacon report that reports.json keeps.
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
    "quota_bytes",
    "alarms",
    "data_dir",
    "service",
    "peers",
    "error",
    "reason",
    "time",
)


def __virtual__():
    return __virtualname__


def react(event: dict) -> dict:
    """
    Record one ``etcd_health`` beacon report, decide, and act on the decision: run
    ``orch.etcd_recover`` (pillar ``member``, ``dr_owner``) or ``orch.etcd_restore``
    (pillar ``dr_owner``) under the lock, and record the outcome. Returns the decision:
    ``action`` (none, recover, restore), ``member``, ``rule``, ``reason``, and when it
    acted or was dropped, ``owner`` and ``outcome`` (ok, failed, dropped).

    The reactor calls it for every ``salt/beacon/*/etcd_health/`` event.

    event
        The beacon's event data (``member``, ``state``, ``leader``, ``peers``, ``time``...).

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.react event='{"member": "etcd3", "state": "down", "time": 1764000000}'
    """
    # First thing: the reactor runs reactions in threads that share this module, and
    # each new runner job sets __jid__ anew.
    jid = globals().get("__jid__")
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except ValueError as err:
            raise SaltRunnerError(f"paas_dr.react: the event is not JSON: {err}") from err
    settings = _cached_settings()
    state_dir = settings["state_dir"]
    member = event.get("member") if isinstance(event, dict) else None
    if member not in settings["etcd"]["members"]:
        raise SaltRunnerError(
            f"paas_dr.react: the event's member {member!r} is no etcd member of the topology "
            f"(members: {', '.join(settings['etcd']['members'])})"
        )
    now = time.time()
    with _records(state_dir):
        reports = _read(state_dir, REPORTS, {})
        _record_report(reports, event, now, _debounce(settings))
        decision = backoff(
            decide(reports.get("members", {}), settings, now),
            _read(state_dir, REMEDIATIONS, []),
            now,
        )
        reports["last_decision"] = {**decision, "time": now, "event_member": member}
        _write(state_dir, REPORTS, reports)
        if decision["action"] == "none":
            return decision
        paused = _paused(state_dir, now)
        if paused:
            _drop(state_dir, event, decision, now, paused=paused)
            return {**decision, "outcome": "paused", "paused": paused}
        # The runner job's id names the remediation in the master's job cache; by hand
        # (no job) the time does.
        owner = str(jid) if jid else f"react-{now:.6f}"
        taken, lock_record = _take_lock(state_dir, owner, decision, settings, now)
        if not taken:
            _drop(state_dir, event, decision, now, held_by=lock_record.get("owner"))
            return {**decision, "owner": lock_record.get("owner"), "outcome": "dropped"}
    # The report that settled it: the reactor's latency is from its time to the start.
    return _remediate(state_dir, {**decision, "event_time": event.get("time")}, owner, lock_record)


def _drop(state_dir: str, event: dict, decision: dict, now: float, **why) -> None:
    """Record a decision to act that is not acted on, and why (a pause, a held lock)."""
    _append(
        state_dir,
        DROPPED,
        {
            "time": now,
            "member": event.get("member"),
            "state": event.get("state"),
            "action": decision["action"],
            "target": decision["member"],
            **why,
        },
    )


def decide(reports: dict, settings: dict, now: float) -> dict:
    """
    What to do about the members' reports (``reports.json``'s ``members``: per member
    ``latest`` and ``recent``) at time ``now``, with the ``paas:dr`` view ``settings``.
    A pure function: it reads nothing else and changes nothing.

    - recover member X: X's last N reports (N = ``unhealthy_reports_before_action``) are
      all ``down`` or a ``CORRUPT`` alarm (a healthy report between resets the count),
      the newest within 3 beacon intervals; and a quorum of the other voters report
      ``healthy``, agree on the leader and see X's /health fail; never when removing X
      would leave fewer healthy voters than the remaining voters' quorum;
    - X ``isolated`` while a quorum of the others is healthy is a partition: none;
    - restore: no member healthy, every member reporting has its last N reports
      ``down`` or ``isolated`` (quorum lost), every other member silent for 3 intervals
      and seen down by those reporting;
    - anything else, or stale reports: none.

    CLI Example:

    .. code-block:: bash

        # react calls it; the last decision is in the summary
        salt-run paas_dr.summary
    """
    voters = list(settings["etcd"]["members"])
    needed = _debounce(settings)
    fresh = {
        member: reports[member]
        for member in voters
        if member in reports and _fresh(reports[member]["latest"], settings, now)
    }
    healthy = [member for member in voters if _state(fresh.get(member)) == "healthy"]
    if healthy:
        return _decide_with_healthy(voters, fresh, healthy, needed)
    return _decide_without_healthy(voters, fresh, needed)


def backoff(decision: dict, remediations: list[dict], now: float) -> dict:
    """The decision, unless the same remediation (action and member) failed the last
    times it ran: then none until BACKOFF_S doubled for each failure in a row (at most
    BACKOFF_MAX_S) has passed since the last one ended, so that a remediation that cannot
    succeed does not run again on every report. An operator's run is not held back."""
    if decision["action"] == "none":
        return decision
    failures = 0
    last_end = 0.0
    for entry in reversed(remediations):
        if (entry.get("action"), entry.get("member")) != (decision["action"], decision["member"]):
            continue
        if entry.get("outcome") == "ok":
            break
        failures += 1
        last_end = max(last_end, entry.get("finished") or 0.0)
    if not failures:
        return decision
    wait = min(BACKOFF_S * 2 ** (failures - 1), BACKOFF_MAX_S)
    if now - last_end >= wait:
        return decision
    return _decision(
        "none",
        decision["member"],
        "backoff",
        f"{decision['action']} failed {failures} time(s) in a row, the last "
        f"{now - last_end:.0f} s ago: the next try waits {wait} s ({decision['reason']})",
    )


def lock() -> dict | None:
    """
    The remediation lock, or None when no remediation holds it: owner, action, member,
    taken, expires, and ``expired`` (an expired lock is taken over by the next
    remediation).

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.lock
    """
    _quiet_salt_run_teardown()
    settings = _settings()
    record = _read(settings["state_dir"], LOCK, None)
    if record is None:
        return None
    return {**record, "expired": _lock_is_stale(record, time.time())}


def unlock(owner: str) -> dict:
    """
    Remove the remediation lock held by ``owner`` (the ``owner`` that ``paas_dr.lock``
    shows), for an operator who knows its remediation is no longer running. Refused when
    another owner holds it.

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.unlock owner=20261126132700123456
    """
    _quiet_salt_run_teardown()
    state_dir = _settings()["state_dir"]
    with _records(state_dir):
        record = _read(state_dir, LOCK, None)
        if record is None:
            return {"unlocked": False, "owner": owner, "comment": "no lock is held"}
        if record.get("owner") != owner:
            raise SaltRunnerError(
                f"paas_dr.unlock: the lock in {os.path.join(state_dir, LOCK)} is held by "
                f"{record.get('owner')!r}, not {owner!r}; paas_dr.lock shows it"
            )
        os.unlink(os.path.join(state_dir, LOCK))
    return {"unlocked": True, "owner": owner, "lock": record}


def remediate(action: str, member: str = "", snapshot: str = "") -> dict:
    """
    An operator's remediation, under the same lock as the reactor's (refused while one
    runs; the reactor's events meanwhile are dropped and recorded): ``recover`` one
    ``member`` (``orch.etcd_recover``) or ``restore`` the cluster (``orch.etcd_restore``,
    from ``snapshot``, a file on the master, when no member kept its data). A snapshot
    is checked before the lock is taken. ``salt-run paas.restore`` calls it.

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.remediate recover member=etcd3
        salt-run paas_dr.remediate restore snapshot=/var/lib/paas/dr/snapshots/etcd1/x.db
    """
    _quiet_salt_run_teardown()
    jid = globals().get("__jid__")
    if action not in ORCHESTRATIONS:
        raise SaltRunnerError(
            f"paas_dr.remediate: action must be one of {', '.join(ORCHESTRATIONS)}, not {action!r}"
        )
    settings = _cached_settings()
    members = settings["etcd"]["members"]
    if action == "recover" and member not in members:
        raise SaltRunnerError(
            f"paas_dr.remediate: member {member!r} is no etcd member of the topology "
            f"(members: {', '.join(members)})"
        )
    if snapshot:
        __salt__["paas_restore.check"](snapshot=snapshot)
    state_dir = settings["state_dir"]
    now = time.time()
    owner = str(jid) if jid else f"operator-{now:.6f}"
    decision = _decision(
        action, member if action == "recover" else None, "operator", "asked by an operator"
    )
    with _records(state_dir):
        taken, lock_record = _take_lock(state_dir, owner, decision, settings, now)
    if not taken:
        raise SaltRunnerError(
            f"paas_dr.remediate: a remediation holds the lock ({lock_record.get('action')} "
            f"by {lock_record.get('owner')} since {lock_record.get('taken')}); "
            "salt-run paas_dr.lock shows it"
        )
    return _remediate(state_dir, decision, owner, lock_record, snapshot)


def pause(minutes: int = 60, reason: str = "") -> dict:
    """
    Keep the reactor from acting for ``minutes`` (maintenance on etcd that looks like a
    failure: members stopped or rebuilt by hand). Reports are still recorded and
    decided; a decision to act is recorded as dropped, with the pause. A remediation
    already running goes on.

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.pause minutes=30 reason="etcd3's disk replaced"
    """
    _quiet_salt_run_teardown()
    if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 1:
        raise SaltRunnerError(
            f"paas_dr.pause: minutes must be a whole number >= 1, not {minutes!r}"
        )
    state_dir = _settings()["state_dir"]
    now = time.time()
    record = {"since": now, "until": now + minutes * 60, "reason": str(reason)}
    with _records(state_dir):
        _write(state_dir, PAUSED, record)
    return {"paused": record}


def resume() -> dict:
    """
    Let the reactor act again (ends ``paas_dr.pause`` early).

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.resume
    """
    _quiet_salt_run_teardown()
    state_dir = _settings()["state_dir"]
    with _records(state_dir):
        record = _paused(state_dir, time.time())
        path = os.path.join(state_dir, PAUSED)
        if os.path.exists(path):
            os.unlink(path)
    return {"resumed": record is not None, "was": record}


def _paused(state_dir: str, now: float) -> dict | None:
    record = _read(state_dir, PAUSED, None)
    if not isinstance(record, dict) or record.get("until", 0) <= now:
        return None
    return record


def summary(dropped: int = 10) -> dict:
    """
    The reactor's side of disaster recovery as data: the lock, the last remediation and
    its outcome, the last ``dropped`` events dropped during a remediation or a pause, the
    last decision, the pause, the newest revision reported, and per member its latest
    state, the report's age and its count of consecutive unhealthy reports.

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.summary
    """
    _quiet_salt_run_teardown()
    state_dir = _settings()["state_dir"]
    now = time.time()
    record = _read(state_dir, LOCK, None)
    remediations = _read(state_dir, REMEDIATIONS, [])
    reports = _read(state_dir, REPORTS, {})
    return {
        "lock": None if record is None else {**record, "expired": _lock_is_stale(record, now)},
        "last_remediation": remediations[-1] if remediations else None,
        "dropped": _read(state_dir, DROPPED, [])[-dropped:] if dropped > 0 else [],
        "last_decision": reports.get("last_decision"),
        "paused": _paused(state_dir, now),
        # The newest revision a member reported: what a restore from a snapshot counts
        # its loss against.
        "last_revision": max(
            (
                entry["last_revision"]
                for entry in reports.get("members", {}).values()
                if isinstance(entry.get("last_revision"), int)
            ),
            default=None,
        ),
        "members": {
            member: {
                "state": entry["latest"].get("state"),
                "age_s": round(now - _report_time(entry["latest"]), 1),
                "consecutive_unhealthy": entry.get("consecutive_unhealthy", 0),
            }
            for member, entry in reports.get("members", {}).items()
        },
    }


def _decide_with_healthy(voters: list[str], fresh: dict, healthy: list[str], needed: int):
    """Quorum may hold: a member lost, a partition, or nothing to do."""
    waiting = []
    for member in voters:
        entry = fresh.get(member)
        state = _state(entry)
        if entry is None or state == "healthy":
            continue
        others = [other for other in voters if other != member]
        quorum = len(others) // 2 + 1
        healthy_others = [other for other in healthy if other != member]
        if state == "isolated" and len(healthy_others) >= quorum:
            return _decision(
                "none",
                member,
                "partition",
                f"{member} is isolated while {', '.join(healthy_others)} are healthy: a "
                "partition, not a lost member; never acted on",
            )
        recent = entry.get("recent", [])[-needed:]
        if len(recent) < needed or not all(_replaceable(report) for report in recent):
            waiting.append(f"{member} ({len(recent)} of {needed} down or corrupt in a row)")
            continue
        if len(healthy_others) < quorum:
            return _decision(
                "none",
                member,
                "quorum",
                f"removing {member} would leave {len(healthy_others)} healthy voters, fewer "
                f"than the quorum of {quorum} of the remaining {len(others)}",
            )
        confirming = _confirming(member, healthy_others, fresh)
        if len(confirming) < quorum:
            return _decision(
                "none",
                member,
                "unconfirmed",
                f"{member} reports {state} but only {len(confirming)} of the others "
                f"({', '.join(confirming) or 'none'}) agree on a leader and see its /health "
                f"fail; {quorum} must",
            )
        return _decision(
            "recover",
            member,
            "recover",
            f"{member} reported {state} {needed} times in a row and "
            f"{', '.join(confirming)} see it fail under one leader",
        )
    if waiting:
        return _decision("none", None, "debounce", f"waiting: {'; '.join(waiting)}")
    return _decision("none", None, "healthy", f"{', '.join(healthy)} healthy, nothing to do")


def _decide_without_healthy(voters: list[str], fresh: dict, needed: int) -> dict:
    """No member healthy: quorum lost when every member is down, isolated or silent."""
    if not fresh:
        return _decision(
            "none", None, "stale", "no member reported within 3 beacon intervals; nothing to act on"
        )
    for member, entry in fresh.items():
        recent = entry.get("recent", [])[-needed:]
        if len(recent) < needed or not all(_quorum_lost(report) for report in recent):
            return _decision(
                "none",
                member,
                "debounce",
                f"no member healthy, but {member}'s last {needed} reports are not all down "
                "or isolated",
            )
    silent = [member for member in voters if member not in fresh]
    for member in silent:
        seeing = [other for other, entry in fresh.items() if _peer(entry, member) is not False]
        if seeing:
            return _decision(
                "none",
                member,
                "unconfirmed",
                f"{member} is silent but {', '.join(seeing)} do not see its /health fail",
            )
    silent_text = f"; {', '.join(silent)} silent" if silent else ""
    return _decision(
        "restore",
        None,
        "restore",
        f"no member healthy: {', '.join(fresh)} down or isolated {needed} times in a row"
        f"{silent_text}",
    )


def _decision(action: str, member: str | None, rule: str, reason: str) -> dict:
    return {
        "action": action,
        "member": member,
        "rule": rule,
        "reason": reason,
        "owner": None,
        "outcome": None,
    }


def _confirming(member: str, healthy_others: list[str], fresh: dict) -> list[str]:
    """The healthy others that see ``member``'s /health fail, under the leader most of
    them follow."""
    leaders: dict[str, list[str]] = {}
    for other in healthy_others:
        latest = fresh[other]["latest"]
        if latest.get("leader") and _peer(fresh[other], member) is False:
            leaders.setdefault(latest["leader"], []).append(other)
    return max(leaders.values(), key=len, default=[])


def _peer(entry: dict, member: str):
    return (entry["latest"].get("peers") or {}).get(member)


def _replaceable(report: dict) -> bool:
    """A state that replacing the member mends: it does not answer, or its data is corrupt."""
    return report.get("state") == "down" or (
        report.get("state") == "alarm" and CORRUPT in (report.get("alarms") or [])
    )


def _quorum_lost(report: dict) -> bool:
    return report.get("state") in ("down", "isolated")


def _state(entry: dict | None) -> str | None:
    return None if entry is None else entry["latest"].get("state")


def _fresh(report: dict, settings: dict, now: float) -> bool:
    """An unhealthy member reports every beacon interval; a healthy one once per heartbeat."""
    interval = settings["beacon_interval_seconds"]
    window = FRESH_INTERVALS * interval
    if report.get("state") == "healthy":
        window += settings["heartbeat_seconds"]
    return now - _report_time(report) <= window


def _report_time(report: dict) -> float:
    return float(report.get("time") or report.get("received") or 0)


def _debounce(settings: dict) -> int:
    return max(1, int(settings["unhealthy_reports_before_action"]))


def _record_report(reports: dict, event: dict, now: float, needed: int) -> None:
    """Add the event to its member's entry; an event older than the member's latest
    report (the reactor's threads may deliver them out of order) changes nothing."""
    members = reports.setdefault("members", {})
    report = {key: copy.deepcopy(event[key]) for key in REPORT_FIELDS if key in event}
    report["received"] = now
    report.setdefault("time", now)
    entry = members.get(event["member"])
    if entry is not None and _report_time(entry["latest"]) > _report_time(report):
        return
    recent = [] if entry is None else entry.get("recent", [])
    recent = [
        *recent,
        {key: report.get(key) for key in ("state", "alarms", "time")},
    ][-max(RECENT, needed) :]
    unhealthy = 0 if entry is None else entry.get("consecutive_unhealthy", 0)
    # The newest revision the member ever reported: a member that is down reports none,
    # and a restore from a snapshot counts its loss against this.
    revisions = [
        revision
        for revision in (report.get("revision"), (entry or {}).get("last_revision"))
        if isinstance(revision, int)
    ]
    members[event["member"]] = {
        "latest": report,
        "recent": recent,
        "consecutive_unhealthy": 0 if report.get("state") == "healthy" else unhealthy + 1,
        "last_revision": max(revisions, default=None),
    }


def _remediate(
    state_dir: str, decision: dict, owner: str, lock_record: dict, snapshot: str = ""
) -> dict:
    """Run the decision's orchestration, then release the lock and record the outcome,
    whatever happened."""
    pillar = {"dr_owner": owner}
    if decision["action"] == "recover":
        pillar["member"] = decision["member"]
    if snapshot:
        pillar["snapshot"] = snapshot
    orchestration = ORCHESTRATIONS[decision["action"]]
    started = time.time()
    clock = time.monotonic()
    outcome, failed, returned = "failed", [], {}
    log.warning(
        "paas_dr: %s started %s (%s), owner %s",
        decision["rule"],
        orchestration,
        decision["reason"],
        owner,
    )
    try:
        result = __salt__["state.orchestrate"](orchestration, pillar=pillar)
        failed = _failed_steps(result)
        returned = _runner_returns(result)
        outcome = "ok" if not failed else "failed"
    # Whatever failed, the failure is recorded and the lock released.
    except Exception as err:
        failed = [{"step": orchestration, "comment": f"{type(err).__name__}: {err}"}]
    finally:
        duration = round(time.monotonic() - clock, 3)
        with _records(state_dir):
            released = _release_lock(state_dir, owner)
            reports = _read(state_dir, REPORTS, {})
            # What was reported before and during the remediation is spent: acting
            # again takes N new unhealthy reports.
            for entry in reports.get("members", {}).values():
                entry["recent"] = []
                entry["consecutive_unhealthy"] = 0
            _write(state_dir, REPORTS, reports)
            _append(
                state_dir,
                REMEDIATIONS,
                {
                    "owner": owner,
                    "action": decision["action"],
                    "member": decision["member"],
                    "orchestration": orchestration,
                    "reason": decision["reason"],
                    "event_time": decision.get("event_time"),
                    "started": started,
                    "finished": time.time(),
                    "duration_s": duration,
                    "outcome": outcome,
                    "failed_steps": failed,
                    "returned": returned,
                    "took_over": lock_record.get("took_over"),
                    "lock_released": released,
                },
            )
    log.warning("paas_dr: %s %s in %.1f s, owner %s", orchestration, outcome, duration, owner)
    return {**decision, "owner": owner, "outcome": outcome, "failed_steps": failed}


def _failed_steps(result) -> list[dict]:
    """The orchestration's failed steps with their comments; a render error is one."""
    if not isinstance(result, dict) or "data" not in result:
        return [{"step": "orchestration", "comment": f"unexpected return: {result!r}"}]
    failed = []
    for minion, steps in result["data"].items():
        if not isinstance(steps, dict):
            failed.extend({"step": minion, "comment": str(error)} for error in steps or [])
            continue
        for key, step in sorted(steps.items(), key=lambda item: item[1].get("__run_num__", 0)):
            if step.get("result") is False:
                failed.append({"step": step.get("__id__", key), "comment": _why(step)})
    if not failed and result.get("retcode", 0) != 0:
        failed.append({"step": "orchestration", "comment": f"retcode {result['retcode']}"})
    return failed


def _why(step: dict) -> str:
    """A failed step's comment; a runner step's says only that it failed, and the error
    (the runner's exception) is the last line of what it returned."""
    comment = str(step.get("comment", ""))
    returned = (step.get("changes") or {}).get("return")
    if isinstance(returned, str) and returned.strip():
        return f"{comment} {returned.strip().splitlines()[-1]}".strip()
    return comment


def _runner_returns(result) -> dict:
    """What each runner step of the orchestration returned (a restore's seed says
    where the data came from and what was lost), by step id."""
    found = {}
    for steps in (result.get("data") or {}).values() if isinstance(result, dict) else []:
        if not isinstance(steps, dict):
            continue
        for key, step in steps.items():
            returned = (step.get("changes") or {}).get("return")
            if key.startswith("salt_|-") and isinstance(returned, dict):
                found[step.get("__id__", key)] = returned
    return found


def _take_lock(state_dir: str, owner: str, decision: dict, settings: dict, now: float):
    """(True, the lock written) when taken, (False, the holder's lock) when it is held.
    Called with the records lock held."""
    path = os.path.join(state_dir, LOCK)
    record = {
        "owner": owner,
        "action": decision["action"],
        "member": decision["member"],
        "taken": now,
        "expires": now + settings["lock_expiry_minutes"] * 60,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pid_started": _process_started(os.getpid()),
        "took_over": None,
    }
    held = _read(state_dir, LOCK, None)
    if os.path.exists(path):
        if held is not None and not _lock_is_stale(held, now):
            return False, held
        record["took_over"] = (
            {key: value for key, value in held.items() if key != "took_over"}
            if held is not None
            else {"owner": None, "unreadable": True}
        )
        log.warning("paas_dr: taking over the stale lock of %s", (held or {}).get("owner"))
        os.unlink(path)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(record, handle)
        handle.flush()
        os.fsync(handle.fileno())
    return True, record


def _release_lock(state_dir: str, owner: str) -> bool:
    """Remove the lock if it is still ``owner``'s (an operator may have unlocked it, or
    a later remediation taken it over). Called with the records lock held."""
    held = _read(state_dir, LOCK, None)
    if held is None or held.get("owner") != owner:
        return False
    os.unlink(os.path.join(state_dir, LOCK))
    return True


def _lock_is_stale(record: dict, now: float) -> bool:
    """Expired, or its holder (a process on this host) is gone: a master restarted in
    the middle of a remediation leaves a lock nobody will release."""
    if now >= float(record.get("expires", 0)):
        return True
    if record.get("host") != socket.gethostname() or not record.get("pid"):
        return False
    started = _process_started(int(record["pid"]))
    return started is None or started != record.get("pid_started")


def _process_started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (from /proc), which tells a
    process from a later one with the same pid; None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            stat = handle.read()
    except OSError:
        return None
    # The command name (2nd field) may hold spaces and parentheses; it ends at the last ")".
    return stat.rsplit(")", 1)[1].split()[19]


@contextlib.contextmanager
def _records(state_dir: str):
    os.makedirs(state_dir, mode=0o750, exist_ok=True)
    with open(os.path.join(state_dir, RECORDS_LOCK), "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read(state_dir: str, name: str, default):
    path = os.path.join(state_dir, name)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as err:
        log.error("paas_dr: %s is unreadable (%s); starting it anew", path, err)
        return default


def _write(state_dir: str, name: str, data) -> None:
    descriptor, partial = tempfile.mkstemp(prefix=f".{name}.", dir=state_dir)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(partial, 0o640)
        os.replace(partial, os.path.join(state_dir, name))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


def _append(state_dir: str, name: str, entry: dict) -> None:
    _write(state_dir, name, [*_read(state_dir, name, []), entry][-KEEP:])


def _cached_settings() -> dict:
    cached = __context__.get("paas_dr.settings")
    if cached is not None and time.monotonic() - cached[0] < SETTINGS_TTL_S:
        return cached[1]
    settings = _settings()
    __context__["paas_dr.settings"] = (time.monotonic(), settings)
    return settings


def _settings() -> dict:
    """The ``paas:dr`` view of the topology in the master's pillar."""
    if "paas_topology.dr" not in __utils__:
        utils_dirs = ", ".join(__opts__.get("utils_dirs") or []) or "none"
        raise SaltRunnerError(
            "paas_dr: the paas_topology utils module is not loaded; the master's utils_dirs "
            f"({utils_dirs}) must hold the repository's _utils (etc/salt/master)"
        )
    pillar = _master_pillar()
    if pillar.get("_errors"):
        raise SaltRunnerError(f"paas_dr: the pillar did not render: {pillar['_errors']}")
    if "paas" not in pillar:
        raise SaltRunnerError(
            "paas_dr: the pillar has no paas key (is pillar/top.sls assigning it?)"
        )
    return __utils__["paas_topology.dr"](pillar["paas"])


def _master_pillar() -> dict:
    return __utils__["paas_master.pillar"](__opts__)


def _quiet_salt_run_teardown() -> None:
    __utils__["paas_master.quiet_salt_run_teardown"](__opts__, __virtualname__)
