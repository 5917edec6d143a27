"""
``etcd_health``: this etcd node's view of its own member, with etcd's HTTPS answers
faked.

The module runs under Salt's loader dunders with the real ``paas_etcd_http`` and
``paas_signed_report`` utils in ``__utils__`` and a real client certificate; each test
sets what this member and its peers answer (the JSON etcd's ``/health`` and JSON gateway
send, or the exception a request raises) at ``paas_etcd_http.ask``. The listeners are
read from this host's ``/proc`` for sockets the test opens, the write-ahead log from a
data directory it makes, the signature with a key made as Salt makes a minion's.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import types
from pathlib import Path

import pytest
from salt.exceptions import CommandExecutionError

from tests.conftest import utils_of

ETCD1 = "https://198.18.1.21:2379"
ETCD2 = "https://198.18.1.22:2379"
ETCD3 = "https://198.18.1.23:2379"
ETCD1_ID = 0x8E9E05C52164694D
LEADER_ID = 0x91BC3C398FB3C146
SYSTEMCTL_SHOW = "ActiveState=active\nSubState=running\nNRestarts=0\nMainPID=4242\n"
LISTENING = {
    "client": [{"pid": 4242, "command": "etcd"}],
    "peer": [{"pid": 4242, "command": "etcd"}],
}


@pytest.fixture
def topology(lab_topology, topology_utils):
    return types.SimpleNamespace(member=topology_utils.etcd_member(lab_topology, "etcd1"))


@pytest.fixture
def profiles(credentials) -> dict:
    """What ``paas_pki.profile`` answers, by profile; a test may change it."""
    return {"etcd-healthcheck-client": dict(credentials)}


@pytest.fixture
def configure_loader_modules(
    health_module, http_utils, signed_report, topology, profiles, minion_key
):
    salt = {
        "paas_topology.etcd_member": lambda: topology.member,
        "paas_pki.profile": lambda profile: profiles[profile],
    }
    utils = {
        **utils_of(http_utils, "paas_etcd_http"),
        **utils_of(signed_report, "paas_signed_report"),
    }
    return {
        health_module: {
            "__salt__": salt,
            "__utils__": utils,
            "__opts__": {"id": "etcd1", "pki_dir": minion_key.pki_dir},
        }
    }


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

    def ask(self, context, url, method, path, body, *, timeout):
        assert isinstance(context, ssl.SSLContext)
        expected = {"/health": ("GET", None), "/v3/maintenance/status": ("POST", {})}
        assert (method, body) == expected.get(path, ("POST", {"action": "GET"})), (path, body)
        answer = self.answers[url, path]
        if isinstance(answer, Exception):
            raise answer
        return answer


class Systemctl:
    """``subprocess.run`` of ``systemctl show``: what it prints, and the calls."""

    def __init__(self):
        self.shown = SYSTEMCTL_SHOW
        self.calls = []

    def run(self, argv, **kwargs):
        self.calls.append(argv)
        return types.SimpleNamespace(stdout=self.shown)


@pytest.fixture
def systemctl(health_module, monkeypatch):
    fake = Systemctl()
    monkeypatch.setattr(
        health_module,
        "subprocess",
        types.SimpleNamespace(run=fake.run, SubprocessError=subprocess.SubprocessError),
    )
    return fake


@pytest.fixture
def ports_asked(health_module, monkeypatch):
    """The ports ``report`` asks ``listeners`` about (this host's own are another test's)."""
    asked = []

    def listeners(ports):
        asked.append(ports)
        return LISTENING

    monkeypatch.setattr(health_module, "listeners", listeners)
    return asked


@pytest.fixture
def etcd(http_utils, monkeypatch, data_dir, systemctl, ports_asked):
    fake = Etcd()
    monkeypatch.setattr(http_utils, "ask", fake.ask)
    return fake


def test_a_healthy_member_is_reported_with_everything_etcd_said(health_module, etcd, ports_asked):
    assert health_module.report() == {
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
        "learner": False,
        "quota_bytes": 2147483648,
        "alarms": [],
        "data_dir": True,
        "service": {"active": "active", "sub": "running", "restarts": 0, "pid": 4242},
        "listening": LISTENING,
        "peers": {"etcd2": True, "etcd3": True},
        "error": "",
    }
    assert ports_asked == [{"client": 2379, "peer": 2380}]


def test_a_learner_says_so_and_is_healthy(health_module, etcd):
    # etcd answers a learner's /v3/maintenance/status with isLearner (and refuses it the
    # alarm list: "rpc not supported for learner").
    etcd.answers[ETCD1, "/v3/maintenance/status"]["isLearner"] = True

    report = health_module.report()

    assert (report["state"], report["learner"]) == ("healthy", True)


def test_a_member_that_does_not_answer_is_down(health_module, etcd, data_dir):
    etcd.down()
    shutil.rmtree(data_dir / "member")
    down = health_module.report()
    assert down["state"] == "down"
    assert down["serving"] is False
    assert down["data_dir"] is False
    assert (down["member_id"], down["leader"], down["raft_index"]) == (None, None, None)
    assert f"{ETCD1}/health: ConnectionRefusedError" in down["error"]


def test_a_member_that_answers_only_its_health_is_serving(health_module, etcd):
    etcd.down()
    etcd.answers[ETCD1, "/health"] = {"health": "false"}
    report = health_module.report()
    assert (report["state"], report["serving"]) == ("isolated", True)


@pytest.mark.parametrize(
    "alarms",
    [pytest.param((), id="no-alarm"), pytest.param([(LEADER_ID, "CORRUPT")], id="another-alarmed")],
)
def test_a_member_without_a_leader_is_isolated(health_module, etcd, alarms):
    etcd.healthy(leader=0, health="false", alarms=alarms)
    etcd.peer(ETCD2, False)
    etcd.peer(ETCD3, False)
    report = health_module.report()
    assert (report["state"], report["serving"], report["leader"]) == ("isolated", True, None)
    assert report["peers"] == {"etcd2": False, "etcd3": False}


def test_a_member_with_a_stale_leader_but_no_quorum_read_is_isolated(health_module, etcd):
    etcd.healthy(health="false")
    assert health_module.report()["state"] == "isolated"


def test_an_alarm_raised_against_this_member_is_an_alarm(health_module, etcd):
    etcd.healthy(health="false", alarms=[(ETCD1_ID, "CORRUPT"), (ETCD1_ID, "NOSPACE")])
    report = health_module.report()
    assert (report["state"], report["alarms"]) == ("alarm", ["CORRUPT", "NOSPACE"])


def test_another_members_alarm_leaves_this_member_healthy(health_module, etcd):
    etcd.healthy(health="false", alarms=[(LEADER_ID, "CORRUPT")])
    report = health_module.report()
    assert (report["state"], report["alarms"], report["health"]) == ("healthy", [], False)


def test_a_peer_that_does_not_answer_is_reported_without_changing_the_state(health_module, etcd):
    etcd.peer(ETCD3, False)
    report = health_module.report()
    assert (report["state"], report["peers"]) == ("healthy", {"etcd2": True, "etcd3": False})


def test_the_endpoint_replaces_the_members_own_url(health_module, etcd):
    local = "https://127.0.0.1:23379"
    for path in ("/health", "/v3/maintenance/status", "/v3/maintenance/alarm"):
        etcd.answers[local, path] = etcd.answers.pop((ETCD1, path))
    report = health_module.report(local)
    assert report["state"] == "healthy"
    assert "url" not in report


def test_a_certificate_it_cannot_load_is_an_error_not_a_down_member(
    health_module, etcd, profiles, tmp_path
):
    profiles["etcd-healthcheck-client"]["key"] = str(tmp_path / "no.key")
    with pytest.raises(CommandExecutionError, match="cannot load the etcd-healthcheck-client"):
        health_module.report()


def _unknown_ca_alert() -> ssl.SSLError:
    refusal = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    refusal.reason = "TLSV1_ALERT_UNKNOWN_CA"
    return refusal


@pytest.mark.parametrize(
    ("path", "refusal"),
    [
        pytest.param("/health", _unknown_ca_alert(), id="it-refuses-ours"),
        pytest.param(
            "/v3/maintenance/status",
            ssl.SSLCertVerificationError(1, "certificate verify failed: unable to get issuer"),
            id="we-refuse-its",
        ),
    ],
)
def test_a_member_and_a_certificate_that_do_not_trust_each_other_are_an_error_not_a_down_member(
    health_module, etcd, path, refusal
):
    etcd.down()
    etcd.answers[ETCD1, path] = refusal
    with pytest.raises(CommandExecutionError, match="do not trust each other"):
        health_module.report()


def test_the_service_is_read_from_systemctl_show(health_module, etcd, systemctl):
    systemctl.shown = "NRestarts=4\nActiveState=activating\nSubState=auto-restart\nMainPID=0\n"
    assert health_module.report()["service"] == {
        "active": "activating",
        "sub": "auto-restart",
        "restarts": 4,
        "pid": None,
    }
    assert systemctl.calls == [
        ["systemctl", "show", "-p", "ActiveState,SubState,NRestarts,MainPID", "paas-etcd"]
    ]


def test_no_systemctl_gives_an_unknown_service(health_module, etcd, monkeypatch):
    def run(argv, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "systemctl")

    monkeypatch.setattr(health_module.subprocess, "run", run)
    assert health_module.report()["service"] == {
        "active": None,
        "sub": None,
        "restarts": None,
        "pid": None,
    }


@pytest.fixture
def sockets():
    """Sockets a test opens (family, address, port: 0 for any), closed afterwards."""
    opened = []

    def open_socket(family: int, address: str, port: int = 0) -> socket.socket:
        opened.append(socket.socket(family, socket.SOCK_STREAM))
        opened[-1].bind((address, port))
        return opened[-1]

    yield opened, open_socket
    for each in opened:
        each.close()


def test_listeners_are_the_processes_listening_on_each_port(health_module, sockets):
    opened, open_socket = sockets
    listening = open_socket(socket.AF_INET, "127.0.0.1")
    listening.listen()
    port = listening.getsockname()[1]
    # The same port on IPv6 too (/proc/net/tcp6), as etcd listening on both would be.
    open_socket(socket.AF_INET6, "::1", port).listen()
    # A connection to it: the accepted socket has the same local port, and is no listener.
    open_socket(socket.AF_INET, "127.0.0.1").connect(("127.0.0.1", port))
    opened.append(listening.accept()[0])
    # Bound, never listening: nobody listens on that port.
    bound = open_socket(socket.AF_INET, "127.0.0.1")
    this_process = {"pid": os.getpid(), "command": Path("/proc/self/comm").read_text().strip()}
    assert health_module.listeners({"client": port, "peer": bound.getsockname()[1]}) == {
        "client": [this_process, this_process],
        "peer": [],
    }


def test_has_log_is_whether_the_data_dir_holds_a_write_ahead_log(health_module, data_dir):
    assert health_module.has_log(str(data_dir)) is True
    # A store with no log, as a wiped member whose unit started again leaves it.
    for entry in (data_dir / "member" / "wal").iterdir():
        entry.unlink()
    (data_dir / "member" / "wal" / "0.tmp").touch()
    assert health_module.has_log(str(data_dir)) is False
    shutil.rmtree(data_dir / "member" / "wal")
    assert health_module.has_log(str(data_dir)) is False
    assert health_module.has_log(str(data_dir / "none")) is False


def test_has_log_reads_the_topologys_data_dir_by_default(health_module, data_dir):
    assert health_module.has_log() is True
    shutil.rmtree(data_dir / "member" / "wal")
    assert health_module.has_log() is False


def test_signed_signs_the_report_with_the_minions_own_key(
    health_module, signed_report, minion_key, monkeypatch
):
    monkeypatch.setattr(health_module, "time", types.SimpleNamespace(time=lambda: 1_765_000_000.5))
    data = health_module.signed({"member": "etcd1", "state": "healthy"}, "0f3c", "3")
    assert signed_report.verify(minion_key.public, data) == {
        "member": "etcd1",
        "state": "healthy",
        "epoch": "0f3c",
        "sequence": 3,
        "time": 1_765_000_000.5,
    }


def test_signed_without_the_minions_key_is_an_error(
    health_module, minion_key, monkeypatch, tmp_path
):
    monkeypatch.setitem(health_module.__opts__, "pki_dir", str(tmp_path))
    with pytest.raises(CommandExecutionError, match=f"cannot sign with {tmp_path}/minion.pem"):
        health_module.signed({"member": "etcd1", "state": "healthy"}, "0f3c", 1)


def test_the_module_does_not_load_without_its_utils(health_module, monkeypatch):
    monkeypatch.setattr(health_module, "__utils__", {})
    assert health_module.__virtual__() == (
        False,
        "etcd_health: the paas_etcd_http utils module is not synced",
    )
