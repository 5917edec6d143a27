"""
Benchmark: the lab's boot (nine machines and the master's minion answering) and the
platform's converge through orch.cluster (baseline, CA, certificates), cold and as a
no-op re-run.

Each run starts from nothing (`lab down`) with the image already cached, so the image
build is not part of the figures. Prints a table of medians and writes
bench/results/lab_boot.json with every run.

    python -m bench.lab_boot [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "lab_boot.json"
SALT_RUN = Path(sys.executable).parent / "salt-run"


def _run(argv: list[str]) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, check=False, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def _lab(*argv: str) -> float:
    return _run([sys.executable, "-m", "lab", *argv])


def one_run() -> dict:
    _lab("down")
    boot = _lab("up", "--no-converge")
    converge = _run([str(SALT_RUN), "state.orchestrate", "orch.cluster"])
    no_op = _run([str(SALT_RUN), "state.orchestrate", "orch.cluster"])
    return {"boot_s": boot, "converge_s": converge, "noop_converge_s": no_op}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    _lab("up", "--no-converge")  # builds the image if its recipe changed: not measured
    runs = []
    try:
        for index in range(args.runs):
            runs.append(one_run())
            print(f"run {index + 1}/{args.runs}: {runs[-1]}", flush=True)
    finally:
        _lab("down")
    medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    labels = {
        "boot_s": "lab boot: 9 machines, every minion answering",
        "converge_s": "orch.cluster from nothing (baseline + PKI)",
        "noop_converge_s": "orch.cluster no-op re-run",
    }
    print(f"\n{'measure':<48} {'median (s)':>10}   runs (s)")
    for key, label in labels.items():
        each = ", ".join(f"{run[key]:.1f}" for run in runs)
        print(f"{label:<48} {medians[key]:>10.1f}   {each}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "lab_boot",
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "host": {
                    "cpus": os.cpu_count(),
                    "kernel": platform.release(),
                },
                "runs": runs,
                "median": medians,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
