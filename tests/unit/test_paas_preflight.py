"""
The preflight checks (``_utils/paas_preflight.py`` on the master, ``_modules/
paas_preflight.py`` on a node): what each role's node is asked to measure; each way a
machine can fail, judged with the node, check, found, wanted and fix, and a healthy
one passing; the operator's accepted checks set apart; a node that does not answer named;
and the node's own measurements made for real on this host (a port this test holds, a
scratch file's fdatasync, names, sources).
"""

from __future__ import annotations

import socket
import time

import pytest
import salt.version

from tests.conftest import utils_of

MASTER_SALT = salt.version.__version__


@pytest.fixture(scope="module")
def preflight(import_repo_module):
    return import_repo_module("_utils/paas_preflight.py", "paas_preflight_utils")


@pytest.fixture(scope="module")
def node_module(import_repo_module):
    return import_repo_module("_modules/paas_preflight.py", "paas_preflight_module")


@pytest.fixture
def uses(topology_utils, master_utils) -> dict:
    return {**utils_of(topology_utils, "paas_topology"), **master_utils}


def healthy(asked: dict, now: float) -> dict:
    """What a machine fit for its roles answers."""
    return {
        "time": now,
        "os": {"id": "debian", "version_id": "13", "pretty_name": "Debian GNU/Linux 13"},
        "salt": MASTER_SALT,
        "swap": [],
        "cgroup_v2": True,
        "modules": dict.fromkeys(asked["modules"], True),
        "listeners": {
            port: [{"name": owners[0], "pid": 100 + index}]
            for index, (port, owners) in enumerate(asked["ports"].items())
        },
        "time_sync": "yes",
        "disk": (
            {"path": "/var/lib", "free_bytes": 100 * 2**30, "fdatasync_p99_ms": 2.0}
            if asked["disk"]
            else None
        ),
        "names": {name: addresses[-1:] for name, addresses in asked["names"].items()},
        "sources": dict.fromkeys(asked["sources"], "ok"),
    }


def _judge(preflight, asked, facts, now):
    return preflight.judge(asked, facts, (now - 0.5, now + 0.5), MASTER_SALT)


# What each node is asked


def test_each_role_is_asked_for_its_own_ports_disk_modules_and_sources(
    preflight, uses, lab_topology
):
    etcd1 = preflight.asks(lab_topology, "etcd1", uses)
    cp1 = preflight.asks(lab_topology, "cp1", uses)
    gw1 = preflight.asks(lab_topology, "gw1", uses)
    worker1 = preflight.asks(lab_topology, "worker1", uses)
    assert etcd1["ports"] == {"2379": ["etcd"], "2380": ["etcd"], "2381": ["etcd"]}
    assert etcd1["disk"]["path"] == "/var/lib/paas-etcd" and etcd1["swap"] is True
    assert etcd1["modules"] == {} and etcd1["cgroup"] is False
    assert cp1["ports"] == {
        "6443": ["kube-apiserver"],
        "10250": ["kubelet"],
        "10257": ["kube-controller"],
        "10259": ["kube-scheduler"],
    }
    assert sorted(cp1["modules"]) == ["br_netfilter", "overlay"] and cp1["disk"] is None
    assert gw1["ports"] == {
        "80": ["haproxy"],
        "443": ["haproxy"],
        "6443": ["haproxy"],
        "8404": ["haproxy"],
    }
    assert gw1["swap"] is False
    assert worker1["ports"] == {"10250": ["kubelet"]}
    # The wheelhouse for everyone; the Kubernetes repository for the Kubernetes nodes.
    wheelhouse = lab_topology["python"]["find_links"]
    assert gw1["sources"] == [wheelhouse]
    assert cp1["sources"] == [
        wheelhouse,
        lab_topology["kubernetes"]["repository"]["key_url"],
    ]
    assert gw1["names"]["gw2"] == ["198.18.0.12", "198.18.1.12"]


def test_the_checks_are_the_ones_the_topology_may_excuse(preflight, topology_utils):
    assert preflight.CHECKS == topology_utils.PREFLIGHT_CHECKS


# Judged


def test_a_machine_fit_for_its_roles_passes(preflight, uses, lab_topology):
    now = time.time()
    for node in ("gw1", "etcd1", "cp1", "worker1"):
        asked = preflight.asks(lab_topology, node, uses)
        assert _judge(preflight, asked, healthy(asked, now), now) == [], node


@pytest.mark.parametrize(
    ("node", "fault", "check", "found", "fix"),
    [
        (
            "etcd1",
            {"os": {"id": "ubuntu", "version_id": "24.04", "pretty_name": "Ubuntu 24.04"}},
            "os",
            "Ubuntu 24.04",
            "install Debian 12",
        ),
        ("gw1", {"salt": "3007.1"}, "salt", "Salt 3007.1", f"install Salt {MASTER_SALT}"),
        ("etcd1", {"swap": ["/swapfile"]}, "swap", "swap on: /swapfile", "swapoff -a"),
        ("cp1", {"cgroup_v2": False}, "cgroup", "cgroup v1", "unified_cgroup_hierarchy"),
        (
            "worker1",
            {"modules": {"overlay": True, "br_netfilter": False}},
            "modules",
            "not available: br_netfilter",
            "kernel's modules",
        ),
        (
            "cp1",
            {"listeners": {"10259": [{"name": "python3", "pid": 4242}]}},
            "ports",
            "port 10259 held by python3 (pid 4242)",
            "stop what holds port 10259",
        ),
        ("gw1", {"time_sync": "no"}, "time_sync", "NTPSynchronized=no", "NTP server"),
        ("gw2", {"time": -120.0}, "clock_skew", "-119.5 s", "synchronize the node's clock"),
        ("gw2", {"time": 120.0}, "clock_skew", "+119.5 s", "synchronize the node's clock"),
        (
            "etcd2",
            {"disk": {"path": "/var/lib", "free_bytes": 2**40, "fdatasync_p99_ms": 35.0}},
            "etcd_disk",
            "fdatasync p99 35.0 ms on /var/lib",
            "SSD",
        ),
        (
            "etcd2",
            {"disk": {"path": "/var/lib", "free_bytes": 2**30, "fdatasync_p99_ms": 1.0}},
            "disk_free",
            "1.0 GiB free on /var/lib",
            "larger disk",
        ),
        (
            "etcd3",
            {"names": {"etcd1": ["10.0.0.9"]}},
            "names",
            "etcd1 resolves to 10.0.0.9",
            "remove the other address of etcd1",
        ),
    ],
)
def test_each_fault_is_named_with_what_was_found_wanted_and_the_fix(
    preflight, uses, lab_topology, node, fault, check, found, fix
):
    now = time.time()
    asked = preflight.asks(lab_topology, node, uses)
    facts = healthy(asked, now)
    if "time" in fault:
        fault = {"time": now + fault["time"]}
    for key, value in fault.items():
        facts[key] = {**facts[key], **value} if key in ("listeners", "names") else value
    (failure,) = _judge(preflight, asked, facts, now)
    assert failure["check"] == check
    assert found in failure["found"], failure
    assert fix in failure["fix"], failure
    assert failure["wanted"]


def test_an_unreachable_source_is_named(preflight, uses, lab_topology):
    now = time.time()
    asked = preflight.asks(lab_topology, "cp2", uses)
    facts = healthy(asked, now)
    key_url = lab_topology["kubernetes"]["repository"]["key_url"]
    facts["sources"][key_url] = "[Errno 111] Connection refused"
    (failure,) = _judge(preflight, asked, facts, now)
    assert failure["check"] == "sources"
    assert failure["found"] == f"{key_url}: [Errno 111] Connection refused"


def test_a_machines_own_name_on_debians_loopback_line_is_no_fault(preflight, uses, lab_topology):
    now = time.time()
    asked = preflight.asks(lab_topology, "cp2", uses)
    facts = healthy(asked, now)
    facts["names"]["cp2"] = ["127.0.1.1"]
    assert _judge(preflight, asked, facts, now) == []
    facts["names"]["cp3"] = ["127.0.1.1"]
    (failure,) = _judge(preflight, asked, facts, now)
    assert failure["found"] == "cp3 resolves to 127.0.1.1"


def test_the_port_held_by_the_roles_own_service_is_no_fault(preflight, uses, lab_topology):
    now = time.time()
    asked = preflight.asks(lab_topology, "etcd1", uses)
    facts = healthy(asked, now)
    facts["listeners"]["2379"] = [{"name": "etcd", "pid": 7}, {"name": "etcd", "pid": 8}]
    assert _judge(preflight, asked, facts, now) == []


# The run: excused checks, silent nodes


class Minions:
    def __init__(self, answers: dict):
        self.answers = answers
        self.asked: list = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def run(self, minions, function, arg=(), kwarg=None, *, timeout=60, gather_job_timeout=None):
        self.asked.append((tuple(minions), function))
        (asked,) = arg
        return {
            node: {"ret": self.answers[node](asked[node]), "retcode": 0}
            if node in self.answers
            else "no reply"
            for node in minions
        }


def test_excused_checks_are_set_apart_and_a_silent_node_named(preflight, uses, lab_topology):
    lab_topology["preflight"] = {"ignore": ["time_sync", "etcd1:swap"]}
    now = time.time()

    def unsynced(asked):
        return {**healthy(asked, now), "time_sync": "no", "swap": ["/swapfile"]}

    answers = {entry["id"]: unsynced for entry in lab_topology["nodes"] if entry["id"] != "worker1"}
    minions = Minions(answers)
    uses = {**uses, "paas_master.minions": lambda opts: minions}
    found = preflight.run({}, uses, lab_topology)
    # One question to every node at once.
    assert len(minions.asked) == 1
    assert found["silent"] == {"worker1": "no reply"}
    failed = {(row["node"], row["check"]) for row in found["failures"]}
    # Swap matters on etcd and Kubernetes nodes; etcd1's is excused.
    assert failed == {
        ("etcd2", "swap"),
        ("etcd3", "swap"),
        ("cp1", "swap"),
        ("cp2", "swap"),
        ("cp3", "swap"),
    }
    excused = {(row["node"], row["check"]) for row in found["ignored"]}
    assert ("etcd1", "swap") in excused and ("gw1", "time_sync") in excused
    assert found["nodes"] == len(lab_topology["nodes"])


@pytest.mark.parametrize(
    ("entry", "said"),
    [("swapp", "'swapp' is not a preflight check"), ("etcd9:swap", "'etcd9' is not a node")],
)
def test_an_excuse_for_no_check_or_no_node_is_refused(topology_utils, lab_topology, entry, said):
    lab_topology["preflight"] = {"ignore": ["time_sync", entry]}
    errors = [str(error) for error in topology_utils.validate(lab_topology)]
    assert len(errors) == 1 and errors[0].startswith("paas:preflight:ignore[1]: "), errors
    assert said in errors[0]


# Measured on a node: this host


@pytest.fixture
def configure_loader_modules(node_module):
    return {node_module: {"__grains__": {"id": "here"}}}


def test_the_node_measures_for_real_and_changes_nothing(node_module, tmp_path):
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    data_dir = tmp_path / "etcd" / "data"
    try:
        facts = node_module.facts(
            {
                "here": {
                    "modules": {
                        "overlay": {"filesystem": "overlay"},
                        "no_such_module": {"path": str(tmp_path / "none")},
                    },
                    "ports": {str(port): ["etcd"]},
                    "disk": {"path": str(data_dir), "quota_bytes": 2**20},
                    "names": {"localhost": ["127.0.0.1"], "no-such-node.invalid": []},
                    "sources": [str(tmp_path), str(tmp_path / "missing")],
                }
            }
        )
    finally:
        held.close()
    assert facts["salt"] == MASTER_SALT
    assert facts["os"]["id"]
    # This host's kernel has overlay (the lab's machines run on it); no module by that name.
    assert facts["modules"] == {"overlay": True, "no_such_module": False}
    (holder,) = facts["listeners"][str(port)]
    assert holder["name"].startswith("python")
    assert facts["disk"]["path"] == str(tmp_path)
    assert facts["disk"]["fdatasync_p99_ms"] > 0
    assert list(tmp_path.iterdir()) == [], "the scratch file was left behind"
    assert facts["names"] == {"localhost": ["127.0.0.1"], "no-such-node.invalid": []}
    assert facts["sources"] == {str(tmp_path): "ok", str(tmp_path / "missing"): "no such directory"}


# The report (salt-run paas.preflight) and the orchestration's step


@pytest.fixture(scope="module")
def paas_runner(import_repo_module):
    return import_repo_module("_runners/paas.py", "paas_runner_preflight")


@pytest.fixture(scope="module")
def preflight_state(import_repo_module):
    return import_repo_module("_states/paas_preflight.py", "paas_preflight_state")


def _master_side(preflight, uses, topology, answers) -> dict:
    minions = Minions(answers)
    return {
        **uses,
        "paas_preflight.uses": preflight.uses,
        "paas_preflight.run": preflight.run,
        "paas_master.minions": lambda opts: minions,
        "paas_master.checked_topology": lambda opts, validate: (topology, []),
    }


@pytest.mark.parametrize(("fault", "retcode"), [(None, 0), ("swap", 1), ("silent", 3)])
def test_the_report_exits_as_the_other_reports_and_the_step_fails_alike(
    preflight, paas_runner, preflight_state, uses, lab_topology, monkeypatch, fault, retcode
):
    now = time.time()

    def answer(asked):
        facts = healthy(asked, now)
        if fault == "swap":
            facts["swap"] = ["/swapfile"]
        return facts

    nodes = [entry["id"] for entry in lab_topology["nodes"]]
    answers = {node: answer for node in nodes if not (fault == "silent" and node == "cp3")}
    utils = _master_side(preflight, uses, lab_topology, answers)
    monkeypatch.setattr(paas_runner, "__utils__", utils, raising=False)
    monkeypatch.setattr(paas_runner, "__opts__", {}, raising=False)
    monkeypatch.setattr(paas_runner, "__context__", {}, raising=False)
    report = paas_runner.preflight()
    assert report["retcode"] == retcode, report
    assert report["kind"] == "preflight" and report["outputter"] == "paas"

    monkeypatch.setattr(preflight_state, "__utils__", utils, raising=False)
    monkeypatch.setattr(preflight_state, "__opts__", {"test": False}, raising=False)
    monkeypatch.setattr(
        preflight_state, "__salt__", {"paas_topology.get": lambda: lab_topology}, raising=False
    )
    step = preflight_state.passed("paas-cluster-preflight")
    assert step["changes"] == {}
    assert step["result"] is (retcode == 0), step
    if fault == "swap":
        assert "etcd1: swap: found swap on: /swapfile; wanted no swap" in step["comment"]
        assert "fix: swapoff -a" in step["comment"]
    if fault == "silent":
        assert "cp3: did not answer: no reply" in step["comment"]
