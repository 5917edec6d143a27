"""
``etcd_cluster`` refuses to load, saying why, in a Python that runs protobuf's C
implementation (which refuses the etcd3 client's generated code), and loads with the
pure-Python one. Each case is a fresh interpreter: the implementation is chosen once,
when protobuf is first imported.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import importlib.util
spec = importlib.util.spec_from_file_location("etcd_cluster", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.__salt__ = {{"paas_pki.profile": None}}
print(module.__virtual__())
"""


@pytest.mark.parametrize(
    ("implementation", "expected"),
    [
        ("python", "etcd_cluster"),
        ("upb", "this Python runs protobuf's upb implementation"),
    ],
)
def test_the_module_loads_only_with_protobufs_python_implementation(
    repo_root, implementation, expected
):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(path=str(repo_root / "_modules/etcd_cluster.py"))],
        env={**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": implementation},
        capture_output=True,
        text=True,
        check=True,
    )
    assert expected in result.stdout
    if implementation == "upb":
        assert "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python" in result.stdout
