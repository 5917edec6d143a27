"""
The verdicts of ``salt-run paas.status`` and ``paas.certs`` (``_runners/paas.py``) under
Salt's loader dunders, from what the minions answer: every kind of problem named, and
the severity and exit code it gives (0 ok, 1 degraded, 2 down, 3 unknown); reports that
are data whatever the output, and that name the ``paas`` outputter.

The minions' answers stand in for ``paas_gateway.status``, ``etcd_cluster.overview``,
``paas_control_plane.status``, ``paas_pki.certificates`` and ``paas_control_plane.certificates``;
the topology is the lab's.

And ``salt-run paas.renew``: the inventory's due certificates renewed node by node through
the master's client to the minions (a stand-in that records each ``state.apply`` and
answers ``etcd_cluster.health``), etcd nodes only while etcd is whole, the first failure
stopping the run and fired as an event, each run recorded in the master's state
directory, and nothing done when not due, during a disaster recovery remediation or
while another renewal runs.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Callable

import pytest
import salt.utils.event
from salt.exceptions import SaltClientError

from tests.conftest import utils_of

NOT_RUN = "the master's renewal has not run (salt-run paas.renew)"
UTILS_FUNCTIONS = (
    "validate",
    "with_defaults",
    "node_ids",
    "master_id",
    "kubernetes",
    "dr",
    "nodes",
)
GATEWAYS = ("gw1", "gw2")
ETCD = ("etcd1", "etcd2", "etcd3")
CPS = ("cp1", "cp2", "cp3")
PROFILES = {
    **{node: ("etcd-server", "etcd-peer", "etcd-healthcheck-client") for node in ETCD},
    **{node: ("kube-apiserver-etcd-client",) for node in ("cp1", "cp2", "cp3")},
    "paas-master": ("etcd-admin-client",),
}
KUBEADM = ("admin.conf", "apiserver", "ca")
ADMIN_CONF = "/etc/kubernetes/admin.conf"
FIX = "run salt-run state.orchestrate orch.kubernetes"
NOT_READY = "HTTP 500: etcd failed: reason withheld"
SERVERS = [
    ("kube-apiserver", "cp1"),
    ("kube-apiserver", "cp2"),
    ("kube-apiserver", "cp3"),
    ("ingress-http", "worker1"),
    ("ingress-https", "worker1"),
]


def gateway(holds: bool) -> dict:
    """One gateway's paas_gateway.status, every daemon active, every server UP."""
    return {
        "vips": {
            "public": {"address": "198.18.0.10", "interface": "eth0", "held": holds},
            "private": {"address": "198.18.1.10", "interface": "eth1", "held": holds},
        },
        "vrrp": {"state": "MASTER" if holds else "BACKUP", "since": 1.0},
        "services": {"keepalived": True, "haproxy": True, "conntrackd": True, "nftables": True},
        "backends": [
            {"proxy": proxy, "server": server, "status": "UP", "check": "L7OK", "since_s": 9}
            for proxy, server in SERVERS
        ],
    }


def member(name: str) -> dict:
    """One healthy voter as etcd_cluster.overview lists it."""
    return {
        "id": f"{name[-1]}a",
        "learner": False,
        "healthy": True,
        "error": None,
        "is_leader": name == "etcd1",
        "db_size": 20480,
        "raft_index": 42,
        "version": "3.5.16",
    }


def overview() -> dict:
    return {
        "healthy": True,
        "quorum": True,
        "voters": 3,
        "healthy_voters": 3,
        "leader": "etcd1",
        "alarms": [],
        "members": {name: member(name) for name in ETCD},
    }


def certificate(node: str, profile: str, days_left: int = 364) -> dict:
    """One entry of paas_pki.certificates."""
    return {
        "node": node,
        "profile": profile,
        "path": f"/etc/paas/pki/{profile}.crt",
        "serial": "1A:2B:3C:4D:5E:6F:70:81:92:A3",
        "subject": f"CN={node}",
        "names": [],
        "not_after": "2027-11-25 06:00:00",
        "days_left": days_left,
        "renewal_due": days_left <= 30,
        "problems": [],
    }


def kubernetes_node(name: str) -> dict:
    """One Node as paas_control_plane.status lists it: Ready, its Lease renewed 4 s ago."""
    return {
        "name": name,
        "ready": True,
        "condition": "True",
        "reason": None,
        "roles": ["control-plane"] if name in CPS else [],
        "kubelet": "v1.34.2",
        "age_s": 3600,
        "lease_age_s": 4,
    }


def kubernetes_status(cp: str) -> dict:
    """A control plane's paas_control_plane.status: every Node Ready, every apiserver ready."""
    return {
        "node": cp,
        "initialized": True,
        "nodes": [kubernetes_node(name) for name in (*CPS, "worker1")],
        "apiserver": {
            check: {"url": f"https://{address}:6443/readyz", "ready": True, "error": None}
            for check, address in (
                ("direct", f"198.18.1.3{cp[-1]}"),
                ("private_vip", "198.18.1.10"),
                ("public_vip", "198.18.0.10"),
            )
        },
    }


def kubeadm_certificate(node: str, name: str, days_left: int = 364) -> dict:
    """One entry of paas_control_plane.certificates."""
    return {
        **certificate(node, name, days_left),
        "path": f"/etc/kubernetes/pki/{name}.crt",
        "source": "kubeadm",
        "signed_by": None if name == "ca" else "ca",
    }


def healthy_replies() -> dict:
    """What every minion answers, by function, on a healthy platform: gw1 holds the VIPs."""
    nodes = ["gw1", "gw2", *ETCD, "cp1", "cp2", "cp3", "worker1", "paas-master"]
    return {
        "paas_gateway.status": {"gw1": gateway(True), "gw2": gateway(False)},
        "etcd_cluster.overview": {name: overview() for name in ETCD},
        "paas_control_plane.status": {cp: kubernetes_status(cp) for cp in CPS},
        "paas_pki.certificates": {
            node: [certificate(node, profile) for profile in PROFILES.get(node, ())]
            for node in nodes
        },
        "paas_control_plane.certificates": {
            cp: [kubeadm_certificate(cp, name) for name in KUBEADM] for cp in CPS
        },
    }


def etcd_health() -> dict:
    """etcd_cluster.health on the master's minion: every member healthy."""
    return {
        "healthy": True,
        "quorum": True,
        "voters": 3,
        "healthy_voters": 3,
        "members": {name: {"healthy": True, "error": None} for name in ETCD},
    }


class Minions:
    """The master's client to the minions (``paas_master.minions``) as paas.renew uses it:
    what it asked whom, in order (``(minion, "etcd_cluster.health")``, ``(node,
    "state.apply", sls)``, ``("gw1,gw2", "paas_gateway.server_state", proxy, server,
    state)``); etcd's health as the master's minion sees it, and each node's state run
    (a failed state's comment, or no return at all)."""

    def __init__(self):
        self.calls: list[tuple] = []
        self.health: dict | str = etcd_health()
        self.failures: dict[str, str] = {}
        self.silent: set[str] = set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def call(self, minion, function, arg=(), kwarg=None, *, timeout=60):
        self.calls.append((minion, function))
        assert function == "etcd_cluster.health", function
        return copy.deepcopy(self.health)

    def ask(self, minions, function, arg=(), kwarg=None, *, timeout=60, gather_job_timeout=None):
        self.calls.append((",".join(minions), function, *arg))
        assert function == "paas_gateway.server_state", function
        proxy, server, state = arg
        return {
            minion: "haproxy's admin socket: connection refused"
            if minion in self.silent
            else {"proxy": proxy, "server": server, "status": state.upper(), "check": "L7OK"}
            for minion in minions
        }

    def run(self, minions, function, arg=(), kwarg=None, *, timeout=60, gather_job_timeout=None):
        (minion,) = minions
        self.calls.append((minion, function, *arg))
        if minion in self.silent:
            return {minion: "no reply"}
        failed = minion in self.failures
        states = {
            "pki_|-pki-certificates_|-pki_|-present": {
                "result": not failed,
                "comment": self.failures.get(minion, "The certificates are current."),
                "changes": {},
            }
        }
        return {minion: {"ret": states, "retcode": 2 if failed else 0}}


@pytest.fixture(scope="module")
def runner(import_repo_module):
    return import_repo_module("_runners/paas.py", "paas_runner_module")


@pytest.fixture
def context() -> dict:
    return {}


@pytest.fixture(scope="module")
def renewal_utils(import_repo_module) -> dict:
    """What paas.renew uses of ``__utils__`` beyond the reports': its plan and the reading
    of a state run's return."""
    return {
        **utils_of(
            import_repo_module("_utils/paas_renewal.py", "paas_renewal_utils"), "paas_renewal"
        ),
        **utils_of(
            import_repo_module("_utils/paas_orchestration.py", "paas_orchestration_utils"),
            "paas_orchestration",
        ),
    }


@pytest.fixture
def minions() -> Minions:
    return Minions()


@pytest.fixture
def configure_loader_modules(
    runner, topology_utils, master_utils, renewal_utils, context, minions, tmp_path
):
    utils = {f"paas_topology.{name}": getattr(topology_utils, name) for name in UTILS_FUNCTIONS}
    utils.update(master_utils)
    utils.update(renewal_utils)
    # The reports ask through _ask (the asked fixture); paas.renew's steps through this.
    utils["paas_master.minions"] = lambda opts: minions
    opts = {
        "id": "paas-master_master",
        "utils_dirs": ["/srv/paas/_utils"],
        "sock_dir": str(tmp_path / "sock"),
    }
    return {runner: {"__utils__": utils, "__opts__": opts, "__context__": context}}


@pytest.fixture
def replies() -> dict:
    """The minions' answers; a test changes them before it asks for a report."""
    return healthy_replies()


@pytest.fixture
def pillar(lab_topology, tmp_path) -> dict:
    """The master's pillar; a test changes it before it asks for a report. The master's
    records (the renewals') in the test's own directory."""
    lab_topology["dr"]["receive_dir"] = str(tmp_path / "dr" / "snapshots")
    return {"paas": lab_topology}


def _renewal_ran(pillar: dict, ago_s: float, failed: str | None = None) -> None:
    """The master's renewal ran ``ago_s`` seconds ago (renewals.json)."""
    state = os.path.join(os.path.dirname(pillar["paas"]["dr"]["receive_dir"]), "state")
    os.makedirs(state, exist_ok=True)
    run = {"time": time.time() - ago_s, "steps": [], "failed": failed, "skipped": None}
    with open(os.path.join(state, "renewals.json"), "w", encoding="utf-8") as handle:
        json.dump([run], handle)


@pytest.fixture
def asked(runner, monkeypatch, replies, pillar, master_pillar) -> list[tuple[list[str], str]]:
    """The minions the runner asks, through the stand-in answers: what it asked whom."""
    calls = []

    def ask(minions, function, timeout):
        calls.append((list(minions), function))
        return {
            minion: copy.deepcopy(replies[function][minion])
            for minion in minions
            if minion in replies[function]
        }

    monkeypatch.setattr(runner, "_ask", ask)
    master_pillar(pillar)
    return calls


def _down_server(server: str, *gateways: str, status: str = "DOWN") -> Callable[[dict], None]:
    def change(replies):
        for name in gateways:
            for backend in replies["paas_gateway.status"][name]["backends"]:
                if backend["server"] == server:
                    backend.update(status=status, check="L4CON")

    return change


def _gateway(name: str, **changes) -> Callable[[dict], None]:
    def change(replies):
        reply = replies["paas_gateway.status"][name]
        for key, value in changes.items():
            if key == "holds":
                for vip in reply["vips"].values():
                    vip["held"] = value
            elif key == "holds_public":
                reply["vips"]["public"]["held"] = value
            elif key == "holds_private":
                reply["vips"]["private"]["held"] = value
            elif key in reply["services"]:
                reply["services"][key] = value
            else:
                reply[key] = value

    return change


def _silent(function: str, name: str, answer: str | None = None) -> Callable[[dict], None]:
    def change(replies):
        if answer is None:
            del replies[function][name]
        else:
            replies[function][name] = answer

    return change


def _etcd(change_overview) -> Callable[[dict], None]:
    def change(replies):
        for reply in replies["etcd_cluster.overview"].values():
            change_overview(reply)

    return change


def _unhealthy(name: str, error: str = "context deadline exceeded") -> Callable[[dict], None]:
    def change(cluster):
        cluster["members"][name].update(healthy=False, error=error, is_leader=False)
        cluster["healthy"] = False
        cluster["healthy_voters"] -= 1
        cluster["quorum"] = cluster["healthy_voters"] >= 2

    return change


def _certificate(node: str, profile: str, **changes) -> Callable[[dict], None]:
    def change(replies):
        (row,) = [r for r in replies["paas_pki.certificates"][node] if r["profile"] == profile]
        row.update(changes)
        # As paas_pki.certificates decides it, with the topology's 30 days.
        row["renewal_due"] = row["days_left"] <= 30

    return change


def _kubernetes(cp: str, **changes) -> Callable[[dict], None]:
    def change(replies):
        reply = replies["paas_control_plane.status"][cp]
        for key, value in changes.items():
            if value is None:
                reply.pop(key, None)
            else:
                reply[key] = value

    return change


def _not_initialized(*cps: str) -> Callable[[dict], None]:
    return _both(
        *(
            _kubernetes(
                cp, initialized=False, reason=f"{ADMIN_CONF} is absent", nodes=None, apiserver=None
            )
            for cp in cps
        )
    )


def _apiserver(cp: str, check: str, error: str = NOT_READY) -> Callable[[dict], None]:
    def change(replies):
        replies["paas_control_plane.status"][cp]["apiserver"][check].update(
            ready=False, error=error
        )

    return change


def _node(name: str, **changes) -> Callable[[dict], None]:
    """Change a Node as every control plane lists it; ``gone=True`` removes it."""

    def change(replies):
        for reply in replies["paas_control_plane.status"].values():
            if "nodes" not in reply:
                continue
            nodes = reply["nodes"]
            (row,) = [row for row in nodes if row["name"] == name] or [None]
            if changes.get("gone"):
                nodes.remove(row)
            elif row is None:
                nodes.append({**kubernetes_node(name), **changes})
            else:
                row.update(changes)

    return change


def _kubeadm(cp: str, name: str, **changes) -> Callable[[dict], None]:
    def change(replies):
        (row,) = [r for r in replies["paas_control_plane.certificates"][cp] if r["profile"] == name]
        row.update(changes)
        row["renewal_due"] = row["days_left"] <= 30

    return change


def _both(*changes) -> Callable[[dict], None]:
    def change(replies):
        for one in changes:
            one(replies)

    return change


PROBLEMS = [
    # Gateways.
    (
        _gateway("gw2", holds=True, vrrp={"state": "MASTER", "since": 2.0}),
        "down",
        [
            "split brain: gw1 and gw2 each hold the public VIP",
            "split brain: gw1 and gw2 each hold the private VIP",
        ],
    ),
    (
        _gateway("gw1", holds=False),
        "down",
        ["no gateway holds the public VIP", "no gateway holds the private VIP"],
    ),
    (
        _both(_gateway("gw1", holds_private=False), _gateway("gw2", holds_private=True)),
        "down",
        "the VIPs are on different gateways: public on gw1, private on gw2",
    ),
    (
        _silent("paas_gateway.status", "gw2"),
        "degraded",
        "gw2 did not answer: no reply",
    ),
    (
        _silent("paas_gateway.status", "gw2", "Minion did not return. [No response]"),
        "degraded",
        "gw2 did not answer: Minion did not return. [No response]",
    ),
    (_gateway("gw2", conntrackd=False), "degraded", "gw2: conntrackd is not active"),
    (_gateway("gw2", keepalived=False), "degraded", "gw2: keepalived is not active"),
    (_gateway("gw1", nftables=False), "degraded", "gw1: nftables is not active"),
    (
        _down_server("cp2", "gw1", "gw2"),
        "degraded",
        [
            "gw1: haproxy's kube-apiserver server cp2 is DOWN (check: L4CON)",
            "gw2: haproxy's kube-apiserver server cp2 is DOWN (check: L4CON)",
        ],
    ),
    (
        _down_server("cp2", "gw2", status="MAINT"),
        "degraded",
        "gw2: haproxy's kube-apiserver server cp2 is MAINT (check: L4CON)",
    ),
    (
        _gateway("gw2", haproxy=False, backends=[], backends_error="connection refused"),
        "degraded",
        ["gw2: haproxy is not active", "gw2: haproxy's backends: connection refused"],
    ),
    (
        _gateway("gw1", haproxy=False, backends=[], backends_error="connection refused"),
        "down",
        [
            "gw1: haproxy's backends: connection refused",
            "gw1 holds a VIP and its haproxy is not active",
        ],
    ),
    (
        _both(*(_down_server(cp, "gw1") for cp in CPS)),
        "down",
        [
            *(f"gw1: haproxy's kube-apiserver server {cp} is DOWN (check: L4CON)" for cp in CPS),
            "gw1 holds a VIP and no server of its haproxy's kube-apiserver is UP",
        ],
    ),
    (
        _down_server("worker1", "gw2"),
        "degraded",
        [
            "gw2: haproxy's ingress-http server worker1 is DOWN (check: L4CON)",
            "gw2: haproxy's ingress-https server worker1 is DOWN (check: L4CON)",
        ],
    ),
    # etcd.
    (
        _etcd(_unhealthy("etcd3")),
        "degraded",
        "etcd member etcd3 is unhealthy: context deadline exceeded",
    ),
    (
        _etcd(lambda cluster: (_unhealthy("etcd2")(cluster), _unhealthy("etcd3")(cluster))),
        "down",
        [
            "etcd has no quorum: 1 of 3 voting members healthy",
            "etcd member etcd2 is unhealthy: context deadline exceeded",
            "etcd member etcd3 is unhealthy: context deadline exceeded",
        ],
    ),
    (
        _both(*(_silent("etcd_cluster.overview", name) for name in ETCD)),
        "down",
        "no etcd node answered: etcd1: no reply; etcd2: no reply; etcd3: no reply",
    ),
    (
        _etcd(lambda cluster: cluster["alarms"].append({"member": "etcd2", "alarm": "NOSPACE"})),
        "degraded",
        "etcd alarm NOSPACE on etcd2",
    ),
    (
        _etcd(lambda cluster: cluster["members"]["etcd3"].update(learner=True)),
        "degraded",
        "etcd member etcd3 is a learner, not yet promoted",
    ),
    (
        _etcd(lambda cluster: cluster["members"].pop("etcd3")),
        "degraded",
        "etcd node etcd3 of the topology is not a member of the cluster",
    ),
    (
        _etcd(lambda cluster: cluster["members"].update(etcd9=member("etcd9"))),
        "degraded",
        "etcd member etcd9 is not an etcd node of the topology",
    ),
    (
        _etcd(lambda cluster: cluster.update(leader=None)),
        "degraded",
        "etcd's members do not agree on a leader",
    ),
    # Kubernetes.
    (_silent("paas_control_plane.status", "cp2"), "degraded", "cp2 did not answer: no reply"),
    (
        _silent(
            "paas_control_plane.status", "cp1", "'paas_control_plane.status' is not available."
        ),
        "degraded",
        "cp1 did not answer: 'paas_control_plane.status' is not available.",
    ),
    (
        _both(*(_silent("paas_control_plane.status", cp) for cp in CPS)),
        "down",
        "no control plane answered: cp1: no reply; cp2: no reply; cp3: no reply",
    ),
    (
        _not_initialized(*CPS),
        "degraded",
        f"Kubernetes is not initialized: {ADMIN_CONF} is on none of cp1, cp2, cp3; {FIX}",
    ),
    (
        _both(_not_initialized("cp3"), _node("cp3", gone=True)),
        "degraded",
        [
            f"cp3 is not a control plane of the cluster yet ({ADMIN_CONF} is absent); {FIX}",
            f"cp3 is not a Node of the cluster; {FIX}",
        ],
    ),
    (
        _kubernetes(
            "cp1",
            error=f"the kubeconfig {ADMIN_CONF} has no current-context",
            nodes=None,
            apiserver=None,
        ),
        "degraded",
        f"cp1: the kubeconfig {ADMIN_CONF} has no current-context",
    ),
    (
        _kubernetes("cp1", nodes=None, nodes_error="HTTP 403 Forbidden"),
        "degraded",
        "cp1 could not list the Nodes: HTTP 403 Forbidden",
    ),
    (
        _both(*(_kubernetes(cp, nodes=None, nodes_error="timed out") for cp in CPS)),
        "down",
        [
            *(f"{cp} could not list the Nodes: timed out" for cp in CPS),
            "no control plane could list the Nodes",
        ],
    ),
    (
        _apiserver("cp2", "direct"),
        "degraded",
        f"cp2: its apiserver is not ready: {NOT_READY}",
    ),
    (
        _apiserver("cp3", "public_vip", "Connection refused"),
        "degraded",
        "cp3: the apiserver through the public VIP is not ready: Connection refused",
    ),
    (
        _both(*(_apiserver(cp, "private_vip", "timed out") for cp in CPS)),
        "down",
        [
            *(f"{cp}: the apiserver through the private VIP is not ready: timed out" for cp in CPS),
            "no apiserver is ready through the private VIP 198.18.1.10",
        ],
    ),
    (
        _both(*(_apiserver(cp, "public_vip", "timed out") for cp in CPS)),
        "down",
        [
            *(f"{cp}: the apiserver through the public VIP is not ready: timed out" for cp in CPS),
            "no apiserver is ready through the public VIP 198.18.0.10",
        ],
    ),
    (
        _node("cp2", ready=False, condition="False", reason="KubeletNotReady: runtime down"),
        "degraded",
        "Node cp2 is not Ready: KubeletNotReady: runtime down",
    ),
    (
        _node("worker1", ready=False, condition="Unknown", reason=None),
        "down",
        [
            "Node worker1 is not Ready: Unknown",
            "no worker is a Ready Node: nothing can run the platform's workloads",
        ],
    ),
    (
        _node("cp1", lease_age_s=51),
        "degraded",
        "Node cp1's kubelet last renewed its Lease 51 s ago "
        "(more than 50 s: it is stopped or cannot reach the API)",
    ),
    (
        _node("worker1", lease_age_s=51),
        "down",
        [
            "Node worker1's kubelet last renewed its Lease 51 s ago "
            "(more than 50 s: it is stopped or cannot reach the API)",
            "no worker is a Ready Node: nothing can run the platform's workloads",
        ],
    ),
    (
        _node("cp3", lease_age_s=None),
        "degraded",
        "Node cp3 has no Lease in kube-node-lease: its kubelet renews none",
    ),
    (
        _node("worker1", gone=True),
        "down",
        [
            f"worker1 is not a Node of the cluster; {FIX}",
            "no worker is a Ready Node: nothing can run the platform's workloads",
        ],
    ),
    (_node("cp3", gone=True), "degraded", f"cp3 is not a Node of the cluster; {FIX}"),
    (_node("worker9"), "degraded", "Node worker9 is not a node of the topology"),
    (_node("cp2", roles=[]), "degraded", "Node cp2 lacks the control-plane role"),
    (
        _node("worker1", roles=["control-plane"]),
        "degraded",
        "Node worker1 has the control-plane role; the topology makes it a worker",
    ),
    (
        _node("worker1", kubelet="v1.34.1"),
        "degraded",
        "Node worker1 runs kubelet v1.34.1, the topology's is v1.34.2",
    ),
    # Certificates.
    (
        _certificate(
            "etcd2", "etcd-peer", days_left=-1, problems=["it expired on 2026-11-25 06:00:00"]
        ),
        "down",
        "etcd2 etcd-peer: it expired on 2026-11-25 06:00:00",
    ),
    (
        _certificate("etcd2", "etcd-peer", days_left=-3, not_after="2026-11-23 06:00:00"),
        "down",
        "etcd2 etcd-peer: it expired on 2026-11-23 06:00:00",
    ),
    (
        _certificate("cp1", "kube-apiserver-etcd-client", days_left=12),
        "degraded",
        "cp1 kube-apiserver-etcd-client: 12 days left, inside the renewal window (30 days), "
        f"and {NOT_RUN}",
    ),
    (
        _certificate("cp1", "kube-apiserver-etcd-client", days_left=30),
        "degraded",
        "cp1 kube-apiserver-etcd-client: 30 days left, inside the renewal window (30 days), "
        f"and {NOT_RUN}",
    ),
    (
        _certificate("etcd1", "etcd-server", problems=["it is not signed by the platform's CA"]),
        "degraded",
        "etcd1 etcd-server: it is not signed by the platform's CA",
    ),
    (_silent("paas_pki.certificates", "cp3"), "degraded", "cp3 did not answer: no reply"),
    (
        _kubeadm("cp1", "apiserver", days_left=12),
        "degraded",
        f"cp1 kubeadm apiserver: 12 days left, inside the renewal window (30 days), and {NOT_RUN}",
    ),
    (
        _kubeadm(
            "cp2",
            "ca",
            days_left=-1,
            not_after="2026-11-25 06:00:00",
            problems=["it expired on 2026-11-25 06:00:00"],
        ),
        "down",
        "cp2 kubeadm ca: it expired on 2026-11-25 06:00:00",
    ),
    (
        _kubeadm("cp3", "admin.conf", problems=["it is not signed by kubeadm's ca"]),
        "degraded",
        "cp3 kubeadm admin.conf: it is not signed by kubeadm's ca",
    ),
    (
        _silent("paas_control_plane.certificates", "cp3"),
        "degraded",
        "cp3 kubeadm: did not answer: no reply",
    ),
    (
        _silent(
            "paas_pki.certificates", "paas-master", "'paas_pki.certificates' is not available."
        ),
        "degraded",
        "paas-master did not answer: 'paas_pki.certificates' is not available.",
    ),
]


@pytest.fixture(
    params=PROBLEMS, ids=lambda case: case[2] if isinstance(case[2], str) else case[2][-1]
)
def problem(request, replies) -> tuple[str, list[str]]:
    """One kind of problem made in the answers: its severity and the problems named."""
    change, severity, named = request.param
    change(replies)
    return severity, [named] if isinstance(named, str) else named


def test_each_problem_is_named_and_gives_its_severity_and_exit_code(
    runner, asked, context, problem
):
    severity, named = problem

    report = runner.status()

    assert report["problems"] == named
    assert report["severity"] == severity
    assert report["retcode"] == context["retcode"] == {"degraded": 1, "down": 2}[severity]


def test_a_healthy_platform_is_ok_and_exits_0(runner, asked, context):
    report = runner.status()

    assert report["severity"] == "ok" and report["problems"] == []
    assert report["retcode"] == context["retcode"] == 0
    assert report["outputter"] == "paas"
    assert report["gateways"]["holder"] == "gw1"
    assert report["etcd"]["seen_by"] == "etcd1" and report["etcd"]["leader"] == "etcd1"
    assert report["kubernetes"]["initialized"] is True
    assert report["kubernetes"]["seen_by"] == "cp1"
    assert [node["name"] for node in report["kubernetes"]["nodes"]] == [*CPS, "worker1"]
    assert list(report["kubernetes"]["apiservers"]) == list(CPS)
    assert len(report["pki"]["certificates"]) == 13 + len(CPS) * len(KUBEADM)
    assert report["pki"]["renew_days"] == 30
    for section in ("gateways", "etcd", "kubernetes", "pki"):
        assert report[section]["severity"] == "ok" and report[section]["problems"] == []


def test_the_worst_problem_decides_and_every_problem_is_listed_in_section_order(
    runner, asked, replies, context
):
    _down_server("cp2", "gw2")(replies)
    _etcd(_unhealthy("etcd3"))(replies)
    _certificate("etcd2", "etcd-peer", days_left=-1, problems=["it expired"])(replies)

    report = runner.status()

    assert report["severity"] == "down" and report["retcode"] == context["retcode"] == 2
    assert report["problems"] == [
        "gw2: haproxy's kube-apiserver server cp2 is DOWN (check: L4CON)",
        "etcd member etcd3 is unhealthy: context deadline exceeded",
        "etcd2 etcd-peer: it expired",
    ]
    assert [report[part]["severity"] for part in ("gateways", "etcd", "pki")] == [
        "degraded",
        "degraded",
        "down",
    ]


def test_a_silent_gateway_is_named_once_though_two_parts_see_it(runner, asked, replies):
    _silent("paas_gateway.status", "gw2")(replies)
    _silent("paas_pki.certificates", "gw2")(replies)

    report = runner.status()

    assert report["problems"] == ["gw2 did not answer: no reply"]
    assert report["gateways"]["problems"] == report["pki"]["problems"] == report["problems"]


def test_a_silent_gateway_leaves_the_holder_unclaimed(runner, asked, replies):
    _silent("paas_gateway.status", "gw2")(replies)

    gateways = runner.status()["gateways"]

    assert gateways["holder"] is None
    assert gateways["holders"] == {"public": ["gw1"], "private": ["gw1"]}


def test_a_backend_down_leaves_the_holder_named(runner, asked, replies):
    _down_server("cp2", "gw1", "gw2")(replies)

    report = runner.status()

    assert report["gateways"]["holder"] == "gw1"
    assert report["gateways"]["split_brain"] is False
    assert len(report["problems"]) == 2


def test_a_split_brain_is_flagged_and_claims_no_holder(runner, asked, replies):
    _gateway("gw2", holds=True)(replies)

    gateways = runner.status()["gateways"]

    assert gateways["split_brain"] is True and gateways["holder"] is None
    assert gateways["problems"] == [
        "split brain: gw1 and gw2 each hold the public VIP",
        "split brain: gw1 and gw2 each hold the private VIP",
    ]


@pytest.mark.parametrize("status", ["UP 1/3", "no check"])
def test_a_server_that_still_serves_is_no_problem(runner, asked, replies, status):
    _down_server("cp2", "gw1", "gw2", status=status)(replies)

    assert runner.status()["severity"] == "ok"


def test_etcd_is_seen_by_the_first_etcd_node_that_answers(runner, asked, replies):
    _silent("etcd_cluster.overview", "etcd1", "ERROR: etcd1 unreachable")(replies)

    report = runner.status()

    assert report["etcd"]["seen_by"] == "etcd2"
    assert report["severity"] == "ok"


def test_the_runner_asks_the_gateways_the_etcd_nodes_the_control_planes_and_every_node(
    runner, asked
):
    runner.status()

    assert asked == [
        (["gw1", "gw2"], "paas_gateway.status"),
        (list(ETCD), "etcd_cluster.overview"),
        (list(CPS), "paas_control_plane.status"),
        (
            ["gw1", "gw2", *ETCD, "cp1", "cp2", "cp3", "worker1", "paas-master"],
            "paas_pki.certificates",
        ),
        (list(CPS), "paas_control_plane.certificates"),
    ]


def test_the_nodes_are_those_the_first_control_plane_that_lists_them_sees(runner, asked, replies):
    _kubernetes("cp1", nodes=None, nodes_error="HTTP 403 Forbidden")(replies)
    replies["paas_control_plane.status"]["cp2"]["nodes"][0]["age_s"] = 7

    kubernetes = runner.status()["kubernetes"]

    assert kubernetes["seen_by"] == "cp2"
    assert kubernetes["nodes"][0] == {**kubernetes_node("cp1"), "age_s": 7}


def test_a_lease_renewed_within_the_grace_period_is_no_problem(runner, asked, replies):
    _node("worker1", lease_age_s=50)(replies)

    assert runner.status()["severity"] == "ok"


def test_a_cluster_not_initialized_reports_no_nodes_and_no_apiservers(runner, asked, replies):
    _not_initialized(*CPS)(replies)

    kubernetes = runner.status()["kubernetes"]

    assert kubernetes["initialized"] is False and kubernetes["seen_by"] is None
    assert kubernetes["nodes"] == []
    assert kubernetes["apiservers"] == dict.fromkeys(CPS)


def test_a_silent_control_plane_is_named_once_though_three_parts_ask_it(runner, asked, replies):
    for function in ("paas_control_plane.status", "paas_pki.certificates"):
        _silent(function, "cp2")(replies)
    _silent("paas_control_plane.certificates", "cp2")(replies)

    report = runner.status()

    assert report["problems"] == ["cp2 did not answer: no reply"]
    assert report["kubernetes"]["apiservers"]["cp2"] is None


def test_certs_reports_the_inventory_with_its_own_verdict(runner, asked, replies, context):
    _certificate("cp1", "kube-apiserver-etcd-client", days_left=12)(replies)

    report = runner.certs()

    assert report["severity"] == "degraded" and report["retcode"] == context["retcode"] == 1
    assert report["problems"] == [
        "cp1 kube-apiserver-etcd-client: 12 days left, inside the renewal window (30 days), "
        f"and {NOT_RUN}"
    ]
    assert report["renew_days"] == 30 and report["outputter"] == "paas"
    assert [(row["node"], row["profile"]) for row in report["certificates"]] == [
        (node, profile)
        for node in ("gw1", "gw2", *ETCD, *CPS, "worker1", "paas-master")
        for profile in (*PROFILES.get(node, ()), *(KUBEADM if node in CPS else ()))
    ]
    assert [function for _, function in asked] == [
        "paas_pki.certificates",
        "paas_control_plane.certificates",
    ]


def test_a_certificate_inside_its_window_is_no_problem_while_the_renewal_runs(
    runner, asked, replies, pillar
):
    _certificate("cp1", "kube-apiserver-etcd-client", days_left=12)(replies)
    pillar["paas"]["pki"]["renew_check_minutes"] = 60
    _renewal_ran(pillar, ago_s=600)

    report = runner.certs()

    assert (report["severity"], report["problems"], report["retcode"]) == ("ok", [], 0)
    (row,) = [
        row
        for row in report["certificates"]
        if (row["node"], row["profile"]) == ("cp1", "kube-apiserver-etcd-client")
    ]
    assert row["renewal_due"] is True and row["renews"] is not None
    assert report["renewal"]["stalled"] is None and report["renewal"]["every_minutes"] == 60


@pytest.mark.parametrize(
    ("ago_s", "failed", "why"),
    [
        (600, "etcd2 did not return: no reply", "the master's last renewal failed: etcd2 did"),
        (3 * 3600, None, "minutes ago (is its schedule on?)"),
    ],
)
def test_a_certificate_inside_its_window_is_a_problem_when_the_renewal_fails_or_stops(
    runner, asked, replies, pillar, ago_s, failed, why
):
    _certificate("cp1", "kube-apiserver-etcd-client", days_left=12)(replies)
    pillar["paas"]["pki"]["renew_check_minutes"] = 60
    _renewal_ran(pillar, ago_s=ago_s, failed=failed)

    report = runner.certs()

    assert report["severity"] == "degraded"
    (problem,) = report["problems"]
    assert problem.startswith("cp1 kube-apiserver-etcd-client: 12 days left") and why in problem


def test_certs_of_a_healthy_platform_are_ok(runner, asked, context):
    report = runner.certs()

    assert (report["severity"], report["problems"], report["retcode"]) == ("ok", [], 0)
    assert context["retcode"] == 0


def test_certs_lists_a_silent_minion_as_a_row_with_its_problem(runner, asked, replies):
    _silent("paas_pki.certificates", "etcd3")(replies)

    rows = [row for row in runner.certs()["certificates"] if row["node"] == "etcd3"]

    assert rows == [{"node": "etcd3", "profile": "-", "problems": ["did not answer: no reply"]}]


@pytest.mark.parametrize("function", ["status", "certs"])
def test_without_the_utils_module_a_report_is_unknown_and_says_why(
    runner, asked, context, function
):
    runner.__utils__.clear()

    report = getattr(runner, function)()

    assert report["severity"] == "unknown" and report["retcode"] == context["retcode"] == 3
    (problem,) = report["problems"]
    assert "the paas_topology utils module is not loaded" in problem
    assert "/srv/paas/_utils" in problem
    assert asked == []


def test_validate_without_the_utils_module_exits_3_saying_why(runner, context):
    runner.__utils__.clear()

    report = runner.validate(topology="pillar.example")

    assert report["valid"] is None and report["retcode"] == context["retcode"] == 3
    assert "the paas_topology utils module is not loaded" in report["errors"][0]


@pytest.mark.parametrize("function", ["status", "certs"])
def test_an_invalid_topology_gives_an_unknown_report_with_its_errors(
    runner, asked, pillar, context, function
):
    pillar["paas"]["nodes"][3]["addresses"]["private"] = "198.18.2.5"

    report = getattr(runner, function)()

    assert report["severity"] == "unknown" and context["retcode"] == 3
    assert report["problems"] == [
        "invalid topology (salt-run paas.validate): node etcd2: paas:nodes[3]:addresses:"
        "private: 198.18.2.5 is outside the private network 198.18.1.0/24"
    ]
    assert asked == []


def test_a_pillar_without_topology_gives_an_unknown_report(runner, asked, pillar):
    del pillar["paas"]

    report = runner.status()

    assert report["severity"] == "unknown"
    assert report["problems"] == [
        "paas: the pillar has no paas key (is pillar/top.sls assigning it?)"
    ]


def test_a_master_that_cannot_publish_gives_an_unknown_report(runner, asked, monkeypatch):
    def unreachable(minions, function, timeout):
        raise SaltClientError("The salt master could not be contacted. Is master running?")

    monkeypatch.setattr(runner, "_ask", unreachable)

    report = runner.status()

    assert report["severity"] == "unknown" and report["retcode"] == 3
    assert report["problems"] == [
        "the master could not ask its minions: "
        "The salt master could not be contacted. Is master running?"
    ]


def test_validate_exits_1_for_an_invalid_topology_and_0_for_a_valid_one(
    runner, asked, pillar, context
):
    assert runner.validate() == {"valid": True, "source": "pillar", "nodes": 9, "retcode": 0}
    assert context["retcode"] == 0
    pillar["paas"]["nodes"][3]["addresses"]["private"] = "198.18.2.5"

    report = runner.validate()

    assert report["valid"] is False and report["retcode"] == context["retcode"] == 1


@pytest.fixture(scope="module")
def outputter(import_repo_module):
    return import_repo_module("_output/paas.py", "paas_output_module")


@pytest.mark.parametrize("function", ["status", "certs"])
def test_the_table_gives_the_verdict_and_names_every_problem_of_the_data(
    runner, asked, outputter, problem, function
):
    report = getattr(runner, function)()

    lines = outputter.output(report).splitlines()

    assert lines[0].split(" (")[0].lower().endswith(f": {report['severity']}")
    assert [line[4:] for line in lines if line.startswith("  - ")] == report["problems"]


def test_the_table_of_a_healthy_platform_shows_what_the_data_holds(runner, asked, outputter):
    report = runner.status()

    table = outputter.output(report)

    assert table.splitlines()[0] == "paas: ok"
    assert "gateways: both VIPs on gw1\n" in table
    assert "etcd: healthy, 3 of 3 voting members healthy, leader etcd1, alarms: none" in table
    for name in (*GATEWAYS, *ETCD):
        assert f"\n{name} " in table
    assert "kubernetes v1.34.2: 4 Nodes, 4 Ready (seen by cp1)\n" in table
    for name in (*CPS, "worker1"):
        assert f"\n{name} " in table
    assert table.endswith(
        "certificates: 22 on 7 nodes, the soonest ends in 364 days "
        "(etcd1 etcd-server); renewal window 30 days"
    )


# paas.renew: the master's unattended renewal, node by node.

RENEWAL_FAILED = "paas/pki/renewal/failed"


def _state_dir(pillar: dict) -> str:
    """The master's state directory of the test's topology (paas_topology.dr)."""
    return os.path.join(os.path.dirname(pillar["paas"]["dr"]["receive_dir"]), "state")


def _runs(pillar: dict) -> list[dict]:
    """renewals.json, the runs recorded; [] when there is none."""
    path = os.path.join(_state_dir(pillar), "renewals.json")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture
def events(monkeypatch) -> list[tuple[str, dict]]:
    """The events the runner fires on the master's bus: (tag, data)."""
    fired = []

    class Bus:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def fire_event(self, data, tag, timeout=1000):
            fired.append((tag, data))
            return True

    def get_master_event(opts, sock_dir, listen=True, **kwargs):
        assert listen is False and sock_dir == opts["sock_dir"]
        return Bus()

    monkeypatch.setattr(salt.utils.event, "get_master_event", get_master_event)
    return fired


def test_renew_with_nothing_due_applies_nothing_and_records_the_run(
    runner, asked, minions, pillar, context, events
):
    before = time.time()

    report = runner.renew()

    assert report["retcode"] == context["retcode"] == 0
    assert (report["failed"], report["skipped"], report["steps"]) == (None, None, [])
    assert minions.calls == []
    assert [function for _, function in asked] == [
        "paas_pki.certificates",
        "paas_control_plane.certificates",
    ]
    (run,) = _runs(pillar)
    assert run["time"] >= before and run["finished"] >= run["time"]
    assert (run["failed"], run["steps"]) == (None, [])
    assert events == []


def test_renew_applies_each_nodes_states_in_turn_etcd_only_while_it_is_whole(
    runner, asked, minions, replies, pillar, context, events
):
    _certificate("cp3", "kube-apiserver-etcd-client", days_left=12)(replies)
    _kubeadm("cp3", "apiserver", days_left=20)(replies)
    _certificate("etcd2", "etcd-server", days_left=-1)(replies)

    report = runner.renew()

    assert minions.calls == [
        ("paas-master", "etcd_cluster.health"),
        ("etcd2", "state.apply", "pki,etcd.certificates"),
        ("gw1,gw2", "paas_gateway.server_state", "kube-apiserver", "cp3", "drain"),
        ("cp3", "state.apply", "pki,kubernetes.certificates"),
        ("gw1,gw2", "paas_gateway.server_state", "kube-apiserver", "cp3", "ready"),
    ]
    assert report["retcode"] == context["retcode"] == 0 and report["failed"] is None
    assert [(step["node"], step["certificates"]) for step in report["steps"]] == [
        ("etcd2", ["etcd-server"]),
        ("cp3", ["kube-apiserver-etcd-client", "kubeadm apiserver"]),
    ]
    (run,) = _runs(pillar)
    assert [step["node"] for step in run["steps"]] == ["etcd2", "cp3"]
    assert all("seconds" in step for step in run["steps"])
    assert events == []


def test_renew_asks_for_etcds_health_before_each_etcd_node_and_not_before_others(
    runner, asked, minions, replies
):
    _certificate("etcd3", "etcd-peer", days_left=3)(replies)
    _certificate("etcd1", "etcd-peer", days_left=3)(replies)
    _certificate("paas-master", "etcd-admin-client", days_left=3)(replies)
    _kubeadm("cp1", "admin.conf", days_left=3)(replies)

    runner.renew()

    assert minions.calls == [
        ("paas-master", "state.apply", "pki"),
        ("paas-master", "etcd_cluster.health"),
        ("etcd1", "state.apply", "pki,etcd.certificates"),
        ("paas-master", "etcd_cluster.health"),
        ("etcd3", "state.apply", "pki,etcd.certificates"),
        ("gw1,gw2", "paas_gateway.server_state", "kube-apiserver", "cp1", "drain"),
        ("cp1", "state.apply", "kubernetes.certificates"),
        ("gw1,gw2", "paas_gateway.server_state", "kube-apiserver", "cp1", "ready"),
    ]


@pytest.mark.parametrize(
    ("health", "named"),
    [
        (
            {
                **etcd_health(),
                "healthy": False,
                "healthy_voters": 2,
                "members": {
                    **etcd_health()["members"],
                    "etcd3": {"healthy": False, "error": "context deadline exceeded"},
                },
            },
            "etcd3: context deadline exceeded",
        ),
        ("Minion did not return. [No response]", "Minion did not return. [No response]"),
    ],
    ids=["a-member-unhealthy", "the-master-minion-silent"],
)
def test_renew_leaves_an_etcd_node_alone_while_etcd_is_not_whole(
    runner, asked, minions, replies, pillar, context, events, health, named
):
    _certificate("etcd2", "etcd-server", days_left=10)(replies)
    _certificate("cp3", "kube-apiserver-etcd-client", days_left=10)(replies)
    minions.health = health

    report = runner.renew()

    assert minions.calls == [("paas-master", "etcd_cluster.health")]
    assert report["failed"] == (
        f"etcd2: not renewed while etcd is not whole (etcd_cluster.health on paas-master: {named})"
    )
    assert report["retcode"] == context["retcode"] == 1
    assert _runs(pillar)[-1]["failed"] == report["failed"]
    assert [(tag, data["failed"]) for tag, data in events] == [(RENEWAL_FAILED, report["failed"])]


@pytest.mark.parametrize(
    ("fail", "named"),
    [
        (
            lambda minions: minions.failures.update(
                etcd1="etcd1 is a member but not healthy: connection refused"
            ),
            "etcd1 is a member but not healthy: connection refused",
        ),
        (lambda minions: minions.silent.add("etcd1"), "etcd1 did not return: no reply"),
    ],
    ids=["a-state-failed", "no-return"],
)
def test_a_failed_step_stops_the_renewal_names_it_and_fires_the_event(
    runner, asked, minions, replies, pillar, context, events, fail, named
):
    for node in ("etcd1", "etcd2"):
        _certificate(node, "etcd-server", days_left=10)(replies)
    _kubeadm("cp1", "apiserver", days_left=10)(replies)
    fail(minions)

    report = runner.renew()

    assert minions.calls == [
        ("paas-master", "etcd_cluster.health"),
        ("etcd1", "state.apply", "pki,etcd.certificates"),
    ]
    assert report["failed"] == named
    assert report["retcode"] == context["retcode"] == 1
    assert _runs(pillar)[-1]["failed"] == named
    assert [(tag, data["failed"]) for tag, data in events] == [(RENEWAL_FAILED, named)]


@pytest.mark.parametrize(
    ("when_due", "ago_s", "runs"),
    [
        (True, 10, False),
        # Within the schedule's slack of renew_check_minutes (the lab's: 1): due.
        (True, 50, True),
        (True, 600, True),
        # An operator's run is never "not due".
        (False, 10, True),
    ],
    ids=["when-due-recent", "when-due-within-the-slack", "when-due-old", "by-hand-recent"],
)
def test_the_schedules_renewal_runs_only_when_the_last_is_older_than_the_check_interval(
    runner, asked, minions, replies, pillar, context, when_due, ago_s, runs
):
    assert pillar["paas"]["pki"]["renew_check_minutes"] == 1
    _certificate("etcd2", "etcd-server", days_left=10)(replies)
    _renewal_ran(pillar, ago_s=ago_s)

    report = runner.renew(when_due=when_due)

    assert report["retcode"] == context["retcode"] == 0
    if runs:
        assert minions.calls[-1] == ("etcd2", "state.apply", "pki,etcd.certificates")
        assert len(_runs(pillar)) == 2
    else:
        assert report == {"result": None, "reason": "not due", "retcode": 0}
        assert (asked, minions.calls) == ([], [])
        assert len(_runs(pillar)) == 1


def test_renew_does_nothing_while_a_disaster_recovery_remediation_holds_its_lock(
    runner, asked, minions, replies, pillar, context, events
):
    _certificate("etcd2", "etcd-server", days_left=10)(replies)
    os.makedirs(_state_dir(pillar), exist_ok=True)
    with open(os.path.join(_state_dir(pillar), "lock.json"), "w", encoding="utf-8") as handle:
        json.dump({"owner": "paas_dr.remediate restore", "time": time.time()}, handle)

    report = runner.renew()

    assert report["skipped"] == (
        "a disaster recovery remediation (paas_dr.remediate restore) holds its lock"
    )
    assert report["failed"] is None and report["steps"] == []
    assert report["retcode"] == context["retcode"] == 0
    assert (asked, minions.calls, events) == ([], [], [])
    assert _runs(pillar)[-1]["skipped"] == report["skipped"]


def test_renew_while_another_renewal_runs_does_nothing(
    runner, asked, minions, replies, pillar, context, master_utils_module
):
    _certificate("etcd2", "etcd-server", days_left=10)(replies)

    with master_utils_module.records(_state_dir(pillar), "renewal") as held:
        assert held
        report = runner.renew()

    assert report == {"result": None, "reason": "another renewal is running", "retcode": 0}
    assert context["retcode"] == 0
    assert (asked, minions.calls, _runs(pillar)) == ([], [], [])


def test_a_master_that_cannot_ask_its_minions_fails_the_renewal(
    runner, asked, minions, pillar, context, events, monkeypatch
):
    def unreachable(minions, function, timeout):
        raise SaltClientError("The salt master could not be contacted. Is master running?")

    monkeypatch.setattr(runner, "_ask", unreachable)

    report = runner.renew()

    assert report["failed"] == (
        "the master could not ask its minions: "
        "The salt master could not be contacted. Is master running?"
    )
    assert report["retcode"] == context["retcode"] == 1
    assert minions.calls == []
    assert [tag for tag, _ in events] == [RENEWAL_FAILED]


def test_renew_records_silent_minions_as_unseen_and_renews_the_rest(
    runner, asked, minions, replies, pillar
):
    _silent("paas_pki.certificates", "etcd3")(replies)
    _certificate("etcd1", "etcd-peer", days_left=1)(replies)

    report = runner.renew()

    assert report["unseen"] == ["etcd3"]
    assert [call for call in minions.calls if call[1] == "state.apply"] == [
        ("etcd1", "state.apply", "pki,etcd.certificates")
    ]


def test_a_step_that_failed_is_not_reported_as_renewed(runner, asked, minions, replies):
    _certificate("etcd1", "etcd-server", days_left=10)(replies)
    minions.failures["etcd1"] = "etcd1 is a member but not healthy: connection refused"
    runner.renew()

    last = runner.certs()["renewal"]["last_run"]

    assert last["failed"] == "etcd1 is a member but not healthy: connection refused"
    assert last["renewed"] == []


def _under_maintenance(
    pillar: dict, node: str, until_s: float = 600, ended_s: float | None = None, drained=True
) -> None:
    """The master's renewal recorded that it works on ``node`` (maintenance.json): a
    window going on, or one that ended ``ended_s`` seconds ago."""
    os.makedirs(_state_dir(pillar), exist_ok=True)
    window = {
        "node": node,
        "why": "the master renews its certificates (pki, kubernetes.certificates)",
        "since": time.time() - 60,
        "until": time.time() + until_s,
        "ended": None if ended_s is None else time.time() - ended_s,
        "drained": drained,
    }
    with open(os.path.join(_state_dir(pillar), "maintenance.json"), "w", encoding="utf-8") as f:
        json.dump([window], f)


def _windows(pillar: dict) -> list[dict]:
    with open(os.path.join(_state_dir(pillar), "maintenance.json"), encoding="utf-8") as f:
        return json.load(f)


RESTARTING = _both(
    _apiserver("cp3", "direct", "connection refused"),
    _down_server("cp3", "gw1", "gw2"),
)


def test_what_the_renewal_makes_of_its_node_is_expected_not_counted(
    runner, asked, replies, pillar, context, master_utils_module
):
    RESTARTING(replies)
    _under_maintenance(pillar, "cp3")

    with master_utils_module.records(_state_dir(pillar), "renewal"):
        report = runner.status()

    assert report["retcode"] == context["retcode"] == 0
    assert (report["severity"], report["problems"]) == ("ok", [])
    assert [window["node"] for window in report["maintenance"]["nodes"]] == ["cp3"]
    assert report["maintenance"]["nodes"][0]["ended"] is None
    assert report["maintenance"]["expected"] == [
        "gw1: haproxy's kube-apiserver server cp3 is DOWN (check: L4CON)",
        "gw2: haproxy's kube-apiserver server cp3 is DOWN (check: L4CON)",
        "cp3: its apiserver is not ready: connection refused",
    ]
    assert all("expected" not in report[part] for part in ("gateways", "etcd", "kubernetes"))


def test_an_etcd_member_restarted_by_the_renewal_is_expected_and_other_nodes_still_count(
    runner, asked, replies, pillar, context, master_utils_module
):
    _etcd(_unhealthy("etcd2"))(replies)
    _apiserver("cp1", "direct")(replies)
    _under_maintenance(pillar, "etcd2", drained=False)

    with master_utils_module.records(_state_dir(pillar), "renewal"):
        report = runner.status()

    assert report["retcode"] == 1
    assert report["problems"] == [f"cp1: its apiserver is not ready: {NOT_READY}"]
    assert report["maintenance"]["expected"] == [
        "etcd member etcd2 is unhealthy: context deadline exceeded"
    ]


def test_a_down_problem_counts_even_on_the_node_under_maintenance(
    runner, asked, replies, pillar, context, master_utils_module
):
    for cp in CPS:
        _down_server(cp, "gw1", "gw2")(replies)
    _under_maintenance(pillar, "cp3")

    with master_utils_module.records(_state_dir(pillar), "renewal"):
        report = runner.status()

    assert report["retcode"] == 2
    assert (
        "gw1 holds a VIP and no server of its haproxy's kube-apiserver is UP"
        in (report["problems"])
    )
    assert "gw1: haproxy's kube-apiserver server cp1 is DOWN (check: L4CON)" in report["problems"]


def test_a_step_that_ended_while_the_minions_were_asked_is_still_expected(
    runner, asked, replies, pillar, context, monkeypatch
):
    RESTARTING(replies)
    ask = runner._ask

    def ended_meanwhile(minions, function, timeout):
        if function == "paas_control_plane.status":
            _under_maintenance(pillar, "cp3", ended_s=0)
        return ask(minions, function, timeout)

    monkeypatch.setattr(runner, "_ask", ended_meanwhile)

    report = runner.status()

    assert report["retcode"] == 0, report["problems"]
    assert report["maintenance"]["nodes"][0]["ended"] is not None


@pytest.mark.parametrize(
    "left", ["by-a-renewal-that-died", "past-its-bound", "ended-before-the-report"]
)
def test_a_maintenance_record_of_no_running_renewal_hides_nothing(
    runner, asked, replies, pillar, context, master_utils_module, left
):
    RESTARTING(replies)
    _under_maintenance(
        pillar,
        "cp3",
        until_s=-1 if left == "past-its-bound" else 600,
        ended_s=5 if left == "ended-before-the-report" else None,
    )

    if left == "by-a-renewal-that-died":
        report = runner.status()
    else:
        with master_utils_module.records(_state_dir(pillar), "renewal"):
            report = runner.status()

    assert report["retcode"] == 1 and "maintenance" not in report
    assert "cp3: its apiserver is not ready: connection refused" in report["problems"]


def test_renew_says_which_node_it_works_on_while_it_does_and_not_after(
    runner, asked, minions, replies, pillar
):
    _certificate("etcd2", "etcd-server", days_left=10)(replies)
    _kubeadm("cp3", "apiserver", days_left=10)(replies)
    seen = []
    run = minions.run

    def recording(targets, function, arg=(), **kwargs):
        seen.append([(window["node"], window["ended"] is None) for window in _windows(pillar)])
        return run(targets, function, arg, **kwargs)

    minions.run = recording

    runner.renew()

    assert seen == [[("etcd2", True)], [("etcd2", False), ("cp3", True)]]
    windows = _windows(pillar)
    assert [(window["node"], window["why"], window["drained"]) for window in windows] == [
        ("etcd2", "the master renews its certificates (pki, etcd.certificates)", False),
        ("cp3", "the master renews its certificates (kubernetes.certificates)", True),
    ]
    assert all(
        window["since"] <= window["ended"] < window["until"] == window["since"] + 660
        for window in windows
    )


def test_a_control_planes_renewal_ends_once_the_gateways_serve_its_apiserver_again(
    runner, asked, minions, replies, monkeypatch
):
    _kubeadm("cp3", "apiserver", days_left=10)(replies)
    _down_server("cp3", "gw1", "gw2", status="DOWN 1/2")(replies)
    polls = []

    def rising(_seconds):
        polls.append(_seconds)
        if len(polls) == 2:
            for name in GATEWAYS:
                for backend in replies["paas_gateway.status"][name]["backends"]:
                    backend.update(status="UP", check="L7OK")

    monkeypatch.setattr(runner.time, "sleep", rising)

    report = runner.renew()

    assert report["retcode"] == 0 and report["failed"] is None
    assert len(polls) == 2
    gateway_asks = [minions for minions, function in asked if function == "paas_gateway.status"]
    assert gateway_asks == [["gw1", "gw2"]] * 3


def test_a_control_plane_not_back_in_rotation_fails_the_renewal_naming_what_the_gateways_say(
    runner, asked, minions, replies, pillar, monkeypatch, events
):
    _kubeadm("cp3", "apiserver", days_left=10)(replies)
    _kubeadm("cp1", "apiserver", days_left=10)(replies)
    _down_server("cp1", "gw2", status="DOWN 1/2")(replies)
    monkeypatch.setattr(runner, "ROTATION_WAIT_S", 0)

    report = runner.renew()

    assert report["retcode"] == 1
    assert report["failed"] == (
        "cp1: its apiserver is not back in the gateways' haproxy 0 s after its renewal "
        "(gw2: DOWN 1/2)"
    )
    assert [step["node"] for step in report["steps"]] == ["cp1"]
    assert [tag for tag, _ in events] == ["paas/pki/renewal/failed"]


def test_a_control_plane_is_drained_while_renewed_and_put_back_even_when_its_step_fails(
    runner, asked, minions, replies
):
    _kubeadm("cp2", "apiserver", days_left=10)(replies)
    minions.failures["cp2"] = "kubeadm certs renew all failed"

    report = runner.renew()

    assert report["failed"] and "cp2" in report["failed"]
    assert [call[1:] for call in minions.calls] == [
        ("paas_gateway.server_state", "kube-apiserver", "cp2", "drain"),
        ("state.apply", "kubernetes.certificates"),
        ("paas_gateway.server_state", "kube-apiserver", "cp2", "ready"),
    ]


def test_a_gateway_that_cannot_drain_is_recorded_and_the_renewal_goes_on(
    runner, asked, minions, replies, pillar
):
    _kubeadm("cp2", "apiserver", days_left=10)(replies)
    minions.silent.add("gw2")

    report = runner.renew()

    assert report["failed"] is None
    (step,) = _runs(pillar)[0]["steps"]
    assert step["done"]
    assert step["not_drained"] == {"gw2": "haproxy's admin socket: connection refused"}


def test_an_apiserver_left_drained_by_a_renewal_that_died_is_put_back_by_the_next(
    runner, asked, minions, pillar
):
    _under_maintenance(pillar, "cp3")

    runner.renew()

    assert minions.calls == [
        ("gw1,gw2", "paas_gateway.server_state", "kube-apiserver", "cp3", "ready")
    ]
    assert _windows(pillar) == []
