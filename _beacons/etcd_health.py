"""
Report the health of this node's etcd member to the master, signed with this minion's
own Salt key.

Each tick reads the member through ``etcd_health.report`` (HTTPS with the node's
health-check client certificate, never gRPC: beacons run in the minion's main process,
which forks every job). The member's state is ``down`` (its client URL does not answer),
``alarm`` (an alarm is raised against it), ``isolated`` (serving, but without a leader or
a quorum) or ``healthy``. An event (tag ``salt/beacon/<minion>/etcd_health/``) is fired
when the state, the leader, the alarms, the log's presence or which peers answer change
(reason ``changed``), on every tick while the state is not ``healthy`` (``unhealthy``:
the master's reactor counts consecutive bad reports), and otherwise once per
``paas:dr:heartbeat_seconds`` (``heartbeat``).

Every report is signed (``etcd_health.signed``) with an ``epoch`` drawn when the beacon
first runs in this minion process (or after Salt reloaded the minion's beacons, as a sync
does) and a ``sequence`` counted from 1 in it: the master
acts on a report only once it has checked the signature with the key it accepted for
this minion, and refuses one it has seen before.

A member whose certificate the beacon cannot load or that refuses it is not reported
``down``: the beacon raises, and Salt fires its error event (no ``state``) instead.

:depends: the ``etcd_health``, ``paas_topology`` and ``paas_pki`` modules; the node's
    ``etcd-healthcheck-client`` certificate and Salt key
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

import logging
import time
import uuid
from urllib.parse import urlparse

log = logging.getLogger(__name__)

__virtualname__ = "etcd_health"

CONTEXT_KEY = "etcd_health.last"
EPOCH_KEY = "etcd_health.epoch"
SEQUENCE_KEY = "etcd_health.sequence"
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
    Observe this node's etcd member; return the signed event to fire, if one is due.
    """
    settings = {}
    for item in config:
        settings.update(item)
    dr = __salt__["paas_topology.dr"]()
    report = __salt__["etcd_health.report"](settings.get("endpoint"))
    now = time.time()
    reason = _reason(report, __context__.get(CONTEXT_KEY), now, dr["heartbeat_seconds"])
    if reason is None:
        return []
    __context__[CONTEXT_KEY] = {"key": _change_key(report), "fired": now}
    epoch = __context__.setdefault(EPOCH_KEY, uuid.uuid4().hex)
    __context__[SEQUENCE_KEY] = __context__.get(SEQUENCE_KEY, 0) + 1
    return [
        __salt__["etcd_health.signed"](
            {**report, "reason": reason}, epoch, __context__[SEQUENCE_KEY]
        )
    ]


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
        report["learner"],
        report["alarms"],
        report["data_dir"],
        sorted(report["peers"].items()),
    ]


def _is_client_url(url) -> bool:
    if not isinstance(url, str):
        return False
    parsed = urlparse(url)
    try:
        return parsed.scheme == "https" and bool(parsed.hostname) and bool(parsed.port)
    except ValueError:
        return False
