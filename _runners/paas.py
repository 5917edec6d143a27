"""
What a platform engineer runs on the master.

``salt-run paas.validate`` checks the topology in the pillar, or in a YAML file;
``salt-run paas.status`` reports the platform's health (gateways, etcd, Kubernetes,
certificates); ``salt-run paas.certs`` lists every certificate, kubeadm's included;
``salt-run paas.dr`` reports etcd's backups, drills and remediations,
``salt-run paas.restore`` restores etcd after it lost quorum, and
``salt-run paas.preflight`` checks the machines before anything changes on them.

The reports are data, the same whatever ``--out`` is: a verdict (``severity``: ok,
degraded, down or unknown), the ``problems`` behind it, and what was seen. The tables
come from the ``paas`` outputter (``_output/paas.py``), which salt-run picks from the
report's ``outputter`` key unless ``--out`` names another. The exit code follows the
verdict, as monitoring checks expect: 0 ok, 1 degraded (a problem a person must see
while the platform still serves), 2 down, 3 unknown (the report could not be made).

:depends: the ``paas_topology`` utils module (``utils_dirs`` in the master config)
"""

from __future__ import annotations

import datetime
import time

import salt.utils.event
import salt.utils.files
import salt.utils.yaml
from salt.exceptions import SaltClientError, SaltRunnerError

__virtualname__ = "paas"

# A report's severity; its index is salt-run's exit code.
SEVERITIES = ("ok", "degraded", "down", "unknown")
OUTPUTTER = "paas"
NO_REPLY = "no reply"
KUBERNETES_FIX = "salt-run state.orchestrate orch.kubernetes"
# kube-controller-manager's --node-monitor-grace-period (50 s since Kubernetes 1.32): a
# kubelet silent for longer is one the controller-manager marks NotReady; the report
# names it whether or not the controller-manager has done so yet.
LEASE_GRACE_S = 50
# The apiserver checks each control plane makes through a VIP, by the VIP's network.
THROUGH_VIPS = {"private_vip": "private", "public_vip": "public"}
# The renewals' record (in the master's state directory) and how many runs it keeps.
RENEWALS = "renewals.json"
RENEWALS_KEPT = 100
# paas_dr's remediation lock (its LOCK): no renewal while a remediation runs.
DR_LOCK = "lock.json"
RENEWAL_FAILED_TAG = "paas/pki/renewal/failed"
# Runs of the master's schedule that may be missed before the renewal counts as stalled,
# and the seconds a run may take beyond them.
RENEWAL_RUNS_MISSED = 2
SCHEDULE_SLACK_S = 15
RENEWAL_GRACE_S = 300
# x509_v2's not_after, naive UTC.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# How long one node's renewal states may take (a restart waits for etcd's health or the
# apiserver's readiness).
RENEWAL_STEP_TIMEOUT = 600
# The nodes the master's renewal run worked on, each step a window (in its state
# directory): what its restarts make of a node meanwhile is expected, not a problem.
MAINTENANCE = "maintenance.json"
# A control plane's renewal ends once the gateways' haproxy serves its apiserver again
# (haproxy's rise checks), within this long; asked every ROTATION_POLL_S.
API_PROXY = "kube-apiserver"
ROTATION_WAIT_S = 60
ROTATION_POLL_S = 1
# The severity of a problem on the node under maintenance: shown, not counted.
EXPECTED = "expected"


def __virtual__():
    # Loads even without its dependency: a runner whose __virtual__ fails is only "not
    # available" to salt-run, which then exits 0. Each function says what is missing.
    return __virtualname__


def validate(topology: str | None = None) -> dict:
    """
    Check the platform's topology and list every error with its node and field.

    Exits 1 when the topology is invalid, 3 when it could not be checked.

    topology
        A YAML file holding a ``paas:`` key, to check instead of the pillar.

    CLI Example:

    .. code-block:: bash

        salt-run paas.validate
        salt-run paas.validate topology=pillar.example
    """
    _quiet_salt_run_teardown()
    source = "pillar" if topology is None else topology
    missing = _missing_dependency()
    if missing:
        return _exit({"valid": None, "source": source, "errors": [missing]}, 3)
    if topology is None:
        data, errors = __utils__["paas_master.pillar_topology"](__opts__)
    else:
        try:
            data, errors = _load_topology_file(topology), []
        except SaltRunnerError as err:
            data, errors = None, [str(err)]
    if not errors:
        errors = [str(error) for error in __utils__["paas_topology.validate"](data)]
    if errors:
        return _exit({"valid": False, "source": source, "errors": errors}, 1)
    nodes = __utils__["paas_topology.node_ids"](data)
    return _exit({"valid": True, "source": source, "nodes": len(nodes)}, 0)


def dr(timeout: int = 30) -> dict:
    """
    etcd's disaster recovery at a glance: per etcd node its newest snapshot on the node
    and off it (age, revision, size, verified) and its clock's offset from the master's,
    the last drill of a restore, the last remediation and its outcome, the lock, a
    pause, and the reports the reactor refused or its probe contradicted since an
    operator last acknowledged them (``salt-run paas_dr.acknowledge``). Degraded (exit 1)
    when a node's newest off-node snapshot is older than two snapshot intervals or
    missing, the last drill failed, a snapshot on a node failed, or the reactor's records
    hold a problem (a failed, blocked or fenced remediation, a refused or contradicted
    report, a clock offset, a lock without a holder); 3 when the report could not be made.

    CLI Example:

    .. code-block:: bash

        salt-run paas.dr
        salt-run paas.dr --out=json
    """
    _quiet_salt_run_teardown()
    topology, errors = _checked_topology()
    if errors:
        return _unknown(errors)
    etcd_nodes = __utils__["paas_topology.node_ids"](topology, "etcd")
    try:
        on_node = _ask(etcd_nodes, "etcd_snapshot.inventory", timeout)
    except SaltClientError as err:
        return _unknown([f"the master could not ask its minions: {err}"])
    backups = __salt__["paas_backup.summary"]()
    reactor = __salt__["paas_dr.summary"]()
    problems = list(backups["problems"])
    nodes = {}
    for node in etcd_nodes:
        reply = on_node.get(node)
        if not isinstance(reply, dict):
            problems.append(f"{node}: its snapshots could not be listed: {reply}")
            reply = {}
        newest = (reply.get("snapshots") or [None])[0]
        failure = reply.get("last_failure")
        good = reply.get("last_good")
        if failure and (not good or failure.get("time", 0) > good.get("time", 0)):
            problems.append(f"{node}: its last snapshot failed ({failure.get('error')})")
        nodes[node] = {
            "on_node": newest,
            "last_failure": failure,
            "offsite": backups["members"][node]["offsite"],
            "stale": backups["members"][node]["stale"],
            "clock_offset_s": reactor["members"].get(node, {}).get("clock_offset_s"),
        }
    problems += reactor["problems"]
    return _report(
        {
            "kind": "dr",
            "severity": "degraded" if problems else "ok",
            "problems": problems,
            "nodes": nodes,
            "stale_after_seconds": backups["stale_after_seconds"],
            "last_drill": backups["last_drill"],
            "last_remediation": reactor["last_remediation"],
            "last_probe": reactor["last_probe"],
            "lock": reactor["lock"],
            "paused": reactor["paused"],
            "dropped": reactor["dropped"],
            "refused": reactor["refused"],
            "contradicted": reactor["contradicted"],
            "acknowledged": reactor["acknowledged"],
        }
    )


def restore(snapshot: str = "", fenced: str = "") -> dict:
    """
    Restore etcd after it lost quorum, as the reactor would (``orch.etcd_restore``), under
    the same lock, once the master's own probe confirmed that no member is healthy and
    every etcd node's minion answered: rebuilt from the member that kept the newest
    data, or, when none did, from ``snapshot`` (a file on the master; default: the
    off-node snapshot holding the highest revision). A corrupt or truncated snapshot is
    refused before anything is stopped. ``fenced``: etcd nodes whose machines you
    confirmed are off (comma separated), left out of the restore and replaced when they
    come back; a node whose minion does not answer and is not fenced refuses the
    restore. Exit code 0 when the cluster is whole again, 1 when a step failed (named),
    3 when it did not run.

    CLI Example:

    .. code-block:: bash

        salt-run paas.restore
        salt-run paas.restore snapshot=/var/lib/paas/dr/snapshots/etcd1/etcd1-20261126T1200Z-r42.db
        salt-run paas.restore fenced=etcd2,etcd3
    """
    _quiet_salt_run_teardown()
    _topology, errors = _checked_topology()
    if errors:
        return _unknown(errors)
    try:
        done = __salt__["paas_dr.remediate"]("restore", snapshot=snapshot, fenced=fenced)
    except SaltRunnerError as err:
        return _unknown([str(err)])
    problems = [f"{step['step']}: {step['comment']}" for step in done["failed_steps"]]
    return _report(
        {
            "kind": "restore",
            "severity": "ok" if done["outcome"] == "ok" else "degraded",
            "problems": problems,
            "owner": done["owner"],
            "outcome": done["outcome"],
            "fenced": done.get("fenced", []),
        }
    )


def certs(timeout: int = 30) -> dict:
    """
    The inventory of every certificate the platform issued, as installed on the nodes
    and the master's minion, and kubeadm's on each control plane (``source: kubeadm``,
    the ones ``kubeadm certs check-expiration`` lists): node, profile, serial, names,
    expiry, days left, problems; with the renewal window and a verdict: degraded when a
    certificate has a problem, is inside its renewal window or cannot be seen (its
    minion did not answer), down when one has expired. The exit code is the verdict's
    (0, 1, 2; 3: no report).

    CLI Example:

    .. code-block:: bash

        salt-run paas.certs
        salt-run paas.certs --out=json
    """
    _quiet_salt_run_teardown()
    topology, errors = _checked_topology()
    if errors:
        return _unknown(errors)
    try:
        return _report(_pki(topology, timeout))
    except SaltClientError as err:
        return _unknown([f"the master could not ask its minions: {err}"])


def renew(when_due: bool = False, timeout: int = 30) -> dict:
    """
    Renew every certificate inside its renewal window (``paas:pki:renew_days``) or
    expired: the platform's, on the nodes and the master's minion, and kubeadm's on the
    control planes. The master's schedule runs it every minute with ``when_due`` (it then
    acts every ``paas:pki:renew_check_minutes``); an operator may run it any time.

    It reads the inventory ``paas.certs`` reads and renews node by node
    (``_utils/paas_renewal.py``): the master's minion, then each etcd node (``pki``, then
    ``etcd.certificates``: its etcd presents the new certificates, restarted if it does
    not, healthy before the next node, and only while every member is healthy), then each
    control plane (``pki`` and ``kubernetes.certificates``: kubeadm's renewed, the static
    Pods restarted on their new files, the apiserver ready before the next). It stops at
    the first failure, fires ``paas/pki/renewal/failed`` and exits 1. It does nothing
    while a disaster recovery remediation holds its lock. Each run is recorded (the last
    100) in the master's state directory, ``renewals.json``; ``paas.certs`` shows the
    last and the next.

    when_due
        Only when the last run is older than ``paas:pki:renew_check_minutes``.

    CLI Example:

    .. code-block:: bash

        salt-run paas.renew
    """
    _quiet_salt_run_teardown()
    topology, errors = _checked_topology()
    if errors:
        return _unknown(errors)
    filled = __utils__["paas_topology.with_defaults"](topology)
    state_dir = __utils__["paas_topology.dr"](topology)["state_dir"]
    every_s = filled["pki"]["renew_check_minutes"] * 60
    with __utils__["paas_master.records"](state_dir, "renewal", wait=False) as held:
        if not held:
            return _exit({"result": None, "reason": "another renewal is running"}, 0)
        runs = __utils__["paas_master.read"](state_dir, RENEWALS, [])
        # The schedule's ticks come a little early or late: a run due within the slack
        # runs now, not a whole tick later.
        if when_due and runs and time.time() - runs[-1]["time"] < every_s - SCHEDULE_SLACK_S:
            return _exit({"result": None, "reason": "not due"}, 0)
        record = _renewal(topology, state_dir, timeout)
        __utils__["paas_master.append"](state_dir, RENEWALS, record, RENEWALS_KEPT)
    if record["failed"]:
        with salt.utils.event.get_master_event(
            __opts__, __opts__["sock_dir"], listen=False
        ) as event:
            event.fire_event(record, RENEWAL_FAILED_TAG)
    return _exit(record, 1 if record["failed"] else 0)


def _renewal(topology: dict, state_dir: str, timeout: int) -> dict:
    started = time.time()
    record = {"time": started, "steps": [], "failed": None, "unseen": [], "skipped": None}
    remediation = __utils__["paas_master.read"](state_dir, DR_LOCK, None)
    if remediation is not None:
        record["skipped"] = (
            f"a disaster recovery remediation ({remediation.get('owner')}) holds its lock"
        )
        return record
    try:
        inventory = _pki(topology, timeout)
    except SaltClientError as err:
        record["failed"] = f"the master could not ask its minions: {err}"
        return record
    record["unseen"] = sorted(
        {row["node"] for row in inventory["certificates"] if row.get("profile") == "-"}
    )
    roles = {
        entry["id"]: list(entry["roles"]) for entry in __utils__["paas_topology.nodes"](topology)
    }
    steps = __utils__["paas_renewal.plan"](inventory["certificates"], roles)
    master_minion = __utils__["paas_topology.master_id"](topology)
    with __utils__["paas_master.minions"](__opts__) as asked:
        _undrain_left(asked, topology, state_dir, timeout)
        for step in steps:
            entry = {**step, "started": time.time(), "done": False}
            record["steps"].append(entry)
            if step["turn"] == "etcd":
                whole = asked.call(master_minion, "etcd_cluster.health", timeout=timeout)
                if not (isinstance(whole, dict) and whole.get("healthy")):
                    record["failed"] = (
                        f"{step['node']}: not renewed while etcd is not whole "
                        f"(etcd_cluster.health on {master_minion}: {_unhealthy(whole)})"
                    )
                    break
            failure = _renewal_step(asked, topology, state_dir, entry, timeout)
            entry["seconds"] = round(time.time() - entry["started"], 3)
            entry["done"] = not failure
            if failure:
                record["failed"] = failure
                break
    record["finished"] = time.time()
    return record


def _renewal_step(asked, topology: dict, state_dir: str, step: dict, timeout: int) -> str | None:
    """Apply one node's renewal states; why it failed, or None. A control plane's
    apiserver is drained from the gateways' haproxy first (no new connection reaches it
    while it restarts), put back after, and the step ends once haproxy serves it again.
    The node is under maintenance meanwhile (a window in ``MAINTENANCE``)."""
    node, sls = step["node"], ",".join(step["sls"])
    drained = step["turn"] == "control-plane"
    window = {
        "node": node,
        "why": f"the master renews its certificates ({', '.join(step['sls'])})",
        "since": step["started"],
        "until": step["started"] + RENEWAL_STEP_TIMEOUT + ROTATION_WAIT_S,
        "ended": None,
        "drained": drained,
    }
    windows = [*__utils__["paas_master.read"](state_dir, MAINTENANCE, []), window]
    __utils__["paas_master.write"](state_dir, MAINTENANCE, windows)
    try:
        if drained:
            # A gateway that cannot drain it still serves: recorded, not a failure.
            step["not_drained"] = _server_state(asked, topology, node, "drain", timeout)
        try:
            reply = asked.run([node], "state.apply", [sls], timeout=RENEWAL_STEP_TIMEOUT)[node]
            failure = __utils__["paas_orchestration.state_failure"](node, reply, sls)
        finally:
            if drained:
                step["not_ready"] = _server_state(asked, topology, node, "ready", timeout)
        if not failure and drained:
            failure = _back_in_rotation(topology, node, timeout)
    finally:
        window["ended"] = time.time()
        __utils__["paas_master.write"](state_dir, MAINTENANCE, windows)
    return failure


def _undrain_left(asked, topology: dict, state_dir: str, timeout: int) -> None:
    """Put back in the gateways' rotation an apiserver a renewal drained and did not
    live to put back (its window never ended), and start this run's windows."""
    for window in __utils__["paas_master.read"](state_dir, MAINTENANCE, []):
        if window["ended"] is None and window["drained"]:
            _server_state(asked, topology, window["node"], "ready", timeout)
    __utils__["paas_master.write"](state_dir, MAINTENANCE, [])


def _server_state(asked, topology: dict, node: str, state: str, timeout: int) -> dict:
    """Set ``node``'s apiserver server ``state`` in every gateway's haproxy; the
    gateways that could not, with why (a gateway's haproxy the state does not reach
    shows in ``paas.status``)."""
    gateways = __utils__["paas_topology.node_ids"](topology, "gateway")
    replies = asked.ask(
        gateways, "paas_gateway.server_state", [API_PROXY, node, state], timeout=timeout
    )
    return {gateway: reply for gateway, reply in replies.items() if not isinstance(reply, dict)}


def _back_in_rotation(topology: dict, node: str, timeout: int) -> str | None:
    """None once every gateway that answers serves ``node``'s apiserver again (its
    haproxy server UP after the restart); else why not, after ``ROTATION_WAIT_S``."""
    gateways = __utils__["paas_topology.node_ids"](topology, "gateway")
    deadline = time.monotonic() + ROTATION_WAIT_S
    while gateways:
        replies = _ask(gateways, "paas_gateway.status", timeout)
        seen = {
            gateway: [
                backend["status"]
                for backend in reply["backends"]
                if backend["proxy"] == API_PROXY and backend["server"] == node
            ]
            for gateway, reply in replies.items()
            if isinstance(reply, dict)
        }
        waiting = {
            gateway: statuses or ["not a server"]
            for gateway, statuses in seen.items()
            if not statuses or not all(map(_serves, statuses))
        }
        if seen and not waiting:
            return None
        if time.monotonic() >= deadline:
            why = "; ".join(
                f"{gateway}: {', '.join(waiting.get(gateway, ['no answer']))}"
                for gateway in gateways
                if gateway in waiting or gateway not in seen
            )
            return (
                f"{node}: its apiserver is not back in the gateways' haproxy "
                f"{ROTATION_WAIT_S} s after its renewal ({why})"
            )
        time.sleep(ROTATION_POLL_S)
    return None


def _unhealthy(health) -> str:
    if not isinstance(health, dict):
        return str(health)
    sick = [
        f"{name}: {member.get('error')}"
        for name, member in health.get("members", {}).items()
        if not member.get("healthy")
    ]
    return "; ".join(sick) or f"{health.get('healthy_voters')} of {health.get('voters')} healthy"


def preflight(timeout: int = 60) -> dict:
    """
    Check every node of the topology before anything changes on it: OS release, Salt's
    version, swap, cgroup v2, kernel modules, the roles' ports free (or held by the
    role's own service), time synchronized and the clock's skew to the master's, etcd's
    disk (fdatasync latency, free space), what every node's name resolves to, and the
    package and wheel sources reachable from the node. Each failure names the node, the
    check, what was found, what is wanted and the fix; ``paas:preflight:ignore`` lists
    those the operator accepts (reported as ``ignored``). It changes nothing.

    Exits 0 when every check passed, 1 when one failed, 3 when a node did not answer or
    the topology is invalid.

    CLI Example:

    .. code-block:: bash

        salt-run paas.preflight
    """
    _quiet_salt_run_teardown()
    topology, errors = _checked_topology()
    if errors:
        return _unknown(errors)
    uses = {name: __utils__[name] for name in __utils__["paas_preflight.uses"]()}
    try:
        found = __utils__["paas_preflight.run"](__opts__, uses, topology, timeout=timeout)
    except SaltClientError as err:
        return _unknown([f"the master could not ask its minions: {err}"])
    problems = [
        ("degraded", f"{row['node']}: {row['check']}: {row['found']}; wanted {row['wanted']}")
        for row in found["failures"]
    ]
    problems += [
        ("unknown", f"{node}: did not answer: {why}") for node, why in found["silent"].items()
    ]
    return _report({"kind": "preflight", **found, **_verdict(problems)})


def status(timeout: int = 30) -> dict:
    """
    The platform's health, and a verdict on it.

    - ``gateways``: who holds the VIPs (or a split brain, no holder, VIPs apart), each
      gateway's VRRP state, daemons and haproxy backends, as the gateways say;
    - ``etcd``: health and quorum, the leader, alarms, and per member its role, health,
      db size, raft index and version, as the first etcd node that answers sees them;
    - ``kubernetes``: the Nodes (Ready, roles, kubelet version, age, Lease renewal), as
      the first control plane that can list them sees them, and per control plane its
      apiserver's ``/readyz``, directly and through each VIP from that node;
    - ``pki``: every certificate, as ``paas.certs`` reports them.

    The verdict (``severity``, and the exit code) is down (2) when the platform does
    not serve: no gateway or two holding a VIP, the VIPs apart, a VIP holder whose
    haproxy is down or has no server UP for a service, etcd without quorum or no etcd
    node answering, no control plane answering or able to list the Nodes, no apiserver
    ready through a VIP, no worker a Ready Node, an expired certificate. It is degraded
    (1) for a problem a person must see while it serves: a gateway not answering, a
    daemon not active, a haproxy server not UP, an etcd member unhealthy, a learner,
    missing from the cluster or from the topology, an etcd alarm, Kubernetes not
    initialized or a control plane not set up, an apiserver not ready (directly or
    through a VIP from one control plane), a topology node that is not a Node, not
    Ready, whose kubelet stopped renewing its Lease, with the wrong roles or another
    kubelet version, a Node not in the topology, a certificate with problems or in its
    renewal window. Every problem is named in ``problems``; 3 means no report could
    be made.

    While the master's renewal restarts things on a node (``maintenance``: which nodes,
    why, since, and when done), what that makes of the node (its apiserver not ready or
    drained from the gateways' haproxy, its etcd member unhealthy) is listed there as
    ``expected`` instead of counted; anything down still is.

    CLI Example:

    .. code-block:: bash

        salt-run paas.status
        salt-run paas.status --out=json
    """
    _quiet_salt_run_teardown()
    topology, errors = _checked_topology()
    if errors:
        return _unknown(errors)
    node_ids = __utils__["paas_topology.node_ids"]
    gateway_nodes, etcd_nodes = node_ids(topology, "gateway"), node_ids(topology, "etcd")
    control_planes = [
        entry["id"] for entry in __utils__["paas_topology.kubernetes"](topology)["control_planes"]
    ]
    asking = time.time()
    try:
        gateway_replies = _ask(gateway_nodes, "paas_gateway.status", timeout)
        etcd_replies = _ask(etcd_nodes, "etcd_cluster.overview", timeout)
        control_plane_replies = _ask(control_planes, "paas_control_plane.status", timeout)
        pki = _pki(topology, timeout)
    except SaltClientError as err:
        return _unknown([f"the master could not ask its minions: {err}"])
    # After the answers: a node the renewal took up while they came counts too.
    maintenance = _maintenance(topology, asking)
    planned = {window["node"] for window in maintenance}
    sections = {
        "gateways": _gateways(gateway_nodes, gateway_replies, planned),
        "etcd": _etcd(etcd_nodes, etcd_replies, planned),
        "kubernetes": _kubernetes(topology, control_plane_replies, planned),
        "pki": pki,
    }
    # A silent gateway or control plane is named by its part and the certificates': once here.
    problems = dict.fromkeys(text for part in sections.values() for text in part["problems"])
    report = {
        "severity": _worst(section["severity"] for section in sections.values()),
        "problems": list(problems),
        **sections,
    }
    if maintenance:
        expected = (text for part in sections.values() for text in part.pop(EXPECTED, []))
        report["maintenance"] = {"nodes": maintenance, EXPECTED: list(dict.fromkeys(expected))}
    return _report(report)


def _maintenance(topology: dict, asking: float) -> list[dict]:
    """The nodes the master's renewal restarted things on while the minions were asked
    (since ``asking``), as that renewal recorded them (``MAINTENANCE``): a node's step
    that ended since, or one still going while the renewal that wrote it runs (it holds
    its lock) and within the bound it set. A renewal that died leaves none."""
    state_dir = __utils__["paas_topology.dr"](topology)["state_dir"]
    windows = __utils__["paas_master.read"](state_dir, MAINTENANCE, [])
    going = time.time()
    running = any(window["ended"] is None for window in windows) and __utils__["paas_master.held"](
        state_dir, "renewal"
    )
    return [
        {
            "node": window["node"],
            "why": window["why"],
            "since": _stamp(window["since"]),
            "ended": None if window["ended"] is None else _stamp(window["ended"]),
        }
        for window in windows
        if (window["ended"] is None and running and going <= window["until"])
        or (window["ended"] is not None and window["ended"] >= asking)
    ]


def _gateways(nodes: list[str], replies: dict, planned: set[str]) -> dict:
    """Who holds each VIP, as the gateways themselves say, and what is wrong with them:
    exactly one gateway holding both VIPs is the healthy case; two holders is a split
    brain (VRRP between them is lost). The holder is named only when every gateway
    answered, since a silent one might hold the VIPs too."""
    answers = {node: replies[node] for node in nodes if isinstance(replies.get(node), dict)}
    holders = {
        network: [node for node, reply in answers.items() if reply["vips"][network]["held"]]
        for network in ("public", "private")
    }
    every_holder = sorted({node for held in holders.values() for node in held})
    problems = []
    for network, held in holders.items():
        if len(held) > 1:
            problems.append(
                ("down", f"split brain: {' and '.join(held)} each hold the {network} VIP")
            )
        elif not held:
            problems.append(("down", f"no gateway holds the {network} VIP"))
    if all(len(held) == 1 for held in holders.values()) and len(every_holder) == 2:
        problems.append(
            (
                "down",
                f"the VIPs are on different gateways: public on {holders['public'][0]}, "
                f"private on {holders['private'][0]}",
            )
        )
    for node in nodes:
        if node in answers:
            problems.extend(_gateway_problems(node, answers[node], node in every_holder, planned))
        else:
            problems.append(("degraded", f"{node} did not answer: {replies.get(node, NO_REPLY)}"))
    one_holder = len(every_holder) == 1 and all(holders.values()) and len(answers) == len(nodes)
    return {
        **_verdict(problems),
        "holder": every_holder[0] if one_holder else None,
        "holders": holders,
        "split_brain": any(len(held) > 1 for held in holders.values()),
        "nodes": answers,
    }


def _gateway_problems(
    node: str, reply: dict, holds_a_vip: bool, planned: set[str]
) -> list[tuple[str, str]]:
    """What is wrong on one gateway. On a VIP holder, an haproxy that cannot serve a
    service means the platform does not serve it: down; anywhere else, degraded (a
    server of a node under maintenance: expected)."""
    problems = [
        ("degraded", f"{node}: {service} is not active")
        for service, active in reply["services"].items()
        if not active and not (holds_a_vip and service == "haproxy")
    ]
    if "backends_error" in reply:
        problems.append(("degraded", f"{node}: haproxy's backends: {reply['backends_error']}"))
    serving = {}
    for backend in reply["backends"]:
        up = _serves(backend["status"])
        serving[backend["proxy"]] = serving.get(backend["proxy"], False) or up
        if not up:
            check = f" (check: {backend['check']})" if backend.get("check") else ""
            problems.append(
                (
                    _degraded(backend["server"], planned),
                    f"{node}: haproxy's {backend['proxy']} server {backend['server']} "
                    f"is {backend['status']}{check}",
                )
            )
    if holds_a_vip:
        if not reply["services"].get("haproxy"):
            problems.append(("down", f"{node} holds a VIP and its haproxy is not active"))
        problems.extend(
            ("down", f"{node} holds a VIP and no server of its haproxy's {proxy} is UP")
            for proxy, up in serving.items()
            if not up
        )
    return problems


def _serves(haproxy_status: str) -> bool:
    # haproxy's server states: "UP", "UP 1/3" (up, failing checks), "no check" serve;
    # "DOWN", "DOWN 1/2" (down, passing checks), "MAINT", "DRAIN", "NOLB" do not.
    return haproxy_status.startswith("UP") or haproxy_status == "no check"


def _etcd(nodes: list[str], replies: dict, planned: set[str]) -> dict:
    """The cluster as the first etcd node that answers sees it, and what is wrong with
    it: no quorum is down; anything else a person must see is degraded."""
    answers = {node: reply for node, reply in replies.items() if isinstance(reply, dict)}
    if not answers:
        silence = "; ".join(f"{node}: {replies.get(node, NO_REPLY)}" for node in nodes)
        return {
            **_verdict([("down", f"no etcd node answered: {silence}")]),
            "healthy": False,
            "quorum": False,
        }
    seen_by = next(node for node in nodes if node in answers)
    etcd = answers[seen_by]
    problems = []
    if not etcd["quorum"]:
        problems.append(
            (
                "down",
                f"etcd has no quorum: {etcd['healthy_voters']} of {etcd['voters']} "
                "voting members healthy",
            )
        )
    elif etcd["leader"] is None:
        problems.append(("degraded", "etcd's members do not agree on a leader"))
    for name, member in sorted(etcd["members"].items()):
        if not member["healthy"]:
            problems.append(
                (
                    _degraded(name, planned),
                    f"etcd member {name} is unhealthy: {member['error'] or 'no reason'}",
                )
            )
        if member["learner"]:
            problems.append(("degraded", f"etcd member {name} is a learner, not yet promoted"))
        if name not in nodes:
            problems.append(("degraded", f"etcd member {name} is not an etcd node of the topology"))
    problems.extend(
        ("degraded", f"etcd node {node} of the topology is not a member of the cluster")
        for node in nodes
        if node not in etcd["members"]
    )
    problems.extend(
        ("degraded", f"etcd alarm {alarm['alarm']} on {alarm['member']}")
        for alarm in etcd["alarms"]
    )
    return {**_verdict(problems), **etcd, "seen_by": seen_by}


def _kubernetes(topology: dict, replies: dict, planned: set[str]) -> dict:
    """Kubernetes as its control planes see it: each reports its own apiserver's
    readiness, directly and through each VIP, and the Nodes are those the first control
    plane (in topology order) that can list them sees. Down when nobody can say, when
    the API answers through neither VIP from any control plane, or when no worker can
    run workloads; anything else a person must see is degraded."""
    view = __utils__["paas_topology.kubernetes"](topology)
    control_planes = [entry["id"] for entry in view["control_planes"]]
    answers = {cp: replies[cp] for cp in control_planes if isinstance(replies.get(cp), dict)}
    seen = {
        "version": view["version"],
        "vips": view["vips"],
        "apiservers": {cp: answers.get(cp, {}).get("apiserver") for cp in control_planes},
    }
    if not answers:
        silence = "; ".join(f"{cp}: {replies.get(cp, NO_REPLY)}" for cp in control_planes)
        return {
            **_verdict([("down", f"no control plane answered: {silence}")]),
            **seen,
            "initialized": None,
            "seen_by": None,
            "nodes": [],
        }
    problems = [
        ("degraded", f"{cp} did not answer: {replies.get(cp, NO_REPLY)}")
        for cp in control_planes
        if cp not in answers
    ]
    initialized = [cp for cp, answer in answers.items() if answer["initialized"]]
    if not initialized:
        problems.append(
            (
                "degraded",
                f"Kubernetes is not initialized: {view['admin_kubeconfig']} is on none of "
                f"{', '.join(answers)}; run {KUBERNETES_FIX}",
            )
        )
        return {**_verdict(problems), **seen, "initialized": False, "seen_by": None, "nodes": []}
    for cp, answer in answers.items():
        if not answer["initialized"]:
            problems.append(
                (
                    "degraded",
                    f"{cp} is not a control plane of the cluster yet ({answer['reason']}); "
                    f"run {KUBERNETES_FIX}",
                )
            )
        elif "error" in answer:
            problems.append((_degraded(cp, planned), f"{cp}: {answer['error']}"))
        elif "nodes_error" in answer:
            problems.append(
                (
                    _degraded(cp, planned),
                    f"{cp} could not list the Nodes: {answer['nodes_error']}",
                )
            )
    problems.extend(_apiserver_problems(view, answers, planned))
    seen_by = next((cp for cp in control_planes if "nodes" in answers.get(cp, {})), None)
    if seen_by is None:
        # Each control plane's reason is named above.
        problems.append(("down", "no control plane could list the Nodes"))
        nodes = []
    else:
        nodes = answers[seen_by]["nodes"]
        problems.extend(_node_problems(view, nodes))
    return {**_verdict(problems), **seen, "initialized": True, "seen_by": seen_by, "nodes": nodes}


def _apiserver_problems(view: dict, answers: dict, planned: set[str]) -> list[tuple[str, str]]:
    """Each control plane's apiserver not ready, directly or through a VIP from that
    node, is degraded (expected on a node under maintenance); a VIP through which no
    control plane got a ready apiserver is down: the API does not answer there."""
    checked = {cp: answer["apiserver"] for cp, answer in answers.items() if "apiserver" in answer}
    problems = []
    for cp, apiserver in checked.items():
        if not apiserver["direct"]["ready"]:
            problems.append(
                (
                    _degraded(cp, planned),
                    f"{cp}: its apiserver is not ready: {apiserver['direct']['error']}",
                )
            )
        problems.extend(
            (
                _degraded(cp, planned),
                f"{cp}: the apiserver through the {network} VIP is not ready: "
                f"{apiserver[check]['error']}",
            )
            for check, network in THROUGH_VIPS.items()
            if not apiserver[check]["ready"]
        )
    problems.extend(
        ("down", f"no apiserver is ready through the {network} VIP {view['vips'][network]}")
        for check, network in THROUGH_VIPS.items()
        if checked and not any(apiserver[check]["ready"] for apiserver in checked.values())
    )
    return problems


def _node_problems(view: dict, nodes: list[dict]) -> list[tuple[str, str]]:
    """What is wrong with the Nodes against the topology: each is degraded, but no
    worker serving (a Ready Node whose kubelet renews its Lease) is down, since nothing
    can run the platform's workloads then."""
    listed = {node["name"]: node for node in nodes}
    roles = {entry["id"]: "control-plane" for entry in view["control_planes"]}
    roles.update({entry["id"]: "worker" for entry in view["workers"]})
    problems = []
    for node_id, role in roles.items():
        if node_id in listed:
            problems.extend(
                ("degraded", text) for text in _node_row_problems(listed[node_id], role, view)
            )
        else:
            problems.append(
                ("degraded", f"{node_id} is not a Node of the cluster; run {KUBERNETES_FIX}")
            )
    problems.extend(
        ("degraded", f"Node {name} is not a node of the topology")
        for name in listed
        if name not in roles
    )
    workers = [entry["id"] for entry in view["workers"]]
    if workers and not any(_serves_workloads(listed.get(worker)) for worker in workers):
        problems.append(
            ("down", "no worker is a Ready Node: nothing can run the platform's workloads")
        )
    return problems


def _node_row_problems(node: dict, role: str, view: dict) -> list[str]:
    name = node["name"]
    problems = []
    if not node["ready"]:
        problems.append(
            f"Node {name} is not Ready: {node['reason'] or node['condition'] or 'no reason'}"
        )
    if node["lease_age_s"] is None:
        problems.append(f"Node {name} has no Lease in kube-node-lease: its kubelet renews none")
    elif node["lease_age_s"] > LEASE_GRACE_S:
        problems.append(
            f"Node {name}'s kubelet last renewed its Lease {node['lease_age_s']} s ago "
            f"(more than {LEASE_GRACE_S} s: it is stopped or cannot reach the API)"
        )
    has_role = "control-plane" in node["roles"]
    if role == "control-plane" and not has_role:
        problems.append(f"Node {name} lacks the control-plane role")
    elif role == "worker" and has_role:
        problems.append(f"Node {name} has the control-plane role; the topology makes it a worker")
    if node["kubelet"] != f"v{view['version']}":
        problems.append(
            f"Node {name} runs kubelet {node['kubelet']}, the topology's is v{view['version']}"
        )
    return problems


def _serves_workloads(node: dict | None) -> bool:
    return bool(
        node
        and node["ready"]
        and node["lease_age_s"] is not None
        and node["lease_age_s"] <= LEASE_GRACE_S
    )


def _pki(topology: dict, timeout: int) -> dict:
    """Every certificate of the nodes and the master's minion, kubeadm's on each control
    plane after the platform's, and what is wrong with them: an expired one is down; a
    problem, the renewal window or a minion that did not answer (its certificates
    unseen) is degraded."""
    minions = [
        *__utils__["paas_topology.node_ids"](topology),
        __utils__["paas_topology.master_id"](topology),
    ]
    control_planes = [
        entry["id"] for entry in __utils__["paas_topology.kubernetes"](topology)["control_planes"]
    ]
    renew_days = __utils__["paas_topology.with_defaults"](topology)["pki"]["renew_days"]
    renewal = _renewal_runs(topology)
    replies = _ask(minions, "paas_pki.certificates", timeout)
    kubeadm = _ask(control_planes, "paas_control_plane.certificates", timeout)
    rows, problems = [], []
    for minion in minions:
        reply = replies.get(minion)
        if not isinstance(reply, list):
            problem = f"did not answer: {NO_REPLY if reply is None else reply}"
            rows.append({"node": minion, "profile": "-", "problems": [problem]})
            problems.append(("degraded", f"{minion} {problem}"))
            continue
        inventories = [("", reply)]
        if minion in control_planes:
            inventories.append(("kubeadm ", kubeadm.get(minion)))
        for source, inventory in inventories:
            if not isinstance(inventory, list):
                problem = f"did not answer: {NO_REPLY if inventory is None else inventory}"
                rows.append(
                    {"node": minion, "profile": "-", "source": "kubeadm", "problems": [problem]}
                )
                problems.append(("degraded", f"{minion} kubeadm: {problem}"))
                continue
            for certificate in inventory:
                row = {**certificate, "renews": _renews(certificate, renew_days)}
                row["problems"] = _certificate_problems(row, renew_days, renewal)
                expired = row.get("days_left") is not None and row["days_left"] < 0
                problems.extend(
                    (
                        "down" if expired else "degraded",
                        f"{row['node']} {source}{row['profile']}: {text}",
                    )
                    for text in row["problems"]
                )
                rows.append(row)
    return {
        **_verdict(problems),
        "renew_days": renew_days,
        "renewal": renewal,
        "certificates": rows,
    }


def _renews(certificate: dict, renew_days: int) -> str | None:
    """When a certificate enters its renewal window (UTC), from which the master's next
    check renews it; None for kubeadm's CAs (kubeadm renews no CA) and unread ones."""
    if not certificate.get("not_after") or (
        certificate.get("source") == "kubeadm" and not certificate.get("signed_by")
    ):
        return None
    not_after = datetime.datetime.strptime(certificate["not_after"], TIME_FORMAT)
    return (not_after - datetime.timedelta(days=renew_days)).strftime(TIME_FORMAT)


def _renewal_runs(topology: dict) -> dict:
    """How the master's schedule renews: every how many minutes, its last run, and
    whether it works (``stalled``: why not), which decides whether a certificate inside
    its renewal window is a problem."""
    state_dir = __utils__["paas_topology.dr"](topology)["state_dir"]
    runs = __utils__["paas_master.read"](state_dir, RENEWALS, [])
    every = __utils__["paas_topology.with_defaults"](topology)["pki"]["renew_check_minutes"]
    last = runs[-1] if runs else None
    if last is None:
        stalled = "the master's renewal has not run (salt-run paas.renew)"
    elif last["failed"]:
        stalled = f"the master's last renewal failed: {last['failed']}"
    elif time.time() - last["time"] > every * 60 * RENEWAL_RUNS_MISSED + RENEWAL_GRACE_S:
        stalled = (
            f"the master's renewal last ran at {_stamp(last['time'])}, more than "
            f"{RENEWAL_RUNS_MISSED * every} minutes ago (is its schedule on?)"
        )
    else:
        stalled = None
    return {
        "every_minutes": every,
        "stalled": stalled,
        "last_run": None
        if last is None
        else {
            "time": _stamp(last["time"]),
            "renewed": [
                f"{step['node']}: {', '.join(step['certificates'])}"
                for step in last["steps"]
                if step.get("done")
            ],
            "failed": last["failed"],
            "skipped": last["skipped"],
        },
        "next_check": _stamp(last["time"] + every * 60) if last else "within a minute",
    }


def _stamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime(TIME_FORMAT)


def _certificate_problems(certificate: dict, renew_days: int, renewal: dict) -> list[str]:
    """What paas_pki found wrong with a certificate; inside its renewal window, a
    problem only while the master's renewal does not work (else it is renewed at the
    next run: nothing for a person to do)."""
    problems = list(certificate["problems"])
    days_left = certificate.get("days_left")
    if days_left is None:
        return problems
    if days_left < 0 and not problems:
        problems.append(f"it expired on {certificate['not_after']}")
    pending = days_left >= 0 and certificate.get("renewal_due")
    if pending and (renewal["stalled"] or certificate.get("renews") is None):
        why = renewal["stalled"] or "kubeadm does not renew its CAs"
        problems.append(
            f"{days_left} days left, inside the renewal window ({renew_days} days), and {why}"
        )
    return problems


def _degraded(node: str, planned: set[str]) -> str:
    """The severity of a problem that makes ``node`` less than whole."""
    return EXPECTED if node in planned else "degraded"


def _verdict(problems: list[tuple[str, str]]) -> dict:
    """The severity and the problems; the expected ones (a node under maintenance)
    apart, counted in neither."""
    counted = [(severity, text) for severity, text in problems if severity != EXPECTED]
    verdict = {
        "severity": _worst(severity for severity, _ in counted),
        "problems": [text for _, text in counted],
    }
    expected = [text for severity, text in problems if severity == EXPECTED]
    if expected:
        verdict[EXPECTED] = expected
    return verdict


def _worst(severities) -> str:
    return max(severities, key=SEVERITIES.index, default="ok")


def _report(report: dict) -> dict:
    return _exit({**report, "outputter": OUTPUTTER}, SEVERITIES.index(report["severity"]))


def _unknown(problems: list[str]) -> dict:
    return _report({"severity": "unknown", "problems": problems})


def _exit(report: dict, retcode: int) -> dict:
    # salt-run exits with the "retcode" of the returned dict; an orchestration's
    # salt.runner step and the job's "success" follow __context__["retcode"].
    __context__["retcode"] = retcode
    return {**report, "retcode": retcode}


def _missing_dependency() -> str | None:
    # Said here, not by paas_master: without the repository's _utils there is no
    # paas_master either.
    if "paas_topology.validate" in __utils__:
        return None
    utils_dirs = ", ".join(__opts__.get("utils_dirs") or []) or "none"
    return (
        "paas: the paas_topology utils module is not loaded; the master's utils_dirs "
        f"({utils_dirs}) must hold the repository's _utils (etc/salt/master)"
    )


def _checked_topology() -> tuple[dict | None, list[str]]:
    """The pillar's topology, or why there is no valid one to report on."""
    missing = _missing_dependency()
    if missing:
        return None, [missing]
    return __utils__["paas_master.checked_topology"](__opts__, __utils__["paas_topology.validate"])


def _ask(minions: list[str], function: str, timeout: int) -> dict:
    """Each minion's answer; a minion that did not answer has the reason instead (asking
    only accepted minions also keeps Salt from printing "No minions matched the target"
    on stdout, into the report). ``timeout`` bounds Salt's check of a late minion's job
    too (the master's ``gather_job_timeout``, 30 s, is for orchestrations): a silent
    minion costs a report twice the timeout per question, not half a minute more."""
    with __utils__["paas_master.minions"](__opts__) as asked:
        return asked.ask(minions, function, timeout=timeout, gather_job_timeout=timeout)


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


def _quiet_salt_run_teardown() -> None:
    # A master whose utils modules are not synced still gets its report (exit 3, saying
    # why), only not a quiet one.
    quiet = __utils__.get("paas_master.quiet_salt_run_teardown")
    if quiet is not None:
        quiet(__opts__, __virtualname__)
