"""
The master's side of etcd's backups: snapshots received from the nodes, and restore drills.

``salt-run paas_backup.collect`` moves the snapshots the etcd nodes pushed
(``paas_dr.snapshot``, ``cp.push`` into this master's
``cachedir/minions/<member>/files/paas-dr/``) into ``paas:dr:receive_dir/<member>/``
(0700, files 0600), each verified first in pure Python: etcd's sha256 trailer must match
the snapshot's contents and the whole file must have the digest its node recorded
(``<name>.sha256``, pushed after the snapshot: until it arrives the push is not
complete). A snapshot that fails is refused: deleted, recorded in
``state_dir/rejected.json`` (last 50) and fired as ``paas/dr/snapshot/rejected``; a push
whose ``.sha256`` never came (an hour later) is refused the same way. The newest
``paas:dr:offsite_retention`` per member are kept.

``salt-run paas_backup.drill`` restores the newest received snapshot into a scratch etcd
on this host (a temporary directory, loopback ports 24379/24380, no TLS), reads it back
(revision, key count, ``etcdctl endpoint hashkv``), stops and removes it, and records
the result in ``state_dir/drills.json`` (last 20). ``paas_backup.offsite`` lists the
newest received snapshot per member; ``paas_backup.summary`` is what ``salt-run paas.dr``
reports. The master's ``schedule:`` (etc/salt/master) runs ``collect`` and, when due,
``drill`` every minute.

:depends: the ``paas_topology`` utils module (``utils_dirs``); for drills, etcd and
    etcdctl (and etcdutl for etcd >= 3.5) on this host: see ``drill``
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import salt.utils.event
from salt.exceptions import SaltRunnerError

__virtualname__ = "paas_backup"

UPLOAD_DIR = "paas-dr"
REJECTED_TAG = "paas/dr/snapshot/rejected"
DRILL_FAILED_TAG = "paas/dr/drill/failed"
NAME = re.compile(r"^(?P<member>.+)-(?P<time>\d{8}T\d{6}Z)-r(?P<revision>\d+)\.db$")
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
DIGEST_SIZE = hashlib.sha256().digest_size
# A push whose .sha256 has not arrived this long after its last chunk died half-way.
PUSH_ABANDONED_SECONDS = 3600
REJECTED_KEPT = 50
DRILLS_KEPT = 20
DRILL_CLIENT_PORT = 24379
DRILL_PEER_PORT = 24380
DRILL_NAME = "paas-drill"
DRILL_START_SECONDS = 120
# The master's config key naming the directory of the drill's etcd binaries.
BIN_DIR_OPTION = "paas_dr_drill_bin_dir"


def __virtual__():
    return __virtualname__


# Settings and records.


def _dr() -> dict:
    try:
        topology = __utils__["paas_master.topology"](__opts__, __utils__)
    except SaltRunnerError as err:
        raise SaltRunnerError(f"paas_backup: {err}") from err
    return __utils__["paas_topology.dr"](topology)


def parse_name(name: str) -> dict | None:
    """The member, UTC time (unix seconds) and revision in a snapshot's file name."""
    found = NAME.match(name)
    if not found:
        return None
    return {
        "member": found["member"],
        "time": float(calendar.timegm(time.strptime(found["time"], TIME_FORMAT))),
        "revision": int(found["revision"]),
    }


def _read(state_dir: str, name: str, default):
    return __utils__["paas_master.read"](state_dir, name, default)


def _append(state_dir: str, name: str, record: dict, keep: int) -> None:
    __utils__["paas_master.append"](state_dir, name, record, keep)


def _locked(state_dir: str, name: str, wait: bool):
    return __utils__["paas_master.records"](state_dir, name=name, wait=wait)


def _fire(tag: str, data: dict) -> None:
    with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) as event:
        event.fire_event(data, tag)


def _exit(report: dict, retcode: int) -> dict:
    # salt-run exits with the returned dict's "retcode"; a job's success follows
    # __context__["retcode"].
    __context__["retcode"] = retcode
    return {**report, "retcode": retcode}


# Verification, in pure Python: no etcd binary on the master is needed to receive.


def verify_file(path: str, expected_sha256: str | None = None) -> dict:
    """
    Check a snapshot file as ``etcd_cluster.snapshot_check`` does, without etcd: the
    sha256 etcd appends must match the contents before it, and the whole file must have
    ``expected_sha256`` when given. Return ``{"verified": True, "sha256", "size"}`` or
    ``{"verified": False, "error"}``.
    """
    _quiet_salt_run_teardown()
    size = os.path.getsize(path)
    if size <= DIGEST_SIZE:
        return {"verified": False, "error": f"{path} is not an etcd snapshot ({size} bytes)"}
    contents, whole = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as stream:
        remaining = size - DIGEST_SIZE
        while remaining:
            chunk = stream.read(min(remaining, 1 << 20))
            if not chunk:
                break
            contents.update(chunk)
            whole.update(chunk)
            remaining -= len(chunk)
        trailer = stream.read()
        whole.update(trailer)
    if contents.digest() != trailer:
        return {
            "verified": False,
            "error": f"{path}: the snapshot's sha256 does not match its contents "
            "(corrupt or truncated)",
        }
    if expected_sha256 is not None and whole.hexdigest() != expected_sha256:
        return {
            "verified": False,
            "error": f"{path}: its sha256 is {whole.hexdigest()}, its node recorded "
            f"{expected_sha256}",
        }
    return {"verified": True, "sha256": whole.hexdigest(), "size": size}


# Receiving.


def collect() -> dict:
    """
    Move the snapshots the etcd nodes pushed into ``paas:dr:receive_dir/<member>/``,
    each verified first; refuse (delete, record, fire ``paas/dr/snapshot/rejected``)
    what fails; keep ``paas:dr:offsite_retention`` per member. Exits 1 when a snapshot
    was refused.

    CLI Example:

    .. code-block:: bash

        salt-run paas_backup.collect
    """
    _quiet_salt_run_teardown()
    dr = _dr()
    received, rejected, pending = [], [], []
    found = {member: _arrived(member) for member in dr["etcd"]["members"]}
    arrived = {member: pushed for member, pushed in found.items() if pushed}
    if not arrived:
        return _exit({"received": [], "rejected": [], "pending": [], "removed": []}, 0)
    removed = []
    with _locked(dr["state_dir"], "collect", wait=True):
        for member, (incoming, names) in arrived.items():
            target = os.path.join(dr["receive_dir"], member)
            for name in names:
                outcome = _receive(member, incoming, name, target)
                {"received": received, "rejected": rejected, "pending": pending}[
                    outcome.pop("outcome")
                ].append(outcome)
            removed += _retain(target, dr["offsite_retention"])
        for refusal in rejected:
            _append(dr["state_dir"], "rejected.json", refusal, REJECTED_KEPT)
            _fire(REJECTED_TAG, refusal)
    report = {"received": received, "rejected": rejected, "pending": pending, "removed": removed}
    return _exit(report, 1 if rejected else 0)


def _arrived(member: str) -> tuple[str, list[str]] | None:
    incoming = os.path.join(__opts__["cachedir"], "minions", member, "files", UPLOAD_DIR)
    try:
        entries = os.listdir(incoming)
    except FileNotFoundError:
        return None
    names = sorted(name for name in entries if name.endswith(".db"))
    return (incoming, names) if names else None


def _receive(member: str, incoming: str, name: str, target: str) -> dict:
    path = os.path.join(incoming, name)
    digest_path = f"{path}.sha256"
    record = {"member": member, "name": name, "time": time.time()}
    parsed = parse_name(name)
    try:
        if parsed is None or parsed["member"] != member:
            return _refuse(
                record, [path, digest_path], f"{member} pushed {name}: not a snapshot of {member}"
            )
        if not os.path.exists(digest_path):
            idle = time.time() - os.path.getmtime(path)
            if idle < PUSH_ABANDONED_SECONDS:
                return {**record, "outcome": "pending"}
            return _refuse(
                record,
                [path],
                f"{member}: {name} never arrived whole (no .sha256 after {int(idle)} s)",
            )
        with open(digest_path, encoding="utf-8") as handle:
            expected = (handle.read().split() or [""])[0]
        checked = verify_file(path, expected)
        if not checked["verified"]:
            return _refuse(record, [path, digest_path], checked["error"])
        os.makedirs(target, mode=0o700, exist_ok=True)
        os.chmod(target, 0o700)
        os.chmod(path, 0o600)
        os.chmod(digest_path, 0o600)
        # The digest first: a snapshot in the receive directory always has its own.
        shutil.move(digest_path, os.path.join(target, f"{name}.sha256"))
        shutil.move(path, os.path.join(target, name))
    except FileNotFoundError:
        # Collected by a run beside this one.
        return {**record, "outcome": "pending"}
    return {
        **record,
        "outcome": "received",
        "path": os.path.join(target, name),
        "revision": parsed["revision"],
        "size": checked["size"],
        "sha256": checked["sha256"],
    }


def _refuse(record: dict, paths: list[str], error: str) -> dict:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return {**record, "outcome": "rejected", "error": error}


def _snapshot_names(directory: str) -> list[str]:
    """The snapshots in ``directory``, oldest first."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [name for name in entries if parse_name(name)]
    return sorted(found, key=lambda name: (parse_name(name)["time"], name))


def _retain(directory: str, keep: int) -> list[str]:
    names = _snapshot_names(directory)
    removed = names[: max(len(names) - keep, 0)]
    for name in removed:
        for path in (os.path.join(directory, name), os.path.join(directory, f"{name}.sha256")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return removed


# What is off the nodes.


def _newest(receive_dir: str, member: str, verify: bool) -> dict | None:
    directory = os.path.join(receive_dir, member)
    names = _snapshot_names(directory)
    if not names:
        return None
    name = names[-1]
    path = os.path.join(directory, name)
    parsed = parse_name(name)
    entry = {
        "name": name,
        "path": path,
        "time": parsed["time"],
        "age_seconds": round(time.time() - parsed["time"]),
        "revision": parsed["revision"],
        "size": os.path.getsize(path),
        "count": len(names),
        # Only verified snapshots enter the receive directory.
        "verified": True,
    }
    if verify:
        digest = _recorded(f"{path}.sha256")
        checked = verify_file(path, digest)
        entry["verified"] = checked["verified"] or checked["error"]
    return entry


def _recorded(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return (handle.read().split() or [None])[0]
    except FileNotFoundError:
        return None


def offsite(verify: bool = False) -> dict:
    """
    The newest snapshot off the node, per etcd member: name, path, age, revision, size,
    how many are kept, verified (on arrival; ``verify=True`` checks it again), or None
    when none has arrived.

    CLI Example:

    .. code-block:: bash

        salt-run paas_backup.offsite
        salt-run paas_backup.offsite verify=True
    """
    _quiet_salt_run_teardown()
    dr = _dr()
    return {member: _newest(dr["receive_dir"], member, verify) for member in dr["etcd"]["members"]}


# Drills.


def _drill_binaries(dr: dict, bin_dir: str | None) -> tuple[str, str]:
    """The directory of the drill's etcd binaries, and why it is that one."""
    if bin_dir:
        return bin_dir, "given"
    configured = __opts__.get(BIN_DIR_OPTION)
    if configured:
        return configured, f"the master's {BIN_DIR_OPTION}"
    topology_dir = dr["etcd"]["bin_dir"]
    if os.access(os.path.join(topology_dir, "etcd"), os.X_OK):
        return topology_dir, "the topology's etcd bin_dir"
    found = shutil.which("etcd")
    if found:
        return os.path.dirname(found), "etcd on this host's PATH"
    raise SaltRunnerError(
        f"paas_backup.drill: no etcd binary: not in the topology's bin_dir {topology_dir}, "
        f"not on PATH; set {BIN_DIR_OPTION} in the master's config or pass bin_dir="
    )


def _run(command: list[str], timeout: int = 300) -> str:
    result = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "ETCDCTL_API": "3"},
        timeout=timeout,
    )
    if result.returncode != 0:
        raise SaltRunnerError(
            f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


def _version(etcd: str) -> str:
    found = re.search(r"etcd Version: (\S+)", _run([etcd, "--version"]))
    return found.group(1) if found else "unknown"


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As etcd binds: a port whose last connections are in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _due(dr: dict) -> bool:
    drills = _read(dr["state_dir"], "drills.json", [])
    if not drills:
        return True
    return time.time() - drills[-1]["time"] >= dr["drill_interval_minutes"] * 60


def _newest_overall(dr: dict) -> str | None:
    newest = [
        entry
        for entry in (
            _newest(dr["receive_dir"], member, verify=False) for member in dr["etcd"]["members"]
        )
        if entry
    ]
    if not newest:
        return None
    return max(newest, key=lambda entry: (entry["time"], entry["revision"]))["path"]


def drill(snapshot: str | None = None, bin_dir: str | None = None, when_due: bool = False) -> dict:
    """
    Restore the newest snapshot off the nodes (or ``snapshot``) into a scratch etcd on
    this host and read it back: the snapshot is verified (sha256 trailer), restored into
    a temporary directory, served on 127.0.0.1:24379 (peer 24380, no TLS), and its
    revision (which must be the one its name carries), key count and ``endpoint hashkv``
    read; the etcd is always stopped and its directory removed. The result is appended
    to ``state_dir/drills.json`` (last 20); a failure is fired as
    ``paas/dr/drill/failed``. Exits 1 when the drill failed.

    The binaries: ``bin_dir``, else the master's ``paas_dr_drill_bin_dir``, else the
    topology's etcd ``bin_dir`` when it holds etcd, else etcd on PATH. etcdutl restores
    when the directory has it (etcd >= 3.5), etcdctl otherwise.

    snapshot
        A snapshot file to drill instead of the newest received one.

    when_due
        Only when the last drill is older than ``paas:dr:drill_interval_minutes`` (the
        master's schedule).

    CLI Example:

    .. code-block:: bash

        salt-run paas_backup.drill
        salt-run paas_backup.drill snapshot=/srv/backups/etcd1-20260101T000000Z-r42.db
    """
    _quiet_salt_run_teardown()
    dr = _dr()
    if when_due and not _due(dr):
        return _exit({"result": None, "reason": "not due"}, 0)
    snapshot = snapshot or _newest_overall(dr)
    if snapshot is None:
        return _exit({"result": None, "reason": "no snapshot has been received yet"}, 0)
    with _locked(dr["state_dir"], "drill", wait=False) as held:
        if not held:
            return _exit({"result": None, "reason": "another drill is running"}, 0)
        record = _drill(dr, snapshot, bin_dir)
        _append(dr["state_dir"], "drills.json", record, DRILLS_KEPT)
    if not record["passed"]:
        _fire(DRILL_FAILED_TAG, record)
    return _exit(record, 0 if record["passed"] else 1)


def _drill(dr: dict, snapshot: str, bin_dir: str | None) -> dict:
    started = time.time()
    parsed = parse_name(os.path.basename(snapshot)) or {}
    record = {
        "time": started,
        "snapshot": snapshot,
        "member": parsed.get("member"),
        "expected_revision": parsed.get("revision"),
        # The cluster's etcd line, beside the drill's etcd_version.
        "cluster_line": dr["etcd"]["line"],
        "passed": False,
    }
    scratch = None
    try:
        checked = verify_file(snapshot)
        if not checked["verified"]:
            raise SaltRunnerError(checked["error"])
        record["size"], record["sha256"] = checked["size"], checked["sha256"]
        directory, chosen = _drill_binaries(dr, bin_dir)
        record["bin_dir"], record["bin_dir_from"] = directory, chosen
        record["etcd_version"] = _version(os.path.join(directory, "etcd"))
        for port in (DRILL_CLIENT_PORT, DRILL_PEER_PORT):
            if not _port_free(port):
                raise SaltRunnerError(
                    f"127.0.0.1:{port} is in use: the drill's scratch etcd needs it"
                )
        scratch = tempfile.mkdtemp(prefix="paas-dr-drill-")
        record.update(_restore_and_read(dr, directory, snapshot, scratch))
        expected = record["expected_revision"]
        if expected is not None and record["revision"] != expected:
            raise SaltRunnerError(
                f"{snapshot}: restored at revision {record['revision']}, its name says {expected}"
            )
        record["passed"] = True
    except (SaltRunnerError, OSError, subprocess.TimeoutExpired) as err:
        record["error"] = str(err)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        record["seconds"] = round(time.time() - started, 2)
    return record


def _restore_and_read(dr: dict, directory: str, snapshot: str, scratch: str) -> dict:
    client = f"http://127.0.0.1:{DRILL_CLIENT_PORT}"
    peer = f"http://127.0.0.1:{DRILL_PEER_PORT}"
    data_dir = os.path.join(scratch, "data")
    etcdutl = os.path.join(directory, "etcdutl")
    # etcd 3.5 moved the offline snapshot commands from etcdctl to etcdutl.
    restorer = etcdutl if os.access(etcdutl, os.X_OK) else os.path.join(directory, "etcdctl")
    _run(
        [
            restorer,
            "snapshot",
            "restore",
            snapshot,
            f"--data-dir={data_dir}",
            f"--name={DRILL_NAME}",
            f"--initial-cluster={DRILL_NAME}={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster-token={DRILL_NAME}",
        ]
    )
    log_path = os.path.join(scratch, "etcd.log")
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            [
                os.path.join(directory, "etcd"),
                f"--name={DRILL_NAME}",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster={DRILL_NAME}={peer}",
                f"--quota-backend-bytes={dr['etcd']['quota_bytes']}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _until_serving(process, client, log_path)
        etcdctl = [os.path.join(directory, "etcdctl"), f"--endpoints={client}"]
        status = json.loads(_run([*etcdctl, "endpoint", "status", "--write-out=json"]))[0]
        hashkv = json.loads(_run([*etcdctl, "endpoint", "hashkv", "--write-out=json"]))[0]
        counted = json.loads(
            _run([*etcdctl, "get", "", "--prefix", "--keys-only", "--limit=1", "-w", "json"])
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return {
        "revision": status["Status"]["header"]["revision"],
        "db_size": status["Status"]["dbSize"],
        "keys": counted.get("count", 0),
        "hashkv": hashkv["HashKV"]["hash"],
        "compact_revision": hashkv["HashKV"]["compact_revision"],
        "restored_by": os.path.basename(restorer),
    }


def _until_serving(process: subprocess.Popen, client: str, log_path: str) -> None:
    deadline = time.monotonic() + DRILL_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(log_path, encoding="utf-8", errors="replace") as log:
                tail = log.read()[-1500:]
            raise SaltRunnerError(
                f"the scratch etcd exited ({process.returncode}) on the restored data: {tail}"
            )
        try:
            with urllib.request.urlopen(f"{client}/health", timeout=2) as answer:
                if json.loads(answer.read()).get("health") == "true":
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.5)
    raise SaltRunnerError(f"the scratch etcd did not serve within {DRILL_START_SECONDS} s")


# What salt-run paas.dr reports.


def summary() -> dict:
    """
    Per etcd member, the newest snapshot off the node (``offsite``) and whether it is
    older than two snapshot intervals (``stale``: also when none has arrived); the last
    drill; the last refused snapshot per member; and ``problems``. For ``salt-run
    paas.dr``.

    CLI Example:

    .. code-block:: bash

        salt-run paas_backup.summary
    """
    _quiet_salt_run_teardown()
    dr = _dr()
    limit = 2 * dr["snapshot_interval_minutes"] * 60
    drills = _read(dr["state_dir"], "drills.json", [])
    rejected = _read(dr["state_dir"], "rejected.json", [])
    members, problems = {}, []
    for member in dr["etcd"]["members"]:
        newest = _newest(dr["receive_dir"], member, verify=False)
        stale = newest is None or newest["age_seconds"] > limit
        if newest is None:
            problems.append(f"{member}: no snapshot has reached the master")
        elif stale:
            problems.append(
                f"{member}: the newest snapshot off the node is {newest['age_seconds']} s old "
                f"(more than two intervals, {limit} s)"
            )
        refusals = [entry for entry in rejected if entry["member"] == member]
        members[member] = {
            "offsite": newest,
            "stale": stale,
            "last_rejected": refusals[-1] if refusals else None,
        }
    last_drill = drills[-1] if drills else None
    if last_drill is not None and not last_drill["passed"]:
        problems.append(f"the last drill failed: {last_drill.get('error')}")
    return {
        "members": members,
        "stale_after_seconds": limit,
        "backups_stale": any(entry["stale"] for entry in members.values()),
        "last_drill": last_drill,
        "drill_failed": last_drill is not None and not last_drill["passed"],
        "receive_dir": dr["receive_dir"],
        "state_dir": dr["state_dir"],
        "problems": problems,
    }


def _quiet_salt_run_teardown() -> None:
    __utils__["paas_master.quiet_salt_run_teardown"](__opts__, __virtualname__)
