"""Running the host's tools, and telling the person what the lab is doing."""

from __future__ import annotations

import subprocess
import sys
import time

from lab.config import LabError

_START = time.monotonic()


def step(message: str) -> None:
    """Show progress: one line per step, with the time since the command started."""
    print(f"[{time.monotonic() - _START:6.1f}s] {message}", flush=True)


def run(*argv: str, check: bool = True, capture: bool = True, **kwargs) -> str:
    """Run a command; on failure raise LabError with its output."""
    result = subprocess.run(
        argv,
        check=False,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
        **kwargs,
    )
    if check and result.returncode != 0:
        output = (result.stdout or "").strip()
        raise LabError(f"{' '.join(argv)} exited {result.returncode}:\n{output}")
    return result.stdout or ""


def fail(message: str) -> None:
    print(f"lab: {message}", file=sys.stderr, flush=True)
