"""
The ``etcd_health`` beacon's timing and signing, over the real ``etcd_health`` module
with etcd's HTTPS answers faked.

The beacon's ``__salt__`` holds the real ``etcd_health.report`` and ``etcd_health.signed``
(the module under its loader dunders, with the real ``paas_etcd_http`` and
``paas_signed_report`` utils, a real client certificate and a minion key made as Salt
makes one); each test sets what this member and its peers answer at
``paas_etcd_http.ask``, then ticks the beacon on a fake clock. Every event fired is
checked as the master checks it: its signature against the minion's public key, its
epoch the same on every tick of one minion process, its sequence one more than the last.
The judgement itself (down, isolated, alarms...) is ``test_etcd_health_module``'s. The
last test runs the real beacon in a process of its own, through Salt's loader and the
platform's real modules, and looks at what it imported.
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

from tests.conftest import utils_of
from tests.functional import etcd_hosts

ETCD1 = "https://198.18.1.21:2379"
ETCD2 = "https://198.18.1.22:2379"
ETCD3 = "https://198.18.1.23:2379"
ETCD1_ID = 0x8E9E05C52164694D
LEADER_ID = 0x91BC3C398FB3C146
# What the signature adds to the report; the rest is what the master reads back.
SIGNATURE_KEYS = ("signature", "signed_keys")


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
def client_profile(credentials) -> dict:
    """What ``paas_pki.profile`` answers for the health-check client; a test may change it."""
    return dict(credentials)


@pytest.fixture
def context() -> dict:
    """The beacon's ``__context__``: one minion process's."""
    return {}


@pytest.fixture
def configure_loader_modules(
    beacon_module,
    health_module,
    http_utils,
    signed_report,
    topology,
    client_profile,
    minion_key,
    context,
):
    opts = {"id": "etcd1", "pki_dir": minion_key.pki_dir}
    return {
        health_module: {
            "__salt__": {
                "paas_topology.etcd_member": lambda: topology.member,
                "paas_pki.profile": lambda profile: client_profile,
            },
            "__utils__": {
                **utils_of(http_utils, "paas_etcd_http"),
                **utils_of(signed_report, "paas_signed_report"),
            },
            "__opts__": opts,
        },
        beacon_module: {
            "__salt__": {
                "paas_topology.dr": lambda: topology.dr,
                "etcd_health.report": health_module.report,
                "etcd_health.signed": health_module.signed,
            },
            "__context__": context,
            "__opts__": opts,
        },
    }


class Etcd:
    """What each member answers, by (client URL, path): JSON, or an exception to raise."""

    def __init__(self):
        self.answers = {}
        self.healthy()
        self.peer(ETCD2, True)
        self.peer(ETCD3, True)

    def healthy(self, leader: int = LEADER_ID):
        self.answers[ETCD1, "/health"] = {"health": "true"}
        self.answers[ETCD1, "/v3/maintenance/status"] = {
            "header": {"member_id": str(ETCD1_ID), "revision": "42", "raft_term": "3"},
            "leader": str(leader),
            "dbSize": "20480",
            "raftIndex": "57",
            "raftTerm": "3",
        }
        self.answers[ETCD1, "/v3/maintenance/alarm"] = {}

    def down(self):
        for path in ("/health", "/v3/maintenance/status", "/v3/maintenance/alarm"):
            self.answers[ETCD1, path] = ConnectionRefusedError(111, "Connection refused")

    def peer(self, url: str, healthy: bool):
        self.answers[url, "/health"] = {"health": "true"} if healthy else TimeoutError("timed out")

    def ask(self, _context, url, method, path, body, *, timeout):
        answer = self.answers[url, path]
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def etcd(health_module, http_utils, monkeypatch, data_dir):
    fake = Etcd()
    monkeypatch.setattr(http_utils, "ask", fake.ask)
    shown = "ActiveState=active\nSubState=running\nNRestarts=0\nMainPID=4242\n"
    monkeypatch.setattr(
        health_module,
        "subprocess",
        types.SimpleNamespace(
            run=lambda argv, **kwargs: types.SimpleNamespace(stdout=shown),
            SubprocessError=subprocess.SubprocessError,
        ),
    )
    return fake


@pytest.fixture
def clock(beacon_module, health_module, monkeypatch):
    """This node's clock, for the beacon and for the time it signs."""
    now = types.SimpleNamespace(value=1_000_000.0)
    fake_time = types.SimpleNamespace(time=lambda: now.value)
    monkeypatch.setattr(beacon_module, "time", fake_time)
    monkeypatch.setattr(health_module, "time", fake_time)
    return now


class Beacon:
    """
    Ticks the beacon and checks every event it fires as the master would: signed with
    the minion's key, and new (the epoch of this minion process, the next sequence).
    """

    def __init__(self, module, context: dict, public_key: str, verify):
        self.module, self.context = module, context
        self.public_key, self.verify = public_key, verify
        self.epochs: list[str] = []
        self.last_sequence = 0

    def tick(self, **settings) -> list[dict]:
        config = [{key: value} for key, value in settings.items()]
        events = self.module.beacon([*config, {"_beacon_name": "etcd_health"}])
        for event in events:
            signed = {key: value for key, value in event.items() if key not in SIGNATURE_KEYS}
            assert self.verify(self.public_key, event) == signed
            if self.last_sequence == 0:
                assert event["epoch"] not in self.epochs
                self.epochs.append(event["epoch"])
            assert event["epoch"] == self.epochs[-1]
            assert event["sequence"] == self.last_sequence + 1
            self.last_sequence = event["sequence"]
        return events

    def restart(self) -> None:
        """The minion restarts: its beacon starts again with an empty context."""
        self.context.clear()
        self.last_sequence = 0


@pytest.fixture
def beacon(beacon_module, context, minion_key, signed_report) -> Beacon:
    return Beacon(beacon_module, context, minion_key.public, signed_report.verify)


def test_the_first_tick_fires_the_members_report_signed(beacon, health_module, etcd, clock):
    [event] = beacon.tick()
    assert {key: value for key, value in event.items() if key not in SIGNATURE_KEYS} == {
        **health_module.report(),
        "reason": "changed",
        "epoch": beacon.epochs[0],
        "sequence": 1,
        "time": clock.value,
    }
    assert event["state"] == "healthy"
    assert event["signed_keys"] == sorted([*event.keys() - {"signature"}])


def test_a_healthy_member_is_reported_again_only_at_the_heartbeat(beacon, etcd, clock, topology):
    heartbeat = topology.dr["heartbeat_seconds"]
    assert [event["reason"] for event in beacon.tick()] == ["changed"]
    for _ in range(3):
        clock.value += heartbeat / 4
        assert beacon.tick() == []
    clock.value += heartbeat / 4
    assert [event["reason"] for event in beacon.tick()] == ["heartbeat"]
    clock.value += 1
    assert beacon.tick() == []
    assert beacon.last_sequence == 2


def test_a_member_that_does_not_answer_is_reported_down_on_every_tick(
    beacon, etcd, clock, data_dir
):
    beacon.tick()
    etcd.down()
    shutil.rmtree(data_dir / "member")
    reports = []
    for _ in range(3):
        clock.value += 1
        reports += beacon.tick()
    assert [(event["reason"], event["state"]) for event in reports] == [
        ("changed", "down"),
        ("unhealthy", "down"),
        ("unhealthy", "down"),
    ]
    assert [event["sequence"] for event in reports] == [2, 3, 4]
    assert reports[0]["data_dir"] is False


def test_a_change_of_leader_or_data_dir_fires_at_once_while_healthy(beacon, etcd, clock, data_dir):
    beacon.tick()
    clock.value += 1
    etcd.healthy(leader=ETCD1_ID)
    assert [(e["reason"], e["leader"]) for e in beacon.tick()] == [("changed", f"{ETCD1_ID:x}")]
    clock.value += 1
    assert beacon.tick() == []
    # Wiped and started again: a fresh store, no log.
    shutil.rmtree(data_dir / "member" / "wal")
    assert [(e["reason"], e["data_dir"]) for e in beacon.tick()] == [("changed", False)]


def test_a_peer_that_stops_answering_is_reported_at_once_while_healthy(beacon, etcd, clock):
    beacon.tick()
    clock.value += 1
    assert beacon.tick() == []
    etcd.peer(ETCD3, False)
    assert [(e["reason"], e["state"], e["peers"]) for e in beacon.tick()] == [
        ("changed", "healthy", {"etcd2": True, "etcd3": False})
    ]
    clock.value += 1
    assert beacon.tick() == []


def test_recovery_is_reported_at_once(beacon, etcd, clock):
    etcd.down()
    beacon.tick()
    clock.value += 1
    etcd.healthy()
    assert [(e["reason"], e["state"]) for e in beacon.tick()] == [("changed", "healthy")]


def test_the_endpoint_setting_is_the_member_the_beacon_reads(beacon, etcd, clock):
    local = "https://127.0.0.1:23379"
    for path in ("/health", "/v3/maintenance/status", "/v3/maintenance/alarm"):
        etcd.answers[local, path] = etcd.answers.pop((ETCD1, path))
    [event] = beacon.tick(endpoint=local)
    assert event["state"] == "healthy"


def test_a_restarted_minion_reports_at_once_in_a_new_epoch(beacon, etcd, clock):
    beacon.tick()
    clock.value += 1
    beacon.tick()
    etcd.down()
    clock.value += 1
    assert [event["sequence"] for event in beacon.tick()] == [2]
    beacon.restart()
    clock.value += 1
    [event] = beacon.tick()
    assert (event["reason"], event["sequence"]) == ("changed", 1)
    assert len(beacon.epochs) == 2


def test_a_report_that_cannot_be_made_fires_nothing_and_uses_no_sequence(
    beacon, etcd, clock, client_profile, credentials, tmp_path
):
    client_profile["key"] = str(tmp_path / "no.key")
    with pytest.raises(CommandExecutionError, match="cannot load the etcd-healthcheck-client"):
        beacon.tick()
    client_profile["key"] = credentials["key"]
    [event] = beacon.tick()
    assert (event["reason"], event["sequence"]) == ("changed", 1)


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
    from pathlib import Path
    import salt.loader
    from tests.functional import etcd_hosts

    tmp, topology, endpoint = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    # A minion's main process: its modules and utils loaded with its opts (its key in
    # pki_dir), and its beacons given those modules.
    opts = {
        **etcd_hosts.minion("etcd1", tmp, topology).opts,
        "pki_dir": str(tmp / "salt-pki"),
        "beacons_dirs": [str(etcd_hosts.REPO / "_beacons")],
    }
    utils = salt.loader.utils(opts)
    beacons = salt.loader.beacons(opts, salt.loader.minion_mods(opts, utils=utils))
    events = beacons["etcd_health.beacon"]([{"endpoint": endpoint}])
    public_key = (tmp / "salt-pki" / "minion.pub").read_text()
    print(json.dumps({
        "states": [utils["paas_signed_report.verify"](public_key, e)["state"] for e in events],
        "imported": sorted(
            name for name in sys.modules
            if name.split(".")[0] in ("grpc", "etcd3") or name.startswith("google.protobuf")
        ),
    }))
    """
)


def test_running_the_beacon_imports_no_grpc_etcd3_or_protobuf(tmp_path, repo_root, minion_key):
    """In a process of its own (other tests import them here), through Salt's loader and
    the platform's real topology, PKI and etcd_health modules, against a member that does
    not answer."""
    topology = etcd_hosts.topology("198.19.9")
    etcd_hosts.issue_all(tmp_path, topology, ["etcd1"])
    shutil.copytree(minion_key.pki_dir, tmp_path / "salt-pki")
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
