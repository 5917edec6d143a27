"""What the disaster-recovery tests share: the reactor's records on the lab's master, read
by the time things happened (the records keep their newest 50, so a lab used before
holds full ones), the cluster whole, and a writer whose acknowledged writes must survive."""

from __future__ import annotations

import json

from lab.processes import wait_for
from tests.e2e.etcd_helpers import ADDRESSES, Writer, admin_client
from tests.e2e.lab_helpers import LAB_STATE, on, paas_report, salt_json

ETCD = ["etcd1", "etcd2", "etcd3"]
DATA_DIR = "/var/lib/paas-etcd"
STATE_DIR = LAB_STATE / "dr/state"
RECEIVE_DIR = LAB_STATE / "dr/snapshots"
# A lost member is back well within this (the goal is 30 s; this host is shared).
RECOVERY_TIMEOUT = 240
# The lab's topology keeps paas:dr:unhealthy_reports_before_action's default: a member
# reported down this many times in a row is suspected.
UNHEALTHY_REPORTS = 3


def records(name: str) -> list:
    """One of the reactor's list records (remediations.json, probes.json...)."""
    path = STATE_DIR / name
    return json.loads(path.read_text()) if path.exists() else []


def since(name: str, started: float, key: str = "time") -> list:
    """The entries of record ``name`` made at or after ``started``."""
    return [entry for entry in records(name) if (entry.get(key) or 0) >= started]


def remediations_since(started: float) -> list[dict]:
    return since("remediations.json", started, key="started")


def remediation_after(started: float, timeout: float = RECOVERY_TIMEOUT) -> dict:
    """The first remediation that started at or after ``started``, once it ended."""
    assert wait_for(lambda: remediations_since(started), timeout=timeout, interval=1), (
        f"no remediation within {timeout}s; the reactor's view: "
        f"{salt_json('salt-run', 'paas_dr.summary')}"
    )
    return remediations_since(started)[0]


def whole() -> dict:
    """Three healthy voters, one leader, equal hashes: the cluster as the DR tests
    leave it."""
    status = salt_json("salt-run", "paas.status")["etcd"]
    assert status["healthy"] is True, status
    assert sorted(status["members"]) == ETCD, status
    assert all(not member["learner"] for member in status["members"].values()), status
    hashes = salt_json("salt", "etcd1", "etcd_cluster.hashkv")["etcd1"]
    assert hashes["equal"] is True, hashes
    return status


def healthy_now() -> bool:
    """Every member of the topology a healthy voter, as paas.status sees it (a learner
    left behind, or an unhealthy one, is not)."""
    status = paas_report("status")[1].get("etcd", {})
    return status.get("severity") == "ok" and sorted(status.get("members", {})) == ETCD


def stored(prefix: str, address: str = ADDRESSES["etcd1"]) -> set[str]:
    with admin_client(address) as admin:
        return {meta.key.decode() for _value, meta in admin.get_prefix(prefix)}


def nothing_lost(writer: Writer) -> None:
    """Every write etcd acknowledged is stored (the writer stopped first, so that none is
    acknowledged after the read)."""
    writer.stopping.set()
    writer.join(timeout=30)
    found = stored(writer.prefix)
    missing = [key for key in writer.acknowledged if key not in found]
    assert writer.acknowledged, writer.failures[-5:]
    assert not missing, f"{len(missing)} acknowledged writes lost, first {missing[:5]}"


def stop_and_wipe(*nodes: str) -> None:
    for node in nodes:
        on(node, f"systemctl stop paas-etcd && rm -rf {DATA_DIR}/*")


def acknowledged(reason: str) -> None:
    """An operator has looked: ``paas.dr`` has nothing more to say of the reactor."""
    salt_json("salt-run", "paas_dr.acknowledge", f"reason={reason}")
    code, report = paas_report("dr")
    assert code == 0, report["problems"]
