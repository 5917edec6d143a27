"""
The ``paas`` outputter (``_output/paas.py``): the tables a person reads, drawn from the
reports of ``salt-run paas.status`` and ``paas.certs`` given here as sample data.
"""

from __future__ import annotations

import copy
import time

import pytest

BACKENDS = [
    ("kube-apiserver", "cp1", "UP"),
    ("kube-apiserver", "cp2", "DOWN"),
    ("ingress-http", "worker1", "UP"),
]


def _gateway(holds: bool, conntrackd: bool = True) -> dict:
    return {
        "vips": {"public": {"held": holds}, "private": {"held": holds}},
        "vrrp": {"state": "MASTER" if holds else "BACKUP", "since": 1.0},
        "services": {
            "keepalived": True,
            "haproxy": True,
            "conntrackd": conntrackd,
            "nftables": True,
        },
        "backends": [
            {"proxy": proxy, "server": server, "status": status, "check": None}
            for proxy, server, status in BACKENDS
        ],
    }


def _member(name: str, healthy: bool = True) -> dict:
    return {
        "id": f"{name[-1]}a",
        "learner": False,
        "healthy": healthy,
        "error": None if healthy else "timeout",
        "is_leader": name == "etcd1",
        "db_size": 20480 if healthy else None,
        "raft_index": 42 if healthy else None,
        "version": "3.5.16" if healthy else None,
    }


def _node(name: str, roles=(), **changes) -> dict:
    return {
        "name": name,
        "ready": True,
        "condition": "True",
        "reason": None,
        "roles": list(roles),
        "kubelet": "v1.34.2",
        "age_s": 90000,
        "lease_age_s": 4,
        **changes,
    }


def _apiserver(**not_ready) -> dict:
    return {
        check: {"url": "-", "ready": check not in not_ready, "error": not_ready.get(check)}
        for check in ("direct", "private_vip", "public_vip")
    }


KUBERNETES = {
    "severity": "degraded",
    "problems": ["cp2: its apiserver is not ready: HTTP 500: etcd failed"],
    "version": "1.34.2",
    "vips": {"private": "198.18.1.10", "public": "198.18.0.10"},
    "initialized": True,
    "seen_by": "cp1",
    "nodes": [
        _node("cp1", roles=("control-plane",), age_s=45),
        _node("cp2", roles=("control-plane",), age_s=725, ready=False, condition="False"),
        _node("worker1", age_s=7300, lease_age_s=None, ready=False, condition="Unknown"),
    ],
    "apiservers": {
        "cp1": _apiserver(),
        "cp2": _apiserver(direct="HTTP 500: etcd failed"),
        "cp3": None,
    },
}

CERTIFICATES = [
    {
        "node": "etcd1",
        "profile": "etcd-server",
        "serial": "1A:2B:3C",
        "not_after": "2027-11-25 06:00:00",
        "days_left": 364,
        "renews": "2027-10-26 06:00:00",
        "problems": [],
    },
    {
        "node": "cp1",
        "profile": "kube-apiserver-etcd-client",
        "serial": "0F:1E",
        "not_after": "2026-12-08 06:00:00",
        "days_left": 12,
        "renews": "2026-11-08 06:00:00",
        "problems": ["12 days left, inside the renewal window (30 days)"],
    },
    {
        "node": "cp1",
        "profile": "apiserver",
        "source": "kubeadm",
        "signed_by": "ca",
        "serial": "7A:01",
        "not_after": "2026-11-25 06:00:00",
        "days_left": 364,
        "renews": "2026-10-26 06:00:00",
        "problems": [],
    },
    {"node": "cp3", "profile": "-", "problems": ["did not answer: no reply"]},
    {"node": "cp2", "profile": "-", "source": "kubeadm", "problems": ["did not answer: no reply"]},
]

CERTIFICATE_PROBLEMS = [
    "cp1 kube-apiserver-etcd-client: 12 days left, inside the renewal window (30 days)",
    "cp3 did not answer: no reply",
    "cp2 kubeadm: did not answer: no reply",
]

STATUS = {
    "severity": "degraded",
    "problems": [
        "gw1: haproxy's kube-apiserver server cp2 is DOWN",
        "gw2: haproxy's kube-apiserver server cp2 is DOWN",
        "gw2: conntrackd is not active",
        "etcd member etcd3 is unhealthy: timeout",
        *KUBERNETES["problems"],
        *CERTIFICATE_PROBLEMS,
    ],
    "gateways": {
        "severity": "degraded",
        "problems": [
            "gw1: haproxy's kube-apiserver server cp2 is DOWN",
            "gw2: haproxy's kube-apiserver server cp2 is DOWN",
            "gw2: conntrackd is not active",
        ],
        "holder": "gw1",
        "holders": {"public": ["gw1"], "private": ["gw1"]},
        "split_brain": False,
        "nodes": {"gw1": _gateway(True), "gw2": _gateway(False, conntrackd=False)},
    },
    "etcd": {
        "severity": "degraded",
        "problems": ["etcd member etcd3 is unhealthy: timeout"],
        "healthy": False,
        "quorum": True,
        "voters": 3,
        "healthy_voters": 2,
        "leader": "etcd1",
        "alarms": [{"member": "etcd2", "alarm": "NOSPACE"}],
        "members": {
            "etcd1": _member("etcd1"),
            "etcd2": _member("etcd2"),
            "etcd3": _member("etcd3", healthy=False),
        },
        "seen_by": "etcd1",
    },
    "kubernetes": KUBERNETES,
    "pki": {
        "severity": "degraded",
        "problems": CERTIFICATE_PROBLEMS,
        "renew_days": 30,
        "certificates": CERTIFICATES,
    },
    "retcode": 1,
    "outputter": "paas",
}


@pytest.fixture(scope="module")
def outputter(import_repo_module):
    return import_repo_module("_output/paas.py", "paas_output_module")


@pytest.fixture
def status() -> dict:
    return copy.deepcopy(STATUS)


def _healthy(status: dict) -> dict:
    for part in (status, *(status[name] for name in ("gateways", "etcd", "kubernetes", "pki"))):
        part.update(severity="ok", problems=[])
    return status


def test_the_verdict_and_every_problem_come_first(outputter, status):
    lines = outputter.output(status).splitlines()

    assert lines[0] == "paas: DEGRADED (8 problems)"
    assert lines[1:9] == [f"  - {problem}" for problem in STATUS["problems"]]
    assert lines[9] == ""


def test_a_healthy_report_says_ok_and_flags_no_part(outputter, status):
    table = outputter.output(_healthy(status))

    assert table.splitlines()[0] == "paas: ok"
    assert "gateways: both VIPs on gw1\n" in table
    assert "(DEGRADED)" not in table and "(DOWN)" not in table


def test_the_gateways_their_daemons_and_their_backends(outputter, status):
    table = outputter.output(status).splitlines()

    start = table.index("gateways: both VIPs on gw1 (DEGRADED)")
    assert table[start + 1 : start + 4] == [
        "GATEWAY  VRRP    PUBLIC VIP  PRIVATE VIP  KEEPALIVED  HAPROXY  CONNTRACKD  NFTABLES",
        "gw1      MASTER  held        held         active      active   active      active",
        "gw2      BACKUP  -           -            active      active   INACTIVE    active",
    ]
    assert table[start + 5 : start + 9] == [
        "BACKEND         SERVER   GW1   GW2",
        "ingress-http    worker1  UP    UP",
        "kube-apiserver  cp1      UP    UP",
        "kube-apiserver  cp2      DOWN  DOWN",
    ]


def test_vips_not_on_one_gateway_are_shown_where_they_are(outputter, status):
    status["gateways"].update(
        severity="down", holder=None, holders={"public": ["gw1", "gw2"], "private": []}
    )

    table = outputter.output(status)

    assert "gateways: public VIP on gw1 and gw2, private VIP on no gateway (DOWN)\n" in table


def test_the_etcd_cluster_and_its_members(outputter, status):
    table = outputter.output(status).splitlines()

    start = table.index(
        "etcd: degraded, 2 of 3 voting members healthy, leader etcd1, "
        "alarms: NOSPACE on etcd2 (seen by etcd1) (DEGRADED)"
    )
    assert table[start + 1 : start + 5] == [
        "MEMBER  ID  ROLE   HEALTH              LEADER  DB SIZE  RAFT INDEX  VERSION",
        "etcd1   1a  voter  healthy             *       20480    42          3.5.16",
        "etcd2   2a  voter  healthy                     20480    42          3.5.16",
        "etcd3   3a  voter  unhealthy: timeout          -        -           -",
    ]


def test_an_etcd_nobody_could_ask_is_said_so(outputter, status):
    status["etcd"] = {
        "severity": "down",
        "problems": ["no etcd node answered: etcd1: no reply"],
        "healthy": False,
        "quorum": False,
    }

    table = outputter.output(status)

    assert "\netcd: no etcd node answered: etcd1: no reply (DOWN)\n" in table


def test_the_nodes_and_each_control_planes_apiserver(outputter, status):
    table = outputter.output(status).splitlines()

    start = table.index("kubernetes v1.34.2: 3 Nodes, 1 Ready (seen by cp1) (DEGRADED)")
    assert table[start + 1 : start + 10] == [
        "NODE     READY     ROLES          KUBELET  AGE  LEASE",
        "cp1      Ready     control-plane  v1.34.2  45s  4s ago",
        "cp2      NotReady  control-plane  v1.34.2  12m  4s ago",
        "worker1  Unknown   <none>         v1.34.2  2h   none",
        "",
        "CONTROL PLANE  DIRECT     VIA PRIVATE VIP  VIA PUBLIC VIP",
        "cp1            ready      ready            ready",
        "cp2            NOT READY  ready            ready",
        "cp3            -          -                -",
    ]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (119, "119s"), (120, "2m"), (7199, "119m"), (7200, "2h"), (172800, "2d")],
)
def test_ages_read_as_kubectl_shows_them(outputter, status, seconds, shown):
    status["kubernetes"]["nodes"] = [_node("cp1", age_s=seconds)]

    table = outputter.output(status).splitlines()

    header = next(index for index, line in enumerate(table) if line.startswith("NODE "))
    assert table[header + 1].split()[4] == shown


def test_kubernetes_not_initialized_is_said_so(outputter, status):
    status["kubernetes"].update(
        initialized=False, seen_by=None, nodes=[], apiservers=dict.fromkeys(("cp1", "cp2"))
    )

    table = outputter.output(status)

    assert "\nkubernetes v1.34.2: not initialized (DEGRADED)\n\ncertificates:" in table


def test_kubernetes_nobody_could_ask_is_said_so(outputter, status):
    status["kubernetes"].update(
        severity="down",
        problems=["no control plane answered: cp1: no reply"],
        initialized=None,
        seen_by=None,
        nodes=[],
        apiservers={"cp1": None},
    )

    table = outputter.output(status)

    assert "\nkubernetes: no control plane answered: cp1: no reply (DOWN)\n" in table


def test_nodes_no_control_plane_could_list_leave_the_apiservers(outputter, status):
    status["kubernetes"].update(seen_by=None, nodes=[])

    table = outputter.output(status).splitlines()

    start = table.index("kubernetes v1.34.2: no control plane could list the Nodes (DEGRADED)")
    assert table[start + 1 : start + 3] == [
        "",
        "CONTROL PLANE  DIRECT     VIA PRIVATE VIP  VIA PUBLIC VIP",
    ]


def test_status_sums_up_the_certificates_in_one_line(outputter, status):
    last = outputter.output(status).splitlines()[-1]

    assert last == (
        "certificates: 3 on 2 nodes, the soonest ends in 12 days "
        "(cp1 kube-apiserver-etcd-client); renewal window 30 days (DEGRADED)"
    )


def test_certs_lists_every_certificate_with_its_problems_and_renewal(outputter, status):
    renewal = {
        "every_minutes": 60,
        "last_run": {
            "time": "2026-11-26 05:10:00",
            "renewed": ["etcd2: etcd-server, etcd-peer"],
            "failed": None,
            "skipped": None,
        },
        "next_check": "2026-11-26 06:10:00",
    }
    report = {**status["pki"], "renewal": renewal, "retcode": 1, "outputter": "paas"}

    assert outputter.output(report).splitlines() == [
        "certificates: DEGRADED (3 problems)",
        *(f"  - {problem}" for problem in CERTIFICATE_PROBLEMS),
        "",
        "NODE   PROFILE                     SERIAL    NOT AFTER            DAYS  "
        "RENEWS               PROBLEMS",
        "etcd1  etcd-server                 1A:2B:3C  2027-11-25 06:00:00  364   "
        "2027-10-26 06:00:00  ok",
        "cp1    kube-apiserver-etcd-client  0F:1E     2026-12-08 06:00:00  12    "
        "2026-11-08 06:00:00  12 days left, inside the renewal window (30 days)",
        "cp1    kubeadm apiserver           7A:01     2026-11-25 06:00:00  364   "
        "2026-10-26 06:00:00  ok",
        "cp3    -                           -         -                    -     "
        "-                    did not answer: no reply",
        "cp2    kubeadm                     -         -                    -     "
        "-                    did not answer: no reply",
        "renewal window: the last 30 days; the master renews every 60 minutes (last "
        "2026-11-26 05:10:00: renewed etcd2: etcd-server, etcd-peer; next 2026-11-26 06:10:00)",
    ]


def test_a_report_that_could_not_be_made_says_why(outputter):
    report = {
        "severity": "unknown",
        "problems": ["the master could not ask its minions: Is master running?"],
        "retcode": 3,
        "outputter": "paas",
    }

    assert outputter.output(report) == (
        "paas: UNKNOWN (1 problem)\n  - the master could not ask its minions: Is master running?"
    )


def _dr_report(now: float) -> dict:
    snapshot = {"revision": 412, "time": now - 90, "size": 20512}
    return {
        "kind": "dr",
        "severity": "degraded",
        "problems": ["etcd3: no snapshot has reached the master"],
        "nodes": {
            "etcd1": {"on_node": snapshot, "offsite": snapshot, "stale": False},
            "etcd3": {"on_node": None, "offsite": None, "stale": True},
        },
        "stale_after_seconds": 600,
        "last_drill": {"passed": True, "snapshot": "etcd1-x.db", "revision": 412, "keys": 30},
        "last_remediation": {
            "action": "recover",
            "member": "etcd3",
            "outcome": "ok",
            "duration_s": 14.2,
            "reason": "etcd3 down, confirmed by etcd1, etcd2",
        },
        "lock": None,
        "paused": {"reason": "disk swap"},
        "dropped": [{"member": "etcd3"}],
    }


def test_the_dr_report_shows_snapshots_the_drill_and_the_reactor(outputter):
    text = outputter.output(_dr_report(time.time()))

    assert text.splitlines()[:2] == [
        "disaster recovery: DEGRADED (1 problem)",
        "  - etcd3: no snapshot has reached the master",
    ]
    assert "snapshots (stale after 10m):" in text
    assert "etcd1  r412, 90s old, 20512 B  r412, 90s old, 20512 B   no" in text
    assert "etcd3  -" in text
    assert "last drill: passed; etcd1-x.db (revision 412, 30 keys)" in text
    assert "last remediation: recover etcd3, ok in 14.2 s" in text
    assert "lock: free" in text
    assert "reactor paused: disk swap" in text


def test_a_restore_report_names_its_outcome(outputter):
    text = outputter.output(
        {"kind": "restore", "severity": "ok", "problems": [], "outcome": "ok", "owner": "2026"}
    )
    assert text == "restore: ok\n\noutcome: ok (remediation 2026)"


def test_the_preflight_failures_and_what_was_excused_are_tables(outputter):
    row = {
        "node": "cp3",
        "check": "ports",
        "found": "port 10259 held by python3 (pid 4242)",
        "wanted": "port 10259 free, or held by kube-scheduler",
        "fix": "stop what holds port 10259 on the node",
    }
    excused = {**row, "node": "gw1", "check": "time_sync", "found": "NTPSynchronized=no"}
    text = outputter.output(
        {
            "kind": "preflight",
            "severity": "degraded",
            "problems": ["cp3: ports: port 10259 held by python3 (pid 4242)"],
            "failures": [row],
            "ignored": [excused],
            "silent": {},
            "nodes": 9,
        }
    )
    lines = text.splitlines()
    assert lines[0] == "preflight: DEGRADED (1 problem)"
    assert "9 nodes checked" in lines
    failed = lines.index("failed:")
    assert lines[failed + 1].split() == ["NODE", "CHECK", "FOUND", "WANTED", "FIX"]
    assert lines[failed + 2].startswith("cp3   ports  port 10259 held by python3 (pid 4242)  ")
    assert "ignored (paas:preflight:ignore):" in lines
    assert any(line.startswith("gw1   time_sync  NTPSynchronized=no") for line in lines)


def test_a_node_under_the_renewals_maintenance_is_named_with_what_is_expected(outputter, status):
    report = _healthy(status)
    report["maintenance"] = {
        "nodes": [
            {
                "node": "cp2",
                "why": "the master renews its certificates (kubernetes.certificates)",
                "since": "2026-12-07 22:10:01",
                "ended": "2026-12-07 22:10:12",
            },
            {
                "node": "cp3",
                "why": "the master renews its certificates (pki, kubernetes.certificates)",
                "since": "2026-12-07 22:10:12",
                "ended": None,
            },
        ],
        "expected": ["cp3: its apiserver is not ready: connection refused"],
    }

    lines = outputter.output(report).splitlines()

    assert lines[:6] == [
        "paas: ok",
        "maintenance:",
        "  cp2: the master renews its certificates (kubernetes.certificates), "
        "since 2026-12-07 22:10:01, done 2026-12-07 22:10:12",
        "  cp3: the master renews its certificates (pki, kubernetes.certificates), "
        "since 2026-12-07 22:10:12, going on",
        "expected meanwhile, not counted:",
        "  - cp3: its apiserver is not ready: connection refused",
    ]
