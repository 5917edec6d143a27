"""
Snapshots of the platform's etcd, taken on an etcd node and sent off it to the master.

``etcd_snapshot.take`` saves a snapshot of the cluster through this node's member into
the topology's ``snapshot_dir`` as ``<member>-<UTC %Y%m%dT%H%M%SZ>-r<revision>.db``
(0600), verified by ``etcd_cluster.snapshot_save`` (etcd's sha256 trailer and ``snapshot
status``, whose revision the name carries) before it gets that name, beside a
``<name>.sha256`` file (``sha256sum``'s format). It keeps the newest
``paas:dr:snapshot_retention`` and pushes the newest to the master (``cp.push``: the
master needs ``file_recv``), the ``.sha256`` file last so that the master knows the
snapshot arrived whole. A snapshot that fails verification is never kept and never
becomes the newest good one: the failure is returned, recorded in
``snapshot_dir/status.json`` and fired as a ``paas/dr/snapshot/failed`` event.
``etcd_snapshot.inventory`` lists what the node holds. ``salt/etcd/backup.sls`` schedules
``take`` every ``paas:dr:snapshot_interval_minutes``.

:depends: the ``etcd_cluster`` and ``paas_topology`` modules, the ``paas_snapshot`` utils
    module (``saltutil.sync_utils``), ``cp.push`` with the master's ``file_recv: True``
:configuration: the ``paas`` pillar key (``dr``, ``etcd``)
"""

from __future__ import annotations

import json
import os
import tempfile
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "etcd_snapshot"

# Where pushed files land under the master's cachedir/minions/<id>/files/.
UPLOAD_DIR = "paas-dr"
STATUS_FILE = "status.json"
FAILED_TAG = "paas/dr/snapshot/failed"


def __virtual__():
    if "etcd_cluster.snapshot_save" not in __salt__:
        return (False, "etcd_snapshot: the etcd_cluster module is not available")
    if "paas_snapshot.parse_name" not in __utils__:
        return (
            False,
            "etcd_snapshot: the paas_snapshot utils module is not synced (saltutil.sync_utils)",
        )
    return __virtualname__


def _settings() -> dict:
    dr = __salt__["paas_topology.dr"]()
    member = __opts__["id"]
    if member not in dr["etcd"]["members"]:
        raise SaltInvocationError(
            f"{member} is not an etcd node of the topology "
            f"(etcd nodes: {', '.join(dr['etcd']['members'])}): only etcd nodes take snapshots"
        )
    return {
        "member": member,
        "snapshot_dir": dr["etcd"]["snapshot_dir"],
        "retention": dr["snapshot_retention"],
    }


def take(endpoint: str | None = None, push: bool = True) -> dict:
    """
    Take a verified snapshot of the cluster into this node's snapshot directory, keep
    the newest ``paas:dr:snapshot_retention``, push the newest to the master, and record
    the outcome in ``status.json``. ``result`` is False when the snapshot could not be
    taken or verified (nothing is kept, the newest good one stays) or could not be
    pushed (the snapshot is kept); the failure is fired as ``paas/dr/snapshot/failed``.

    endpoint
        The client URL to snapshot through (this node's member first, then the others,
        by default).

    push
        Send the snapshot to the master.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_snapshot.take
    """
    settings = _settings()
    directory = settings["snapshot_dir"]
    os.makedirs(directory, mode=0o700, exist_ok=True)
    started = time.time()
    taking = os.path.join(directory, f".taking-{settings['member']}-{int(started)}.db")
    try:
        saved = __salt__["etcd_cluster.snapshot_save"](taking, endpoint=endpoint)
    except (CommandExecutionError, OSError) as err:
        if os.path.exists(taking):
            os.unlink(taking)
        return _failed(settings, "save", f"{settings['member']}: snapshot not kept: {err}")
    name = __utils__["paas_snapshot.format_name"](settings["member"], started, saved["revision"])
    path = os.path.join(directory, name)
    os.replace(taking, path)
    digest_path = os.path.join(directory, __utils__["paas_snapshot.digest_name"](name))
    _write(digest_path, __utils__["paas_snapshot.digest_record"](saved["sha256"], name))
    good = {
        "name": name,
        "path": path,
        "time": started,
        "revision": saved["revision"],
        "keys": saved["keys"],
        "size": os.path.getsize(path),
        "sha256": saved["sha256"],
    }
    status = _status(directory)
    status["last_good"] = good
    removed = _retain(directory, settings["member"], settings["retention"])
    result = {"result": True, "snapshot": good, "removed": removed, "pushed": None}
    if push:
        pushed = __salt__["cp.push"](path, upload_path=f"/{UPLOAD_DIR}/{name}") and __salt__[
            "cp.push"
        ](digest_path, upload_path=f"/{UPLOAD_DIR}/{os.path.basename(digest_path)}")
        status["last_push"] = {"name": name, "time": time.time(), "result": bool(pushed)}
        result["pushed"] = bool(pushed)
        if not pushed:
            error = (
                f"{settings['member']}: {name} was not pushed to the master (is file_recv on, "
                "and file_recv_max_size larger than the snapshot?)"
            )
            status["last_failure"] = {"time": time.time(), "stage": "push", "error": error}
            _fire({"member": settings["member"], "stage": "push", "error": error, "name": name})
            result.update(result=False, error=error)
    _write(os.path.join(directory, STATUS_FILE), json.dumps(status, indent=2, sort_keys=True))
    return result


def _failed(settings: dict, stage: str, error: str) -> dict:
    directory = settings["snapshot_dir"]
    status = _status(directory)
    status["last_failure"] = {"time": time.time(), "stage": stage, "error": error}
    _write(os.path.join(directory, STATUS_FILE), json.dumps(status, indent=2, sort_keys=True))
    _fire({"member": settings["member"], "stage": stage, "error": error})
    return {"result": False, "error": error, "newest_good": status.get("last_good")}


def _fire(data: dict) -> None:
    __salt__["event.send"](FAILED_TAG, data)


def _status(directory: str) -> dict:
    path = os.path.join(directory, STATUS_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return {"member": __opts__["id"], "last_good": None, "last_failure": None}
    except ValueError:
        # A damaged record is replaced; the snapshots themselves are the truth.
        return {"member": __opts__["id"], "last_good": None, "last_failure": None}


def _write(path: str, text: str) -> None:
    handle, partial = tempfile.mkstemp(prefix=".write-", dir=os.path.dirname(path))
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _names(directory: str, member: str) -> list[tuple[str, dict]]:
    """This member's snapshots with what their names say, oldest first."""
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return []
    parse = __utils__["paas_snapshot.parse_name"]
    found = [(name, parse(name)) for name in entries]
    mine = [(name, parsed) for name, parsed in found if parsed and parsed["member"] == member]
    return sorted(mine, key=lambda entry: (entry[1]["time"], entry[0]))


def _retain(directory: str, member: str, keep: int) -> list[str]:
    names = [name for name, _parsed in _names(directory, member)]
    removed = names[: max(len(names) - keep, 0)]
    for name in removed:
        for path in (
            os.path.join(directory, name),
            os.path.join(directory, __utils__["paas_snapshot.digest_name"](name)),
        ):
            if os.path.exists(path):
                os.unlink(path)
    return removed


def inventory(verify: bool = False) -> dict:
    """
    List this node's snapshots, newest first (name, time, revision, size, sha256), and
    the last outcomes recorded in ``status.json`` (``last_good``, ``last_failure``,
    ``last_push``).

    verify
        Check each snapshot again (``etcd_cluster.snapshot_check``: etcd's sha256
        trailer and ``snapshot status``): ``verified`` is True, or what is wrong (a
        digest other than the one recorded when it was taken, or a revision other than
        its name's).

    CLI Example:

    .. code-block:: bash

        salt-call etcd_snapshot.inventory
        salt-call etcd_snapshot.inventory verify=True
    """
    settings = _settings()
    directory = settings["snapshot_dir"]
    listed = []
    for name, parsed in reversed(_names(directory, settings["member"])):
        path = os.path.join(directory, name)
        entry = {**parsed, "name": name, "path": path, "size": os.path.getsize(path)}
        entry["sha256"] = __utils__["paas_snapshot.recorded_digest"](
            os.path.join(directory, __utils__["paas_snapshot.digest_name"](name))
        )
        if verify:
            entry["verified"] = _verified(path, entry)
        listed.append(entry)
    return {**_status(directory), "member": settings["member"], "snapshots": listed}


def _verified(path: str, entry: dict) -> bool | str:
    try:
        checked = __salt__["etcd_cluster.snapshot_check"](path)
    except CommandExecutionError as err:
        return str(err)
    if checked["sha256"] != entry["sha256"]:
        return f"{path}: its sha256 is {checked['sha256']}, {entry['sha256']} when it was taken"
    if checked["revision"] != entry["revision"]:
        return f"{path}: it holds revision {checked['revision']}, its name says {entry['revision']}"
    return True
