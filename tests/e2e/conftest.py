"""The lab as a fixture: brought up once for the e2e tests, always taken down (unless
PAAS_LAB_KEEP=1, for a developer re-running some e2e tests against a lab left up)."""

from __future__ import annotations

import os

import pytest

from lab.config import load_lab
from tests.e2e.lab_helpers import lab_command, leftovers


@pytest.fixture(scope="session")
def lab():
    """The lab, up and converged; taken down afterwards whatever happened, and checked
    to have left nothing behind."""
    keep = os.environ.get("PAAS_LAB_KEEP") == "1"
    try:
        result = lab_command("up")
        assert result.returncode == 0, "lab up failed; its output is above"
        yield load_lab()
    finally:
        if not keep:
            down = lab_command("down")
            left = leftovers()
            assert down.returncode == 0 and not left, f"lab down left: {left}"
