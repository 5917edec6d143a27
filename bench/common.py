"""What every benchmark shares: timed commands that must succeed, and the report (a table
of medians printed, every run written as JSON to bench/results/<name>.json)."""

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
SALT = Path(sys.executable).parent / "salt"
SALT_RUN = Path(sys.executable).parent / "salt-run"


def run(argv: list[str]) -> float:
    """Run ``argv`` from the repository root; its wall time, or exit if it failed."""
    started = time.monotonic()
    result = subprocess.run(argv, cwd=REPO, check=False, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def lab(*argv: str) -> float:
    return run([sys.executable, "-m", "lab", *argv])


def repeat(one_run, runs: int) -> list[dict]:
    """``one_run()`` ``runs`` times, each printed as it ends; the lab is taken down after."""
    results = []
    try:
        for index in range(runs):
            results.append(one_run())
            print(f"run {index + 1}/{runs}: {results[-1]}", flush=True)
    finally:
        lab("down")
    return results


def lab_benchmark(
    name: str, description: str, one_run, labels: dict[str, str], digits: int = 1
) -> None:
    """A benchmark on the converged lab: ``--runs`` (3) runs of ``one_run``, the lab
    brought up first and taken down after, the medians reported under ``name``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    lab("up")
    report(name, labels, repeat(one_run, args.runs), digits=digits)


def report(name: str, labels: dict[str, str], runs: list[dict], digits: int = 1) -> None:
    medians = {key: statistics.median(each[key] for each in runs) for key in labels}
    print(f"\n{'measure':<48} {'median (s)':>10}   runs (s)")
    for key, label in labels.items():
        each = ", ".join(f"{one[key]:.{digits}f}" for one in runs)
        print(f"{label:<48} {medians[key]:>10.{digits}f}   {each}")
    results = REPO / "bench" / "results" / f"{name}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(
        json.dumps(
            {
                "benchmark": name,
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
                "host": {"cpus": os.cpu_count(), "kernel": platform.release()},
                "labels": labels,
                "runs": runs,
                "median": medians,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten to {results.relative_to(REPO)}")
