"""
Report the health of this node's etcd member to the master, over HTTPS, never gRPC.

Beacons run in the minion's main process, which forks every job: gRPC's threads in a
process that forks are a known source of deadlocks, so this beacon reads etcd's HTTPS
endpoints with the node's health-check client certificate instead, with the standard
library only (no ``etcd3``, ``grpc`` or ``protobuf``, and nothing of ``etcd_cluster``).
Each tick asks this member ``/health``, ``POST /v3/maintenance/status`` and
``POST /v3/maintenance/alarm`` (``{"action": "GET"}``), and the other members
``/health``, all at once with a one-second timeout each; it reads the unit's
``systemctl show`` and whether the data directory holds a member's write-ahead log.

The member's state is ``down`` (its client URL does not answer), ``alarm`` (an alarm is
raised against it), ``isolated`` (serving, but without a leader or a quorum) or
``healthy``. An event (tag ``salt/beacon/<minion>/etcd_health/``) is fired when the state,
the leader, the alarms, the log's presence or which peers answer change
(reason ``changed``: the master confirms a lost member from the others' view, at once), on
every tick while the state is not ``healthy`` (``unhealthy``: the master's reactor counts
consecutive bad reports), and otherwise once per ``paas:dr:heartbeat_seconds``
(``heartbeat``).

A member whose certificate the beacon cannot load or that refuses it is not reported
``down``: the beacon raises, and Salt fires its error event (no ``state``) instead.

:depends: the ``paas_topology`` and ``paas_pki`` modules; the node's
    ``etcd-healthcheck-client`` certificate
:configuration: on etcd nodes (``salt/etcd/beacon.sls`` writes it):

    .. code-block:: yaml

        beacons:
          etcd_health:
            - interval: 5
            - disable_during_state_run: True
            # Optional: this member's client URL when it is not the topology's.
            - endpoint: https://127.0.0.1:2379
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import ssl
import subprocess
import threading
import time
from urllib.parse import urlparse

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "etcd_health"

# Seconds each request to a member may take (connect, handshake, answer).
TIMEOUT = 1.0
CLIENT_PROFILE = "etcd-healthcheck-client"
CONTEXT_KEY = "etcd_health.last"
# What Salt's beacon machinery reads from a beacon's configuration.
SALT_KEYS = ("interval", "disable_during_state_run", "enabled", "run_once", "beacon_module")
OWN_KEYS = ("endpoint",)


def __virtual__():
    return __virtualname__


def validate(config) -> tuple[bool, str]:
    """
    Check the beacon's configuration: a list of one-key mappings with Salt's keys
    (``interval``, ``disable_during_state_run``...) and an optional ``endpoint``.
    """
    if not isinstance(config, list):
        return (
            False,
            "etcd_health beacon: the configuration must be a list of one-key mappings "
            f"(- interval: 5), not a {type(config).__name__}",
        )
    settings = {}
    for item in config:
        if not isinstance(item, dict):
            return False, f"etcd_health beacon: {item!r} is not a mapping (- interval: 5)"
        settings.update(item)
    unknown = sorted(set(settings) - set(SALT_KEYS) - set(OWN_KEYS) - {"_beacon_name"})
    if unknown:
        return (
            False,
            f"etcd_health beacon: unknown setting {', '.join(unknown)}; the settings are "
            f"{', '.join(SALT_KEYS + OWN_KEYS)} (heartbeat and debounce come from paas:dr)",
        )
    interval = settings.get("interval", 1)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        return (
            False,
            f"etcd_health beacon: interval must be a positive number of seconds, not {interval!r}",
        )
    endpoint = settings.get("endpoint")
    if endpoint is not None and not _is_client_url(endpoint):
        return (
            False,
            f"etcd_health beacon: endpoint {endpoint!r} is not an https://host:port client URL",
        )
    return True, "valid etcd_health beacon configuration"


def beacon(config) -> list[dict]:
    """
    Observe this node's etcd member; return the event to fire, if one is due.
    """
    settings = {}
    for item in config:
        settings.update(item)
    dr = __salt__["paas_topology.dr"]()
    member = __salt__["paas_topology.etcd_member"]()
    report = _observe(member, settings.get("endpoint") or member["client_url"])
    now = time.time()
    reason = _reason(report, __context__.get(CONTEXT_KEY), now, dr["heartbeat_seconds"])
    if reason is None:
        return []
    __context__[CONTEXT_KEY] = {"key": _change_key(report), "fired": now}
    return [{**report, "reason": reason, "time": now}]


def _reason(report: dict, last: dict | None, now: float, heartbeat_seconds: float) -> str | None:
    if last is None or last["key"] != _change_key(report):
        return "changed"
    if report["state"] != "healthy":
        return "unhealthy"
    if now - last["fired"] >= heartbeat_seconds:
        return "heartbeat"
    return None


def _change_key(report: dict) -> list:
    return [
        report["state"],
        report["leader"],
        report["alarms"],
        report["data_dir"],
        sorted(report["peers"].items()),
    ]


def _has_log(data_dir: str) -> bool:
    """Whether ``data_dir`` holds a member's write-ahead log: the test
    ``etcd_cluster.has_log`` makes (etcd's own, ``wal.Exist``), which this beacon cannot
    load. A wiped member whose unit started again has a fresh store and no log."""
    wal_dir = os.path.join(data_dir, "member", "wal")
    try:
        return any(entry.endswith(".wal") for entry in os.listdir(wal_dir))
    except OSError:
        return False


def _observe(member: dict, endpoint: str) -> dict:
    context = _tls_context(__salt__["paas_pki.profile"](CLIENT_PROFILE))
    requests = {
        "health": (endpoint, "GET", "/health", None),
        "status": (endpoint, "POST", "/v3/maintenance/status", {}),
        "alarms": (endpoint, "POST", "/v3/maintenance/alarm", {"action": "GET"}),
    }
    peers = {name: peer["client_url"] for name, peer in member["members"].items()}
    peers.pop(member["name"])
    for name, url in peers.items():
        requests[f"peer:{name}"] = (url, "GET", "/health", None)
    answers = _ask_all(context, requests)
    for key in ("health", "status", "alarms"):
        _refuse_credential_errors(answers[key], endpoint)

    health, status, alarms = answers["health"], answers["status"], answers["alarms"]
    serving = not isinstance(health, Exception) or not isinstance(status, Exception)
    header = {} if isinstance(status, Exception) else status.get("header", {})
    member_id = _hex(header.get("member_id"))
    if member_id is None and not isinstance(alarms, Exception):
        member_id = _hex(alarms.get("header", {}).get("member_id"))
    raised = [] if isinstance(alarms, Exception) else alarms.get("alarms", [])
    own_alarms = sorted(
        {alarm.get("alarm", "NONE") for alarm in raised if _hex(alarm.get("memberID")) == member_id}
    )
    errors = [
        f"{endpoint}{path}: {type(answer).__name__}: {answer}"
        for path, answer in (
            ("/health", health),
            ("/v3/maintenance/status", status),
            ("/v3/maintenance/alarm", alarms),
        )
        if isinstance(answer, Exception)
    ]
    if not isinstance(status, Exception):
        errors += [f"{endpoint}: {error}" for error in status.get("errors", [])]
    report = {
        "member": member["name"],
        "serving": serving,
        "health": not isinstance(health, Exception) and health.get("health") == "true",
        "member_id": member_id,
        "leader": None if isinstance(status, Exception) else _hex(status.get("leader")),
        "raft_index": None if isinstance(status, Exception) else _int(status.get("raftIndex")),
        "raft_term": None if isinstance(status, Exception) else _int(status.get("raftTerm")),
        "revision": _int(header.get("revision")),
        "db_size": None if isinstance(status, Exception) else _int(status.get("dbSize")),
        "quota_bytes": member["quota_bytes"],
        "alarms": own_alarms,
        "data_dir": _has_log(member["data_dir"]),
        "service": _service(member["service"]),
        "peers": {name: _answered_healthy(answers[f"peer:{name}"]) for name in sorted(peers)},
        "error": "; ".join(errors),
    }
    others_alarmed = any(_hex(alarm.get("memberID")) != member_id for alarm in raised)
    report["state"] = _state(report, others_alarmed)
    return report


def _state(report: dict, others_alarmed: bool) -> str:
    if not report["serving"]:
        return "down"
    if report["alarms"]:
        return "alarm"
    if report["leader"] is None:
        return "isolated"
    # etcd's /health is false on every member while any member has an alarm raised: an
    # alarm of another member says nothing against this one.
    if report["health"] or others_alarmed:
        return "healthy"
    # A leader it still believes in, but no quorum read (/health does one).
    return "isolated"


def _tls_context(credentials: dict) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=credentials["ca"])
        context.load_cert_chain(credentials["cert"], credentials["key"])
    except (OSError, ssl.SSLError) as err:
        raise CommandExecutionError(
            f"etcd_health: cannot load the {CLIENT_PROFILE} certificate "
            f"({credentials['cert']}, {credentials['key']}, CA {credentials['ca']}): {err}"
        ) from err
    return context


def _refuse_credential_errors(answer, endpoint: str) -> None:
    # A member that does not trust our certificate, or that we do not trust, still
    # answers: reporting it "down" could make the master replace a healthy member.
    if isinstance(answer, ssl.SSLCertVerificationError) or (
        isinstance(answer, ssl.SSLError) and "ALERT" in str(answer.reason or "")
    ):
        raise CommandExecutionError(
            f"etcd_health: {endpoint} and this node's {CLIENT_PROFILE} certificate do not "
            f"trust each other: {answer}"
        ) from answer


def _ask_all(context: ssl.SSLContext, requests: dict) -> dict:
    """Send every request at once; each answer is the decoded JSON or the exception.

    Every thread is joined before this returns: no thread of the beacon is alive when
    the minion forks its next job.
    """
    answers = {}

    def ask(key, url, method, path, body):
        try:
            answers[key] = _ask(context, url, method, path, body)
        except (OSError, ValueError, http.client.HTTPException) as err:
            answers[key] = err

    threads = [
        threading.Thread(target=ask, args=(key, *request), name=f"etcd_health {key}")
        for key, request in requests.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def _ask(context: ssl.SSLContext, url: str, method: str, path: str, body) -> dict:
    parsed = urlparse(url)
    connection = http.client.HTTPSConnection(
        parsed.hostname, parsed.port, context=context, timeout=TIMEOUT
    )
    try:
        payload = None if body is None else json.dumps(body)
        headers = {} if body is None else {"Content-Type": "application/json"}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
    finally:
        connection.close()
    # /health answers 503 with its JSON when the member is not healthy.
    if response.status != 200 and path != "/health":
        raise http.client.HTTPException(f"HTTP {response.status}: {text[:200]}")
    answer = json.loads(text)
    if not isinstance(answer, dict):
        raise ValueError(f"not a JSON object: {text[:200]}")
    return answer


def _answered_healthy(answer) -> bool:
    return not isinstance(answer, Exception) and answer.get("health") == "true"


def _service(name: str) -> dict:
    try:
        shown = subprocess.run(
            ["systemctl", "show", "-p", "ActiveState,SubState,NRestarts", name],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        log.debug("etcd_health: systemctl show %s failed: %s", name, err)
        return {"active": None, "sub": None, "restarts": None}
    values = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    return {
        "active": values.get("ActiveState"),
        "sub": values.get("SubState"),
        "restarts": _int(values.get("NRestarts")),
    }


def _hex(value) -> str | None:
    # The JSON gateway sends uint64 fields as decimal strings and leaves out zeros.
    number = _int(value)
    return f"{number:x}" if number else None


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _is_client_url(url) -> bool:
    if not isinstance(url, str):
        return False
    parsed = urlparse(url)
    try:
        return parsed.scheme == "https" and bool(parsed.hostname) and bool(parsed.port)
    except ValueError:
        return False
