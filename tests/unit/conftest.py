"""Fixtures the unit tests of the etcd nodes' health view share: the modules under test,
the utils modules as Salt's loader hands them over, a health-check client certificate, a
minion's key and a member's data directory."""

from __future__ import annotations

import types

import pytest
import salt.crypt

from tests import tls


@pytest.fixture(scope="module")
def health_module(import_repo_module):
    return import_repo_module("_modules/etcd_health.py", "etcd_health_module")


@pytest.fixture(scope="module")
def http_utils(import_repo_module):
    return import_repo_module("_utils/paas_etcd_http.py", "paas_etcd_http_utils")


@pytest.fixture(scope="module")
def signed_report(import_repo_module):
    return import_repo_module("_utils/paas_signed_report.py", "paas_signed_report_utils")


@pytest.fixture(scope="module")
def credentials(tmp_path_factory) -> dict:
    """An etcd-healthcheck-client certificate, its key and its CA, as files."""
    directory = tmp_path_factory.mktemp("pki")
    ca = tls.authority("etcd-ca")
    tls.write(directory / "etcd-ca.crt", ca[0])
    tls.write(directory / "etcd-healthcheck-client.crt", *tls.issue(ca, "etcd1-healthcheck"))
    return {
        "ca": str(directory / "etcd-ca.crt"),
        "cert": str(directory / "etcd-healthcheck-client.crt"),
        "key": str(directory / "etcd-healthcheck-client.key"),
    }


@pytest.fixture(scope="module")
def minion_key(tmp_path_factory) -> types.SimpleNamespace:
    """A minion's Salt key in its pki_dir (``minion.pem``, ``minion.pub``), made as Salt
    makes it; ``public`` is what the master keeps once it accepted it."""
    pki_dir = tmp_path_factory.mktemp("minion-pki")
    private_pem, public_pem = salt.crypt.gen_keys(2048)
    (pki_dir / "minion.pem").write_text(private_pem)
    (pki_dir / "minion.pub").write_text(public_pem)
    return types.SimpleNamespace(pki_dir=str(pki_dir), public=public_pem)


@pytest.fixture
def data_dir(tmp_path, topology):
    """etcd1's data directory, with a member's store and log inside (``topology`` is the
    test module's, with the member's view as ``member``)."""
    topology.member["data_dir"] = str(tmp_path / "etcd-data")
    for part in ("snap", "wal"):
        (tmp_path / "etcd-data" / "member" / part).mkdir(parents=True)
    (tmp_path / "etcd-data" / "member" / "snap" / "db").write_bytes(b"store")
    (tmp_path / "etcd-data" / "member" / "wal" / "0000000000000000-0000000000000000.wal").touch()
    return tmp_path / "etcd-data"
