"""
etcd's disaster recovery acts on nothing it has not verified itself, on the lab, with the
reactor active:

- forged reports from a worker and a gateway (every member down, dated now and an hour
  ahead, plain and in Salt's ``events`` preload) change nothing and are refused naming
  the sender; a genuine-looking report from a healthy member's own minion, signed with
  its key, is contradicted by the master's probe;
- quorum lost while the surviving node's minion is stopped (SIGSTOP: it answers nothing
  while its etcd serves on): no restore until that minion answers, then an unattended
  restore from it, nothing acknowledged lost;
- two etcd machines powered off with the lab's fencing configured: fenced, restored
  from the survivor unattended, and the fenced members replaced as their machines come
  back;
- a restore that fails once the apiservers are set aside (etcd3's unit cannot start)
  puts them back: they answer through the VIP.

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
from tests.e2e.dr_helpers import (
    ETCD,
    RECOVERY_TIMEOUT,
    acknowledged,
    healthy_now,
    nothing_lost,
    remediation_after,
    remediations_since,
    since,
    stop_and_wipe,
    whole,
)
from tests.e2e.lab_helpers import (
    CONTROL_PLANES,
    PUBLIC_VIP,
    REPO,
    lab_command,
    machine,
    on,
    paas_report,
    salt_json,
)

pytestmark = pytest.mark.e2e

# The lab's beacon ticks every 2 s; three reports in a row, then a probe.
BEACON_S = 2
SETTLE_S = 15
BROKEN_START = "/etc/systemd/system/paas-etcd.service.d/e2e-broken.conf"


def _members() -> dict:
    """Each member's id, as the cluster lists them."""
    return {m["name"]: m["id"] for m in salt_json("salt", "etcd1", "etcd_cluster.members")["etcd1"]}


def _cluster_revision() -> int:
    return salt_json("salt", "etcd1", "etcd_cluster.hashkv")["etcd1"]["revision"]


def _units_active() -> dict:
    return {node: on(node, "systemctl is-active paas-etcd", check=False).strip() for node in ETCD}


def test_forged_reports_change_nothing_and_a_contradicted_one_is_recorded(lab):
    members, revision = _members(), _cluster_revision()
    started = time.time()
    for sender in ("worker1", "gw1"):
        sends = []
        for member in ETCD:
            tag = f"salt/beacon/{member}/etcd_health/"
            for dated in (time.time(), time.time() + 3600):
                report = {"member": member, "state": "down", "serving": False, "time": dated}
                # As event.send without a preload: Salt passes on the sender's id.
                sends.append(f"salt-call event.send {tag} data='{json.dumps(report)}'")
        # In Salt's events preload, as a beacon's events travel: no sender said.
        events = [
            {
                "tag": f"salt/beacon/{member}/etcd_health/",
                "data": {"member": member, "state": "down", "time": time.time() + 3600},
            }
            for member in ETCD
        ]
        sends.append(f"salt-call event.send x preload='{json.dumps({'events': events})}'")
        on(sender, " & ".join(sends) + " & wait")

    def refused_since() -> list:
        return since("refused.json", started)

    # Two senders, six plain events and three in a preload each.
    assert wait_for(lambda: len(refused_since()) >= 18, SETTLE_S, 1), refused_since()
    time.sleep(2 * BEACON_S)

    refused = refused_since()
    assert len(refused) == 18, refused
    # The plain ones name their sender; the preload's name none.
    assert [entry["sender"] for entry in refused].count("worker1") == 6, refused
    assert [entry["sender"] for entry in refused].count("gw1") == 6, refused
    assert all("not signed" in entry["reason"] for entry in refused), refused
    assert remediations_since(started) == []
    assert since("probes.json", started) == []
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
    # finds it healthy. Its beacon is held meanwhile, so that no genuine report (a
    # heartbeat) comes between the three.
    down = {"member": "etcd3", "state": "down", "serving": False, "peers": {}}
    epoch = f"e2e{uuid.uuid4().hex}"
    signed = [
        salt_json("salt", "etcd3", "etcd_health.signed", json.dumps(down), epoch, str(sequence))[
            "etcd3"
        ]
        for sequence in (1, 2, 3)
    ]
    salt_json("salt", "etcd3", "beacons.disable_beacon", "etcd_health")
    try:
        for report in signed:
            on(
                "etcd3",
                f"salt-call event.send salt/beacon/etcd3/etcd_health/ data='{json.dumps(report)}'",
            )
    finally:
        salt_json("salt", "etcd3", "beacons.enable_beacon", "etcd_health")
    assert wait_for(lambda: since("probes.json", started), timeout=SETTLE_S, interval=1)
    [probe] = since("probes.json", started)
    assert (probe["rule"], probe["sender"], probe["member"]) == ("contradicted", "etcd3", "etcd3")
    assert "the master reaches etcd3 healthy" in probe["reason"]
    assert remediations_since(started) == []
    assert _units_active() == dict.fromkeys(ETCD, "active")
    assert _members() == members
    code, report = paas_report("dr")
    assert any("etcd3's report (recover etcd3) was contradicted" in p for p in report["problems"])
    acknowledged("e2e: forged and contradicted reports looked at")


def test_quorum_lost_behind_a_silent_minion_waits_for_it_then_restores_from_it(writer):
    time.sleep(2)
    started = time.time()
    # Stopped, not shut down: a minion that starts again takes half a minute here.
    on("etcd3", "systemctl kill --signal=SIGSTOP salt-minion")
    try:
        writer.phase = "quorum lost"
        stop_and_wipe("etcd1", "etcd2")

        def blocked() -> bool:
            return any(
                probe["rule"] == "blocked" and probe["silent"] == ["etcd3"]
                for probe in since("probes.json", started)
            )

        assert wait_for(blocked, timeout=RECOVERY_TIMEOUT, interval=1), since(
            "probes.json", started
        )
        assert remediations_since(started) == []
        # etcd3's etcd goes on serving behind its silent minion: nothing raced it.
        assert on("etcd3", "systemctl is-active paas-etcd", check=False).strip() == "active"
        code, report = paas_report("dr")
        assert code == 1
        [problem] = [p for p in report["problems"] if p.startswith("the reactor is blocked")]
        assert "etcd3's minion does not answer" in problem
        assert "alive behind a silent minion" in problem
        assert "salt-run paas.restore fenced=etcd3" in problem
    finally:
        on("etcd3", "systemctl kill --signal=SIGCONT salt-minion")

    remediation = remediation_after(started)

    assert remediation["action"] == "restore", remediation
    assert remediation["outcome"] == "ok", remediation["failed_steps"]
    seed = remediation["returned"]["paas-etcd-restore-seed"]
    assert (seed["source"], seed["member"], seed["lost_revisions"]) == ("survivor", "etcd3", 0)
    writer.phase = "after"
    assert wait_for(healthy_now, timeout=60, interval=1)
    whole()
    nothing_lost(writer)
    acknowledged("e2e: the silent minion is back")


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
    time.sleep(2)
    started = time.time()
    writer.phase = "quorum lost"
    for node in ("etcd2", "etcd3"):
        power_off(machine(node))

    remediation = remediation_after(started)

    assert remediation["action"] == "restore", remediation
    assert remediation["outcome"] == "ok", remediation["failed_steps"]
    assert remediation["fenced"] == ["etcd2", "etcd3"], remediation
    seed = remediation["returned"]["paas-etcd-restore-seed"]
    assert (seed["source"], seed["member"], seed["lost_revisions"]) == ("survivor", "etcd1", 0)
    [probe] = [p for p in since("probes.json", started) if p["time"] <= remediation["started"]][-1:]
    assert {node: outcome["fenced"] for node, outcome in probe["fencing"].items()} == {
        "etcd2": True,
        "etcd3": True,
    }
    code, report = paas_report("dr")
    assert code == 1
    assert any("etcd2, etcd3 fenced by the restore" in p for p in report["problems"]), report
    nothing_lost(writer)

    # Their machines back: each member is replaced as it comes back.
    for node in ("etcd2", "etcd3"):
        assert lab_command("power-on", node, capture_output=True).returncode == 0
    assert wait_for(healthy_now, timeout=RECOVERY_TIMEOUT * 2, interval=3), salt_json(
        "salt-run", "paas_dr.summary"
    )
    whole()
    recovered = [r for r in remediations_since(started) if r["action"] == "recover"]
    assert {r["member"] for r in recovered} == {"etcd2", "etcd3"}, recovered
    acknowledged("e2e: the fenced machines are back")


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


def test_a_restore_that_fails_after_setting_the_apiservers_aside_puts_them_back(lab):
    """Quorum lost with etcd1's data intact; etcd3's etcd cannot start again (a drop-in
    whose ExecStartPre fails): the restore rebuilds from etcd1, then fails joining etcd3.
    Whatever failed, the apiservers it set aside are back, and answer through the VIP."""
    started = time.time()
    drop_in = "[Service]\\nExecStartPre=/bin/false\\n"
    on(
        "etcd3",
        f"mkdir -p {BROKEN_START.rsplit('/', 1)[0]} && printf '{drop_in}' > {BROKEN_START}"
        " && systemctl daemon-reload",
    )
    try:
        stop_and_wipe("etcd2", "etcd3")

        remediation = remediation_after(started)

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
        on(
            "etcd3",
            f"rm -f {BROKEN_START} && systemctl daemon-reload && systemctl reset-failed paas-etcd",
            check=False,
        )
        # The operator mended etcd3's unit and says so: the back-off of what failed ends.
        salt_json("salt-run", "paas_dr.acknowledge", "reason=e2e: etcd3's unit mended")

    # etcd3 can start again: the reactor replaces it.
    assert wait_for(healthy_now, timeout=RECOVERY_TIMEOUT, interval=2), salt_json(
        "salt-run", "paas_dr.summary"
    )
    whole()
    acknowledged("e2e: etcd3 is back")
