"""
The master's decision on etcd's health: recover a lost member, restore a cluster that
lost quorum, or do nothing, from what the master verified itself.

The reactor (``reactor/etcd_health.sls``) hands every ``salt/beacon/*/etcd_health/``
event to ``react``. Any minion can put any event on the master's bus, so a report is a
hint that wakes this runner, never evidence:

1. **Attributed.** A report counts only for the member whose minion signed it
   (``etcd_health.signed`` on the node, checked with the key this master accepted for
   that minion id). An unsigned, badly signed or replayed report (a sequence of its
   epoch seen before) is refused and recorded (``refused.json``: the sender the event names,
   its tag, the member claimed, why), never acted on.
2. **Timed by the master.** Reports are ordered, debounced and aged by the master's
   receive time; the signer's time is kept as information, and the clock offset it shows
   is reported.
3. **Suspected** (``suspect``, a pure function of the recorded reports): a member whose
   own last N reports in a row say it is down or corrupt; or, with no member reporting
   healthy, every reporting member down or isolated N times in a row (quorum lost).
4. **Confirmed by the master's own probe** (``probe``): its TLS client (the
   ``etcd-admin-client`` certificate) asks every member's ``/health``, status, alarms and
   member list, and a job it publishes asks each etcd node's minion for its own view
   (``etcd_health.report``: the unit, the ports, the write-ahead log). ``decide``, a pure
   function of the suspicion and the probe, recovers a member only when the probe finds
   it failed while a quorum of the others is healthy, and restores only when the probe
   finds no quorum and every etcd node's minion answers (or its machine is fenced). A
   suspicion the probe contradicts is recorded (``probes.json``) with its sender, and
   nothing is done.
5. **One remediation at a time**, for as long as it runs: ``lock.json`` is created with
   ``O_EXCL``; its holder renews it while it works; it is taken over only when its holder
   is gone (the master restarted: ``tidy`` clears it at the master's start and records
   the remediation as interrupted) or has not renewed it for ``lock_expiry_minutes``.

Records, in the ``paas:dr`` view's ``state_dir`` (0700, files 0600, written whole):
``reports.json`` (per member its latest reports, by receive time, and its signer's epoch
and sequence), ``refused.json``, ``probes.json``, ``lock.json``, ``remediations.json``,
``dropped.json``, ``paused.json`` and ``acknowledged.json``.

:depends: the ``paas_topology``, ``paas_master``, ``paas_etcd_http`` and
    ``paas_signed_report`` utils modules (``utils_dirs`` in the master config); the
    ``etcd_health`` module on the etcd nodes; the master's ``etcd-admin-client``
    certificate (the master's own minion gets it from the PKI)
"""

from __future__ import annotations

import copy
import json
import logging
import os
import socket
import subprocess
import threading
import time

from salt.exceptions import SaltRunnerError

__virtualname__ = "paas_dr"

log = logging.getLogger(__name__)

REPORTS = "reports.json"
REFUSED = "refused.json"
PROBES = "probes.json"
REMEDIATIONS = "remediations.json"
DROPPED = "dropped.json"
LOCK = "lock.json"
PAUSED = "paused.json"
ACKNOWLEDGED = "acknowledged.json"
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
# paas:dr applies within this time (fencing reads it anew each time).
SETTINGS_TTL_S = 60
ORCHESTRATIONS = {"recover": "orch.etcd_recover", "restore": "orch.etcd_restore"}
# After a remediation failed, the same one waits this long before it runs again, twice
# as long after each further failure in a row, at most BACKOFF_MAX_S.
BACKOFF_S = 60
BACKOFF_MAX_S = 1800
# After a probe that found nothing to do (contradicted, blocked, a partition), the same
# suspicion is probed again only after this long (or two beacon intervals, if longer):
# an unhealthy member reports every interval, and a probe publishes a job.
PROBE_HOLDOFF_S = 10
# The probe's requests to each member (seconds), and its job on the etcd nodes: a
# minion that has not answered within the timeout, nor its job check, is silent.
PROBE_HTTP_TIMEOUT = 1.0
PROBE_JOB_TIMEOUT = 5
PROBE_GATHER_TIMEOUT = 3
# The signer's epochs a member's entry remembers, and of each the sequences: a report
# whose sequence is among those of its epoch is a replay; an older one not among them
# came late (the reactor's threads reorder), and is left out.
EPOCHS_KEPT = 20
SEQUENCES_KEPT = 100
# A signer clock this far from the master's (the smallest offset of its last reports) is
# a problem: time sync is broken on one side.
MAX_CLOCK_OFFSET_S = 5
CLOCK_SAMPLES = 10
# The lock's holder renews it this often (or every third of its expiry, if shorter).
RENEW_S = 30
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


def __virtual__():
    return __virtualname__


# The reactor's entry point.


def react(event: dict, tag: str = "") -> dict:
    """
    Check one ``etcd_health`` report, record it, and when the reports suspect a lost
    member or a lost quorum, confirm it with the master's own probe and act on what the
    probe found: ``orch.etcd_recover`` (pillar ``member``, ``dr_owner``) or
    ``orch.etcd_restore`` (pillar ``dr_owner``, ``fenced``) under the lock. Returns the
    decision: ``action`` (none, recover, restore), ``member``, ``rule``, ``reason``, and
    when it acted or was dropped, ``owner`` and ``outcome``.

    The reactor calls it for every ``salt/beacon/*/etcd_health/`` event.

    event
        The event's data: a report signed by its member's minion.

    tag
        The event's tag (recorded with a refusal).

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.summary   # what react made of the reports
    """
    # First thing: the reactor runs reactions in threads that share this module, and
    # each new runner job sets __jid__ anew.
    jid = globals().get("__jid__")
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except ValueError:
            event = {"unparsed": event[:200]}
    settings = _cached_settings()
    state_dir = settings["state_dir"]
    now = time.time()
    with _records(state_dir):
        reports = _read(state_dir, REPORTS, {})
        report, refusal = _admit(reports, event, settings, now)
        if refusal is not None:
            _append(state_dir, REFUSED, {**refusal, "tag": str(tag), "time": now})
            log.warning("paas_dr: refused a report: %s", refusal["reason"])
            return {**_decision("none", refusal.get("member"), "refused", refusal["reason"])}
        if _late(reports, report):
            # The reactor's threads may deliver a member's reports out of order: an
            # older one than the latest is kept out of the count.
            return _decision("none", report["member"], "late", "an older report than the latest")
        _record_report(reports, report, now, _debounce(settings))
        hint = suspect(reports.get("members", {}), settings, now)
        acknowledged = _read(state_dir, ACKNOWLEDGED, {}).get("time", 0)
        hint = backoff(hint, _read(state_dir, REMEDIATIONS, []), now, acknowledged)
        hint = _held_off(hint, reports.get("last_probe"), report["member"], settings, now)
        reports["last_decision"] = {**hint, "time": now, "event_member": report["member"]}
        _write(state_dir, REPORTS, reports)
        if hint["action"] == "none":
            return hint
        paused = _paused(state_dir, now)
        if paused:
            _drop(state_dir, report, hint, now, paused=paused)
            return {**hint, "outcome": "paused", "paused": paused}
        # The runner job's id names the remediation in the master's job cache; by hand
        # (no job) the time does.
        owner = str(jid) if jid else f"react-{now:.6f}"
        taken, lock_record = _take_lock(state_dir, owner, hint, settings, now)
        if not taken:
            _drop(state_dir, report, hint, now, held_by=lock_record.get("owner"))
            return {**hint, "owner": lock_record.get("owner"), "outcome": "dropped"}
    with _Renewal(state_dir, owner, settings):
        try:
            decision = _confirm(hint, settings, report["member"], fenced=[], unattended=True)
        except Exception:
            _release(state_dir, owner)
            raise
        if decision["action"] == "none":
            _release(state_dir, owner)
            return {**decision, "owner": owner, "outcome": decision["rule"]}
        # The report that settled it: the reactor's latency is from its arrival.
        return _remediate(
            state_dir, {**decision, "event_time": report["received"]}, owner, lock_record
        )


def _admit(reports: dict, event, settings: dict, now: float) -> tuple[dict | None, dict | None]:
    """The signed report in ``event`` and None, or None and the refusal: the sender the
    event names, the member it claims, and why it is refused.

    A beacon's event (Salt's ``events`` form) holds the report itself; ``event.send``
    without a preload gives the load Salt received, the report under ``data`` and the
    sending minion's ``id`` beside it. Either way the sender is only what the event
    says: nothing but the signature is trusted."""
    if isinstance(event, dict) and event.get("cmd") == "_minion_event":
        sender = event.get("id")
        event = event.get("data")
    else:
        sender = event.get("id") if isinstance(event, dict) else None
    claimed = event.get("member") if isinstance(event, dict) else None
    refusal = {
        "sender": sender,
        "member": claimed if isinstance(claimed, str) else repr(claimed),
    }
    members = settings["etcd"]["members"]
    if not isinstance(claimed, str) or claimed not in members:
        return None, {
            **refusal,
            "reason": f"the report names {claimed!r}, no etcd member of the topology "
            f"({', '.join(members)})",
        }
    try:
        public_key = __utils__["paas_master.public_key"](__opts__, claimed)
        signed = __utils__["paas_signed_report.verify"](public_key, event)
    except (SaltRunnerError, ValueError) as err:
        return None, {**refusal, "reason": f"not signed by {claimed}'s minion: {err}"}
    entry = reports.get("members", {}).get(claimed, {})
    epoch, sequence = signed.get("epoch"), signed.get("sequence")
    if not isinstance(sequence, int) or not isinstance(epoch, str):
        return None, {**refusal, "reason": "the signed epoch or sequence is malformed"}
    if sequence in entry.get("seen", {}).get(epoch, []):
        return None, {
            **refusal,
            "reason": f"a replay: {claimed} sent sequence {sequence} of epoch {epoch} before",
        }
    return {**signed, "received": now}, None


def _late(reports: dict, report: dict) -> bool:
    seen = reports.get("members", {}).get(report["member"], {}).get("seen", {})
    return report["sequence"] < max(seen.get(report["epoch"], [0]))


def _held_off(hint: dict, last_probe: dict | None, sender: str, settings: dict, now: float) -> dict:
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
    return _decision(
        "none",
        hint["member"],
        "holdoff",
        f"the same suspicion was probed {now - last_probe['time']:.0f} s ago "
        f"({last_probe.get('rule')}: {last_probe.get('reason')}); the next probe in {wait} s",
    )


def _drop(state_dir: str, report: dict, decision: dict, now: float, **why) -> None:
    """Record a decision to act that is not acted on, and why (a pause, a held lock)."""
    _append(
        state_dir,
        DROPPED,
        {
            "time": now,
            "member": report.get("member"),
            "state": report.get("state"),
            "action": decision["action"],
            "target": decision["member"],
            **why,
        },
    )


# What the reports suspect: pure.


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
    if not fresh:
        return _decision(
            "none", None, "stale", "no member reported within 3 beacon intervals; nothing to act on"
        )
    if not any(_state(entry) == "healthy" for entry in fresh.values()):
        for member, entry in fresh.items():
            if not _streak(entry, needed, _quorum_lost):
                return _decision(
                    "none",
                    member,
                    "debounce",
                    f"no member reports healthy, but {member}'s last {needed} reports are not "
                    "all down or isolated",
                )
        silent = [member for member in voters if member not in fresh]
        return _decision(
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
            return _decision(
                "recover",
                member,
                "recover",
                f"{member} reported {_state(entry)} {needed} times in a row",
            )
        waiting.append(f"{member} ({_state(entry)})")
    if learners:
        return _decision(
            "recover",
            learners[0],
            "learner",
            f"{learners[0]} reported itself a healthy learner {needed} times in a row: a "
            "member added and never promoted",
        )
    if waiting:
        return _decision("none", None, "debounce", f"waiting: {'; '.join(waiting)}")
    return _decision("none", None, "healthy", "every reporting member is healthy")


def _streak(entry: dict, needed: int, test) -> bool:
    recent = entry.get("recent", [])[-needed:]
    return len(recent) >= needed and all(test(report) for report in recent)


# What the probe confirms: pure.


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

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.probe   # the probe, and what it would decide
    """
    if probe.get("error"):
        return _decision(
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
            return _decision(
                "recover",
                member,
                "learner",
                f"the master reaches {member} healthy and a learner still: it is promoted",
            )
        return _decision(
            "none",
            member,
            "contradicted",
            f"the master reaches {member} healthy (leader {seen['leader']}, revision "
            f"{seen['revision']})",
        )
    if not isinstance(node, dict):
        return _decision(
            "none",
            member,
            "blocked",
            f"{member}'s minion does not answer ({node}): a replacement runs on {member} "
            "itself; bring its machine back (docs/dr.md, a dead machine)",
        )
    if node.get("state") == "healthy":
        return _decision(
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
        return _decision(
            "recover",
            learners[0],
            "learner",
            f"{learners[0]} is a learner still, which keeps {member} from joining: it is "
            "promoted first",
        )
    if "isolated" in (seen["state"], node.get("state")) and len(group) >= _quorum(len(voters)):
        return _decision(
            "none",
            member,
            "partition",
            f"{member} is isolated while {', '.join(group)} hold quorum: a partition, not "
            "a lost member; never acted on",
        )
    if not (_replaceable(seen) or _replaceable(node)):
        return _decision(
            "none",
            member,
            "contradicted",
            f"the master sees {member} {seen['state']} and its minion {node.get('state')}: "
            "neither down nor corrupt",
        )
    remaining = [voter for voter in voters if voter != member]
    needed = _quorum(len(remaining)) if member in voters else _quorum(len(voters))
    if len(group) < needed:
        return _decision(
            "none",
            member,
            "quorum",
            f"the master reaches {len(group)} healthy members under one leader "
            f"({', '.join(group) or 'none'}) besides {member}; replacing it needs {needed} of "
            f"the {len(remaining if member in voters else voters)} voters",
        )
    return _decision(
        "recover",
        member,
        "recover",
        f"the master confirms {member} {seen['state']} (its minion: {node.get('state')}, "
        f"unit {node.get('service', {}).get('active')}) while {', '.join(group)} hold quorum",
    )


def _decide_restore(probe: dict, settings: dict) -> dict:
    healthy = [name for name, seen in probe["members"].items() if seen["state"] == "healthy"]
    if healthy:
        return _decision(
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
        return _decision(
            "none",
            None,
            "contradicted",
            f"{', '.join(locally)} see their member healthy while the master reaches none: "
            "a problem between the master and etcd, not a lost quorum",
        )
    members = list(settings["etcd"]["members"])
    silent = [name for name in members if not isinstance(probe["nodes"].get(name), dict)]
    decision = _decision(
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


# The probe: the master's own look at etcd.


def probe() -> dict:
    """
    The master's own look at etcd, as ``react`` takes it before it acts: per member what
    its TLS client (the master's ``etcd-admin-client`` certificate) reads of the
    member's ``/health``, status, alarms and member list (``members``), and per etcd
    node what its minion answers to a job (``nodes``: ``etcd_health.report``, or why
    there is no answer); with what it would decide about a restore (``restore``).

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.probe
    """
    _quiet_salt_run_teardown()
    settings = _settings()
    found = _probe(settings)
    return {**found, "restore": decide(_decision("restore", None, "operator", ""), found, settings)}


def _probe(settings: dict) -> dict:
    etcd = settings["etcd"]
    # Looked up here: a loader's dunders do not resolve in another thread.
    http = {
        name: __utils__[f"paas_etcd_http.{name}"]
        for name in (
            "client_context",
            "member_requests",
            "ask_all",
            "credential_error",
            "member_view",
        )
    }
    started = time.time()
    found = {"time": started, "members": {}, "nodes": {}, "error": None}
    credentials = settings["admin_client"]
    try:
        context = http["client_context"](credentials["ca"], credentials["cert"], credentials["key"])
    except (OSError, ValueError) as err:
        found["error"] = (
            f"the master's etcd-admin-client certificate ({credentials['cert']}, "
            f"{credentials['key']}, CA {credentials['ca']}) cannot be loaded: {err}"
        )
        return found
    requests = {}
    for name, member in etcd["members"].items():
        requests.update(http["member_requests"](name, member["client_url"], with_members=True))
    # The minions' job and the master's requests go out together: a silent minion costs
    # the job's timeout, the requests a second or two.
    answers = {}
    asking = threading.Thread(
        target=lambda: answers.update(
            http["ask_all"](context, requests, timeout=PROBE_HTTP_TIMEOUT)
        ),
        name="paas_dr probe",
    )
    asking.start()
    try:
        with __utils__["paas_master.minions"](__opts__) as asked:
            found["nodes"] = asked.ask(
                list(etcd["members"]),
                "etcd_health.report",
                timeout=PROBE_JOB_TIMEOUT,
                gather_job_timeout=PROBE_GATHER_TIMEOUT,
            )
    finally:
        asking.join()
    for name, member in etcd["members"].items():
        for key in (f"{name}:health", f"{name}:status"):
            if http["credential_error"](answers[key]):
                found["error"] = (
                    f"{member['client_url']} and the master's etcd-admin-client certificate "
                    f"do not trust each other: {answers[key]}"
                )
        found["members"][name] = http["member_view"](name, member["client_url"], answers)
    found["seconds"] = round(time.time() - started, 3)
    return found


def _confirm(hint: dict, settings: dict, sender: str, fenced: list, unattended: bool) -> dict:
    """Probe, decide, fence the silent machines a restore needs fenced, and record what
    the probe found (``probes.json``); the decision."""
    found = _probe(settings)
    decision = decide(hint, found, settings)
    silent = [node for node in decision.get("silent", []) if node not in fenced]
    fencing = {}
    if decision["action"] == "restore":
        # The fencing command as the topology says now, not as react last read it.
        fencing_settings = _settings()["fencing"] if silent and unattended else {}
        if fencing_settings.get("command"):
            fencing = {node: _fence(settings, fencing_settings, node) for node in silent}
            silent = [node for node, outcome in fencing.items() if not outcome["fenced"]]
        if silent:
            decision = _blocked(decision, silent, found, fencing, unattended)
        else:
            decision = {
                **decision,
                "fenced": sorted({*fenced, *(node for node in fencing if fencing[node]["fenced"])}),
            }
    _record_probe(settings["state_dir"], hint, decision, found, sender, fencing=fencing)
    return decision


def _blocked(decision: dict, silent: list, found: dict, fencing: dict, unattended: bool) -> dict:
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
        **_decision(
            "none",
            None,
            "blocked",
            f"a restore needs every etcd node's minion: {'; '.join(why)}; {runbook}"
            if unattended
            else f"{'; '.join(why)}; {runbook}",
        ),
        "silent": silent,
    }


def _fence(settings: dict, fencing: dict, node: str) -> dict:
    """Run the topology's ``fencing`` command for ``node``; only its success counts."""
    address = settings["private_addresses"][node]
    argv = [argument.format(node=node, address=address) for argument in fencing["command"]]
    started = time.time()
    try:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=fencing["timeout_seconds"],
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"fenced": False, "command": argv, "error": f"{type(err).__name__}: {err}"}
    output = (result.stdout + result.stderr).strip()[-500:]
    log.warning("paas_dr: fencing %s: %s exited %s", node, argv, result.returncode)
    return {
        "fenced": result.returncode == 0,
        "command": argv,
        "exit_code": result.returncode,
        "output": output,
        "seconds": round(time.time() - started, 3),
        **({} if result.returncode == 0 else {"error": f"exit code {result.returncode}: {output}"}),
    }


def _record_probe(
    state_dir: str, hint: dict, decision: dict, found: dict, sender: str, *, fencing: dict
) -> None:
    record = {
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
    with _records(state_dir):
        _append(state_dir, PROBES, record)
        reports = _read(state_dir, REPORTS, {})
        reports["last_probe"] = {
            key: record[key]
            for key in ("time", "hint", "member", "action", "rule", "reason", "silent")
        }
        _write(state_dir, REPORTS, reports)


def _node_state(node):
    """What a node's minion said of its member: its state, or why it said nothing."""
    return node.get("state") if isinstance(node, dict) else node


# Back-off after failures.


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
    return _decision(
        "none",
        decision["member"],
        "backoff",
        f"{decision['action']} failed {failures} time(s) in a row, the last "
        f"{now - last_end:.0f} s ago: the next try waits {wait} s ({decision['reason']})",
    )


# The operator's commands.


def lock() -> dict | None:
    """
    The remediation lock, or None when no remediation holds it: owner, action, member,
    taken, renewed, expires, and ``expired`` (its holder is gone or stopped renewing it:
    the next remediation, or ``tidy``, takes it over).

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


def tidy() -> dict:
    """
    Clear a remediation lock whose holder is gone (its process ended: the master
    restarted in the middle of a remediation) or stopped renewing it, and record that
    remediation as interrupted. The master's schedule runs it when the master starts
    and every minute (etc/salt/master).

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.tidy
    """
    _quiet_salt_run_teardown()
    state_dir = _settings()["state_dir"]
    now = time.time()
    with _records(state_dir):
        held = _read(state_dir, LOCK, None)
        if held is None or not _lock_is_stale(held, now):
            return {"cleared": None}
        _clear_stale_lock(state_dir, held, now, by="tidy")
    return {"cleared": held}


def remediate(action: str, member: str = "", snapshot: str = "", fenced: str = "") -> dict:
    """
    An operator's remediation, under the same lock as the reactor's (refused while one
    runs; the reactor's events meanwhile are dropped and recorded): ``recover`` one
    ``member`` (``orch.etcd_recover``) or ``restore`` the cluster (``orch.etcd_restore``,
    from ``snapshot``, a file on the master, when no member kept its data). A snapshot
    is checked before the lock is taken.

    A restore is refused while the master's probe reaches a healthy member, and while an
    etcd node's minion does not answer unless that node is in ``fenced`` (a comma
    separated list: the operator confirms those machines are off; they are left out of
    the restore). ``salt-run paas.restore`` calls it.

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.remediate recover member=etcd3
        salt-run paas_dr.remediate restore snapshot=/var/lib/paas/dr/snapshots/etcd1/x.db
        salt-run paas_dr.remediate restore fenced=etcd2,etcd3
    """
    _quiet_salt_run_teardown()
    jid = globals().get("__jid__")
    if action not in ORCHESTRATIONS:
        raise SaltRunnerError(
            f"paas_dr.remediate: action must be one of {', '.join(ORCHESTRATIONS)}, not {action!r}"
        )
    settings = _settings()
    members = list(settings["etcd"]["members"])
    if action == "recover" and member not in members:
        raise SaltRunnerError(
            f"paas_dr.remediate: member {member!r} is no etcd member of the topology "
            f"(members: {', '.join(members)})"
        )
    fenced_nodes = [node for node in str(fenced or "").split(",") if node]
    unknown = [node for node in fenced_nodes if node not in members]
    if unknown or (fenced_nodes and action != "restore"):
        raise SaltRunnerError(
            "paas_dr.remediate: fenced= names the etcd nodes a restore leaves out "
            f"({', '.join(members)}), not {', '.join(unknown) or fenced}"
        )
    if len(fenced_nodes) >= len(members):
        raise SaltRunnerError(
            "paas_dr.remediate: a restore needs at least one etcd node not fenced"
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
    with _Renewal(state_dir, owner, settings):
        if action == "restore":
            try:
                confirmed = _confirm(
                    decision, settings, "operator", fenced=fenced_nodes, unattended=False
                )
            except Exception:
                _release(state_dir, owner)
                raise
            if confirmed["action"] == "none":
                _release(state_dir, owner)
                raise SaltRunnerError(f"paas_dr.remediate: refused: {confirmed['reason']}")
            decision = {**decision, "fenced": confirmed["fenced"]}
        return _remediate(state_dir, decision, owner, lock_record, snapshot)


def pause(minutes: int = 60, reason: str = "") -> dict:
    """
    Keep the reactor from acting for ``minutes`` (maintenance on etcd that looks like a
    failure: members stopped or rebuilt by hand). Reports are still recorded and
    suspected; a suspicion is recorded as dropped, with the pause, and not probed. A
    remediation already running goes on.

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


def acknowledge(reason: str = "") -> dict:
    """
    Say that an operator has looked at what ``salt-run paas.dr`` reports of the reactor
    (refused and contradicted reports, a failed or blocked remediation, fenced nodes) and
    mended what needed it: what was recorded before now is no longer a problem there,
    and the failures before now hold no remediation back. Nothing else changes.

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.acknowledge reason="worker1 reimaged"
    """
    _quiet_salt_run_teardown()
    state_dir = _settings()["state_dir"]
    record = {"time": time.time(), "reason": str(reason)}
    with _records(state_dir):
        _write(state_dir, ACKNOWLEDGED, record)
    return {"acknowledged": record}


def _paused(state_dir: str, now: float) -> dict | None:
    record = _read(state_dir, PAUSED, None)
    if not isinstance(record, dict) or record.get("until", 0) <= now:
        return None
    return record


def summary(dropped: int = 10) -> dict:
    """
    The reactor's side of disaster recovery as data: the lock, the last remediation and
    its outcome, the last ``dropped`` events dropped during a remediation or a pause, the
    last decision and probe, the pause, the newest revision reported, per member its
    latest state, the report's age by the master's clock, its count of consecutive
    unhealthy reports and its signer's clock offset; the refused reports and the
    probes that contradicted or were blocked since the last ``acknowledge``; and
    ``problems``.

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.summary
    """
    _quiet_salt_run_teardown()
    settings = _settings()
    state_dir = settings["state_dir"]
    now = time.time()
    record = _read(state_dir, LOCK, None)
    remediations = _read(state_dir, REMEDIATIONS, [])
    reports = _read(state_dir, REPORTS, {})
    acknowledged = _read(state_dir, ACKNOWLEDGED, {}).get("time", 0)
    refused = [entry for entry in _read(state_dir, REFUSED, []) if entry["time"] > acknowledged]
    probes = _read(state_dir, PROBES, [])
    members = {
        member: {
            "state": entry["latest"].get("state"),
            "age_s": round(now - entry["latest"]["received"], 1),
            "consecutive_unhealthy": entry.get("consecutive_unhealthy", 0),
            "clock_offset_s": _clock_offset(entry),
        }
        for member, entry in reports.get("members", {}).items()
    }
    found = {
        "lock": None if record is None else {**record, "expired": _lock_is_stale(record, now)},
        "last_remediation": remediations[-1] if remediations else None,
        "dropped": _read(state_dir, DROPPED, [])[-dropped:] if dropped > 0 else [],
        "last_decision": reports.get("last_decision"),
        "last_probe": probes[-1] if probes else None,
        "paused": _paused(state_dir, now),
        "last_revision": __utils__["paas_master.seen_revision"](state_dir),
        "members": members,
        "refused": refused,
        "contradicted": [
            entry
            for entry in probes
            if entry["rule"] == "contradicted" and entry["time"] > acknowledged
        ][-dropped:],
        "acknowledged": _read(state_dir, ACKNOWLEDGED, None),
    }
    found["problems"] = _problems(found, remediations, probes, acknowledged)
    return found


def _problems(found: dict, remediations: list, probes: list, acknowledged: float) -> list[str]:
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


def _clock_offset(entry: dict) -> float | None:
    """How far the master's clock is ahead of the signer's: the smallest of (receive
    time - signed time) over the last reports, which leaves the delivery delay out."""
    samples = entry.get("clock_offsets") or []
    return round(min(samples), 3) if samples else None


# Rules on reports.


def _decision(action: str, member: str | None, rule: str, reason: str) -> dict:
    return {
        "action": action,
        "member": member,
        "rule": rule,
        "reason": reason,
        "owner": None,
        "outcome": None,
    }


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


def _debounce(settings: dict) -> int:
    return max(1, int(settings["unhealthy_reports_before_action"]))


def _record_report(reports: dict, report: dict, now: float, needed: int) -> None:
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


# The remediation.


def _remediate(
    state_dir: str, decision: dict, owner: str, lock_record: dict, snapshot: str = ""
) -> dict:
    """Run the decision's orchestration, then put the control planes back if a restore
    failed, release the lock and record the outcome, whatever happened."""
    pillar = {"dr_owner": owner}
    if decision["action"] == "recover":
        pillar["member"] = decision["member"]
    else:
        pillar["fenced"] = decision.get("fenced", [])
        pillar["dr_unattended"] = decision["rule"] != "operator"
    if snapshot:
        pillar["snapshot"] = snapshot
    orchestration = ORCHESTRATIONS[decision["action"]]
    _update_lock(state_dir, owner, action=decision["action"], member=decision["member"])
    started = time.time()
    clock = time.monotonic()
    outcome, failed, returned, back, steps = "failed", [], {}, "ok", {}
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
        steps = _step_seconds(result)
        outcome = "ok" if not failed else "failed"
    # Whatever failed, the failure is recorded and the lock released.
    except Exception as err:
        failed = [{"step": orchestration, "comment": f"{type(err).__name__}: {err}"}]
    finally:
        if outcome != "ok" and decision["action"] == "restore":
            back = _control_planes_back(owner)
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
                    "step_seconds": steps,
                    "fenced": decision.get("fenced", []),
                    "control_planes_back": back,
                    "took_over": lock_record.get("took_over"),
                    "lock_released": released,
                },
            )
    log.warning("paas_dr: %s %s in %.1f s, owner %s", orchestration, outcome, duration, owner)
    return {**decision, "owner": owner, "outcome": outcome, "failed_steps": failed}


def _control_planes_back(owner: str) -> str:
    """After a failed restore: the control planes' static Pods put back (the apiservers,
    controller-managers and schedulers a restore sets aside), whatever step failed; "ok",
    or why not."""
    try:
        with __utils__["paas_master.minions"](__opts__) as asked:
            topology = __utils__["paas_master.topology"](
                __opts__, __utils__.get("paas_topology.validate")
            )
            control_planes = __utils__["paas_topology.node_ids"](topology, "control-plane")
            if not control_planes:
                return "ok"
            replies = asked.run(
                control_planes,
                "state.apply",
                ["kubernetes.resumed"],
                {"pillar": {"dr_owner": owner}},
                timeout=300,
            )
    except Exception as err:  # The failure is recorded; the lock is released after.
        return f"{type(err).__name__}: {err}"
    failed = {
        node: reply
        for node, reply in replies.items()
        if not isinstance(reply, dict) or reply.get("retcode", 0) != 0
    }
    if failed:
        return "; ".join(f"{node}: {_state_failure(reply)}" for node, reply in failed.items())
    log.warning("paas_dr: the control planes were put back after the failed restore %s", owner)
    return "ok"


def _state_failure(reply) -> str:
    if not isinstance(reply, dict) or not isinstance(reply.get("ret"), dict):
        return str(reply if not isinstance(reply, dict) else reply.get("ret"))
    return "; ".join(
        str(step.get("comment")) for step in reply["ret"].values() if step.get("result") is False
    )


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


def _step_seconds(result) -> dict:
    """How long each step of the orchestration took, by step id: where a remediation's
    time goes."""
    found = {}
    for steps in (result.get("data") or {}).values() if isinstance(result, dict) else []:
        if isinstance(steps, dict):
            for key, step in steps.items():
                if isinstance(step.get("duration"), int | float):
                    found[step.get("__id__", key)] = round(step["duration"] / 1000, 3)
    return found


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


# The lock.


def _take_lock(state_dir: str, owner: str, decision: dict, settings: dict, now: float):
    """(True, the lock written) when taken, (False, the holder's lock) when it is held.
    Called with the records lock held."""
    path = os.path.join(state_dir, LOCK)
    record = {
        "owner": owner,
        "action": decision["action"],
        "member": decision["member"],
        "taken": now,
        "renewed": now,
        "expires": now + settings["lock_expiry_minutes"] * 60,
        "expiry_s": settings["lock_expiry_minutes"] * 60,
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
        _clear_stale_lock(state_dir, held or {}, now, by=owner)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(record, handle)
        handle.flush()
        os.fsync(handle.fileno())
    return True, record


def _clear_stale_lock(state_dir: str, held: dict, now: float, by: str) -> None:
    """Remove a lock whose holder is gone or stopped renewing it, and record its
    remediation as interrupted. Called with the records lock held."""
    log.warning("paas_dr: clearing the stale lock of %s (%s)", held.get("owner"), by)
    with_holder = _process_started(int(held["pid"])) if held.get("pid") else None
    why = (
        f"its holder stopped renewing the lock at {held.get('renewed')}"
        if with_holder is not None and with_holder == held.get("pid_started")
        else f"its holder (pid {held.get('pid')} on {held.get('host')}) is gone: the master "
        "restarted or the process died during it"
    )
    _append(
        state_dir,
        REMEDIATIONS,
        {
            "owner": held.get("owner"),
            "action": held.get("action"),
            "member": held.get("member"),
            "orchestration": ORCHESTRATIONS.get(held.get("action")),
            "reason": why,
            "started": held.get("taken"),
            "finished": now,
            "outcome": "interrupted",
            "failed_steps": [],
            "returned": {},
            "cleared_by": by,
        },
    )
    os.unlink(os.path.join(state_dir, LOCK))


def _update_lock(state_dir: str, owner: str, **fields) -> bool:
    """Rewrite the lock with ``fields`` if ``owner`` still holds it."""
    with _records(state_dir):
        held = _read(state_dir, LOCK, None)
        if held is None or held.get("owner") != owner:
            return False
        _write(state_dir, LOCK, {**held, **fields})
    return True


def _release(state_dir: str, owner: str) -> bool:
    with _records(state_dir):
        return _release_lock(state_dir, owner)


def _release_lock(state_dir: str, owner: str) -> bool:
    """Remove the lock if it is still ``owner``'s (an operator may have unlocked it, or
    a later remediation taken it over). Called with the records lock held."""
    held = _read(state_dir, LOCK, None)
    if held is None or held.get("owner") != owner:
        return False
    os.unlink(os.path.join(state_dir, LOCK))
    return True


class _Renewal:
    """While its block runs, renew ``owner``'s lock every RENEW_S (or every third of its
    expiry), so that a remediation that runs longer than the expiry keeps it."""

    def __init__(self, state_dir: str, owner: str, settings: dict):
        self.state_dir = state_dir
        self.owner = owner
        self.expiry = settings["lock_expiry_minutes"] * 60
        self.every = min(RENEW_S, self.expiry / 3)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"paas_dr lock {owner}", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()

    def _run(self):
        while not self.stopping.wait(self.every):
            now = time.time()
            if not _update_lock(self.state_dir, self.owner, renewed=now, expires=now + self.expiry):
                return


def _lock_is_stale(record: dict, now: float) -> bool:
    """Not renewed within its expiry, or its holder (a process on this host) is gone: a
    master restarted in the middle of a remediation leaves a lock nobody will release."""
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


# Records and settings.


def _records(state_dir: str):
    return __utils__["paas_master.records"](state_dir)


def _read(state_dir: str, name: str, default):
    return __utils__["paas_master.read"](state_dir, name, default)


def _write(state_dir: str, name: str, data) -> None:
    __utils__["paas_master.write"](state_dir, name, data)


def _append(state_dir: str, name: str, entry: dict) -> None:
    __utils__["paas_master.append"](state_dir, name, entry, KEEP)


def _cached_settings() -> dict:
    cached = __context__.get("paas_dr.settings")
    if cached is not None and time.monotonic() - cached[0] < SETTINGS_TTL_S:
        return cached[1]
    settings = _settings()
    __context__["paas_dr.settings"] = (time.monotonic(), settings)
    return settings


def _settings() -> dict:
    """The ``paas:dr`` view of the topology in the master's pillar."""
    try:
        topology = __utils__["paas_master.topology"](
            __opts__, __utils__.get("paas_topology.validate")
        )
    except SaltRunnerError as err:
        raise SaltRunnerError(f"paas_dr: {err}") from err
    return __utils__["paas_topology.dr"](topology)


def _quiet_salt_run_teardown() -> None:
    __utils__["paas_master.quiet_salt_run_teardown"](__opts__, __virtualname__)
