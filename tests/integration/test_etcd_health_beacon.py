"""
The ``etcd_health`` beacon in a running salt-minion, against a real etcd with client
certificates: its events reach the master signed with the minion's own key (they verify
with the key the master accepted for ``etcd1``, and are numbered in the epoch of the
minion's process), a stopped member is reported ``down``, an alarm raised against it
``alarm``, and a minion with the beacon ticking every second runs hundreds of jobs
without one hanging (the reason the beacon never touches gRPC).

The minion is ``etcd1`` of a topology of its own (it holds etcd1's health-check client
certificate); its member listens on loopback (23379/23380), given to the beacon as its
``endpoint``; etcd2 and etcd3 are addresses nobody answers. The master is the shipped one
without its reactor and schedule: nothing may act on these reports here.
"""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import time
from pathlib import Path

import pytest
import salt.client
import yaml

from tests.functional import etcd_hosts
from tests.integration.conftest import ShippedConfigMaster

TOPOLOGY = {
    **etcd_hosts.topology("198.19.7"),
    "dr": {"beacon_interval_seconds": 1, "heartbeat_seconds": 5},
}
CLIENT_PORT, PEER_PORT = 23379, 23380
CLIENT_URL = f"https://127.0.0.1:{CLIENT_PORT}"
PEER_URL = f"https://127.0.0.1:{PEER_PORT}"
TAG = "salt/beacon/etcd1/etcd_health/"
JOBS = 300
JOBS_AT_ONCE = 10


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("etcd-health-beacon")


@pytest.fixture(scope="module")
def etcd1(workdir):
    """etcd1's loaders (its certificates issued), for its PKI profiles."""
    return etcd_hosts.issue_all(workdir, TOPOLOGY, ["etcd1"])["etcd1"].modules


@pytest.fixture(scope="module")
def member(workdir, etcd1):
    """etcd1 on loopback with client certificate authentication (this host's etcd)."""
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed (make test installs etcd-server)")
    member = etcd_hosts.Member(
        "etcd1",
        "127.0.0.1",
        None,
        {profile: etcd1.paas_pki.profile(profile) for profile in ("etcd-server", "etcd-peer")},
        workdir / "etcd",
    )
    member.start(f"etcd1={PEER_URL}", "new", client_port=CLIENT_PORT, peer_port=PEER_PORT)
    try:
        etcd_hosts.wait_for(
            lambda: _get(etcd1, "/health")[1] == {"health": "true"}, "etcd1", [member]
        )
        yield member
    finally:
        member.stop()


def _ask(etcd1, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    credentials = etcd1.paas_pki.profile("etcd-healthcheck-client")
    context = ssl.create_default_context(cafile=credentials["ca"])
    context.load_cert_chain(credentials["cert"], credentials["key"])
    connection = http.client.HTTPSConnection("127.0.0.1", CLIENT_PORT, context=context, timeout=5)
    try:
        connection.request(method, path, body=None if body is None else json.dumps(body))
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    except OSError as err:
        return 0, {"error": str(err)}
    finally:
        connection.close()


def _get(etcd1, path: str) -> tuple[int, dict]:
    return _ask(etcd1, "GET", path)


@pytest.fixture(scope="module")
def master(salt_factories, shipped_master_config, workdir, etcd1):
    pillar_root = workdir / "pillar"
    pillar_root.mkdir()
    pillar = etcd_hosts.pillar("etcd1", workdir, TOPOLOGY)
    pillar["etcd"]["data_dir"] = str(workdir / "etcd" / "data")
    pillar["dr"]["receive_dir"] = str(workdir / "dr" / "snapshots")
    (pillar_root / "top.sls").write_text(yaml.safe_dump({"base": {"*": ["paas"]}}))
    (pillar_root / "paas.sls").write_text(yaml.safe_dump({"paas": pillar}))
    factory = salt_factories.salt_master_daemon(
        "beacon-itest-master",
        overrides={
            **shipped_master_config,
            "pillar_roots": {"base": [str(pillar_root)]},
            # Nothing acts on this test's reports, nor runs the DR schedule on this host.
            "reactor": [],
            "schedule": {},
        },
        factory_class=ShippedConfigMaster,
    )
    with factory.started():
        yield factory


@pytest.fixture(scope="module")
def signed_report(import_repo_module):
    return import_repo_module("_utils/paas_signed_report.py", "paas_signed_report_utils")


@pytest.fixture(scope="module")
def accepted_key(master, minion) -> str:
    """The public key the master accepted for etcd1: what paas_dr.react checks with."""
    return (Path(master.config["pki_dir"]) / "minions" / "etcd1").read_text()


def _received(event_listener, master, after: float) -> list:
    """etcd1's reports received after ``after``, in the order the master received them."""
    return sorted(
        event_listener.get_events([(master.id, TAG)], after_time=after),
        key=lambda event: event.stamp,
    )


def _in_state(state: str):
    return lambda report: report["state"] == state


@pytest.fixture
def wait_for_report(event_listener, master, accepted_key, signed_report):
    """Wait for a report of etcd1 received after ``after`` that ``matches``; it must
    verify, as it reached the master (Salt's keys and all), with the key the master
    accepted, and is returned as verified: the signed keys only."""

    def wait(after: float, matches, timeout: float = 60) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for event in _received(event_listener, master, after):
                report = signed_report.verify(accepted_key, event.full_data)
                if matches(report):
                    return report
            time.sleep(0.5)
        seen = [event.data for event in _received(event_listener, master, after)]
        raise AssertionError(f"no such report from etcd1 in {timeout} s; reports: {seen}")

    return wait


@pytest.fixture(scope="module")
def minion(master, member):
    """etcd1's minion, its modules synced and the beacon configured as beacon.present does."""
    # Salt counts a beacon's interval in loop_interval steps of its one-second tick;
    # salt-factories' default (0.05) would make "interval: 1" twenty seconds.
    factory = master.salt_minion_daemon("etcd1", overrides={"loop_interval": 1})
    with factory.started():
        cli = master.salt_cli(timeout=120)
        synced = cli.run("saltutil.sync_all", minion_tgt="etcd1")
        assert synced.returncode == 0, synced
        configured = cli.run(
            "state.single",
            "beacon.present",
            "name=etcd_health",
            "save=True",
            "interval=1",
            "disable_during_state_run=True",
            f"endpoint={CLIENT_URL}",
            minion_tgt="etcd1",
        )
        assert configured.returncode == 0, configured
        yield factory


def test_the_etcd_role_configures_the_beacon_from_the_topology(minion, master):
    shown = master.salt_cli(timeout=120).run("state.show_sls", "etcd.beacon", minion_tgt="etcd1")
    assert shown.returncode == 0, shown
    state = shown.data["etcd-beacon-health"]
    assert state["__sls__"] == "etcd.beacon"
    arguments = state["beacon"]
    assert "present" in arguments
    assert {"name": "etcd_health"} in arguments
    assert {"interval": TOPOLOGY["dr"]["beacon_interval_seconds"]} in arguments
    assert {"disable_during_state_run": True} in arguments
    assert {"save": True} in arguments
    assert {"require": [{"sls": "etcd.service"}]} in arguments


def test_this_hosts_etcd_serves_the_json_gateway_the_beacon_reads(member, etcd1):
    status, answer = _ask(etcd1, "POST", "/v3/maintenance/status", {})
    assert status == 200
    assert answer["leader"] == answer["header"]["member_id"]
    assert _ask(etcd1, "POST", "/v3/maintenance/alarm", {"action": "GET"}) == (200, {})


def test_the_master_receives_a_healthy_report(minion, wait_for_report):
    report = wait_for_report(time.time() - 120, _in_state("healthy"))
    assert report["member"] == "etcd1"
    assert (report["serving"], report["health"], report["data_dir"]) == (True, True, True)
    assert report["leader"] == report["member_id"]
    assert report["revision"] >= 1
    assert report["db_size"] > 0
    assert report["alarms"] == []
    assert report["peers"] == {"etcd2": False, "etcd3": False}
    assert report["error"] == ""


def test_the_reports_are_signed_by_the_minion_and_numbered_in_its_epoch(
    minion, master, event_listener, accepted_key, signed_report
):
    start = time.time()
    deadline = start + 4 * TOPOLOGY["dr"]["heartbeat_seconds"]
    received = []
    while len(received) < 2 and time.time() < deadline:
        time.sleep(0.5)
        received = _received(event_listener, master, start)
    assert len(received) >= 2, f"etcd1 sent {len(received)} report(s) in {deadline - start} s"
    first, second = (signed_report.verify(accepted_key, event.full_data) for event in received[:2])
    assert (first["member"], second["member"]) == ("etcd1", "etcd1")
    assert second["epoch"] == first["epoch"]
    assert second["sequence"] > first["sequence"] >= 1
    # Nothing Salt adds on the way is taken as signed.
    assert {"_stamp", "id"} <= received[1].full_data.keys()
    assert not {"_stamp", "id"} & second.keys()
    # Only the minion's own key verifies it: not another key the master holds.
    master_key = (Path(master.config["pki_dir"]) / "master.pub").read_text()
    with pytest.raises(ValueError, match="does not match the signer's accepted key"):
        signed_report.verify(master_key, received[1].full_data)


def test_an_alarm_raised_against_the_member_is_reported(minion, wait_for_report, etcd1):
    member_id = _ask(etcd1, "POST", "/v3/maintenance/status", {})[1]["header"]["member_id"]
    alarm = {"memberID": member_id, "alarm": "NOSPACE"}
    start = time.time()
    assert _ask(etcd1, "POST", "/v3/maintenance/alarm", {"action": "ACTIVATE", **alarm})[0] == 200
    try:
        report = wait_for_report(start, _in_state("alarm"))
        assert report["alarms"] == ["NOSPACE"]
    finally:
        _ask(etcd1, "POST", "/v3/maintenance/alarm", {"action": "DEACTIVATE", **alarm})
    wait_for_report(time.time(), _in_state("healthy"))


def test_the_minion_runs_hundreds_of_jobs_while_the_beacon_ticks(minion, master, event_listener):
    client = salt.client.get_local_client(mopts=dict(master.config))
    start = time.time()
    missing = []
    try:
        for first in range(0, JOBS, JOBS_AT_ONCE):
            jids = [
                client.run_job(
                    "etcd1",
                    "test.ping" if number % 2 else "cmd.run",
                    *([] if number % 2 else [["true"]]),
                    timeout=60,
                )["jid"]
                for number in range(first, first + JOBS_AT_ONCE)
            ]
            missing += _not_returned(client, jids, "etcd1", timeout=60)
    finally:
        client.destroy()
    assert missing == [], f"{len(missing)} of {JOBS} jobs never returned: {missing[:10]}"
    reports = event_listener.get_events([(master.id, TAG)], after_time=start)
    assert reports, "the beacon reported nothing while the jobs ran"
    assert {report.data["state"] for report in reports} == {"healthy"}
    # Nothing of gRPC was ever loaded in the minion's main process, where the beacon runs.
    maps = Path(f"/proc/{minion.pid}/maps").read_text().splitlines()
    assert [line.split()[-1] for line in maps if "grpc" in line] == []


def _not_returned(client, jids: list[str], minion: str, timeout: float) -> list[str]:
    """The jobs whose return from ``minion`` the master's job cache does not hold within
    ``timeout``. The job cache, not the event bus: Salt fires a return's event before it
    writes the cache, and LocalClient's wait for one job drops the events of the others,
    so waiting on events job after job can miss a return that came."""
    deadline = time.monotonic() + timeout
    waiting = list(jids)
    while waiting and time.monotonic() < deadline:
        waiting = [jid for jid in waiting if minion not in client.get_cache_returns(jid)]
        if waiting:
            time.sleep(0.1)
    return waiting


def test_a_stopped_member_is_reported_down_then_healthy_again(minion, wait_for_report, member):
    start = time.time()
    member.stop()
    try:
        report = wait_for_report(start, _in_state("down"))
        assert (report["serving"], report["data_dir"], report["member_id"]) == (False, True, None)
        assert f"{CLIENT_URL}/health" in report["error"]
    finally:
        member.restart()
    wait_for_report(time.time(), _in_state("healthy"))
