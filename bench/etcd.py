"""
Benchmark: orch.etcd forming the three-member cluster from nothing (no member, no data;
certificates in place) and its no-op re-run, on the lab.

The lab is brought up and converged once; before each run every etcd node's member is
stopped and its data removed. Prints a table of medians and writes
bench/results/etcd.json with every run.

    python -m bench.etcd [--runs 3]
"""

from __future__ import annotations

from bench.common import SALT, SALT_RUN, lab_benchmark, run

WIPE = "systemctl stop paas-etcd; rm -rf /var/lib/paas-etcd/member /etc/paas/etcd/membership.env"


def one_run() -> dict:
    # The DR reactor would restore what this takes away on purpose.
    run([str(SALT_RUN), "paas_dr.pause", "minutes=30", "reason=bench.etcd"])
    try:
        run([str(SALT), "etcd*", "cmd.run", WIPE, "python_shell=True"])
        from_nothing = run([str(SALT_RUN), "state.orchestrate", "orch.etcd"])
        no_op = run([str(SALT_RUN), "state.orchestrate", "orch.etcd"])
    finally:
        run([str(SALT_RUN), "paas_dr.resume"])
    return {"from_nothing_s": from_nothing, "noop_s": no_op}


def main() -> None:
    lab_benchmark(
        "etcd",
        __doc__.split("\n\n")[0],
        one_run,
        {
            "from_nothing_s": "orch.etcd: three members from nothing",
            "noop_s": "orch.etcd no-op re-run",
        },
    )


if __name__ == "__main__":
    main()
