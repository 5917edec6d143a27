"""
etcd's disaster recovery on the lab, with a recording writer: paas.dr clean right after
the lab came up, snapshots taken, verified and sent off the node, a drill reading one
back; a member whose data is wiped under the running cluster brought back by hand
(orch.etcd) and unattended (beacon, reactor, the master's probe, orch.etcd_recover); a
flapping member and a partitioned one left alone; every member's data lost and restored
from the off-node snapshot holding the highest revision, its loss counted exactly,
Kubernetes answering again; a corrupt snapshot refused; a master restarted in the middle
of a remediation. Quorum lost and rebuilt from a survivor, with a silent minion and with
fencing, is in test_dr_trust.py.

Each test leaves the cluster whole: three healthy voters, the same hash everywhere.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import pytest
import salt.config
import salt.utils.event

from lab.config import MASTER_CONFIG_DIR
from lab.master import MASTER
from lab.processes import wait_for
from tests.e2e.dr_helpers import (
    DATA_DIR,
    ETCD,
    RECEIVE_DIR,
    RECOVERY_TIMEOUT,
    STATE_DIR,
    UNHEALTHY_REPORTS,
    healthy_now,
    nothing_lost,
    remediation_after,
    remediations_since,
    stored,
    whole,
)
from tests.e2e.etcd_helpers import ADDRESSES, admin_client
from tests.e2e.lab_helpers import on, orchestrate, paas_report, reactor_paused, salt_json

pytestmark = pytest.mark.e2e


def _seen_revision() -> int:
    """The newest revision any member reported to the master."""
    return salt_json("salt-run", "paas_restore.seen_revision") or 0


def _wipe(node: str) -> None:
    """The member's data emptied under the running cluster, then its unit started again
    (as Restart=on-failure does): etcd opens a fresh store and, depending on the
    membership it joined with and on the leader, panics on a fresh log under the old
    member ID, exits without writing a log, or catches up."""
    on(
        node,
        f"systemctl stop paas-etcd && rm -rf {DATA_DIR}/* && systemctl start --no-block paas-etcd",
    )


def test_snapshots_go_off_the_node_verified_and_a_drill_reads_one_back(lab):
    # Right after the lab came up: the first snapshots off the nodes, nothing to say.
    code, report = paas_report("dr")
    assert code == 0, report["problems"]
    with admin_client() as admin:
        admin.put("/paas/e2e/dr/in-the-snapshot", "kept")
    scheduled = salt_json("salt", "etcd1", "schedule.list", "return_yaml=False")["etcd1"]
    assert "paas-etcd-snapshot" in scheduled, scheduled
    taken = salt_json("salt", "-L", ",".join(ETCD), "etcd_snapshot.take")
    for node in ETCD:
        assert taken[node]["result"] is True, taken[node]
        path = taken[node]["snapshot"]["path"]
        assert taken[node]["pushed"] is True, taken[node]
        assert on(node, f"stat -c '%a %U' {path}").strip() == "600 root", path
    collected = salt_json("salt-run", "paas_backup.collect")
    assert collected["retcode"] == 0, collected
    for node in ETCD:
        received = sorted((RECEIVE_DIR / node).glob(f"{node}-*.db"))
        assert received, f"nothing of {node} in {RECEIVE_DIR}"
        assert oct(received[-1].stat().st_mode)[-3:] == "600"
    # The master's schedule may be running the first due drill right now: then this one
    # is refused ("another drill is running"), and asked again once that one is done.
    drill = salt_json("salt-run", "paas_backup.drill")
    deadline = time.monotonic() + 60
    while drill.get("reason") == "another drill is running" and time.monotonic() < deadline:
        time.sleep(1)
        drill = salt_json("salt-run", "paas_backup.drill")
    assert drill["passed"] is True, drill
    assert drill["keys"] >= 1 and drill["revision"] > 0, drill
    code, report = paas_report("dr")
    assert code == 0, report["problems"]
    assert report["last_drill"]["passed"] is True
    assert all(report["nodes"][node]["offsite"]["verified"] for node in ETCD), report


def _started_on_emptied_data(node: str) -> bool:
    return on(node, f"test -d {DATA_DIR}/member && echo yes", check=False).strip() == "yes"


def test_a_wiped_member_comes_back_by_hand_through_orch_etcd(writer):
    with reactor_paused("e2e: etcd3 repaired by hand"):
        _wipe("etcd3")
        assert wait_for(lambda: _started_on_emptied_data("etcd3"), timeout=60, interval=1)
        steps = orchestrate("orch.etcd")
        failed = {name: step["comment"] for name, step in steps.items() if not step["result"]}
        assert not failed, failed
    writer.phase = "after"
    time.sleep(1)
    whole()
    nothing_lost(writer)


def _lock_owner(timeout: float = RECOVERY_TIMEOUT) -> str:
    """The owner of the remediation lock, once one holds it."""
    lock = STATE_DIR / "lock.json"
    assert wait_for(lock.exists, timeout=timeout, interval=0.2), salt_json(
        "salt-run", "paas_dr.summary"
    )
    return json.loads(lock.read_text())["owner"]


def _signed_down(member: str, count: int) -> list[dict]:
    """``count`` reports that ``member`` is down, signed by its own minion in a new epoch
    (as a restarted beacon's), ready to be sent."""
    down = json.dumps({"member": member, "state": "down", "serving": False, "peers": {}})
    epoch = f"e2e{time.time_ns()}"
    return [
        salt_json("salt", member, "etcd_health.signed", down, epoch, str(sequence))[member]
        for sequence in range(1, count + 1)
    ]


def _deliver(member: str, reports: list[dict]) -> None:
    """The reports on the master's bus under ``member``'s beacon tag, as the master
    publishes a beacon's events, each once the reactor recorded the one before (its
    threads would take a burst in any order, and a report older than the latest of its
    epoch does not count): within a second or two, so they reach the reactor while a
    remediation that has just taken the lock still holds it (a salt-call on the node
    takes seconds)."""
    opts = salt.config.master_config(str(MASTER_CONFIG_DIR / "master"))
    with salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=False) as bus:
        for report in reports:
            assert bus.fire_event(report, f"salt/beacon/{member}/etcd_health/")
            assert wait_for(functools.partial(_recorded, report), timeout=30, interval=0.05), report


def _recorded(report: dict) -> bool:
    """Whether the reactor recorded ``report`` (its epoch and sequence seen)."""
    reports = json.loads((STATE_DIR / "reports.json").read_text())
    seen = reports.get("members", {}).get(report["member"], {}).get("seen", {})
    return report["sequence"] in seen.get(report["epoch"], [])


def test_a_wiped_member_is_replaced_unattended_and_a_second_event_is_dropped(writer):
    # Enough reports for a suspicion on their own, whatever etcd3's beacon said last; its
    # beacon is silent while the remediation's state runs there.
    second = _signed_down("etcd3", UNHEALTHY_REPORTS)
    started = time.time()
    _wipe("etcd3")
    owner = _lock_owner()
    _deliver("etcd3", second)

    remediation = remediation_after(started)

    assert (remediation["action"], remediation["member"], remediation["owner"]) == (
        "recover",
        "etcd3",
        owner,
    ), remediation
    assert remediation["outcome"] == "ok", remediation["failed_steps"]
    assert wait_for(healthy_now, timeout=60, interval=1)
    whole()
    nothing_lost(writer)
    dropped = salt_json("salt-run", "paas_dr.summary")["dropped"]
    assert any(event.get("held_by") == owner for event in dropped), dropped
    assert len(remediations_since(started)) == 1


def test_a_flapping_member_triggers_nothing(lab):
    started = time.time()
    for _ in range(3):
        on("etcd3", "systemctl stop paas-etcd; sleep 1; systemctl start paas-etcd")
        time.sleep(3)
    time.sleep(6)
    assert remediations_since(started) == []
    assert wait_for(healthy_now, timeout=60, interval=1)
    whole()


def test_a_partitioned_member_is_never_removed_and_the_majority_never_touched(lab):
    started = time.time()
    before = salt_json("salt", "etcd1", "etcd_cluster.members")["etcd1"]
    peers = " ".join(ADDRESSES[node] for node in ("etcd1", "etcd2"))
    on(
        "etcd3",
        "nft add table inet e2e-partition && "
        "nft add chain inet e2e-partition in '{ type filter hook input priority -10; }' && "
        "nft add chain inet e2e-partition out '{ type filter hook output priority -10; }' && "
        f"for peer in {peers}; do nft add rule inet e2e-partition in ip saddr $peer drop && "
        "nft add rule inet e2e-partition out ip daddr $peer drop; done",
    )
    try:
        # etcd3 reports isolated, the others healthy and etcd3 unreachable, for longer
        # than the debounce takes.
        time.sleep(8)
        assert remediations_since(started) == []
        assert salt_json("salt", "etcd1", "etcd_cluster.members")["etcd1"] == before
        decision = salt_json("salt-run", "paas_dr.summary")["last_decision"]
        assert decision["action"] == "none", decision
    finally:
        on("etcd3", "nft delete table inet e2e-partition", check=False)
    assert wait_for(healthy_now, timeout=60, interval=1)
    assert remediations_since(started) == []
    whole()


def test_a_corrupt_snapshot_offered_to_paas_restore_is_refused_and_nothing_changes(lab, tmp_path):
    newest = sorted((RECEIVE_DIR / "etcd1").glob("etcd1-*.db"))[-1]
    corrupt = tmp_path / newest.name
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    before = salt_json("salt", "etcd1", "etcd_cluster.status")["etcd1"]["members"]
    started = time.time()

    code, report = paas_report("restore", f"snapshot={corrupt}")

    assert code == 3, report
    assert "corrupt or truncated" in " ".join(report["problems"]), report
    assert remediations_since(started) == []
    after = salt_json("salt", "etcd1", "etcd_cluster.status")["etcd1"]["members"]
    assert {name: member["id"] for name, member in after.items()} == {
        name: member["id"] for name, member in before.items()
    }
    whole()


def _kubernetes_answers() -> bool:
    code, report = paas_report("status")
    kubernetes = report.get("kubernetes", {})
    return code == 0 and kubernetes.get("severity") == "ok"


@pytest.fixture
def snapshots_held(lab):
    """The nodes' snapshot schedule held, so that the test's own snapshot is the newest."""
    targets = ("salt", "-L", ",".join(ETCD))
    salt_json(*targets, "schedule.disable_job", "paas-etcd-snapshot")
    yield
    salt_json(*targets, "schedule.enable_job", "paas-etcd-snapshot")


def test_every_members_data_lost_is_restored_from_the_newest_off_node_snapshot(snapshots_held):
    with admin_client() as admin:
        for index in range(50):
            admin.put(f"/paas/e2e/dr/before-the-snapshot/{index:03d}", "kept")
    taken = salt_json("salt", "etcd1", "etcd_snapshot.take")["etcd1"]
    assert taken["result"] is True, taken
    assert salt_json("salt-run", "paas_backup.collect")["retcode"] == 0
    with admin_client() as admin:
        for index in range(20):
            written = admin.put(f"/paas/e2e/dr/after-the-snapshot/{index:03d}", "lost")
    after = written.header.revision
    # The platform sees revisions in the beacons' reports (on a change or a heartbeat).
    assert wait_for(lambda: _seen_revision() >= after, timeout=60, interval=1)
    started = time.time()
    for node in ETCD:
        on(node, f"systemctl stop paas-etcd && rm -rf {DATA_DIR}/*")
    seen = _seen_revision()

    remediation = remediation_after(started, timeout=RECOVERY_TIMEOUT * 2)

    assert remediation["action"] == "restore", remediation
    assert remediation["outcome"] == "ok", remediation["failed_steps"]
    seed = remediation["returned"]["paas-etcd-restore-seed"]
    assert seed["source"] == "snapshot", seed
    assert Path(seed["snapshot"]).name.startswith("etcd1-"), seed
    # Counted exactly: the revisions after the snapshot that the platform had seen before
    # the loss (the snapshot's revision read from its content), never the bump.
    assert seed["seen_revision"] == seen, seed
    assert seed["lost_revisions"] == seen - seed["snapshot_revision"], seed
    assert 20 <= seed["lost_revisions"] < 1_000_000, seed
    assert wait_for(healthy_now, timeout=60, interval=1)
    whole()
    assert len(stored("/paas/e2e/dr/before-the-snapshot/")) == 50
    assert stored("/paas/e2e/dr/after-the-snapshot/") == set()
    # The revision went forward, past everything a watcher saw.
    status = salt_json("salt", "etcd1", "etcd_cluster.hashkv")["etcd1"]
    assert status["revision"] > seed["snapshot_revision"] + 1_000_000
    assert wait_for(_kubernetes_answers, timeout=180, interval=3), paas_report("status")
    code, report = paas_report("dr")
    assert code == 0, report["problems"]
    assert report["last_remediation"]["outcome"] == "ok", report


def test_a_master_restarted_mid_remediation_leaves_no_stuck_lock(writer):
    started = time.time()
    _wipe("etcd3")
    owner = _lock_owner()
    time.sleep(2)
    MASTER.stop(grace=10)
    MASTER.start()
    lock = STATE_DIR / "lock.json"

    # At its start the master clears the lock of the remediation that died with it, and
    # records that remediation as interrupted.
    def cleared() -> bool:
        return any(
            entry["owner"] == owner and entry["outcome"] == "interrupted"
            for entry in remediations_since(started)
        )

    assert wait_for(cleared, timeout=120, interval=1), remediations_since(started)
    assert not lock.exists() or json.loads(lock.read_text())["owner"] != owner
    # Its job on etcd3 may have finished without it; otherwise the next report starts a
    # remediation of its own.
    assert wait_for(healthy_now, timeout=RECOVERY_TIMEOUT, interval=2), salt_json(
        "salt-run", "paas_dr.summary"
    )
    assert wait_for(lambda: not lock.exists(), timeout=RECOVERY_TIMEOUT, interval=1)
    whole()
    nothing_lost(writer)
    assert salt_json("salt-run", "paas_dr.lock") is None
    code, report = paas_report("dr")
    assert code == 0, report["problems"]
