"""
The platform's etcd cluster, over gRPC with the ``etcd3`` client and a client certificate.

Members, health, status, alarms, defragmentation, snapshots and membership changes, as
the states, the orchestrations, the runner and (later) the beacons need them. A node
with the ``etcd`` role uses its health-check client certificate; the master's minion uses
the admin client certificate. Endpoints are the etcd nodes of the topology.

``etcd3`` 0.12 was generated for protobuf 3; Salt 3008 needs protobuf >= 5, whose C
implementation refuses those generated modules. The platform runs Salt's Python with
``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``
(``docs/decisions/0001-protobuf-python-implementation.md``); this module says so plainly
when that is not the case. Learners (etcd >= 3.4) are newer than the
client's protocol files, so the few messages that carry ``isLearner`` are declared in
``_utils/paas_etcd_grpc.py``.

:depends: etcd3, grpcio, the ``paas_topology`` and ``paas_pki`` modules, the
    ``paas_snapshot``, ``paas_etcd_grpc`` and ``paas_etcd_binaries`` utils
:configuration: the ``paas`` pillar key (``etcd`` and the etcd nodes)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import types
from importlib.util import find_spec
from urllib.parse import urlparse

from salt.exceptions import CommandExecutionError, SaltInvocationError

# The client and gRPC are imported on first use, not when the loader scans the module
# (on the master too): see _library().
_lib = types.SimpleNamespace(etcd3=None, grpc=None)

__virtualname__ = "etcd_cluster"

TIMEOUT = 5
CLIENT_PROFILES = ("etcd-healthcheck-client", "etcd-admin-client")


def __virtual__():
    if find_spec("etcd3") is None or find_spec("grpc") is None:
        return (False, "etcd_cluster: the etcd3 client (and grpcio) is not installed")
    from google.protobuf.internal import api_implementation  # noqa: PLC0415

    if api_implementation.Type() != "python":
        return (
            False,
            f"etcd_cluster: this Python runs protobuf's {api_implementation.Type()} "
            "implementation, which refuses the etcd3 client's generated code; Salt's Python "
            "must run with PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python "
            "(docs/decisions/0001-protobuf-python-implementation.md)",
        )
    if "paas_pki.profile" not in __salt__:
        return (False, "etcd_cluster: the paas_pki module is not synced")
    return __virtualname__


def _library() -> types.SimpleNamespace:
    if _lib.etcd3 is None:
        import etcd3  # noqa: PLC0415
        import grpc  # noqa: PLC0415

        _lib.etcd3, _lib.grpc = etcd3, grpc
    return _lib


def _call(client, method: str, **fields):
    return __utils__["paas_etcd_grpc.call"](client, method, TIMEOUT, **fields)


# Where the cluster is, and how to talk to it.


def settings() -> dict:
    """
    Return how this platform runs etcd (the topology's etcd view): version line, install
    source, binaries, unit, directories and files, timers, cluster token, and every
    member's client and peer URLs.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.settings
    """
    return __salt__["paas_topology.etcd"]()


def endpoints() -> dict:
    """
    Return the client URL of every etcd node of the topology, by name.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.endpoints
    """
    return {name: member["client_url"] for name, member in settings()["members"].items()}


def peer_url(name: str) -> str:
    """
    Return the peer URL of the etcd node ``name`` from the topology.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.peer_url etcd2
    """
    urls = _peer_urls()
    if name in urls:
        return urls[name]
    raise SaltInvocationError(f"{name} is not an etcd node of the topology")


def _credentials() -> dict:
    held = __salt__["paas_pki.profiles"]()
    for profile in CLIENT_PROFILES:
        if profile in held:
            return __salt__["paas_pki.profile"](profile)
    raise CommandExecutionError(
        f"{__opts__['id']} holds no etcd client certificate "
        f"(one of {', '.join(CLIENT_PROFILES)}): only etcd nodes and the master's minion "
        "talk to etcd"
    )


def _client(endpoint: str):
    url = urlparse(endpoint)
    if url.scheme != "https" or not url.hostname or not url.port:
        raise SaltInvocationError(f"{endpoint!r} is not an https://host:port etcd client URL")
    credentials = _credentials()
    return _library().etcd3.client(
        host=url.hostname,
        port=url.port,
        ca_cert=credentials["ca"],
        cert_key=credentials["key"],
        cert_cert=credentials["cert"],
        timeout=TIMEOUT,
    )


def _endpoint_list(endpoint: str | None) -> list[str]:
    if endpoint:
        return [endpoint]
    own = endpoints()
    # This node first: it answers fastest and, for a member, knows its own state.
    return sorted(own.values(), key=lambda url: url != own.get(__opts__["id"]))


def _first_answer(endpoint: str | None, action):
    errors = []
    for url in _endpoint_list(endpoint):
        client = _client(url)
        try:
            return action(client)
        except _lib.grpc.RpcError as err:
            errors.append(f"{url}: {_rpc_error(err)}")
        except _lib.etcd3.exceptions.Etcd3Exception as err:
            errors.append(f"{url}: {type(err).__name__} {err}")
        finally:
            client.close()
    raise CommandExecutionError(f"no etcd endpoint answered: {'; '.join(errors)}")


def _rpc_error(err) -> str:
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    return f"{code.name if code else 'error'}: {details}"


# Reading the cluster.


def members(endpoint: str | None = None) -> list[dict]:
    """
    Return the cluster's members: id (hex), name, peer and client URLs, whether it is a
    learner and whether it has started (a member added but not yet started has no name).

    endpoint
        Ask this client URL instead of the topology's etcd nodes.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.members
    """
    # Linearizable (etcd >= 3.5; 3.4 ignores the field): a member that was removed or is
    # cut off from the leader fails instead of answering with what it last knew.
    reply = _first_answer(endpoint, lambda client: _call(client, "MemberList", linearizable=True))
    return [__utils__["paas_etcd_grpc.member"](member) for member in reply.members]


def member_health(endpoint: str) -> dict:
    """
    Return whether the member at ``endpoint`` serves a linearizable read (which needs a
    leader and quorum) and has no alarm raised, as ``etcdctl endpoint health`` decides.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.member_health https://198.18.1.21:2379
    """
    client = _client(endpoint)
    try:
        client.get("health")
        raised = [_alarm_name(alarm.alarm_type) for alarm in client.list_alarms()]
    except _lib.grpc.RpcError as err:
        return {"endpoint": endpoint, "healthy": False, "error": _rpc_error(err)}
    except _lib.etcd3.exceptions.Etcd3Exception as err:
        return {"endpoint": endpoint, "healthy": False, "error": f"{type(err).__name__} {err}"}
    finally:
        client.close()
    return {
        "endpoint": endpoint,
        "healthy": not raised,
        "error": f"alarms raised: {', '.join(raised)}" if raised else None,
    }


def health(endpoint: str | None = None) -> dict:
    """
    Return the health of every member and of the cluster: ``healthy`` when every voting
    member is healthy, ``quorum`` when a majority of the voting members is.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.health
    """
    listed = members(endpoint)
    report = {}
    for member in listed:
        name = member["name"] or member["peer_urls"][0]
        if not member["client_urls"]:
            report[name] = {"healthy": False, "error": "added, not started yet", **member}
            continue
        report[name] = {**member, **member_health(member["client_urls"][0])}
    voters = [entry for entry in report.values() if not entry["learner"]]
    healthy_voters = [entry for entry in voters if entry["healthy"]]
    return {
        "healthy": bool(voters) and len(healthy_voters) == len(voters),
        "quorum": len(healthy_voters) >= _quorum(len(voters)),
        "voters": len(voters),
        "healthy_voters": len(healthy_voters),
        "members": report,
    }


def member_status(endpoint: str) -> dict:
    """
    Return what the member at ``endpoint`` says of itself: version, db size (total and
    in use), leader id, raft term, index and applied index, learner or not, errors.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.member_status https://198.18.1.21:2379
    """
    reply = _first_answer(endpoint, lambda client: _call(client, "Status"))
    return {
        "endpoint": endpoint,
        "id": f"{__utils__['paas_etcd_grpc.header'](reply.header).get(2, 0):x}",
        "version": reply.version,
        "db_size": reply.dbSize,
        "db_size_in_use": reply.dbSizeInUse,
        "leader": f"{reply.leader:x}",
        "raft_term": reply.raftTerm,
        "raft_index": reply.raftIndex,
        "raft_applied_index": reply.raftAppliedIndex,
        "learner": reply.isLearner,
        "errors": list(reply.errors),
    }


def status(endpoint: str | None = None) -> dict:
    """
    Return the cluster's status: its leader and, per member, version, db size, raft
    term and index, learner or not, and any error in reaching it.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.status
    """
    listed = members(endpoint)
    names = {member["id"]: member["name"] for member in listed}
    report, leaders = {}, set()
    for member in listed:
        name = member["name"] or member["peer_urls"][0]
        if not member["client_urls"]:
            report[name] = {**member, "error": "added, not started yet"}
            continue
        try:
            state = member_status(member["client_urls"][0])
        except CommandExecutionError as err:
            report[name] = {**member, "error": str(err)}
            continue
        leaders.add(state["leader"])
        report[name] = {**member, **state, "is_leader": state["leader"] == member["id"]}
    leader = names.get(leaders.pop()) if len(leaders) == 1 else None
    return {"leader": leader, "members": report}


def hashkv(revision: int | None = None) -> dict:
    """
    Return every started member's hash of its key-value store at one revision (the
    newest the first answering member has, unless given), and whether they are equal:
    members that applied the same history have the same hash, as ``etcdctl endpoint
    hashkv`` compares.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.hashkv
    """
    listed = [member for member in members() if member["client_urls"]]
    if revision is None:
        first = _first_answer(None, lambda client: _call(client, "HashKV", revision=0))
        revision = __utils__["paas_etcd_grpc.header"](first.header).get(3, 0)
    report = {}
    for member in listed:
        name = member["name"] or member["peer_urls"][0]
        try:
            reply = _first_answer(
                member["client_urls"][0],
                lambda client: _call(client, "HashKV", revision=revision),
            )
        except CommandExecutionError as err:
            report[name] = {"hash": None, "error": str(err)}
            continue
        report[name] = {"hash": reply.hash, "compact_revision": reply.compact_revision}
    hashes = {entry["hash"] for entry in report.values()}
    return {
        "revision": revision,
        "equal": len(hashes) == 1 and None not in hashes,
        "members": report,
    }


def overview(endpoint: str | None = None) -> dict:
    """
    Return the cluster at a glance, as ``salt-run paas.status`` shows it: health and
    quorum, the leader, alarms, and per member its role, health, db size, raft index
    and version.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.overview
    """
    checked = health(endpoint)
    state = status(endpoint)
    report = {}
    for name, entry in checked["members"].items():
        detail = state["members"].get(name, {})
        report[name] = {
            "id": entry["id"],
            "learner": entry["learner"],
            "healthy": entry["healthy"],
            "error": entry.get("error") or detail.get("error"),
            "is_leader": detail.get("is_leader", False),
            "db_size": detail.get("db_size"),
            "raft_index": detail.get("raft_index"),
            "version": detail.get("version"),
        }
    return {
        "healthy": checked["healthy"],
        "quorum": checked["quorum"],
        "voters": checked["voters"],
        "healthy_voters": checked["healthy_voters"],
        "leader": state["leader"],
        "alarms": alarms(endpoint),
        "members": report,
    }


def alarms(endpoint: str | None = None) -> list[dict]:
    """
    Return the alarms raised in the cluster (NOSPACE, CORRUPT), with the member's name.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.alarms
    """
    raised = _first_answer(endpoint, lambda client: list(client.list_alarms()))
    names = {int(member["id"], 16): member["name"] for member in members(endpoint)}
    return [
        {
            "member": names.get(alarm.member_id, f"{alarm.member_id:x}"),
            "alarm": _alarm_name(alarm.alarm_type),
        }
        for alarm in raised
    ]


def _alarm_name(alarm_type: int) -> str:
    return {0: "NONE", 1: "NOSPACE", 2: "CORRUPT"}.get(alarm_type, str(alarm_type))


def disarm(member: str | None = None, endpoint: str | None = None) -> list[dict]:
    """
    Disarm the alarms of ``member`` (a name), or every alarm, and return what is still
    raised. Free space first (compact, defrag): a NOSPACE alarm comes back otherwise.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.disarm
        salt-call etcd_cluster.disarm member=etcd2
    """
    member_id = int(_find(member, endpoint)["id"], 16) if member else 0

    def deactivate(client):
        if member_id:
            return client.disarm_alarm(member_id)
        for alarm in list(client.list_alarms()):
            client.disarm_alarm(alarm.member_id)
        return None

    _first_answer(endpoint, deactivate)
    return alarms(endpoint)


def defrag(member: str | None = None, endpoint: str | None = None) -> dict:
    """
    Defragment the database of ``member`` (a name), or of every member one after the
    other (a member does not serve while it defragments), and return each one's db size
    before and after.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.defrag
        salt-call etcd_cluster.defrag member=etcd1
    """
    chosen = [_find(member, endpoint)] if member else members(endpoint)
    report = {}
    for entry in chosen:
        url = entry["client_urls"][0]
        before = member_status(url)["db_size"]
        _first_answer(url, lambda client: client.defragment())
        report[entry["name"]] = {"db_size_before": before, "db_size": member_status(url)["db_size"]}
    return report


def lookup_member(name: str, endpoint: str | None = None) -> dict | None:
    """
    Return the member ``name`` (a node id), started or not, or None when it is not one.
    A member added but not started yet has no name: its peer URL tells who it is.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.lookup_member etcd4
    """
    urls = {url for node, url in _peer_urls().items() if node == name}
    for member in members(endpoint):
        if member["name"] == name or urls & set(member["peer_urls"]):
            return {**member, "name": name}
    return None


def _find(name: str, endpoint: str | None = None) -> dict:
    found = lookup_member(name, endpoint)
    if found is None:
        raise CommandExecutionError(f"{name} is not a member of the etcd cluster")
    return found


def initial_cluster(name: str, endpoint: str | None = None) -> str:
    """
    Return the initial cluster the member ``name`` must start with when it joins: every
    started member by name, and ``name`` at its peer URL. For a node that is not a member
    yet, this is what it will start with once it is added.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.initial_cluster etcd4
    """
    return _initial_cluster(members(endpoint), name)


def _initial_cluster(listed: list[dict], name: str) -> str:
    started = [
        f"{member['name']}={member['peer_urls'][0]}"
        for member in listed
        if member["name"] and member["name"] != name
    ]
    return ",".join(sorted([*started, f"{name}={peer_url(name)}"]))


def _peer_urls() -> dict:
    return {name: member["peer_url"] for name, member in settings()["members"].items()}


# Data: a consistent put and get, for tests and checks.


def put(key: str, value: str, endpoint: str | None = None) -> dict:
    """
    Write ``value`` at ``key`` and return the revision etcd acknowledged it at.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.put /paas/check ok
    """
    reply = _first_answer(endpoint, lambda client: client.put(key, value))
    return {"key": key, "revision": reply.header.revision}


def get(key: str, endpoint: str | None = None) -> str | None:
    """
    Return the value at ``key`` by a linearizable read (None when there is none).

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.get /paas/check
    """
    value, _meta = _first_answer(endpoint, lambda client: client.get(key))
    return value.decode() if value is not None else None


# Snapshots.


def snapshot_save(path: str, endpoint: str | None = None) -> dict:
    """
    Save a snapshot of the cluster's data to ``path``, checked before it is kept: the
    sha256 etcd appends must match and ``snapshot status`` must read it. An unchecked
    snapshot is never left at ``path``.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.snapshot_save /var/lib/paas-etcd-snapshots/now.db
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=".snapshot-", dir=directory)
    try:
        with os.fdopen(handle, "wb") as stream:
            _first_answer(endpoint, lambda client: client.snapshot(stream))
            stream.flush()
            os.fsync(stream.fileno())
        report = snapshot_check(partial)
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return {**report, "path": path}


def snapshot_check(path: str) -> dict:
    """
    Check a snapshot file: its trailing sha256 must match its contents and etcd's own
    ``snapshot status`` must read it. Return its revision, key count, size and digest.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.snapshot_check /var/lib/paas-etcd-snapshots/now.db
    """
    checked = __utils__["paas_snapshot.check"](path)
    if not checked["verified"]:
        raise CommandExecutionError(checked["error"])
    result = _etcd_tool("snapshot", "status", path, "--write-out=json")
    status_report = json.loads(result)
    return {
        "path": path,
        "revision": status_report["revision"],
        "keys": status_report["totalKey"],
        "size": status_report["totalSize"],
        "sha256": checked["sha256"],
    }


def snapshot_restore(
    snapshot: str,
    data_dir: str | None = None,
    name: str | None = None,
    initial_cluster: str | None = None,
    token: str | None = None,
    *,
    bump_revision: int = 0,
    set_aside: bool = False,
) -> dict:
    """
    Restore ``snapshot`` (checked first) into a new data directory for member ``name``
    (this node by default) of a cluster of ``initial_cluster`` (every etcd node of the
    topology by default), owned by etcd with mode 0700. Refuses a data directory that
    holds data. Every member restored from one snapshot gets the same cluster token,
    derived from the snapshot unless given.

    bump_revision
        Raise the restored store's revision by this much and mark it compacted there
        (etcdutl 3.5.10 and later): a client that watched the lost cluster (an
        apiserver's cache) then sees a compaction, never revisions going back.

    set_aside
        Move what the data directory holds (a store etcd could not read, a log started
        afresh) to ``<data_dir>.before-restore`` instead of refusing it; the one set
        aside by an earlier restore is dropped.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.snapshot_restore /var/lib/paas-etcd-snapshots/now.db
    """
    checked = snapshot_check(snapshot)
    config = settings()
    name = name or __opts__["id"]
    data_dir = data_dir or config["data_dir"]
    if set_aside and os.path.isdir(data_dir) and os.listdir(data_dir):
        aside = f"{data_dir.rstrip('/')}.before-restore"
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(data_dir, aside)
    if os.path.isdir(data_dir) and os.listdir(data_dir):
        what = "an etcd member's data" if "member" in os.listdir(data_dir) else "files"
        raise CommandExecutionError(
            f"{data_dir} holds {what}; move it away before restoring into it"
        )
    owner = (__salt__["file.user_to_uid"]("etcd"), __salt__["file.group_to_gid"]("etcd"))
    if not all(isinstance(part, int) for part in owner):
        raise CommandExecutionError(
            f"there is no etcd user and group on {__opts__['id']} to own the restored data"
        )
    initial_cluster = initial_cluster or config["initial_cluster"]
    peers = dict(entry.split("=", 1) for entry in initial_cluster.split(","))
    if name not in peers:
        raise SaltInvocationError(f"{name} is not in initial_cluster {initial_cluster}")
    token = token or f"{config['token']}-restore-{checked['sha256'][:12]}"
    bump = []
    if bump_revision:
        if config["line"] == "3.4":
            raise CommandExecutionError(
                "etcd 3.4's etcdctl cannot bump a restored revision: restoring without it "
                "would take the revision back under every watcher (etcd 3.5.10 or later)"
            )
        bump = [f"--bump-revision={int(bump_revision)}", "--mark-compacted"]
    parent = os.path.dirname(data_dir.rstrip("/"))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".restore-", dir=parent)
    target = os.path.join(staging, "data")
    try:
        _etcd_tool(
            "snapshot",
            "restore",
            snapshot,
            f"--data-dir={target}",
            f"--name={name}",
            f"--initial-cluster={initial_cluster}",
            f"--initial-cluster-token={token}",
            f"--initial-advertise-peer-urls={peers[name]}",
            *bump,
        )
        for root, dirs, files in os.walk(target):
            for entry in [root, *(os.path.join(root, item) for item in dirs + files)]:
                os.chown(entry, *owner)
        os.chmod(target, 0o700)
        if os.path.isdir(data_dir):
            os.rmdir(data_dir)
        os.replace(target, data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {
        **checked,
        "data_dir": data_dir,
        "name": name,
        "token": token,
        "revision": checked["revision"] + int(bump_revision),
    }


def local_data() -> dict:
    """
    Return what this node's member has on disk, read with etcd stopped: whether its data
    directory holds a member's store and log, and that store's revision and key count
    (what a restore from this member would keep). A store that etcd's own tool cannot
    read, or without the log etcd starts a member from (``etcd_health.has_log``), is reported with
    the reason, as no data.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.local_data
    """
    config = settings()
    name = __opts__["id"]
    database = os.path.join(config["data_dir"], "member", "snap", "db")
    report = {"member": name, "data": False, "revision": None, "keys": None, "db": database}
    if __salt__["service.status"](config["service"]):
        raise CommandExecutionError(
            f"{name}'s etcd runs: its store is read with etcd stopped ({config['service']})"
        )
    if not os.path.isfile(database):
        return {**report, "error": f"{database} does not exist"}
    if not __salt__["etcd_health.has_log"](config["data_dir"]):
        return {
            **report,
            "error": f"{config['data_dir']} holds no write-ahead log (member/wal): etcd "
            "would start it as a new member, with none of its data",
        }
    try:
        status_report = json.loads(_etcd_tool("snapshot", "status", database, "--write-out=json"))
    except (CommandExecutionError, ValueError) as err:
        return {**report, "error": str(err)}
    return {
        **report,
        "data": True,
        "revision": status_report["revision"],
        "keys": status_report["totalKey"],
    }


def force_new_cluster(timeout: int = 120) -> dict:
    """
    Make this node's member, with its data as it is, the only member of a new cluster
    (``--force-new-cluster``), once: every other member must be stopped first (while old
    members run, they would still count it as one of theirs). Started with the flag,
    healthy alone, then restarted without it. The others are added back afterwards as
    new members (``orch.etcd_restore``).

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.force_new_cluster
    """
    config = settings()
    name = __opts__["id"]
    service = config["service"]
    own_url = config["members"][name]["client_url"]
    flag = config["force_new_cluster_env"]
    _service("stop", service)
    os.makedirs(os.path.dirname(flag), exist_ok=True)
    try:
        with open(flag, "w", encoding="utf-8") as handle:
            handle.write(
                "# Written by etcd_cluster.force_new_cluster for one start.\n"
                "ETCD_FORCE_NEW_CLUSTER=true\n"
            )
        _service("start", service)
        _wait_alone(name, own_url, timeout)
    finally:
        if os.path.exists(flag):
            os.unlink(flag)
    _service("restart", service)
    listed = _wait_alone(name, own_url, timeout)
    return {"member": name, "members": listed, "raft_index": member_status(own_url)["raft_index"]}


def _service(action: str, service: str) -> None:
    if not __salt__[f"service.{action}"](service):
        raise CommandExecutionError(f"systemctl {action} {service} failed")


def _wait_alone(name: str, url: str, timeout: int) -> list[str]:
    """Wait until the member at ``url`` is healthy and the cluster's only member."""
    deadline = time.monotonic() + timeout
    while True:
        report = member_health(url)
        listed = []
        if report["healthy"]:
            listed = [member["name"] for member in members(url)]
            if listed == [name]:
                return listed
        if time.monotonic() > deadline:
            raise CommandExecutionError(
                f"{name} did not come up as the only member of a new cluster within "
                f"{timeout}s: {report['error'] or f'members {listed}'}"
            )
        time.sleep(1)


def _etcd_tool(*argv: str) -> str:
    # etcd 3.5 moved the offline snapshot commands from etcdctl to etcdutl.
    config = settings()
    tool = "etcdutl" if config["line"] != "3.4" else "etcdctl"
    return __utils__["paas_etcd_binaries.run"]([os.path.join(config["bin_dir"], tool), *argv])


# Membership.


def _quorum(voters: int) -> int:
    return voters // 2 + 1


def member_add(
    name: str, learner: bool = True, timeout: int = 60, endpoint: str | None = None
) -> dict:
    """
    Add the etcd node ``name`` of the topology to the cluster, as a learner by default
    (it does not vote, so quorum is unchanged until it is promoted). Returns the new
    member and the ``initial_cluster`` it must start with.

    Refused: a name or peer URL that is already a member, a second learner (etcd allows
    one), a member added but not started, and adding a voter while the cluster could not
    reach the larger quorum with the members that are healthy now.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.member_add etcd4
    """
    url = peer_url(name)
    current = health(endpoint)
    for member in current["members"].values():
        if member["name"] == name or url in member["peer_urls"]:
            raise CommandExecutionError(f"{name} ({url}) is already a member ({member['id']})")
        if not member["started"]:
            raise CommandExecutionError(
                f"member {member['id']} ({', '.join(member['peer_urls'])}) was added but "
                "never started; start it or remove it first"
            )
        if member["learner"] and learner:
            raise CommandExecutionError(
                f"{member['name']} is a learner still; etcd takes one learner at a time"
            )
    if not current["quorum"]:
        raise CommandExecutionError(
            f"the cluster has no quorum ({current['healthy_voters']} of "
            f"{current['voters']} voters healthy); no member can be added"
        )
    if not learner and current["healthy_voters"] < _quorum(current["voters"] + 1):
        raise CommandExecutionError(
            f"adding {name} as a voter would cost quorum: {current['healthy_voters']} "
            f"healthy voters, {_quorum(current['voters'] + 1)} needed with it"
        )
    # etcd adds nobody until every voter has been connected for a few seconds ("unhealthy
    # cluster"), which is the case just after a promotion.
    reply = _until_accepted(
        f"{name} was not added",
        lambda: _first_answer(
            endpoint, lambda client: _call(client, "MemberAdd", peerURLs=[url], isLearner=learner)
        ),
        "unhealthy cluster",
        timeout,
    )
    added = __utils__["paas_etcd_grpc.member"](reply.member)
    listed = [__utils__["paas_etcd_grpc.member"](member) for member in reply.members]
    return {**added, "name": name, "initial_cluster": _initial_cluster(listed, name)}


def member_promote(name: str, timeout: int = 120, endpoint: str | None = None) -> dict:
    """
    Promote the learner ``name`` to a voting member once it has caught up with the
    leader, waiting up to ``timeout`` seconds for that.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.member_promote etcd4
    """
    member = _find(name, endpoint)
    if not member["learner"]:
        return member
    # etcd refuses a learner that is not yet in sync with the leader.
    _until_accepted(
        f"{name} was not promoted",
        lambda: _first_answer(
            endpoint, lambda client: _call(client, "MemberPromote", ID=int(member["id"], 16))
        ),
        "in sync",
        timeout,
    )
    return _find(name, endpoint)


def _until_accepted(what: str, action, transient: str, timeout: int):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except CommandExecutionError as err:
            if transient not in str(err) or time.monotonic() > deadline:
                raise CommandExecutionError(f"{what}: {err}") from err
        time.sleep(1)


def is_member(name: str, endpoint: str | None = None) -> bool:
    """
    Return whether ``name`` (a node id) is a member, started or not.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.is_member etcd4
    """
    return lookup_member(name, endpoint) is not None


def removal_refusal(name: str, endpoint: str | None = None) -> str | None:
    """
    Return why removing the member ``name`` would be refused (it would cost quorum), or
    None when it may be removed. Nothing changes.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.removal_refusal etcd2
    """
    return _removal(name, endpoint)[1]


def _removal(name: str, endpoint: str | None) -> tuple[dict, str | None]:
    found = _find(name, endpoint)
    current = health(endpoint)
    member = next(entry for entry in current["members"].values() if entry["id"] == found["id"])
    if member["learner"]:
        return member, None
    voters_left = current["voters"] - 1
    healthy_left = current["healthy_voters"] - (1 if member["healthy"] else 0)
    if voters_left == 0:
        return member, f"{name} is the cluster's only voting member"
    if healthy_left < _quorum(voters_left):
        unhealthy = sorted(
            other
            for other, entry in current["members"].items()
            if entry["id"] != member["id"] and not entry["learner"] and not entry["healthy"]
        )
        return member, (
            f"removing {name} would cost quorum: {healthy_left} healthy of the "
            f"{voters_left} voters left, {_quorum(voters_left)} needed "
            f"(unhealthy: {', '.join(unhealthy) or 'none'})"
        )
    return member, None


def member_remove(name: str, timeout: int = 60, endpoint: str | None = None) -> dict:
    """
    Remove the member ``name``. Refused when it would cost quorum: the voting members
    left must have a healthy majority among themselves, and one member is never removed
    from a cluster of one. etcd refuses changes for a few seconds after a member
    reconnects; that is waited out, up to ``timeout`` seconds.

    CLI Example:

    .. code-block:: bash

        salt-call etcd_cluster.member_remove etcd4
    """
    member, refusal = _removal(name, endpoint)
    if refusal:
        raise CommandExecutionError(refusal)
    _until_accepted(
        f"{name} was not removed",
        lambda: _first_answer(
            endpoint, lambda client: _call(client, "MemberRemove", ID=int(member["id"], 16))
        ),
        "unhealthy cluster",
        timeout,
    )
    return {"removed": name, "id": member["id"]}
