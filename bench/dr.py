"""
Benchmark: etcd's disaster recovery on the lab, unattended: a member's data wiped under
the running cluster (its unit started again, as Restart=on-failure does) until three
healthy voters again; quorum lost (two members stopped, their data wiped) until the
cluster is whole again, rebuilt from the survivor; the reactor's latency (from the
beacon report that settled the decision to the orchestration's start); and a snapshot
taken, verified and sent off the node (``salt etcd1 etcd_snapshot.take``, Salt's publish
included).

The lab is brought up and converged once. The recoveries' ends are the remediation
records' ``finished`` (the orchestration ends once every member is a healthy voter).
Prints a table of medians and writes bench/results/dr.json with every run.

    python -m bench.dr [--runs 3]
"""

from __future__ import annotations

import json
import sys
import time

from bench.common import SALT, lab_benchmark, run
from lab.config import STATE_DIR

REMEDIATIONS = STATE_DIR / "dr" / "state" / "remediations.json"
WIPE = "systemctl stop paas-etcd && rm -rf /var/lib/paas-etcd/*"
TIMEOUT = 600


def _remediations() -> list[dict]:
    return json.loads(REMEDIATIONS.read_text()) if REMEDIATIONS.exists() else []


def _next_remediation(count: int) -> dict:
    deadline = time.monotonic() + TIMEOUT
    while len(_remediations()) <= count:
        if time.monotonic() > deadline:
            sys.exit(f"no remediation within {TIMEOUT}s")
        time.sleep(0.2)
    found = _remediations()[count]
    if found["outcome"] != "ok":
        sys.exit(f"the remediation failed: {found['failed_steps']}")
    return found


def _on(nodes: str, command: str) -> None:
    run([str(SALT), "-L", nodes, "cmd.run", command, "python_shell=True"])


def _settle() -> None:
    """Every member a healthy voter, and the reactor's view of it fresh."""
    run([str(SALT), "etcd1", "state.sls", "etcd.prune"])
    time.sleep(10)


def one_run() -> dict:
    count = len(_remediations())
    wiped = time.time()
    _on("etcd3", f"{WIPE} && systemctl start --no-block paas-etcd")
    member = _next_remediation(count)
    _settle()
    count = len(_remediations())
    lost = time.time()
    _on("etcd2,etcd3", WIPE)
    quorum = _next_remediation(count)
    _settle()
    snapshot = run([str(SALT), "etcd1", "etcd_snapshot.take"])
    return {
        "wiped_member_s": member["finished"] - wiped,
        "quorum_loss_s": quorum["finished"] - lost,
        "reactor_latency_s": member["started"] - member["event_time"],
        "snapshot_off_node_s": snapshot,
    }


def main() -> None:
    lab_benchmark(
        "dr",
        __doc__.split("\n\n")[0],
        one_run,
        {
            "wiped_member_s": "wiped member -> 3 healthy voters (goal 30)",
            "quorum_loss_s": "quorum lost -> whole, from the survivor (goal 60)",
            "reactor_latency_s": "beacon report -> orchestration started (goal 2)",
            "snapshot_off_node_s": "snapshot taken, verified, off the node (goal 5)",
        },
        digits=2,
    )


if __name__ == "__main__":
    main()
