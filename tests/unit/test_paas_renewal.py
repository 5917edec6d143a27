"""
The plan of ``salt-run paas.renew`` (``_utils/paas_renewal.py``), plain Python: which
certificates are due (inside the renewal window or expired, kubeadm's CAs and unread
rows aside), which states each node applies for them (``pki`` first, then
``etcd.certificates`` on an etcd node, ``kubernetes.certificates`` on a control plane),
and the order of the nodes (those that serve nothing, then the etcd nodes, then the
control planes, each by name). The rows are ``paas.certs``' rows; the roles the lab's.
"""

from __future__ import annotations

import pytest

ROLES = {
    "gw1": ["gateway"],
    "gw2": ["gateway"],
    "etcd1": ["etcd"],
    "etcd2": ["etcd"],
    "etcd3": ["etcd"],
    "cp1": ["control-plane"],
    "cp2": ["control-plane"],
    "cp3": ["control-plane"],
    "worker1": ["worker"],
}


def platform(node: str, profile: str, days_left: int = 364, renew_days: int = 30) -> dict:
    """A row of paas.certs for one of the platform's certificates (paas_pki.certificates)."""
    return {
        "node": node,
        "profile": profile,
        "serial": "1A:2B",
        "not_after": "2027-11-25 06:00:00",
        "days_left": days_left,
        "renewal_due": days_left <= renew_days,
        "problems": [],
    }


def kubeadm(node: str, name: str, days_left: int = 364, renew_days: int = 30) -> dict:
    """A row of paas.certs for one of kubeadm's certificates (paas_control_plane.certificates)."""
    return {
        **platform(node, name, days_left, renew_days),
        "source": "kubeadm",
        "signed_by": None if name in ("ca", "front-proxy-ca") else "ca",
    }


def silent(node: str) -> dict:
    """The row paas.certs makes for a minion that did not answer."""
    return {"node": node, "profile": "-", "problems": ["did not answer: no reply"]}


@pytest.fixture(scope="module")
def renewal(import_repo_module):
    return import_repo_module("_utils/paas_renewal.py", "paas_renewal_utils")


# due


@pytest.mark.parametrize(
    ("row", "due"),
    [
        (platform("etcd1", "etcd-server", days_left=364), False),
        (platform("etcd1", "etcd-server", days_left=31), False),
        (platform("etcd1", "etcd-server", days_left=30), True),
        (platform("etcd1", "etcd-server", days_left=0), True),
        (kubeadm("cp1", "apiserver", days_left=12), True),
        (kubeadm("cp1", "admin.conf", days_left=400), False),
    ],
    ids=[
        "far",
        "a-day-before-the-window",
        "first-day-of-the-window",
        "last-day",
        "kubeadm",
        "kubeadm-far",
    ],
)
def test_a_certificate_is_due_inside_its_renewal_window(renewal, row, due):
    assert renewal.due(row) is due


def test_an_expired_certificate_is_due_even_when_not_flagged_for_renewal(renewal):
    row = {**platform("etcd1", "etcd-peer", days_left=-3), "renewal_due": False}

    assert renewal.due(row) is True


@pytest.mark.parametrize("name", ["ca", "front-proxy-ca"])
@pytest.mark.parametrize("days_left", [12, -1])
def test_kubeadms_cas_are_never_due_since_kubeadm_cannot_renew_them(renewal, name, days_left):
    row = kubeadm("cp1", name, days_left=days_left)
    assert row["renewal_due"] is True

    assert renewal.due(row) is False


@pytest.mark.parametrize(
    "row",
    [
        silent("etcd3"),
        {**platform("etcd1", "etcd-server"), "days_left": None, "renewal_due": True},
        {
            "node": "cp1",
            "profile": "apiserver",
            "source": "kubeadm",
            "signed_by": "ca",
            "problems": ["/etc/kubernetes/pki/apiserver.crt is missing"],
        },
    ],
    ids=["silent-minion", "unknown-expiry", "missing-file"],
)
def test_a_row_without_a_known_expiry_is_never_due(renewal, row):
    assert renewal.due(row) is False


# plan


def test_nothing_due_plans_nothing(renewal):
    rows = [platform("etcd1", "etcd-server"), kubeadm("cp1", "apiserver"), kubeadm("cp1", "ca")]

    assert renewal.plan(rows, ROLES) == []


def test_an_etcd_node_applies_pki_then_etcd_certificates(renewal):
    rows = [
        platform("etcd2", "etcd-server", days_left=10),
        platform("etcd2", "etcd-peer", days_left=10),
        platform("etcd2", "etcd-healthcheck-client"),
    ]

    assert renewal.plan(rows, ROLES) == [
        {
            "node": "etcd2",
            "turn": "etcd",
            "sls": ["pki", "etcd.certificates"],
            "certificates": ["etcd-server", "etcd-peer"],
        }
    ]


def test_a_control_plane_with_a_platform_certificate_due_applies_pki_then_kubernetes(renewal):
    rows = [platform("cp3", "kube-apiserver-etcd-client", days_left=5)]

    assert renewal.plan(rows, ROLES) == [
        {
            "node": "cp3",
            "turn": "control-plane",
            "sls": ["pki", "kubernetes.certificates"],
            "certificates": ["kube-apiserver-etcd-client"],
        }
    ]


def test_kubeadms_certificates_alone_due_on_a_control_plane_need_no_pki(renewal):
    rows = [
        kubeadm("cp2", "apiserver", days_left=20),
        kubeadm("cp2", "admin.conf", days_left=-2),
        kubeadm("cp2", "ca", days_left=3),
        platform("cp2", "kube-apiserver-etcd-client"),
    ]

    assert renewal.plan(rows, ROLES) == [
        {
            "node": "cp2",
            "turn": "control-plane",
            "sls": ["kubernetes.certificates"],
            "certificates": ["kubeadm apiserver", "kubeadm admin.conf"],
        }
    ]


def test_pki_comes_first_whatever_the_order_of_the_rows(renewal):
    rows = [
        kubeadm("cp1", "apiserver", days_left=20),
        platform("cp1", "kube-apiserver-etcd-client", 9),
    ]

    (step,) = renewal.plan(rows, ROLES)

    assert step["sls"] == ["pki", "kubernetes.certificates"]
    assert step["certificates"] == ["kubeadm apiserver", "kube-apiserver-etcd-client"]


@pytest.mark.parametrize(
    ("node", "profile"),
    [("paas-master", "etcd-admin-client"), ("gw1", "some-gateway-cert"), ("worker1", "x")],
)
def test_a_node_that_serves_nothing_applies_only_pki(renewal, node, profile):
    (step,) = renewal.plan([platform(node, profile, days_left=1)], ROLES)

    assert step == {"node": node, "turn": "other", "sls": ["pki"], "certificates": [profile]}


def test_nodes_go_others_first_then_etcd_nodes_then_control_planes_each_by_name(renewal):
    rows = [
        platform("cp3", "kube-apiserver-etcd-client", days_left=2),
        kubeadm("cp1", "apiserver", days_left=2),
        platform("etcd3", "etcd-peer", days_left=2),
        platform("paas-master", "etcd-admin-client", days_left=2),
        platform("etcd1", "etcd-server", days_left=2),
        platform("cp2", "kube-apiserver-etcd-client", days_left=2),
        platform("etcd2", "etcd-healthcheck-client", days_left=2),
    ]

    steps = renewal.plan(rows, ROLES)

    assert [(step["node"], step["turn"]) for step in steps] == [
        ("paas-master", "other"),
        ("etcd1", "etcd"),
        ("etcd2", "etcd"),
        ("etcd3", "etcd"),
        ("cp1", "control-plane"),
        ("cp2", "control-plane"),
        ("cp3", "control-plane"),
    ]


def test_one_step_per_node_with_each_state_once(renewal):
    rows = [platform("etcd1", profile, days_left=-1) for profile in ("etcd-server", "etcd-peer")]
    rows.append(platform("etcd1", "etcd-healthcheck-client", days_left=3))

    (step,) = renewal.plan(rows, ROLES)

    assert step["sls"] == ["pki", "etcd.certificates"]
    assert step["certificates"] == ["etcd-server", "etcd-peer", "etcd-healthcheck-client"]


def test_silent_minions_and_kubeadms_cas_plan_nothing(renewal):
    rows = [silent("etcd3"), silent("cp2"), kubeadm("cp1", "ca", days_left=-5)]

    assert renewal.plan(rows, ROLES) == []


def test_a_stacked_etcd_and_control_plane_node_takes_the_etcd_turn(renewal):
    roles = {"node1": ["etcd", "control-plane"]}

    (step,) = renewal.plan([platform("node1", "etcd-server", days_left=1)], roles)

    assert step["turn"] == "etcd"
    assert step["sls"] == ["pki", "etcd.certificates", "kubernetes.certificates"]


def test_a_stacked_node_with_only_kubeadms_certificates_due_takes_the_control_plane_turn(renewal):
    roles = {"node1": ["etcd", "control-plane"]}

    (step,) = renewal.plan([kubeadm("node1", "apiserver", days_left=1)], roles)

    assert step["turn"] == "control-plane"
    assert step["sls"] == ["kubernetes.certificates"]
