"""
The master's side of etcd's backups: snapshots received from the nodes, the one a
restore should use, and restore drills.

``salt-run paas_backup.collect`` moves the snapshots the etcd nodes pushed
(``etcd_snapshot.take``, ``cp.push`` into this master's
``cachedir/minions/<member>/files/paas-dr/``) into ``paas:dr:receive_dir/<member>/``
(0700, files 0600). Each is checked first: etcd's sha256 trailer must match its
contents, the whole file must have the digest its node recorded (``<name>.sha256``,
pushed after the snapshot: until it arrives the push is not complete), it must be no
larger than a snapshot the topology's ``paas:etcd:quota_bytes`` allows, and etcd's own
``snapshot status`` must read in it the revision its name claims. What ``snapshot
status`` read is kept beside it (``<name>.json``: revision, keys, hash). A snapshot that
fails is refused: deleted, recorded in ``state_dir/rejected.json`` (last 50) and fired
as ``paas/dr/snapshot/rejected``; so is a push whose ``.sha256`` never came (an hour
later, or as soon as a newer push of the same member waits). Everything else a minion
pushed is removed and recorded the same way: every file of a minion that is no etcd
node of the topology, and what an etcd node pushed outside ``paas-dr/`` or under a name
that is no snapshot's. Salt writes pushed files with the master's umask (0644 under
Salt's 022), so ``collect`` keeps ``cachedir/minions`` 0700: a snapshot holds every
Secret of the cluster. The newest ``paas:dr:offsite_retention`` per member are kept.

``salt-run paas_backup.newest`` is the snapshot a restore should use: of the received
snapshots, the one whose content holds the highest revision, checked again right then.
``salt-run paas_backup.drill`` restores it (or a given file) into a scratch etcd on this
host, served on 127.0.0.1:24379/24380 with TLS and client certificates made for that
drill only, reads it back (revision, key count, ``etcdctl endpoint hashkv``), stops and
removes it, and records the result in ``state_dir/drills.json`` (last 20).
``paas_backup.offsite`` lists the newest received snapshot per member;
``paas_backup.summary`` is what ``salt-run paas.dr`` reports. The master's
``schedule:`` (etc/salt/master) runs ``collect`` and, when due, ``drill`` every minute.

:depends: the ``paas_topology``, ``paas_master``, ``paas_snapshot`` and
    ``paas_etcd_binaries`` utils modules (``utils_dirs``); etcd's binaries on this host to read
    a snapshot's content and to drill: ``etcd``, ``etcdctl``, and ``etcdutl`` for etcd >=
    3.5, from the runner's ``bin_dir=``, the master option ``paas_dr_drill_bin_dir``, the
    topology's etcd ``bin_dir`` when etcd is there, or ``PATH``
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
import types

import salt.utils.event
from salt.exceptions import CommandExecutionError, SaltRunnerError

__virtualname__ = "paas_backup"

UPLOAD_DIR = "paas-dr"
REJECTED_TAG = "paas/dr/snapshot/rejected"
DRILL_FAILED_TAG = "paas/dr/drill/failed"
# What etcd's snapshot status read in a received snapshot, beside it.
CONTENT_SUFFIX = ".json"
# A push whose .sha256 has not arrived this long after its last chunk died half-way.
PUSH_ABANDONED_SECONDS = 3600
REJECTED_KEPT = 50
DRILLS_KEPT = 20
# The master's config key naming the directory of the drill's etcd binaries.
BIN_DIR_OPTION = "paas_dr_drill_bin_dir"
# Salt's file_recv writes with the process umask; this keeps other users out of them.
PUSHES_MODE = 0o700
MIB = 1024 * 1024
# A .sha256 record is a digest and a file name: anything longer is no record.
DIGEST_RECORD_MAX_BYTES = 4096
DIGEST = re.compile(r"^[0-9a-f]{64}$")
# What the content record beside a received snapshot holds.
CONTENT_FIELDS = ("revision", "keys", "hash", "db_size", "read_by", "sha256")
SNAPSHOT_SLACK_MIN_BYTES = 64 * MIB
VALIDATE = "paas_topology.validate"


def __virtual__():
    return __virtualname__


# Settings and records.


def _dr(topology: dict | None = None) -> dict:
    dr_view, validate = __utils__["paas_topology.dr"], __utils__.get(VALIDATE)
    return __utils__["paas_master.view"](__opts__, "paas_backup", dr_view, validate, topology)


def _snapshot_utils(function: str):
    return __utils__[f"paas_snapshot.{function}"]


def _etcd_binaries(function: str):
    return __utils__[f"paas_etcd_binaries.{function}"]


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
    # salt-run exits with the returned dict's "retcode", a job's success with the context's.
    __context__["retcode"] = retcode
    return {**report, "retcode": retcode}


def _largest_snapshot(quota_bytes: int) -> int:
    """
    The largest snapshot a member of a cluster with ``quota_bytes`` can push: the quota
    plus a quarter of it, at least 64 MiB. etcd refuses writes once its database is past
    the quota, judged by its size at the last commit, so the database passes the quota
    by what the commit that crossed it held, and grows by what etcd still accepts under
    its NOSPACE alarm (deletes and compaction); the slack covers that and the 32 bytes
    of the sha256 trailer.
    """
    return int(quota_bytes) + max(int(quota_bytes) // 4, SNAPSHOT_SLACK_MIN_BYTES)


# Checks in pure Python: no etcd binary on the master is needed for these.


def verify_file(path: str, expected_sha256: str | None = None) -> dict:
    """
    Check a snapshot file as ``etcdutl snapshot restore`` does before it uses one,
    without etcd: the sha256 etcd appends must match the contents before it, and the
    whole file must have ``expected_sha256`` when given. Return ``{"verified": True,
    "sha256", "size"}`` or ``{"verified": False, "error"}``. ``newest path=...`` also
    reads what the file holds.

    CLI Example:

    .. code-block:: bash

        salt-run paas_backup.verify_file /var/lib/paas/dr/snapshots/etcd1/<name>.db
    """
    _quiet_salt_run_teardown()
    return _snapshot_utils("check")(path, expected_sha256)


# What a snapshot holds, read by etcd's own tool.


def _binaries(dr: dict, bin_dir: str | None) -> tuple[str, str]:
    """The directory of this host's etcd binaries, and why it is that one."""
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
        f"the master has no etcd binary: not in the topology's bin_dir {topology_dir}, "
        f"not on PATH; reading a snapshot's content and the restore drill need etcd's "
        f"binaries on the master: set {BIN_DIR_OPTION} in the master's config or pass "
        "bin_dir="
    )


def _tools(dr: dict, bin_dir: str | None) -> types.SimpleNamespace:
    """This host's etcd binaries; raises SaltRunnerError saying what is missing."""
    directory, chosen = _binaries(dr, bin_dir)
    etcdutl = os.path.join(directory, "etcdutl")
    # etcd 3.5 moved the offline snapshot commands from etcdctl to etcdutl.
    reader = etcdutl if os.access(etcdutl, os.X_OK) else os.path.join(directory, "etcdctl")
    if not os.access(reader, os.X_OK):
        raise SaltRunnerError(
            f"the master has no etcdutl or etcdctl in {directory} ({chosen}): reading a "
            f"snapshot's content and the restore drill need etcd's binaries on the master; "
            f"set {BIN_DIR_OPTION} in the master's config or pass bin_dir="
        )
    return types.SimpleNamespace(directory=directory, chosen=chosen, reader=reader)


def _disagreement(name_revision: int | None, content: dict, recorded: dict | None) -> str | None:
    """Why what a snapshot holds is not what its name and its content record say."""
    if name_revision is not None and content["revision"] != name_revision:
        return f"it holds revision {content['revision']}, its name says {name_revision}"
    if recorded is not None:
        for field in ("revision", "sha256", "keys", "hash"):
            if recorded.get(field) != content[field]:
                return (
                    f"its {field} is {content[field]}, {recorded.get(field)} when it was received"
                )
    return None


def _examine(path: str, tools: types.SimpleNamespace, recorded: dict | None = None) -> dict:
    """
    Everything a snapshot file is checked for: etcd's trailer, the digest its node
    recorded (``<path>.sha256``, when there is one), what ``snapshot status`` reads in it
    against the revision its name claims and against its content record (``recorded``).
    """
    name = os.path.basename(path)
    parsed = _snapshot_utils("parse_name")(name)
    digest = _snapshot_utils("recorded_digest")(
        os.path.join(os.path.dirname(path), _snapshot_utils("digest_name")(name))
    )
    checked = _snapshot_utils("check")(path, digest)
    if not checked["verified"]:
        return {"verified": False, "path": path, "error": checked["error"]}
    try:
        content = _etcd_binaries("snapshot_content")(path, tools)
    except CommandExecutionError as err:
        return {"verified": False, "path": path, "error": f"etcd cannot read it: {err}"}
    content["sha256"] = checked["sha256"]
    wrong = _disagreement(parsed and parsed["revision"], content, recorded)
    if wrong:
        return {"verified": False, "path": path, "error": f"{path}: {wrong}"}
    return {
        "verified": True,
        "path": path,
        "name": name,
        "member": parsed and parsed["member"],
        "time": parsed and parsed["time"],
        **content,
        "size": checked["size"],
    }


# Receiving.


def _pushes_dir() -> str:
    """Where Salt's file_recv writes every minion's pushes (``<id>/files/``)."""
    return os.path.join(__opts__["cachedir"], "minions")


def _protect(directory: str) -> str | None:
    """Keep ``directory`` 0700, created with its cachedir's owner; the problem when it
    cannot be."""
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, mode=PUSHES_MODE, exist_ok=True)
            owner = os.stat(os.path.dirname(directory))
            if os.geteuid() == 0:
                # Salt itself, running as the master's user, writes below it.
                os.chown(directory, owner.st_uid, owner.st_gid)
        if os.stat(directory).st_mode & 0o777 != PUSHES_MODE:
            os.chmod(directory, PUSHES_MODE)
    except OSError as err:
        return f"{directory} cannot be kept {PUSHES_MODE:o}: {err}"
    return None


def _exposure(directory: str) -> str | None:
    """Why the pushes in ``directory`` are readable by other users, or None."""
    try:
        mode = os.stat(directory).st_mode & 0o777
    except FileNotFoundError:
        return None
    if mode & 0o077:
        return (
            f"{directory} is {mode:o}, not {PUSHES_MODE:o}: snapshots pushed there (every "
            "Secret of the cluster) can be read by other users of this host until they are "
            "collected; paas_backup.collect makes it 0700"
        )
    return None


def _pushed(directory: str) -> dict[str, tuple[str, list[str]]]:
    """Each minion's pushes: its ``files`` directory and every file below it (relative
    paths; a symbolic link counts as a file)."""
    try:
        minions = sorted(os.listdir(directory))
    except FileNotFoundError:
        return {}
    found = {}
    for minion in minions:
        root = os.path.join(directory, minion, "files")
        if os.path.islink(root) or not os.path.isdir(root):
            continue
        files = []
        for base, directories, names in os.walk(root):
            links = [entry for entry in directories if os.path.islink(os.path.join(base, entry))]
            for entry in [*names, *links]:
                files.append(os.path.relpath(os.path.join(base, entry), root))
        if files:
            found[minion] = (root, sorted(files))
    return found


def _size(path: str) -> int | None:
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return None


def _record(minion: str, member: str | None, path: str) -> dict:
    return {
        "time": time.time(),
        "minion": minion,
        "member": member,
        "name": os.path.basename(path),
        "path": path,
        "size": _size(path),
    }


def _refuse(record: dict, paths: list[str], error: str) -> dict:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return {**record, "outcome": "rejected", "error": error}


def collect(bin_dir: str | None = None) -> dict:
    """
    Move the snapshots the etcd nodes pushed into ``paas:dr:receive_dir/<member>/``,
    each checked first (trailer, digest, size, the revision etcd reads in it against the
    one its name claims), with what etcd read beside it (``<name>.json``); refuse
    (delete, record, fire ``paas/dr/snapshot/rejected``) what fails and everything else
    pushed (any file of a minion that is no etcd node, files of an etcd node outside
    ``paas-dr/`` or not named as a snapshot); keep ``cachedir/minions`` 0700; keep
    ``paas:dr:offsite_retention`` per member. Received snapshots whose content could not
    be read yet (no etcd binary on the master) are read on a later run. Exits 1 when
    something was refused, a snapshot is unread, or the pushes cannot be kept private.

    bin_dir
        The directory of etcd's binaries that read the snapshots (as ``drill``).

    CLI Example:

    .. code-block:: bash

        salt-run paas_backup.collect
    """
    _quiet_salt_run_teardown()
    dr = _dr()
    pushes = _pushes_dir()
    problem = _protect(pushes)
    report = {
        "received": [],
        "rejected": [],
        "pending": [],
        "removed": [],
        "unread": [],
        "problems": [problem] if problem else [],
    }
    found = _pushed(pushes)
    if not found and not _unread_names(dr):
        return _exit(report, 1 if problem else 0)
    try:
        tools, tools_error = _tools(dr, bin_dir), None
    except SaltRunnerError as err:
        tools, tools_error = None, str(err)
    members = dr["etcd"]["members"]
    bound = _largest_snapshot(dr["etcd"]["quota_bytes"])
    with _locked(dr["state_dir"], "collect", wait=True):
        for minion, (root, files) in found.items():
            if minion not in members:
                report["rejected"] += _foreign(minion, root, files)
                continue
            target = os.path.join(dr["receive_dir"], minion)
            for outcome in _member_pushes(
                minion, root, files, target=target, tools=tools, bound=bound
            ):
                report[outcome.pop("outcome")].append(outcome)
            report["removed"] += _retain(target, dr["offsite_retention"])
        for outcome in _read_unread(dr, tools, tools_error):
            report[outcome.pop("outcome")].append(outcome)
        for refusal in report["rejected"]:
            _append(dr["state_dir"], "rejected.json", refusal, REJECTED_KEPT)
            _fire(REJECTED_TAG, refusal)
    if report["unread"]:
        report["problems"].append(tools_error)
    failed = report["rejected"] or report["unread"] or report["problems"]
    return _exit(report, 1 if failed else 0)


def _foreign(minion: str, root: str, files: list[str]) -> list[dict]:
    """Remove everything a minion that is no etcd node pushed."""
    refusals = [
        {
            **_record(minion, None, os.path.join(root, relative)),
            "error": f"{minion} is not an etcd node of the topology: nothing it pushes is kept",
        }
        for relative in files
    ]
    shutil.rmtree(root, ignore_errors=True)
    return refusals


def _member_pushes(
    member: str,
    root: str,
    files: list[str],
    *,
    target: str,
    tools: types.SimpleNamespace | None,
    bound: int,
) -> list[dict]:
    incoming = os.path.join(root, UPLOAD_DIR)
    parse = _snapshot_utils("parse_name")
    snapshots, digests, outcomes = [], set(), []
    for relative in files:
        path = os.path.join(root, relative)
        directory, name = os.path.split(relative)
        if directory != UPLOAD_DIR or os.path.islink(path):
            error = f"{member} pushed {relative}: nothing but snapshots in {UPLOAD_DIR}/ is kept"
        elif parse(name):
            snapshots.append(name)
            continue
        elif _snapshot_utils("snapshot_of_digest")(name):
            digests.add(name)
            continue
        else:
            error = f"{member} pushed {relative}: not a snapshot's name"
        outcomes.append(_refuse(_record(member, member, path), [path], error))
    for name in digests:
        if _snapshot_utils("snapshot_of_digest")(name) not in snapshots:
            path = os.path.join(incoming, name)
            error = f"{member} pushed {name}: the digest of no snapshot that was pushed"
            outcomes.append(_refuse(_record(member, member, path), [path], error))
    ordered = sorted(snapshots, key=lambda name: (parse(name)["time"], name))
    expected = {
        name: _pushed_digest(os.path.join(incoming, _snapshot_utils("digest_name")(name)))
        for name in ordered
    }
    # A node pushes one snapshot at a time: only its newest incomplete push may wait.
    waiting = [name for name in ordered if expected[name] is None]
    for name in ordered:
        outcomes.append(
            _receive(
                member,
                incoming,
                name,
                target=target,
                tools=tools,
                bound=bound,
                expected=expected[name],
                newest_waiting=bool(waiting) and name == waiting[-1],
            )
        )
    _prune_directories(root)
    return outcomes


def _pushed_digest(path: str) -> str | None:
    """The digest a pushed .sha256 records, or None while there is none (not pushed
    yet, or still being written)."""
    found = _snapshot_utils("recorded_digest")(path, DIGEST_RECORD_MAX_BYTES)
    return found if found and DIGEST.match(found) else None


def _prune_directories(root: str) -> None:
    """Remove the empty directories a member's stray pushes left, but its upload directory."""
    for base, directories, _names in os.walk(root, topdown=False):
        for entry in directories:
            path = os.path.join(base, entry)
            if path != os.path.join(root, UPLOAD_DIR) and not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.rmdir(path)


def _receive(
    member: str,
    incoming: str,
    name: str,
    *,
    target: str,
    tools: types.SimpleNamespace | None,
    bound: int,
    expected: str | None,
    newest_waiting: bool,
) -> dict:
    path = os.path.join(incoming, name)
    digest_path = os.path.join(incoming, _snapshot_utils("digest_name")(name))
    record = _record(member, member, path)
    parsed = _snapshot_utils("parse_name")(name)
    both = [path, digest_path]
    try:
        if parsed["member"] != member:
            return _refuse(record, both, f"{member} pushed {name}: not a snapshot of {member}")
        size = os.path.getsize(path)
        if size > bound:
            return _refuse(
                record,
                both,
                f"{member} pushed {name}: {size} bytes, more than the largest snapshot the "
                f"topology's quota_bytes allows ({bound} bytes)",
            )
        digest_size = _size(digest_path)
        if digest_size is not None and digest_size > DIGEST_RECORD_MAX_BYTES:
            return _refuse(
                record, both, f"{member}: {name}'s .sha256 is {digest_size} bytes: no digest record"
            )
        if expected is None:
            idle = time.time() - os.path.getmtime(path)
            if not newest_waiting:
                return _refuse(
                    record,
                    both,
                    f"{member}: {name} never arrived whole (no digest, and a newer push of "
                    f"{member} is waiting)",
                )
            if idle < PUSH_ABANDONED_SECONDS:
                return {**record, "outcome": "pending"}
            return _refuse(
                record,
                both,
                f"{member}: {name} never arrived whole (no digest after {int(idle)} s)",
            )
        checked = _snapshot_utils("check")(path, expected)
        if not checked["verified"]:
            return _refuse(record, both, checked["error"])
        content = None
        if tools is not None:
            try:
                content = _etcd_binaries("snapshot_content")(path, tools)
            except CommandExecutionError as err:
                return _refuse(record, both, f"{member}: {name}: etcd cannot read it: {err}")
            wrong = _disagreement(parsed["revision"], content, None)
            if wrong:
                return _refuse(record, both, f"{member}: {name}: {wrong}")
        received = os.path.join(target, name)
        os.chmod(path, 0o600)
        os.chmod(digest_path, 0o600)
        os.makedirs(target, mode=0o700, exist_ok=True)
        os.chmod(target, 0o700)
        # The digest and the content record first: a snapshot in the receive directory
        # always has its own.
        shutil.move(digest_path, os.path.join(target, os.path.basename(digest_path)))
        if content is not None:
            _keep_content(received, {**content, "sha256": checked["sha256"]})
        shutil.move(path, received)
    except FileNotFoundError:
        # Collected by a run beside this one.
        return {**record, "outcome": "pending"}
    entry = {
        **record,
        "path": received,
        "size": checked["size"],
        "sha256": checked["sha256"],
        "revision": content and content["revision"],
    }
    if content is None:
        # Listed as unread too, by _read_unread.
        return {**entry, "outcome": "received"}
    return {**entry, "outcome": "received", "keys": content["keys"], "hash": content["hash"]}


def _keep_content(path: str, content: dict) -> None:
    __utils__["paas_master.write"](
        os.path.dirname(path), f"{os.path.basename(path)}{CONTENT_SUFFIX}", content
    )


def _recorded_content(path: str) -> dict | None:
    return __utils__["paas_master.read"](
        os.path.dirname(path), f"{os.path.basename(path)}{CONTENT_SUFFIX}", None
    )


def _unread_names(dr: dict) -> dict[str, list[str]]:
    """Each member's received snapshots without a content record."""
    unread = {}
    for member in dr["etcd"]["members"]:
        directory = os.path.join(dr["receive_dir"], member)
        names = [
            name
            for name in _snapshot_names(directory)
            if not os.path.exists(os.path.join(directory, f"{name}{CONTENT_SUFFIX}"))
        ]
        if names:
            unread[member] = names
    return unread


def _read_unread(dr: dict, tools, tools_error: str | None) -> list[dict]:
    """Read the received snapshots whose content was not read on arrival."""
    outcomes = []
    for member, names in _unread_names(dr).items():
        directory = os.path.join(dr["receive_dir"], member)
        for name in names:
            path = os.path.join(directory, name)
            record = _record(member, member, path)
            if tools is None:
                outcomes.append({**record, "outcome": "unread", "error": tools_error})
                continue
            examined = _examine(path, tools)
            if not examined["verified"]:
                outcomes.append(_refuse(record, _received_files(path), examined["error"]))
                continue
            _keep_content(path, {key: examined[key] for key in CONTENT_FIELDS})
            outcomes.append({**record, "outcome": "received", "revision": examined["revision"]})
    return outcomes


def _received_files(path: str) -> list[str]:
    """A received snapshot and the files beside it."""
    digest = os.path.join(
        os.path.dirname(path), _snapshot_utils("digest_name")(os.path.basename(path))
    )
    return [path, digest, f"{path}{CONTENT_SUFFIX}"]


def _snapshot_names(directory: str) -> list[str]:
    """The snapshots in ``directory``, oldest first by the time their names carry."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    parse = _snapshot_utils("parse_name")
    found = sorted((parsed["time"], name) for name in entries if (parsed := parse(name)))
    return [name for _time, name in found]


def _retain(directory: str, keep: int) -> list[str]:
    names = _snapshot_names(directory)
    removed = names[: max(len(names) - keep, 0)]
    for name in removed:
        for path in _received_files(os.path.join(directory, name)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return removed


# What is off the nodes, and the one a restore uses.


def _entry(directory: str, names: list[str], name: str) -> dict:
    path = os.path.join(directory, name)
    parsed = _snapshot_utils("parse_name")(name)
    content = _recorded_content(path) or {}
    return {
        "name": name,
        "path": path,
        "time": parsed["time"],
        "age_seconds": round(time.time() - parsed["time"]),
        # What etcd read in it when it was received, not what its name says.
        "revision": content.get("revision"),
        "keys": content.get("keys"),
        "hash": content.get("hash"),
        "size": os.path.getsize(path),
        "sha256": _snapshot_utils("recorded_digest")(_received_files(path)[1]),
        "count": len(names),
        "verified": True
        if content
        else "its content has not been read yet (no etcd binary on the master when it came)",
    }


def _newest_of(receive_dir: str, member: str) -> dict | None:
    directory = os.path.join(receive_dir, member)
    names = _snapshot_names(directory)
    if not names:
        return None
    return _entry(directory, names, names[-1])


def offsite(verify: bool = False, bin_dir: str | None = None) -> dict:
    """
    The newest snapshot off the node, per etcd member, or None when none has arrived:
    ``name``, ``path``, ``time`` (from its name), ``age_seconds``, ``revision``, ``keys``
    and ``hash`` (what etcd read in it on arrival; None while unread), ``size``,
    ``sha256``, ``count`` (how many are kept) and ``verified`` (True, or why not;
    ``verify=True`` checks it all again: trailer, digest, content).

    CLI Example:

    .. code-block:: bash

        salt-run paas_backup.offsite
        salt-run paas_backup.offsite verify=True
    """
    _quiet_salt_run_teardown()
    dr = _dr()
    found = {member: _newest_of(dr["receive_dir"], member) for member in dr["etcd"]["members"]}
    if verify:
        tools = _tools(dr, bin_dir)
        for entry in found.values():
            if entry:
                examined = _examine(entry["path"], tools, _recorded_content(entry["path"]))
                entry["verified"] = examined["verified"] or examined["error"]
    return found


def newest(
    path: str | None = None, bin_dir: str | None = None, topology: dict | None = None
) -> dict | None:
    """
    The snapshot a restore should use, checked right now: of every received snapshot,
    the one whose content holds the highest revision (the newest by name among equals).
    Candidates are taken in the order of what etcd read in them on arrival; each is
    checked again (etcd's trailer, its node's digest, ``snapshot status`` against its
    name and its content record), and one that fails is refused (deleted, recorded in
    ``rejected.json``, fired as ``paas/dr/snapshot/rejected``) and the next is taken.

    Returns None when no snapshot has been received; ``{"verified": True, "path",
    "name", "member", "time", "revision", "keys", "hash", "db_size", "read_by", "size",
    "sha256", "refused"}`` for the one chosen (``revision`` is what it holds; ``refused``
    the records of those refused on the way); ``{"verified": False, "error",
    "refused"}`` when every one was refused. Raises when the master has no etcd binary
    to read them.

    path
        Check this file instead (its name, digest and content record are checked when
        it has them); it is never deleted.

    bin_dir
        The directory of etcd's binaries that read the snapshots (as ``drill``).

    topology
        The ``paas`` topology a restore hands down (validated), instead of the pillar's.

    CLI Example:

    .. code-block:: bash

        salt-run paas_backup.newest
        salt-run paas_backup.newest path=/var/lib/paas/dr/snapshots/etcd1/<name>.db
    """
    _quiet_salt_run_teardown()
    dr = _dr(topology)
    try:
        tools = _tools(dr, bin_dir)
    except SaltRunnerError as err:
        raise SaltRunnerError(f"paas_backup.newest: {err}") from err
    if path:
        return {**_examine(path, tools, _recorded_content(path)), "refused": []}
    return _choose(dr, tools)


def _choose(dr: dict, tools: types.SimpleNamespace) -> dict | None:
    with _locked(dr["state_dir"], "collect", wait=True):
        candidates, refused = [], []
        for member in dr["etcd"]["members"]:
            directory = os.path.join(dr["receive_dir"], member)
            for name in _snapshot_names(directory):
                path = os.path.join(directory, name)
                recorded = _recorded_content(path)
                if recorded is None:
                    examined = _examine(path, tools)
                    if not examined["verified"]:
                        refused.append(_refused_received(member, path, examined["error"]))
                        continue
                    recorded = {key: examined[key] for key in CONTENT_FIELDS}
                    _keep_content(path, recorded)
                time_ = _snapshot_utils("parse_name")(name)["time"]
                candidates.append((recorded["revision"], time_, path, recorded, member))
        chosen = None
        for _revision, _time, path, recorded, member in sorted(candidates, reverse=True):
            examined = _examine(path, tools, recorded)
            if examined["verified"]:
                chosen = examined
                break
            refused.append(_refused_received(member, path, examined["error"]))
        for refusal in refused:
            _append(dr["state_dir"], "rejected.json", refusal, REJECTED_KEPT)
            _fire(REJECTED_TAG, refusal)
    if chosen is not None:
        return {**chosen, "refused": refused}
    if not refused:
        return None
    return {
        "verified": False,
        "error": "every received snapshot was refused: "
        + "; ".join(refusal["error"] for refusal in refused),
        "refused": refused,
    }


def _refused_received(member: str, path: str, error: str) -> dict:
    refusal = _refuse(_record(member, member, path), _received_files(path), error)
    refusal.pop("outcome")
    return refusal


# Drills.


def _due(dr: dict) -> bool:
    drills = _read(dr["state_dir"], "drills.json", [])
    if not drills:
        return True
    return time.time() - drills[-1]["time"] >= dr["drill_interval_minutes"] * 60


def drill(snapshot: str | None = None, bin_dir: str | None = None, when_due: bool = False) -> dict:
    """
    Restore a snapshot into a scratch etcd on this host and read it back: by default the
    one a restore would use (``newest``), else ``snapshot``. The snapshot is checked
    (trailer, digest, what ``snapshot status`` reads in it against its name), restored
    into a temporary directory (0700), served on 127.0.0.1:24379 (peer 24380) with TLS
    and client certificates made for this drill only (nothing without the drill's client
    certificate is served), and its revision (which must be the one its content holds,
    or 1 for a store without keys), key count and ``endpoint hashkv`` read; the etcd is
    always stopped and its directory, keys included, removed. The result is appended to
    ``state_dir/drills.json`` (last 20); a failure is fired as ``paas/dr/drill/failed``.
    Exits 1 when the drill failed.

    The binaries: ``bin_dir``, else the master's ``paas_dr_drill_bin_dir``, else the
    topology's etcd ``bin_dir`` when it holds etcd, else etcd on PATH. etcdutl reads and
    restores when the directory has it (etcd >= 3.5), etcdctl otherwise.

    snapshot
        A snapshot file to drill instead of the one a restore would use.

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
    if snapshot is None and not any(
        _snapshot_names(os.path.join(dr["receive_dir"], member)) for member in dr["etcd"]["members"]
    ):
        return _exit({"result": None, "reason": "no snapshot has been received yet"}, 0)
    with _locked(dr["state_dir"], "drill", wait=False) as held:
        if not held:
            return _exit({"result": None, "reason": "another drill is running"}, 0)
        # Again under the lock: a drill that ended since the first look recorded itself.
        if when_due and not _due(dr):
            return _exit({"result": None, "reason": "not due"}, 0)
        record = _drill(dr, snapshot, bin_dir)
        _append(dr["state_dir"], "drills.json", record, DRILLS_KEPT)
    if not record["passed"]:
        _fire(DRILL_FAILED_TAG, record)
    return _exit(record, 0 if record["passed"] else 1)


def _drill(dr: dict, snapshot: str | None, bin_dir: str | None) -> dict:
    started = time.time()
    record = {
        "time": started,
        "snapshot": snapshot,
        # The cluster's etcd line, beside the drill's etcd_version.
        "cluster_line": dr["etcd"]["line"],
        "passed": False,
    }
    try:
        if snapshot is not None:
            checked = _snapshot_utils("check")(snapshot)
            if not checked["verified"]:
                raise SaltRunnerError(checked["error"])
        tools = _tools(dr, bin_dir)
        record["bin_dir"], record["bin_dir_from"] = tools.directory, tools.chosen
        if snapshot is None:
            chosen = _choose(dr, tools)
            if chosen is None:
                raise SaltRunnerError("no snapshot has been received")
        else:
            chosen = _examine(snapshot, tools, _recorded_content(snapshot))
        if not chosen["verified"]:
            raise SaltRunnerError(chosen["error"])
        record.update(
            snapshot=chosen["path"],
            member=chosen["member"],
            snapshot_revision=chosen["revision"],
            size=chosen["size"],
            sha256=chosen["sha256"],
        )
        record["etcd_version"] = _etcd_binaries("version")(os.path.join(tools.directory, "etcd"))
        _etcd_binaries("check_drill_ports")()
        with _etcd_binaries("scratch_etcd")(
            tools, chosen["path"], dr["etcd"]["quota_bytes"]
        ) as scratch:
            record.update(_etcd_binaries("read_back")(scratch))
        record["expected_revision"] = _etcd_binaries("served_revision")(
            record["snapshot_revision"], record["compact_revision"]
        )
        if record["revision"] != record["expected_revision"]:
            raise SaltRunnerError(
                f"{chosen['path']}: restored at revision {record['revision']}, it holds "
                f"revision {record['snapshot_revision']} (served as "
                f"{record['expected_revision']})"
            )
        record["passed"] = True
    except (SaltRunnerError, CommandExecutionError, OSError, subprocess.TimeoutExpired) as err:
        record["error"] = str(err)
    finally:
        record["seconds"] = round(time.time() - started, 2)
    return record


# What salt-run paas.dr reports.


def summary() -> dict:
    """
    Per etcd member, the newest snapshot off the node (``offsite``) and whether it is
    older than two snapshot intervals (``stale``: also when none has arrived), and the
    last refused push per member; the last drill; the last push refused from a minion
    that is no etcd node; whether this master can read snapshots (its etcd binaries),
    keeps the pushes private (``cachedir/minions`` 0700) and accepts the largest
    snapshot the quota allows (``file_recv_max_size``); and ``problems``. For ``salt-run
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
    pushed = _pushed(_pushes_dir())
    for member in dr["etcd"]["members"]:
        newest_entry = _newest_of(dr["receive_dir"], member)
        stale = newest_entry is None or newest_entry["age_seconds"] > limit
        # A whole push waiting for the next collect (within a minute) is on its way: a
        # platform just built has its first snapshots there.
        arriving = [
            name
            for name in (pushed.get(member) or ("", []))[1]
            if _snapshot_utils("snapshot_of_digest")(os.path.basename(name))
        ]
        if newest_entry is None:
            if not arriving:
                problems.append(f"{member}: no snapshot has reached the master")
        elif stale:
            problems.append(
                f"{member}: the newest snapshot off the node is {newest_entry['age_seconds']} s "
                f"old (more than two intervals, {limit} s)"
            )
        refusals = [entry for entry in rejected if entry.get("member") == member]
        members[member] = {
            "offsite": newest_entry,
            "arriving": len(arriving),
            "stale": stale,
            "last_rejected": refusals[-1] if refusals else None,
        }
    foreign = [entry for entry in rejected if entry.get("member") is None]
    try:
        tools = _tools(dr, None)
        binaries = {"bin_dir": tools.directory, "from": tools.chosen, "reader": tools.reader}
    except SaltRunnerError as err:
        binaries = None
        problems.append(str(err))
    unread = sum(len(names) for names in _unread_names(dr).values())
    if unread:
        problems.append(
            f"{unread} received snapshots are unread: what they hold has not been checked "
            "against their names (paas_backup.collect reads them once the master has etcd's "
            "binaries)"
        )
    exposure = _exposure(_pushes_dir())
    if exposure:
        problems.append(exposure)
    largest = _largest_snapshot(dr["etcd"]["quota_bytes"])
    accepted = __opts__.get("file_recv_max_size")
    if accepted is not None and accepted * MIB < largest:
        problems.append(
            f"the master's file_recv_max_size ({accepted} MB) is below the largest snapshot "
            f"the quota allows ({-(-largest // MIB)} MB): a large snapshot cannot be pushed"
        )
    last_drill = drills[-1] if drills else None
    if last_drill is not None and not last_drill["passed"]:
        problems.append(f"the last drill failed: {last_drill.get('error')}")
    return {
        "members": members,
        "stale_after_seconds": limit,
        "backups_stale": any(entry["stale"] for entry in members.values()),
        "last_drill": last_drill,
        "drill_failed": last_drill is not None and not last_drill["passed"],
        "last_rejected_other_minion": foreign[-1] if foreign else None,
        "binaries": binaries,
        "unread": unread,
        "largest_snapshot_bytes": largest,
        "receive_dir": dr["receive_dir"],
        "state_dir": dr["state_dir"],
        "problems": problems,
    }


def _quiet_salt_run_teardown() -> None:
    __utils__["paas_master.quiet_salt_run_teardown"](__opts__, __virtualname__)
