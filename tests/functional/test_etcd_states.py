"""
The etcd formula's states applied for real, on the host's etcd (the 3.4 line of Debian 12),
so the lab's 3.5 is not the only line they are proven on: ``etcd.config`` by a real
``salt-call --local`` on each etcd node of a five-node topology (in a sandbox,
tests/functional/sandbox.py; the topology's etcd and PKI directories under the test's
temporary directory), then the ``etcd_member`` states through the loaders' states on the
nodes' minions, each member in a network namespace of its own: etcd1 starts the cluster
from the files ``etcd.config`` wrote, etcd2 to etcd5 join it one at a time, etcd5 leaves
it (``absent`` on itself), and ``pruned`` removes etcd4 once the topology has only three
etcd nodes; then etcd3's data is wiped and ``replaced`` brings it back, its log is removed
and ``present`` brings it back, and once quorum is lost (every member stopped, etcd2's data
and etcd3's log gone) etcd1, which kept its store,
becomes a cluster of its own (``etcd_cluster.force_new_cluster``) and the others join it
again, every key kept. Each state runs in test mode first (nothing changes), then for real
(changes), then again (``{}``).

One thing is a test double: the ``paas-etcd`` systemd unit. ``etcd_member`` starts, stops
and checks the member with ``service.start/stop/restart/status`` of the unit, which on this
host would be this host's systemd; the minions' ``service`` module is
tests/functional/service_double/ instead, acting on an ``etcd_hosts.Unit`` that runs the
unit file ``etcd.config`` wrote (its ``ExecStart`` with its ``EnvironmentFile`` settings)
in the node's namespace. Everything else (etcd, the certificates, the files, the
membership RPCs) is real.

The tests run in order on one cluster, as an operator would work on it.
"""

from __future__ import annotations

import contextlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from salt.exceptions import CommandExecutionError

from tests.functional import etcd_hosts
from tests.functional.sandbox import Sandbox

TOPOLOGY = etcd_hosts.topology("198.19.9", etcd_count=5)
# The same platform once etcd4 and etcd5 are no longer etcd nodes.
SMALLER = etcd_hosts.topology("198.19.9")
ETCD_NODES = etcd_hosts.etcd_addresses(TOPOLOGY)
UNIT_FILE = "/etc/systemd/system/paas-etcd.service"
# What each state's test mode predicted and what the real run then changed, by step.
PREDICTIONS: dict[str, tuple[list[str], list[str]]] = {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Certificates for every etcd node, etcd.config applied on each (twice), and a unit
    double per node running the unit file it wrote; no member started."""
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed (make test installs etcd-server)")
    tmp = tmp_path_factory.mktemp("etcd-states")
    minions = etcd_hosts.issue_all(tmp, TOPOLOGY, list(ETCD_NODES), unit_double=True)
    runs, units = {}, {}
    with contextlib.ExitStack() as stack:
        hosts = stack.enter_context(etcd_hosts.Hosts("fs", "198.19.9.1", ETCD_NODES))
        for node in ETCD_NODES:
            sandbox = Sandbox(node, tmp / node / "sandbox", etcd_hosts.pillar(node, tmp, TOPOLOGY))
            runs[node] = {
                "sandbox": sandbox,
                "first": sandbox.apply("etcd.config"),
                "second": sandbox.apply("etcd.config"),
            }
            unit_file = sandbox.file(UNIT_FILE)
            units[node] = stack.enter_context(
                etcd_hosts.Unit(
                    node, "paas-etcd", unit_file, hosts.namespaces[node], tmp / node / "unit"
                )
            )
        yield {"tmp": tmp, "minions": minions, "runs": runs, "units": units, "hosts": hosts}


def _member(cluster, node: str) -> dict:
    """The etcd view of ``node`` as its minion has it (its directories under tmp)."""
    return cluster["minions"][node].modules.paas_topology.etcd_member()


def _environment(path: Path) -> dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in path.read_text().splitlines()
        if line and not line.startswith("#")
    )


def _voters(cluster) -> list[str]:
    members = cluster["minions"]["etcd1"].modules.etcd_cluster.members()
    return sorted(member["name"] for member in members if not member["learner"])


def _world(cluster) -> dict:
    """What a state may change: the members, and each node's etcd, membership file and data."""
    try:
        members = cluster["minions"]["etcd1"].modules.etcd_cluster.members()
    except CommandExecutionError:
        members = None
    nodes = {}
    for node, unit in cluster["units"].items():
        member = _member(cluster, node)
        data_dir = Path(member["data_dir"])
        nodes[node] = {
            "running": unit.running(),
            "membership": Path(member["membership_env"]).exists(),
            "data": sorted(path.name for path in data_dir.iterdir()) if data_dir.is_dir() else None,
        }
    return {"members": members, "nodes": nodes}


def _apply(cluster, minion, function: str, name: str, **kwargs):
    """An etcd_member state in test mode (which changes nothing), for real, then again
    (which changes nothing); the real run's return."""
    states = getattr(minion.states.etcd_member, function)
    step = f"{function} {name} on {minion.opts['id']}"
    before = _world(cluster)
    predicted = states(name=name, test=True, **kwargs)
    assert predicted.result is None, predicted.comment
    assert predicted.changes, predicted.comment
    assert _world(cluster) == before, f"{step} changed something in test mode"

    applied = states(name=name, **kwargs)
    unit = cluster["units"].get(minion.opts["id"])
    assert applied.result is True, f"{applied.comment}; {unit.log_tail() if unit else ''}"
    assert applied.changes, applied.comment

    again = states(name=name, **kwargs)
    assert again.result is True, again.comment
    assert again.changes == {}, again.comment
    PREDICTIONS[step] = (sorted(predicted.changes), sorted(applied.changes))
    return applied


@pytest.mark.parametrize("node", ETCD_NODES)
def test_etcd_config_writes_the_unit_and_the_environment_then_changes_nothing(cluster, node):
    runs = cluster["runs"][node]
    failed = {key: state["comment"] for key, state in runs["first"].items() if not state["result"]}
    assert failed == {}
    changed = sorted(key for key, state in runs["first"].items() if state["changes"])
    assert changed == [
        "common-unit-checker",
        "etcd-config-data-dir",
        "etcd-config-environment",
        "etcd-config-snapshot-dir",
        "etcd-config-unit",
    ]
    assert {key: state["changes"] for key, state in runs["second"].items()} == {
        key: {} for key in runs["second"]
    }
    assert all(state["result"] for state in runs["second"].values())
    # Nothing else of the node: the etcd user (Debian's etcd-server package makes it) and
    # the package were there already.
    assert sorted(runs["sandbox"].written()) == [UNIT_FILE, "/usr/local/libexec/paas-verify-unit"]


def test_the_files_name_the_members_own_settings(cluster):
    member = _member(cluster, "etcd1")
    environment = _environment(Path(member["env_file"]))
    pki = cluster["minions"]["etcd1"].modules.paas_pki
    server, peer = pki.profile("etcd-server"), pki.profile("etcd-peer")
    assert environment == {
        "ETCD_NAME": "etcd1",
        "ETCD_DATA_DIR": member["data_dir"],
        "ETCD_LISTEN_CLIENT_URLS": "https://198.19.9.21:2379",
        "ETCD_ADVERTISE_CLIENT_URLS": "https://198.19.9.21:2379",
        "ETCD_LISTEN_PEER_URLS": "https://198.19.9.21:2380",
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": "https://198.19.9.21:2380",
        "ETCD_LISTEN_METRICS_URLS": "http://127.0.0.1:2381",
        "ETCD_CLIENT_CERT_AUTH": "true",
        "ETCD_TRUSTED_CA_FILE": server["ca"],
        "ETCD_CERT_FILE": server["cert"],
        "ETCD_KEY_FILE": server["key"],
        "ETCD_AUTO_TLS": "false",
        "ETCD_PEER_CLIENT_CERT_AUTH": "true",
        "ETCD_PEER_TRUSTED_CA_FILE": peer["ca"],
        "ETCD_PEER_CERT_FILE": peer["cert"],
        "ETCD_PEER_KEY_FILE": peer["key"],
        "ETCD_PEER_AUTO_TLS": "false",
        "ETCD_HEARTBEAT_INTERVAL": "100",
        "ETCD_ELECTION_TIMEOUT": "1000",
        "ETCD_QUOTA_BACKEND_BYTES": "2147483648",
        "ETCD_STRICT_RECONFIG_CHECK": "true",
        "ETCD_LOGGER": "zap",
    }
    unit = cluster["runs"]["etcd1"]["sandbox"].file(UNIT_FILE).read_text()
    assert f"EnvironmentFile={member['env_file']}\n" in unit
    assert f"EnvironmentFile=-{member['membership_env']}\n" in unit
    assert "ExecStart=/usr/bin/etcd\n" in unit and "User=etcd\n" in unit
    data_dir = Path(member["data_dir"])
    assert data_dir.owner() == "etcd" and stat.S_IMODE(data_dir.stat().st_mode) == 0o700


def test_the_first_node_starts_a_new_cluster_from_the_formulas_files(cluster):
    applied = _apply(cluster, cluster["minions"]["etcd1"], "present", "etcd1", bootstrap=True)

    assert "started a new cluster" in applied.comment
    etcd = cluster["minions"]["etcd1"].modules.etcd_cluster
    assert etcd.member_health("https://198.19.9.21:2379")["healthy"]
    assert etcd.member_status("https://198.19.9.21:2379")["version"].startswith("3.4.")
    assert _voters(cluster) == ["etcd1"]
    namespace = cluster["hosts"].namespaces["etcd1"]
    metrics = subprocess.run(
        ["ip", "netns", "exec", namespace, "curl", "-sf", "http://127.0.0.1:2381/metrics"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "etcd_server_has_leader 1" in metrics.stdout, metrics.stderr


@pytest.mark.parametrize("node", ["etcd2", "etcd3", "etcd4", "etcd5"])
def test_a_node_joins_as_a_learner_and_is_promoted(cluster, node):
    voters = _voters(cluster)

    applied = _apply(cluster, cluster["minions"][node], "present", node)

    assert "joined as a learner, caught up and was promoted" in applied.comment
    assert _voters(cluster) == sorted([*voters, node])
    health = cluster["minions"][node].modules.etcd_cluster.health()
    assert health["healthy"] and health["voters"] == len(voters) + 1


def test_absent_on_the_node_itself_removes_stops_and_wipes_it(cluster):
    member = _member(cluster, "etcd5")

    applied = _apply(cluster, cluster["minions"]["etcd5"], "absent", "etcd5")

    assert _voters(cluster) == ["etcd1", "etcd2", "etcd3", "etcd4"]
    assert not cluster["units"]["etcd5"].running()
    assert list(Path(member["data_dir"]).iterdir()) == []
    assert applied.changes["member"]["new"] is None


def test_pruned_removes_the_members_the_topology_no_longer_has(cluster):
    etcd1 = etcd_hosts.minion("etcd1", cluster["tmp"], SMALLER, unit_double=True)

    applied = _apply(cluster, etcd1, "pruned", "paas-ft")

    assert applied.changes == {"members": {"old": None, "new": ["etcd4"]}}
    assert _voters(cluster) == ["etcd1", "etcd2", "etcd3"]
    health = cluster["minions"]["etcd1"].modules.etcd_cluster.health()
    assert health["healthy"] and health["voters"] == 3


def _fresh(cluster, node: str):
    """A new minion of ``node`` on the three-node topology. The service double is one
    module shared by every minion's loader, and acts for the minion that loaded it
    last: a step that starts or stops units loads it anew for its own node."""
    return etcd_hosts.minion(node, cluster["tmp"], SMALLER, unit_double=True)


def test_a_wiped_member_is_replaced_and_hashes_match(cluster):
    etcd = cluster["minions"]["etcd1"].modules.etcd_cluster
    etcd.put("/paas/ft/before-the-wipe", "kept")
    cluster["units"]["etcd3"].stop()
    shutil.rmtree(_member(cluster, "etcd3")["data_dir"])

    applied = _apply(cluster, _fresh(cluster, "etcd3"), "replaced", "etcd3")

    assert applied.changes["data_dir"] == {"old": "missing", "new": "empty"}
    assert _voters(cluster) == ["etcd1", "etcd2", "etcd3"]
    etcd3 = cluster["minions"]["etcd3"].modules.etcd_cluster
    assert etcd3.get("/paas/ft/before-the-wipe", endpoint="https://198.19.9.23:2379") == "kept"
    hashes = etcd.hashkv()
    assert hashes["equal"] and sorted(hashes["members"]) == ["etcd1", "etcd2", "etcd3"], hashes


def test_a_member_with_a_store_and_no_log_is_replaced_by_present(cluster):
    # What a data directory emptied under the running cluster holds once its unit started
    # again and etcd gave up: a store, no write-ahead log. etcd would start it as a new
    # member under the old one's name; present removes it and adds it again.
    etcd = cluster["minions"]["etcd1"].modules.etcd_cluster
    etcd.put("/paas/ft/before-the-log-went", "kept")
    cluster["units"]["etcd3"].stop()
    data_dir = Path(_member(cluster, "etcd3")["data_dir"])
    shutil.rmtree(data_dir / "member" / "wal")
    assert (data_dir / "member" / "snap" / "db").exists()
    etcd3 = _fresh(cluster, "etcd3")
    assert etcd3.modules.etcd_health.has_log() is False

    applied = _apply(cluster, etcd3, "present", "etcd3")

    assert applied.changes["reason"] == f"{data_dir} holds no write-ahead log"
    assert _voters(cluster) == ["etcd1", "etcd2", "etcd3"]
    assert etcd3.modules.etcd_health.has_log() is True
    assert (
        etcd3.modules.etcd_cluster.get(
            "/paas/ft/before-the-log-went", endpoint="https://198.19.9.23:2379"
        )
        == "kept"
    )
    assert etcd.hashkv()["equal"]


def test_quorum_lost_the_member_with_the_newest_store_rebuilds_the_cluster(cluster):
    etcd = cluster["minions"]["etcd1"].modules.etcd_cluster
    written = [f"/paas/ft/restore/{n:03d}" for n in range(20)]
    for key in written:
        etcd.put(key, "acknowledged")
    for unit in cluster["units"].values():
        unit.stop()
    shutil.rmtree(_member(cluster, "etcd2")["data_dir"])
    # etcd3 keeps a store but not its log: no survivor, whatever its store's revision.
    shutil.rmtree(Path(_member(cluster, "etcd3")["data_dir"]) / "member" / "wal")
    found = {
        node: _fresh(cluster, node).modules.etcd_cluster.local_data()
        for node in ("etcd1", "etcd2", "etcd3")
    }
    assert found["etcd1"]["data"] is True and found["etcd1"]["revision"] >= len(written)
    assert found["etcd2"]["data"] is False and "does not exist" in found["etcd2"]["error"]
    assert found["etcd3"]["data"] is False and "no write-ahead log" in found["etcd3"]["error"]

    rebuilt = _fresh(cluster, "etcd1").modules.etcd_cluster.force_new_cluster(timeout=60)

    assert rebuilt["members"] == ["etcd1"]
    assert not Path(_member(cluster, "etcd1")["force_new_cluster_env"]).exists()
    assert cluster["units"]["etcd1"].running()
    for node in ("etcd2", "etcd3"):
        applied = _apply(cluster, _fresh(cluster, node), "present", node)
        assert "joined as a learner" in applied.comment
    assert _voters(cluster) == ["etcd1", "etcd2", "etcd3"]
    etcd3 = cluster["minions"]["etcd3"].modules.etcd_cluster
    assert [etcd3.get(key, endpoint="https://198.19.9.23:2379") for key in written] == [
        "acknowledged"
    ] * len(written)
    assert etcd.hashkv()["equal"]


def test_test_mode_predicts_the_changes_a_real_run_makes(cluster):
    assert PREDICTIONS, "no state ran"
    mismatched = {
        step: {"predicted": predicted, "made": made}
        for step, (predicted, made) in PREDICTIONS.items()
        if predicted != made
    }
    assert mismatched == {}
