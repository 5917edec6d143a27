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

:depends: the ``paas_topology``, ``paas_master``, ``paas_etcd_http``,
    ``paas_signed_report``, ``paas_dr_decide`` (the pure decisions), ``paas_dr_records``
    (the records as data), ``paas_lock`` and ``paas_orchestration`` utils modules
    (``utils_dirs`` in the master config); the
    ``etcd_health`` module on the etcd nodes; the master's ``etcd-admin-client``
    certificate (the master's own minion gets it from the PKI)
"""

from __future__ import annotations

import json
import logging
import os
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
# How long react reuses the topology's settings: compiling the master's pillar takes a
# second or more, and an unhealthy member reports every beacon interval. A changed
# paas:dr applies within this time (fencing reads it anew each time).
SETTINGS_TTL_S = 60
ORCHESTRATIONS = {"recover": "orch.etcd_recover", "restore": "orch.etcd_restore"}
# The probe's requests to each member (seconds), and its job on the etcd nodes: a
# minion that has not answered within the timeout, nor its job check, is silent.
PROBE_HTTP_TIMEOUT = 1.0
PROBE_JOB_TIMEOUT = 5
PROBE_GATHER_TIMEOUT = 3


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
            return {
                **__utils__["paas_dr_decide.new_decision"](
                    "none", refusal.get("member"), "refused", refusal["reason"]
                )
            }
        if __utils__["paas_dr_records.late"](reports, report):
            # The reactor's threads may deliver a member's reports out of order: an
            # older one than the latest is kept out of the count.
            return __utils__["paas_dr_decide.new_decision"](
                "none", report["member"], "late", "an older report than the latest"
            )
        __utils__["paas_dr_records.record_report"](
            reports, report, now, __utils__["paas_dr_decide.debounce"](settings)
        )
        hint = suspect(reports.get("members", {}), settings, now)
        acknowledged = _read(state_dir, ACKNOWLEDGED, {}).get("time", 0)
        hint = backoff(hint, _read(state_dir, REMEDIATIONS, []), now, acknowledged)
        hint = __utils__["paas_dr_decide.held_off"](
            hint, reports.get("last_probe"), report["member"], settings, now
        )
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
    with _renewing(state_dir, owner, settings):
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


# The pure decisions (_utils/paas_dr_decide.py), by their names for an operator.


def suspect(reports: dict, settings: dict, now: float) -> dict:
    """
    What the members' reports (``reports.json``'s ``members``) suspect at time ``now``,
    with the ``paas:dr`` view ``settings``: restore, recover a member, or none. A pure
    function (``paas_dr_decide.suspect`` holds the rules); only a probe confirms a
    suspicion.

    CLI Example:

    .. code-block:: bash

        # react calls it; the last decision is in the summary
        salt-run paas_dr.summary
    """
    return __utils__["paas_dr_decide.suspect"](reports, settings, now)


def decide(hint: dict, probe: dict, settings: dict) -> dict:
    """
    What to do about the suspicion ``hint`` (from ``suspect``), given the master's own
    ``probe``: recover a member only when the probe finds it failed while a quorum of
    the others is healthy, restore only when it finds no quorum and every etcd node's
    minion answers, otherwise none, saying what the probe found. A pure function
    (``paas_dr_decide.decide`` holds the rules).

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.probe   # the probe, and what it would decide
    """
    return __utils__["paas_dr_decide.decide"](hint, probe, settings)


def backoff(decision: dict, remediations: list[dict], now: float, acknowledged: float = 0) -> dict:
    """
    The decision, unless the same remediation failed the last times it ran and its
    back-off (doubled for each failure in a row) has not passed; failures an operator
    acknowledged (at ``acknowledged``) no longer count. A pure function
    (``paas_dr_decide.backoff``).

    CLI Example:

    .. code-block:: bash

        salt-run paas_dr.summary   # a decision held back says "backoff"
    """
    return __utils__["paas_dr_decide.backoff"](decision, remediations, now, acknowledged)


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
    return {
        **found,
        "restore": decide(
            __utils__["paas_dr_decide.new_decision"]("restore", None, "operator", ""),
            found,
            settings,
        ),
    }


def _probe(settings: dict) -> dict:
    etcd = settings["etcd"]
    # Looked up here: a loader's dunders do not resolve in another thread.
    ask_all = __utils__["paas_etcd_http.ask_all"]
    started = time.time()
    found = {"time": started, "members": {}, "nodes": {}, "error": None}
    credentials = settings["admin_client"]
    try:
        context = __utils__["paas_etcd_http.client_context"](
            credentials["ca"], credentials["cert"], credentials["key"]
        )
    except (OSError, ValueError) as err:
        found["error"] = (
            f"the master's etcd-admin-client certificate ({credentials['cert']}, "
            f"{credentials['key']}, CA {credentials['ca']}) cannot be loaded: {err}"
        )
        return found
    requests = {}
    for name, member in etcd["members"].items():
        requests.update(
            __utils__["paas_etcd_http.member_requests"](
                name, member["client_url"], with_members=True
            )
        )
    # The minions' job and the master's requests go out together: a silent minion costs
    # the job's timeout, the requests a second or two.
    answers = {}
    asking = threading.Thread(
        target=lambda: answers.update(ask_all(context, requests, timeout=PROBE_HTTP_TIMEOUT)),
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
            if __utils__["paas_etcd_http.credential_error"](answers[key]):
                found["error"] = (
                    f"{member['client_url']} and the master's etcd-admin-client certificate "
                    f"do not trust each other: {answers[key]}"
                )
        found["members"][name] = __utils__["paas_etcd_http.member_view"](
            name, member["client_url"], answers
        )
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
            decision = __utils__["paas_dr_decide.blocked"](
                decision, silent, found, fencing, unattended
            )
        else:
            decision = {
                **decision,
                "fenced": sorted({*fenced, *(node for node in fencing if fencing[node]["fenced"])}),
            }
    _record_probe(settings["state_dir"], hint, decision, found, sender, fencing=fencing)
    return decision


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
    record = __utils__["paas_dr_records.probe_record"](hint, decision, found, sender, fencing)
    with _records(state_dir):
        _append(state_dir, PROBES, record)
        reports = _read(state_dir, REPORTS, {})
        reports["last_probe"] = {
            key: record[key]
            for key in ("time", "hint", "member", "action", "rule", "reason", "silent")
        }
        _write(state_dir, REPORTS, reports)


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
    return {**record, "expired": __utils__["paas_lock.is_stale"](record, time.time())}


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
        if held is None or not __utils__["paas_lock.is_stale"](held, now):
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
    decision = __utils__["paas_dr_decide.new_decision"](
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
    with _renewing(state_dir, owner, settings):
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
            "clock_offset_s": __utils__["paas_dr_records.clock_offset"](entry),
        }
        for member, entry in reports.get("members", {}).items()
    }
    found = {
        "lock": None
        if record is None
        else {**record, "expired": __utils__["paas_lock.is_stale"](record, now)},
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
    found["problems"] = __utils__["paas_dr_records.problems"](
        found, remediations, probes, acknowledged
    )
    return found


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
        failed = __utils__["paas_orchestration.failed_steps"](result)
        returned = __utils__["paas_orchestration.runner_returns"](result)
        steps = __utils__["paas_orchestration.step_seconds"](result)
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
    why = __utils__["paas_orchestration.state_failure"]
    failed = [why(node, reply, "kubernetes.resumed") for node, reply in replies.items()]
    if any(failed):
        return "; ".join(failure for failure in failed if failure)
    log.warning("paas_dr: the control planes were put back after the failed restore %s", owner)
    return "ok"


# The lock.


def _take_lock(state_dir: str, owner: str, decision: dict, settings: dict, now: float):
    """(True, the lock written) when taken, (False, the holder's lock) when it is held.
    Called with the records lock held."""
    path = os.path.join(state_dir, LOCK)
    record = __utils__["paas_lock.new_record"](
        owner,
        {"action": decision["action"], "member": decision["member"]},
        settings["lock_expiry_minutes"] * 60,
        now,
    )
    held = _read(state_dir, LOCK, None)
    if os.path.exists(path):
        if held is not None and not __utils__["paas_lock.is_stale"](held, now):
            return False, held
        record["took_over"] = (
            {key: value for key, value in held.items() if key != "took_over"}
            if held is not None
            else {"owner": None, "unreadable": True}
        )
        _clear_stale_lock(state_dir, held or {}, now, by=owner)
    __utils__["paas_lock.create"](path, record)
    return True, record


def _clear_stale_lock(state_dir: str, held: dict, now: float, by: str) -> None:
    """Remove a lock whose holder is gone or stopped renewing it, and record its
    remediation as interrupted. Called with the records lock held."""
    log.warning("paas_dr: clearing the stale lock of %s (%s)", held.get("owner"), by)
    _append(
        state_dir,
        REMEDIATIONS,
        {
            "owner": held.get("owner"),
            "action": held.get("action"),
            "member": held.get("member"),
            "orchestration": ORCHESTRATIONS.get(held.get("action")),
            "reason": __utils__["paas_lock.why_stale"](held),
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


def _renewing(state_dir: str, owner: str, settings: dict):
    """While its block runs, ``owner``'s lock is renewed, so that a remediation that
    runs longer than the expiry keeps it."""
    return __utils__["paas_lock.renewing"](
        lambda now, expires: _update_lock(state_dir, owner, renewed=now, expires=expires),
        settings["lock_expiry_minutes"] * 60,
        f"paas_dr lock {owner}",
    )


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
    return __utils__["paas_master.view"](
        __opts__, "paas_dr", __utils__["paas_topology.dr"], __utils__.get("paas_topology.validate")
    )


def _quiet_salt_run_teardown() -> None:
    __utils__["paas_master.quiet_salt_run_teardown"](__opts__, __virtualname__)
