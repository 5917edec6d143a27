"""
etcd's HTTPS endpoints read with a client certificate, in the standard library only:
``/health`` and the JSON gateway's ``/v3/maintenance/status``, ``/v3/maintenance/alarm``
and ``/v3/cluster/member/list``, asked all at once, each with a short timeout, and what
one member's answers say about it.

Two readers share it: each etcd node's view of its own member (``etcd_health.report``,
which the health beacon runs in the minion's main process, where no gRPC may run since
the minion forks every job from it) and the master's own probe of every member
(``paas_dr``, with the master's ``etcd-admin-client`` certificate). No ``etcd3``,
``grpc`` or ``protobuf`` here.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from urllib.parse import urlparse

# Seconds each request may take (connect, handshake, answer).
TIMEOUT = 1.0
CORRUPT = "CORRUPT"


def client_context(ca: str, cert: str, key: str) -> ssl.SSLContext:
    """A TLS context trusting ``ca`` and presenting ``cert``/``key``; raises ``OSError``
    or ``ssl.SSLError`` when they cannot be loaded."""
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    return context


def member_requests(name: str, url: str, with_members: bool = False) -> dict:
    """The requests that describe the member ``name`` at client URL ``url``, keyed
    ``<name>:<what>``, for ``ask_all``."""
    requests = {
        f"{name}:health": (url, "GET", "/health", None),
        f"{name}:status": (url, "POST", "/v3/maintenance/status", {}),
        f"{name}:alarms": (url, "POST", "/v3/maintenance/alarm", {"action": "GET"}),
    }
    if with_members:
        requests[f"{name}:members"] = (url, "POST", "/v3/cluster/member/list", {})
    return requests


def ask_all(context: ssl.SSLContext, requests: dict, timeout: float = TIMEOUT) -> dict:
    """Send every request (``key: (url, method, path, body)``) at once; each answer is the
    decoded JSON object or the exception.

    Every thread is joined before this returns: none is alive when the minion forks its
    next job.
    """
    answers = {}

    def ask_one(key, url, method, path, body):
        try:
            answers[key] = ask(context, url, method, path, body, timeout=timeout)
        except (OSError, ValueError, http.client.HTTPException) as err:
            answers[key] = err

    threads = [
        threading.Thread(target=ask_one, args=(key, *request), name=f"etcd http {key}")
        for key, request in requests.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def ask(
    context: ssl.SSLContext, url: str, method: str, path: str, body, *, timeout: float = TIMEOUT
) -> dict:
    """One request; the decoded JSON object, or raises."""
    parsed = urlparse(url)
    connection = http.client.HTTPSConnection(
        parsed.hostname, parsed.port, context=context, timeout=timeout
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


def credential_error(answer) -> bool:
    """Whether a failed request failed on the certificates (the member and this client do
    not trust each other), which says nothing of the member's health."""
    return isinstance(answer, ssl.SSLCertVerificationError) or (
        isinstance(answer, ssl.SSLError) and "ALERT" in str(answer.reason or "")
    )


def member_view(name: str, url: str, answers: dict) -> dict:
    """
    What the answers of ``member_requests(name, url)`` say of that member: ``serving``
    (its client URL answered), ``health`` (``/health`` true: it has a leader and a quorum
    read succeeded), its ``member_id``, the ``leader`` it follows, raft index and term,
    ``revision``, ``db_size``, ``learner`` (it says it is one; None when its status did
    not answer), its own raised ``alarms``, ``others_alarmed`` (an alarm of
    another member, which makes every member's ``/health`` false), the ``members`` it
    lists when they were asked (name: id, learner), ``state`` (``down``, ``alarm``,
    ``isolated`` or ``healthy``) and ``error``.
    """
    health = answers[f"{name}:health"]
    status = answers[f"{name}:status"]
    alarms = answers[f"{name}:alarms"]
    listed = answers.get(f"{name}:members")
    header = {} if isinstance(status, Exception) else status.get("header", {})
    member_id = hex_id(header.get("member_id"))
    if member_id is None and not isinstance(alarms, Exception):
        member_id = hex_id(alarms.get("header", {}).get("member_id"))
    raised = [] if isinstance(alarms, Exception) else alarms.get("alarms", [])
    errors = [
        f"{url}{path}: {type(answer).__name__}: {answer}"
        for path, answer in (
            ("/health", health),
            ("/v3/maintenance/status", status),
            ("/v3/maintenance/alarm", alarms),
        )
        if isinstance(answer, Exception)
    ]
    if not isinstance(status, Exception):
        errors += [f"{url}: {error}" for error in status.get("errors", [])]
    view = {
        "member": name,
        "url": url,
        "serving": not isinstance(health, Exception) or not isinstance(status, Exception),
        "health": not isinstance(health, Exception) and health.get("health") == "true",
        "member_id": member_id,
        "leader": None if isinstance(status, Exception) else hex_id(status.get("leader")),
        "raft_index": None if isinstance(status, Exception) else integer(status.get("raftIndex")),
        "raft_term": None if isinstance(status, Exception) else integer(status.get("raftTerm")),
        "revision": integer(header.get("revision")),
        "db_size": None if isinstance(status, Exception) else integer(status.get("dbSize")),
        # etcd's status says so itself (StatusResponse.isLearner, etcd 3.4 and later).
        "learner": None if isinstance(status, Exception) else bool(status.get("isLearner")),
        "alarms": sorted(
            {
                alarm.get("alarm", "NONE")
                for alarm in raised
                if hex_id(alarm.get("memberID")) == member_id
            }
        ),
        "others_alarmed": any(hex_id(alarm.get("memberID")) != member_id for alarm in raised),
        "error": "; ".join(errors),
    }
    if listed is not None:
        view["members"] = (
            None
            if isinstance(listed, Exception)
            else {
                entry.get("name") or hex_id(entry.get("ID")): {
                    "id": hex_id(entry.get("ID")),
                    "learner": bool(entry.get("isLearner")),
                }
                for entry in listed.get("members", [])
            }
        )
    view["state"] = state(view)
    return view


def state(view: dict) -> str:
    """``down`` (its client URL does not answer), ``alarm`` (an alarm is raised against
    it), ``isolated`` (serving, but without a leader or a quorum) or ``healthy``."""
    if not view["serving"]:
        return "down"
    if view["alarms"]:
        return "alarm"
    if view["leader"] is None:
        return "isolated"
    # etcd's /health is false on every member while any member has an alarm raised: an
    # alarm of another member says nothing against this one.
    if view["health"] or view["others_alarmed"]:
        return "healthy"
    # A leader it still believes in, but no quorum read (/health does one).
    return "isolated"


def answered_healthy(answer) -> bool:
    """A ``/health`` answer that says healthy."""
    return not isinstance(answer, Exception) and answer.get("health") == "true"


def hex_id(value) -> str | None:
    """A member id as etcdctl prints it (hex); the JSON gateway sends uint64 fields as
    decimal strings and leaves out zeros."""
    number = integer(value)
    return f"{number:x}" if number else None


def integer(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
