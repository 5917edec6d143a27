"""
The ``etcd_health`` beacon's judgement and timing, with etcd's HTTPS answers faked.

Each test sets what this member and its peers answer (the JSON etcd's ``/health`` and
JSON gateway send, or the exception a request raises), then ticks the beacon on a fake
clock. The last test runs the real beacon in a process of its own, through Salt's loader
and the platform's real modules, and looks at what it imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import types

import pytest
from salt.exceptions import CommandExecutionError

from tests.functional import etcd_hosts

ETCD1 = "https://198.18.1.21:2379"
ETCD2 = "https://198.18.1.22:2379"
ETCD3 = "https://198.18.1.23:2379"
ETCD1_ID = 0x8E9E05C52164694D
LEADER_ID = 0x91BC3C398FB3C146


@pytest.fixture(scope="module")
def beacon_module(import_repo_module):
    return import_repo_module("_beacons/etcd_health.py", "etcd_health_beacon")


@pytest.fixture
def topology(lab_topology, topology_utils):
    return types.SimpleNamespace(
        dr=topology_utils.dr(lab_topology),
        member=topology_utils.etcd_member(lab_topology, "etcd1"),
    )


@pytest.fixture
def data_dir(tmp_path, topology):
    """etcd1's data directory, with a member's store and log inside."""
    topology.member["data_dir"] = str(tmp_path / "etcd-data")
    for part in ("snap", "wal"):
        (tmp_path / "etcd-data" / "member" / part).mkdir(parents=True)
    (tmp_path / "etcd-data" / "member" / "snap" / "db").write_bytes(b"store")
    (tmp_path / "etcd-data" / "member" / "wal" / "0000000000000000-0000000000000000.wal").touch()
    return tmp_path / "etcd-data"


@pytest.fixture
def configure_loader_modules(beacon_module, topology):
    salt = {
        "paas_topology.dr": lambda: topology.dr,
        "paas_topology.etcd_member": lambda: topology.member,
        "paas_pki.profile": lambda profile: {
            "cert": f"/pki/{profile}.crt",
            "key": f"/pki/{profile}.key",
            "ca": "/pki/ca.crt",
        },
    }
    return {beacon_module: {"__salt__": salt, "__context__": {}, "__opts__": {"id": "etcd1"}}}


class Etcd:
    """What each member answers, by (client URL, path): JSON, or an exception to raise."""

    def __init__(self):
        self.answers = {}
        self.healthy()
        self.peer(ETCD2, True)
        self.peer(ETCD3, True)

    def healthy(self, leader: int = LEADER_ID, health: str = "true", alarms=()):
        self.answers[ETCD1, "/health"] = {"health": health}
        self.answers[ETCD1, "/v3/maintenance/status"] = {
            "header": {"member_id": str(ETCD1_ID), "revision": "42", "raft_term": "3"},
            "version": "3.5.16",
            "dbSize": "20480",
            **({"leader": str(leader)} if leader else {}),
            "raftIndex": "57",
            "raftTerm": "3",
        }
        self.answers[ETCD1, "/v3/maintenance/alarm"] = (
            {"alarms": [{"memberID": str(member), "alarm": name} for member, name in alarms]}
            if alarms
            else {}
        )

    def down(self):
        for path in ("/health", "/v3/maintenance/status", "/v3/maintenance/alarm"):
            self.answers[ETCD1, path] = ConnectionRefusedError(111, "Connection refused")

    def peer(self, url: str, healthy: bool):
        self.answers[url, "/health"] = {"health": "true"} if healthy else TimeoutError("timed out")

    def ask(self, _context, url, method, path, body):
        expected = {"/health": ("GET", None), "/v3/maintenance/status": ("POST", {})}
        assert (method, body) == expected.get(path, ("POST", {"action": "GET"})), (path, body)
        answer = self.answers[url, path]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def etcd(beacon_module, monkeypatch, data_dir):
    fake = Etcd()
    monkeypatch.setattr(beacon_module, "_ask", fake.ask)
    monkeypatch.setattr(beacon_module, "_tls_context", lambda credentials: object())
    monkeypatch.setattr(
        beacon_module,
        "_service",
        lambda name: {"active": "active", "sub": "running", "restarts": 0, "unit": name},
    )
    return fake


@pytest.fixture
def clock(beacon_module, monkeypatch):
    now = types.SimpleNamespace(value=1_000_000.0)
    monkeypatch.setattr(beacon_module, "time", types.SimpleNamespace(time=lambda: now.value))
    return now


def tick(beacon_module, **settings):
    config = [{key: value} for key, value in settings.items()] + [{"_beacon_name": "etcd_health"}]
    return beacon_module.beacon(config)


def test_a_healthy_member_is_reported_with_everything_etcd_said(beacon_module, etcd, clock):
    [event] = tick(beacon_module)
    assert event == {
        "member": "etcd1",
        "state": "healthy",
        "serving": True,
        "health": True,
        "member_id": f"{ETCD1_ID:x}",
        "leader": f"{LEADER_ID:x}",
        "raft_index": 57,
        "raft_term": 3,
        "revision": 42,
        "db_size": 20480,
        "quota_bytes": 2147483648,
        "alarms": [],
        "data_dir": True,
        "service": {"active": "active", "sub": "running", "restarts": 0, "unit": "paas-etcd"},
        "peers": {"etcd2": True, "etcd3": True},
        "error": "",
        "reason": "changed",
        "time": clock.value,
    }


def test_a_healthy_member_is_reported_again_only_at_the_heartbeat(
    beacon_module, etcd, clock, topology
):
    heartbeat = topology.dr["heartbeat_seconds"]
    assert [event["reason"] for event in tick(beacon_module)] == ["changed"]
    for _ in range(3):
        clock.value += heartbeat / 4
        assert tick(beacon_module) == []
    clock.value += heartbeat / 4
    assert [event["reason"] for event in tick(beacon_module)] == ["heartbeat"]
    clock.value += 1
    assert tick(beacon_module) == []


def test_a_member_that_does_not_answer_is_down_and_reported_on_every_tick(
    beacon_module, etcd, clock, data_dir
):
    tick(beacon_module)
    etcd.down()
    shutil.rmtree(data_dir / "member")
    reports = []
    for _ in range(3):
        clock.value += 1
        reports += tick(beacon_module)
    assert [event["reason"] for event in reports] == ["changed", "unhealthy", "unhealthy"]
    down = reports[0]
    assert down["state"] == "down"
    assert down["serving"] is False
    assert down["data_dir"] is False
    assert (down["member_id"], down["leader"], down["raft_index"]) == (None, None, None)
    assert f"{ETCD1}/health: ConnectionRefusedError" in down["error"]


def test_a_member_without_a_leader_is_isolated(beacon_module, etcd, clock):
    etcd.healthy(leader=0, health="false")
    etcd.peer(ETCD2, False)
    etcd.peer(ETCD3, False)
    [event] = tick(beacon_module)
    assert (event["state"], event["serving"], event["leader"]) == ("isolated", True, None)
    assert event["peers"] == {"etcd2": False, "etcd3": False}


def test_a_member_with_a_stale_leader_but_no_quorum_read_is_isolated(beacon_module, etcd, clock):
    etcd.healthy(health="false")
    [event] = tick(beacon_module)
    assert event["state"] == "isolated"


def test_an_alarm_raised_against_this_member_is_an_alarm(beacon_module, etcd, clock):
    etcd.healthy(health="false", alarms=[(ETCD1_ID, "CORRUPT"), (ETCD1_ID, "NOSPACE")])
    [event] = tick(beacon_module)
    assert (event["state"], event["alarms"]) == ("alarm", ["CORRUPT", "NOSPACE"])


def test_another_members_alarm_leaves_this_member_healthy(beacon_module, etcd, clock):
    etcd.healthy(health="false", alarms=[(LEADER_ID, "CORRUPT")])
    [event] = tick(beacon_module)
    assert (event["state"], event["alarms"], event["health"]) == ("healthy", [], False)


def test_a_change_of_leader_alarms_or_data_dir_fires_while_healthy(
    beacon_module, etcd, clock, data_dir
):
    tick(beacon_module)
    clock.value += 1
    etcd.healthy(leader=ETCD1_ID)
    assert [(e["reason"], e["leader"]) for e in tick(beacon_module)] == [
        ("changed", f"{ETCD1_ID:x}")
    ]
    clock.value += 1
    assert tick(beacon_module) == []
    # Wiped and started again: a fresh store, no log.
    shutil.rmtree(data_dir / "member" / "wal")
    assert [(e["reason"], e["data_dir"]) for e in tick(beacon_module)] == [("changed", False)]


def test_a_peer_that_does_not_answer_is_reported_without_changing_the_state(
    beacon_module, etcd, clock
):
    etcd.peer(ETCD3, False)
    [event] = tick(beacon_module)
    assert (event["state"], event["peers"]) == ("healthy", {"etcd2": True, "etcd3": False})


def test_a_peer_that_stops_answering_is_reported_at_once_while_healthy(beacon_module, etcd, clock):
    tick(beacon_module)
    clock.value += 1
    assert tick(beacon_module) == []
    etcd.peer(ETCD3, False)
    assert [(e["reason"], e["peers"]) for e in tick(beacon_module)] == [
        ("changed", {"etcd2": True, "etcd3": False})
    ]
    clock.value += 1
    assert tick(beacon_module) == []


def test_recovery_is_reported_at_once(beacon_module, etcd, clock):
    etcd.down()
    tick(beacon_module)
    clock.value += 1
    etcd.healthy()
    assert [(e["reason"], e["state"]) for e in tick(beacon_module)] == [("changed", "healthy")]


def test_the_endpoint_setting_replaces_the_members_own_url(beacon_module, etcd, clock):
    local = "https://127.0.0.1:23379"
    for path in ("/health", "/v3/maintenance/status", "/v3/maintenance/alarm"):
        etcd.answers[local, path] = etcd.answers.pop((ETCD1, path))
    [event] = tick(beacon_module, endpoint=local)
    assert event["state"] == "healthy"


def test_a_certificate_it_cannot_load_is_an_error_not_a_down_member(beacon_module, tmp_path):
    with pytest.raises(CommandExecutionError, match="cannot load the etcd-healthcheck-client"):
        beacon_module._tls_context(
            {"cert": str(tmp_path / "no.crt"), "key": str(tmp_path / "no.key"), "ca": "/no/ca"}
        )


def test_a_member_that_refuses_the_certificate_is_an_error_not_a_down_member(
    beacon_module, etcd, clock
):
    import ssl  # noqa: PLC0415

    refusal = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    refusal.reason = "TLSV1_ALERT_UNKNOWN_CA"
    etcd.answers[ETCD1, "/health"] = refusal
    with pytest.raises(CommandExecutionError, match="do not trust each other"):
        tick(beacon_module)


def test_the_service_is_read_from_systemctl_show(beacon_module, monkeypatch):
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return types.SimpleNamespace(
            stdout="NRestarts=4\nActiveState=activating\nSubState=auto-restart\n"
        )

    monkeypatch.setattr(beacon_module.subprocess, "run", run)
    assert beacon_module._service("paas-etcd") == {
        "active": "activating",
        "sub": "auto-restart",
        "restarts": 4,
    }
    assert calls == [["systemctl", "show", "-p", "ActiveState,SubState,NRestarts", "paas-etcd"]]


def test_no_systemctl_gives_an_unknown_service(beacon_module, monkeypatch):
    def run(argv, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "systemctl")

    monkeypatch.setattr(beacon_module.subprocess, "run", run)
    assert beacon_module._service("paas-etcd") == {"active": None, "sub": None, "restarts": None}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"interval": 5}, "must be a list of one-key mappings"),
        (["interval"], "'interval' is not a mapping"),
        ([{"interval": 5}, {"heartbeat": 60}], "unknown setting heartbeat"),
        ([{"interval": 0}], "interval must be a positive number of seconds, not 0"),
        ([{"interval": "5s"}], "interval must be a positive number of seconds, not '5s'"),
        ([{"endpoint": "http://127.0.0.1:2379"}], "is not an https://host:port client URL"),
    ],
)
def test_validate_refuses_a_bad_configuration(beacon_module, config, message):
    valid, comment = beacon_module.validate(config)
    assert valid is False
    assert message in comment


def test_validate_accepts_the_platforms_configuration(beacon_module):
    assert beacon_module.validate(
        [
            {"interval": 5},
            {"disable_during_state_run": True},
            {"endpoint": "https://127.0.0.1:2379"},
        ]
    ) == (True, "valid etcd_health beacon configuration")


RUN_THE_BEACON = textwrap.dedent(
    """
    import json, sys
    import salt.loader
    from tests.functional import etcd_hosts

    tmp, topology, endpoint = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    minion = etcd_hosts.minion("etcd1", __import__("pathlib").Path(tmp), topology)
    minion.opts["beacons_dirs"] = [str(etcd_hosts.REPO / "_beacons")]
    beacons = salt.loader.beacons(minion.opts, minion.modules)
    events = beacons["etcd_health.beacon"]([{"endpoint": endpoint}])
    print(json.dumps({
        "states": [event["state"] for event in events],
        "imported": sorted(
            name for name in sys.modules
            if name.split(".")[0] in ("grpc", "etcd3") or name.startswith("google.protobuf")
        ),
    }))
    """
)


def test_running_the_beacon_imports_no_grpc_etcd3_or_protobuf(tmp_path, repo_root):
    """In a process of its own (other tests import them here), through Salt's loader and
    the platform's real topology and PKI modules, against a member that does not answer."""
    topology = etcd_hosts.topology("198.19.9")
    etcd_hosts.issue_all(tmp_path, topology, ["etcd1"])
    ran = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN_THE_BEACON,
            str(tmp_path),
            json.dumps(topology),
            "https://127.0.0.1:9",
        ],
        capture_output=True,
        text=True,
        cwd=repo_root,
        env={**os.environ, "PYTHONPATH": str(repo_root)},
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout.splitlines()[-1])
    assert result == {"states": ["down"], "imported": []}
