"""The lab as a fixture: brought up once for the e2e tests, always taken down (unless
PAAS_LAB_KEEP=1, for a developer re-running some e2e tests against a lab left up)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from lab.config import load_lab
from tests.e2e.dr_helpers import ETCD
from tests.e2e.etcd_helpers import Writer
from tests.e2e.lab_helpers import lab_command, leftovers, salt_json

# How much of a failed lab up's output its error carries.
LAB_UP_LINES = 15


@pytest.fixture(scope="session")
def lab():
    """The lab, up and converged; taken down afterwards whatever happened, and checked
    to have left nothing behind."""
    keep = os.environ.get("PAAS_LAB_KEEP") == "1"
    try:
        result = lab_command("up", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        print(result.stdout)
        # The reason goes into the error itself: a log's tail (CI keeps only that) shows
        # the error once per e2e test, and the captured output above it scrolls away.
        last = "\n".join(result.stdout.splitlines()[-LAB_UP_LINES:])
        assert result.returncode == 0, f"lab up failed (exit {result.returncode}):\n{last}"
        _dr_from_a_known_state()
        yield load_lab()
    finally:
        if not keep:
            down = lab_command("down")
            left = leftovers()
            assert down.returncode == 0 and not left, f"lab down left: {left}"


def _dr_from_a_known_state() -> None:
    """A lab that was used before (by an earlier run, or by hand) may hold DR records
    that say something: a pause left behind, a lock whose holder is gone, refused or
    contradicted reports, a failed remediation. The tests start from the platform's own
    rules applied to them, as an operator would: the reactor resumed, a dead holder's
    lock cleared (recorded as interrupted), what was recorded acknowledged."""
    salt_json("salt-run", "paas_dr.resume")
    salt_json("salt-run", "paas_dr.tidy")
    salt_json("salt-run", "paas_dr.acknowledge", "reason=e2e: the session starts here")


@pytest.fixture
def writer(lab):
    """A writer recording every acknowledged write to etcd, stopped after the test."""
    started = Writer(ETCD, prefix=f"/paas/e2e/dr/{time.time_ns()}/", pause=0.02)
    started.start()
    yield started
    started.stopping.set()
    started.join(timeout=30)
