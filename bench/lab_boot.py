"""
Benchmark: the lab's boot (nine machines and the master's minion answering) and the
platform's converge through orch.cluster (baseline, gateways, CA, certificates, etcd),
cold and as a no-op re-run.

Each run starts from nothing (`lab down`) with the image already cached, so the image
build is not part of the figures. Prints a table of medians and writes
bench/results/lab_boot.json with every run.

    python -m bench.lab_boot [--runs 3]
"""

from __future__ import annotations

import argparse

from bench.common import SALT_RUN, lab, repeat, report, run


def one_run() -> dict:
    lab("down")
    boot = lab("up", "--no-converge")
    converge = run([str(SALT_RUN), "state.orchestrate", "orch.cluster"])
    no_op = run([str(SALT_RUN), "state.orchestrate", "orch.cluster"])
    return {"boot_s": boot, "converge_s": converge, "noop_converge_s": no_op}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lab("up", "--no-converge")  # builds the image if its recipe changed: not measured
    runs = repeat(one_run, args.runs)
    report(
        "lab_boot",
        {
            "boot_s": "lab boot: 9 machines, every minion answering",
            "converge_s": "orch.cluster from nothing (all layers)",
            "noop_converge_s": "orch.cluster no-op re-run",
        },
        runs,
    )


if __name__ == "__main__":
    main()
