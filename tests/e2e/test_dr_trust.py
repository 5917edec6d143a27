"""
etcd's disaster recovery acts on nothing it has not verified itself, on the lab, with the
reactor active:

- forged reports from a worker and a gateway (every member down, dated now and an hour
  ahead, plain and in Salt's ``events`` preload) change nothing and are refused naming
  the sender; a genuine-looking report from a healthy member's own minion, signed with
  its key, is contradicted by the master's probe;
- quorum lost while the surviving node's minion is stopped (its etcd still serving):
  no restore until that minion answers, then an unattended restore from it, nothing
  acknowledged lost;
- two etcd machines powered off with the lab's fencing configured: fenced, restored
  from the survivor unattended, and the fenced members replaced as their machines come
  back;
- a restore that fails once the apiservers are set aside (a process squatting on
  etcd's client port) puts them back: they answer through the VIP.

Each test leaves the cluster whole and the DR records acknowledged.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import time
import uuid

import pytest
import yaml

from lab.config import PILLAR_OVERLAY_DIR
from lab.machines import power_off
from lab.processes import wait_for
from tests.e2e.etcd_helpers import ADDRESSES, Writer, admin_client
from tests.e2e.lab_helpers import (
    CONTROL_PLANES,
    LAB_STATE,
    PUBLIC_VIP,
    REPO,
    lab_command,
    machine,
    on,
    paas_report,
    salt_json,
)

pytestmark = pytest.mark.e2e

ETCD = ["etcd1", "etcd2", "etcd3"]
DATA_DIR = "/var/lib/paas-etcd"
STATE_DIR = LAB_STATE / "dr/state"
# The lab's beacon ticks every 2 s; three reports in a row, then a probe.
SETTLE_S = 15
RECOVERY_TIMEOUT = 240


def _records(name: str) -> list:
    path = STATE_DIR / name
    return json.loads(path.read_text()) if path.exists() else []


def _remediation_after(count: int, timeout: float = RECOVERY_TIMEOUT) -> dict:
    assert wait_for(lambda: len(_records("remediations.json")) > count, timeout, 1), (
        f"no remediation within {timeout}s: {salt_json('salt-run', 'paas_dr.summary')}"
    )
    return _records("remediations.json")[count]


def _members() -> dict:
    """Each member's id, as the cluster lists them."""
    return {m["name"]: m["id"] for m in salt_json("salt", "etcd1", "etcd_cluster.members")["etcd1"]}


def _cluster_revision() -> int:
    return salt_json("salt", "etcd1", "etcd_cluster.hashkv")["etcd1"]["revision"]


def _whole() -> None:
    status = salt_json("salt-run", "paas.status")["etcd"]
    assert status["healthy"] is True, status
    assert sorted(status["members"]) == ETCD, status
    assert all(not member["learner"] for member in status["members"].values()), status
    hashes = salt_json("salt", "etcd1", "etcd_cluster.hashkv")["etcd1"]
    assert hashes["equal"] is True, hashes


def _healthy_now() -> bool:
    status = paas_report("status")[1].get("etcd", {})
    return status.get("healthy") is True and sorted(status.get("members", {})) == ETCD


def _acknowledged(reason: str) -> None:
    """An operator has looked: ``paas.dr`` has nothing more to say of the reactor."""
    salt_json("salt-run", "paas_dr.acknowledge", f"reason={reason}")
    code, report = paas_report("dr")
    assert code == 0, report["problems"]


def _nothing_lost(writer: Writer) -> None:
    writer.stopping.set()
    writer.join(timeout=30)
    with admin_client(ADDRESSES["etcd1"]) as admin:
        stored = {meta.key.decode() for _value, meta in admin.get_prefix(writer.prefix)}
    missing = [key for key in writer.acknowledged if key not in stored]
    assert writer.acknowledged, writer.failures[-5:]
    assert not missing, f"{len(missing)} acknowledged writes lost, first {missing[:5]}"


@pytest.fixture
def writer(lab):
    started = Writer(ETCD, prefix=f"/paas/e2e/trust/{time.time_ns()}/", pause=0.02)
    started.start()
    yield started
    started.stopping.set()
    started.join(timeout=30)


def _units_active() -> dict:
    return {node: on(node, "systemctl is-active paas-etcd", check=False).strip() for node in ETCD}


def test_forged_reports_change_nothing_and_a_contradicted_one_is_recorded(lab):
    members, revision = _members(), _cluster_revision()
    remediations, probes = len(_records("remediations.json")), len(_records("probes.json"))
    for sender in ("worker1", "gw1"):
        for member in ETCD:
            for dated in (time.time(), time.time() + 3600):
                report = {"member": member, "state": "down", "serving": False, "time": dated}
                tag = f"salt/beacon/{member}/etcd_health/"
                # As event.send without a preload: Salt passes on the sender's id.
                on(sender, f"salt-call event.send {tag} data='{json.dumps(report)}'")
        # In Salt's events preload, as a beacon's events travel: no sender said.
        events = [
            {
                "tag": f"salt/beacon/{member}/etcd_health/",
                "data": {"member": member, "state": "down", "time": time.time() + 3600},
            }
            for member in ETCD
        ]
        on(sender, f"salt-call event.send x preload='{json.dumps({'events': events})}'")
    time.sleep(SETTLE_S)

    refused = _records("refused.json")
    assert {entry["sender"] for entry in refused[-18:]} >= {"worker1", "gw1"}, refused
    assert len([entry for entry in refused if entry["sender"] in ("worker1", "gw1")]) >= 12
    assert all("not signed" in entry["reason"] for entry in refused[-18:]), refused[-18:]
    assert len(_records("remediations.json")) == remediations
    assert len(_records("probes.json")) == probes
    assert _units_active() == dict.fromkeys(ETCD, "active")
    assert _members() == members
    # Nothing was restored: the revision went on from where it was, never bumped.
    assert revision <= _cluster_revision() < revision + 1_000_000
    code, report = paas_report("dr")
    assert code == 1
    assert any(
        "report(s) from worker1 claiming etcd1, etcd2, etcd3" in p for p in report["problems"]
    )
    assert any("report(s) from gw1 claiming etcd1, etcd2, etcd3" in p for p in report["problems"])

    # etcd3's own minion, signing with its own key, says etcd3 is down: the master's probe
    # finds it healthy.
    epoch = f"e2e{uuid.uuid4().hex}"
    for sequence in (1, 2, 3):
        down = {"member": "etcd3", "state": "down", "serving": False, "peers": {}}
        signed = salt_json(
            "salt", "etcd3", "etcd_health.signed", json.dumps(down), epoch, str(sequence)
        )["etcd3"]
        on(
            "etcd3",
            f"salt-call event.send salt/beacon/etcd3/etcd_health/ data='{json.dumps(signed)}'",
        )
        time.sleep(1)
    assert wait_for(lambda: len(_records("probes.json")) > probes, timeout=SETTLE_S, interval=1)
    probe = _records("probes.json")[probes]
    assert (probe["rule"], probe["sender"], probe["member"]) == ("contradicted", "etcd3", "etcd3")
    assert "the master reaches etcd3 healthy" in probe["reason"]
    assert len(_records("remediations.json")) == remediations
    assert _units_active() == dict.fromkeys(ETCD, "active")
    assert _members() == members
    code, report = paas_report("dr")
    assert any("etcd3's report (recover etcd3) was contradicted" in p for p in report["problems"])
    _acknowledged("e2e: forged and contradicted reports looked at")


def _stop_and_wipe(*nodes: str) -> None:
    for node in nodes:
        on(node, f"systemctl stop paas-etcd && rm -rf {DATA_DIR}/*")


def test_quorum_lost_behind_a_silent_minion_waits_for_it_then_restores_from_it(writer):
    count = len(_records("remediations.json"))
    time.sleep(2)
    on("etcd3", "systemctl stop salt-minion")
    try:
        writer.phase = "quorum lost"
        _stop_and_wipe("etcd1", "etcd2")

        def blocked() -> bool:
            probes = _records("probes.json")
            return (
                bool(probes)
                and probes[-1]["rule"] == "blocked"
                and probes[-1]["silent"] == ["etcd3"]
            )

        assert wait_for(blocked, timeout=RECOVERY_TIMEOUT, interval=1), _records("probes.json")[-1:]
        assert len(_records("remediations.json")) == count
        # etcd3's etcd goes on serving behind its silent minion: nothing raced it.
        assert on("etcd3", "systemctl is-active paas-etcd", check=False).strip() == "active"
        code, report = paas_report("dr")
        assert code == 1
        [problem] = [p for p in report["problems"] if p.startswith("the reactor is blocked")]
        assert "etcd3's minion does not answer" in problem
        assert "alive behind a silent minion" in problem
        assert "salt-run paas.restore fenced=etcd3" in problem
    finally:
        on("etcd3", "systemctl start salt-minion")

    remediation = _remediation_after(count)

    assert remediation["action"] == "restore", remediation
    assert remediation["outcome"] == "ok", remediation["failed_steps"]
    seed = remediation["returned"]["paas-etcd-restore-seed"]
    assert (seed["source"], seed["member"], seed["lost_revisions"]) == ("survivor", "etcd3", 0)
    writer.phase = "after"
    assert wait_for(_healthy_now, timeout=60, interval=1)
    _whole()
    _nothing_lost(writer)
    _acknowledged("e2e: the silent minion is back")


@pytest.fixture
def fencing(lab):
    """The lab's fencing double in the topology (a pillar of the lab's overlay): the
    master powers a silent etcd machine off; removed afterwards."""
    sls = PILLAR_OVERLAY_DIR / "e2e-fencing.sls"
    top_path = PILLAR_OVERLAY_DIR / "top.sls"
    top = top_path.read_text()
    command = [
        "/usr/bin/env",
        f"PYTHONPATH={REPO}",
        sys.executable,
        "-m",
        "lab",
        "power-off",
        "{node}",
    ]
    sls.write_text(yaml.safe_dump({"paas": {"dr": {"fencing": {"command": command}}}}))
    with_fencing = yaml.safe_load(top)
    for targets in with_fencing.values():
        for files in targets.values():
            files.append("e2e-fencing")
    top_path.write_text(yaml.safe_dump(with_fencing))
    try:
        yield command
    finally:
        top_path.write_text(top)
        sls.unlink(missing_ok=True)
        for node in ETCD:
            lab_command("power-on", node, capture_output=True)


def test_two_machines_powered_off_are_fenced_and_the_cluster_restored_from_the_survivor(
    writer, fencing
):
    count = len(_records("remediations.json"))
    time.sleep(2)
    writer.phase = "quorum lost"
    for node in ("etcd2", "etcd3"):
        power_off(machine(node))

    remediation = _remediation_after(count)

    assert remediation["action"] == "restore", remediation
    assert remediation["outcome"] == "ok", remediation["failed_steps"]
    assert remediation["fenced"] == ["etcd2", "etcd3"], remediation
    seed = remediation["returned"]["paas-etcd-restore-seed"]
    assert (seed["source"], seed["member"], seed["lost_revisions"]) == ("survivor", "etcd1", 0)
    [probe] = [p for p in _records("probes.json") if p["time"] <= remediation["started"]][-1:]
    assert {node: outcome["fenced"] for node, outcome in probe["fencing"].items()} == {
        "etcd2": True,
        "etcd3": True,
    }
    code, report = paas_report("dr")
    assert code == 1
    assert any("etcd2, etcd3 fenced by the restore" in p for p in report["problems"]), report
    _nothing_lost(writer)

    # Their machines back: each member is replaced as it comes back.
    for node in ("etcd2", "etcd3"):
        assert lab_command("power-on", node, capture_output=True).returncode == 0
    assert wait_for(_healthy_now, timeout=RECOVERY_TIMEOUT * 2, interval=3), salt_json(
        "salt-run", "paas_dr.summary"
    )
    _whole()
    recovered = [r for r in _records("remediations.json")[count + 1 :] if r["action"] == "recover"]
    assert {r["member"] for r in recovered} == {"etcd2", "etcd3"}, recovered
    _acknowledged("e2e: the fenced machines are back")


def _apiservers_answer_through_the_vip() -> bool:
    """kube-apiserver's /readyz through the public VIP and the gateways' haproxy says ok."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((PUBLIC_VIP, 6443), timeout=3) as raw,
            context.wrap_socket(raw) as tls,
        ):
            tls.sendall(b"GET /readyz HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
            return tls.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


BROKEN_START = "/etc/systemd/system/paas-etcd.service.d/e2e-broken.conf"


def test_a_restore_that_fails_after_setting_the_apiservers_aside_puts_them_back(lab):
    """Quorum lost with etcd1's data intact; etcd3's etcd cannot start again (a drop-in
    whose ExecStartPre fails): the restore rebuilds from etcd1, then fails joining etcd3.
    Whatever failed, the apiservers it set aside are back, and answer through the VIP."""
    count = len(_records("remediations.json"))
    drop_in = "[Service]\\nExecStartPre=/bin/false\\n"
    on(
        "etcd3",
        f"mkdir -p {BROKEN_START.rsplit('/', 1)[0]} && printf '{drop_in}' > {BROKEN_START}"
        " && systemctl daemon-reload",
    )
    try:
        _stop_and_wipe("etcd2", "etcd3")

        remediation = _remediation_after(count)

        assert remediation["action"] == "restore", remediation
        assert remediation["outcome"] == "failed", remediation
        seed = remediation["returned"]["paas-etcd-restore-seed"]
        assert (seed["source"], seed["member"]) == ("survivor", "etcd1"), seed
        assert [step["step"] for step in remediation["failed_steps"]] == [
            "paas-etcd-restore-members"
        ], remediation["failed_steps"]
        assert remediation["control_planes_back"] == "ok", remediation
        for node in CONTROL_PLANES:
            manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml"
            assert on(node, f"test -f {manifest} && echo yes").strip() == "yes", node
        assert wait_for(_apiservers_answer_through_the_vip, timeout=120, interval=2)
        code, report = paas_report("dr")
        assert code == 1
        assert any(
            "the last remediation (restore the cluster) failed" in p for p in report["problems"]
        ), report["problems"]
    finally:
        on("etcd3", f"rm -f {BROKEN_START} && systemctl daemon-reload", check=False)

    # etcd3 can start again: the reactor replaces it (after the failed restore's back-off).
    assert wait_for(_healthy_now, timeout=RECOVERY_TIMEOUT, interval=2), salt_json(
        "salt-run", "paas_dr.summary"
    )
    _whole()
    _acknowledged("e2e: etcd3's unit mended")
