"""
``paas_transfer.send`` through a real salt-master (the shipped configuration, its utils
loaded by Salt's loader from ``utils_dirs``) to a real minion, ``etcd1`` of a topology
of its own whose ``snapshot_dir`` is under the test's directory, with ``paas_receive``
and the ``paas_transfer`` util synced to it.

A 9 MB random file arrives byte-identical and 0600 in ``<snapshot_dir>/restore``, and no
64-byte slice of it, raw or as base64 at any alignment, is in the master's job cache or
in any event on the master's bus, though the chunks' ciphertext is in both (512 KiB
chunks: a larger job's ``salt/job/<jid>/new`` event is trimmed to under
``max_event_size``, and would prove nothing). With the default 4 MiB chunks the file
arrives too. A destination outside the restore directory is refused and leaves nothing.

Every Salt call has a timeout; the daemons stop and their directories go with pytest's.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import time
from pathlib import Path

import pytest
import salt.client
import salt.config
import salt.loader
import yaml
from salt.exceptions import CommandExecutionError

from tests.functional import etcd_hosts
from tests.integration.conftest import ShippedConfigMaster

TOPOLOGY = etcd_hosts.topology("198.19.11")
SIZE = 9 * 1000 * 1000
CHUNK_ON_THE_BUS = 512 * 1024
# The daemons log every job's arguments at debug level, megabytes a chunk, to their files
# and to this process: minutes of logging that a real master (log level warning) does not do.
_QUIET_LOGS = {"log_level": "info", "log_level_logfile": "info"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("paas-transfer")


@pytest.fixture(scope="module")
def pillar(workdir) -> dict:
    return etcd_hosts.pillar("etcd1", workdir, TOPOLOGY)


@pytest.fixture(scope="module")
def master(salt_factories, shipped_master_config, pillar, workdir):
    pillar_root = workdir / "pillar"
    pillar_root.mkdir()
    (pillar_root / "top.sls").write_text(yaml.safe_dump({"base": {"*": ["paas"]}}))
    (pillar_root / "paas.sls").write_text(yaml.safe_dump({"paas": pillar}))
    factory = salt_factories.salt_master_daemon(
        "transfer-itest-master",
        overrides={
            **shipped_master_config,
            "pillar_roots": {"base": [str(pillar_root)]},
            # The backups' collect and drill would add jobs of their own.
            "schedule": {},
            "reactor": [],
            **_QUIET_LOGS,
            "pytest-master": {"master-id": None, "log": {"level": "info"}},
        },
        factory_class=ShippedConfigMaster,
    )
    with factory.started():
        minion = factory.salt_minion_daemon(
            "etcd1", overrides={**_QUIET_LOGS, "pytest-minion": {"log": {"level": "info"}}}
        )
        with minion.started():
            synced = factory.salt_cli(timeout=120).run("saltutil.sync_all", minion_tgt="etcd1")
            assert synced.returncode == 0, synced
            assert "modules.paas_receive" in synced.data["modules"], synced.data
            yield factory


@pytest.fixture(scope="module")
def send(master):
    """``paas_transfer.send`` as a runner reaches it (``__utils__`` of the master's opts),
    with the master's LocalClient."""
    opts = salt.config.master_config(master.config_file)
    utils = salt.loader.utils(opts)
    client = salt.client.LocalClient(mopts=opts)
    try:
        key = utils["paas_master.public_key"](opts, "etcd1")
        yield lambda *args, **options: utils["paas_transfer.send"](
            client, key, "etcd1", *args, **{"timeout": 60, **options}
        )
    finally:
        client.destroy()


@pytest.fixture(scope="module")
def restore_dir(pillar) -> Path:
    return Path(pillar["etcd"]["snapshot_dir"]) / "restore"


def _slices(data: bytes) -> list[bytes]:
    """64-byte slices of ``data`` at its start, middle and end, raw and base64 at every
    alignment: base64 of any stream holding a slice holds one of these."""
    found = []
    for start in (0, len(data) // 2, len(data) - 66):
        found.append(data[start : start + 64])
        found += [base64.b64encode(data[start + shift : start + shift + 63]) for shift in range(3)]
    return found


def _job_cache(master) -> bytes:
    jobs = Path(master.config["cachedir"]) / "jobs"
    return b"".join(path.read_bytes() for path in jobs.rglob("*") if path.is_file())


def test_a_file_arrives_whole_and_is_in_the_clear_in_no_job_cache_or_event(
    master, send, restore_dir, workdir, event_listener
):
    source = workdir / "etcd1-20261126T120000Z-r42.db"
    data = os.urandom(SIZE)
    source.write_bytes(data)
    destination = restore_dir / source.name
    start = time.time()
    sent = send(str(source), str(destination), chunk_bytes=CHUNK_ON_THE_BUS)
    assert destination.read_bytes() == data
    status = destination.stat()
    assert stat.S_IMODE(status.st_mode) == 0o600 and status.st_uid == 0
    assert sorted(path.name for path in restore_dir.iterdir()) == [source.name]
    assert sent["node"] == "etcd1" and sent["destination"] == str(destination)
    assert sent["bytes"] == SIZE and sent["chunks"] == -(-SIZE // CHUNK_ON_THE_BUS)
    assert sent["sha256"] == hashlib.sha256(data).hexdigest()

    cache = _job_cache(master)
    events = [
        repr(event.full_data).encode()
        for event in event_listener.get_events([(master.id, "*")], after_time=start)
    ]
    # Where the file would be: the chunks' jobs, with their ciphertext, in both.
    assert cache.count(b"paas_receive.chunk") >= sent["chunks"] and len(cache) > SIZE
    carried = [event for event in events if b"paas_receive.chunk" in event]
    assert len(carried) >= sent["chunks"]
    assert sum(len(event) for event in carried) > SIZE
    for secret in _slices(data):
        assert secret not in cache
        assert not any(secret in event for event in events)


def test_the_default_chunks_arrive_too(send, restore_dir, workdir):
    source = workdir / "default-chunks.db"
    data = os.urandom(SIZE)
    source.write_bytes(data)
    sent = send(str(source), str(restore_dir / source.name))
    assert sent["chunks"] == 3
    assert (restore_dir / source.name).read_bytes() == data


def test_a_destination_elsewhere_is_refused_and_leaves_nothing(send, restore_dir, workdir):
    source = workdir / "elsewhere.db"
    source.write_bytes(os.urandom(1000))
    before = sorted(path.name for path in restore_dir.iterdir())
    elsewhere = restore_dir.parent / "elsewhere.db"
    with pytest.raises(CommandExecutionError) as refused:
        send(str(source), str(elsewhere))
    assert f"is not a file directly in {restore_dir}" in str(refused.value)
    assert str(refused.value).endswith("nothing of the transfer is left on the node")
    assert not elsewhere.exists()
    assert sorted(path.name for path in restore_dir.iterdir()) == before
