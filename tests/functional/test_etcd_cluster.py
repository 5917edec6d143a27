"""
The ``etcd_cluster`` execution module against a real etcd cluster (the host's 3.4), each
member in its own network namespace: bring-up one member at a time (added as a learner,
started, promoted), reads of members, health and status, alarms, defragmentation, a
snapshot round trip, and membership changes, including the ones it must refuse.

The tests run in order on one cluster, as an operator would work on it.
"""

from __future__ import annotations

import shutil

import etcd3
import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.functional import etcd_hosts

# Five etcd nodes in the topology: three form the cluster, the others are there to be added.
TOPOLOGY = etcd_hosts.topology("198.19.3", etcd_count=5)
ETCD_NODES = etcd_hosts.etcd_addresses(TOPOLOGY)
FORMED = ["etcd1", "etcd2", "etcd3"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Certificates for every node, and an etcd process per member, none started."""
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed (make test installs etcd-server)")
    tmp = tmp_path_factory.mktemp("etcd-cluster")
    minions = etcd_hosts.issue_all(tmp, TOPOLOGY, list(ETCD_NODES))
    with etcd_hosts.Hosts("fe", "198.19.3.1", ETCD_NODES) as hosts:
        members = {
            node: etcd_hosts.Member(
                node,
                address,
                hosts.namespaces[node],
                {
                    profile: minions[node].modules.paas_pki.profile(profile)
                    for profile in ("etcd-server", "etcd-peer")
                },
                tmp / node / "etcd",
            )
            for node, address in ETCD_NODES.items()
        }
        try:
            yield {"tmp": tmp, "minions": minions, "members": members, "hosts": hosts}
        finally:
            for member in members.values():
                member.stop()


def _etcd(cluster, node: str = "etcd1"):
    """The etcd_cluster module as the minion ``node`` (etcd1 by default) has it."""
    return cluster["minions"][node].modules.etcd_cluster


def _healthy(cluster, voters: int):
    def check() -> bool:
        try:
            report = _etcd(cluster).health()
        except CommandExecutionError:
            return False
        return report["healthy"] and report["voters"] == voters

    return check


def _join(cluster, node: str) -> None:
    """Add ``node`` as a learner, start it as the module says, promote it."""
    added = _etcd(cluster).member_add(node)
    assert added["learner"] is True
    assert added["started"] is False
    cluster["members"][node].start(added["initial_cluster"], "existing")
    promoted = _etcd(cluster).member_promote(node, timeout=60)
    assert promoted["learner"] is False


def test_bring_up_adds_each_member_as_a_learner_then_promotes_it(cluster):
    first = cluster["members"]["etcd1"]
    first.start(f"etcd1={first.peer_url}", "new")
    etcd_hosts.wait_for(_healthy(cluster, 1), "etcd1 alone", list(cluster["members"].values()))

    added = _etcd(cluster).member_add("etcd2")
    assert added["initial_cluster"] == (
        f"etcd1={first.peer_url},etcd2={cluster['members']['etcd2'].peer_url}"
    )
    listed = {member["peer_urls"][0]: member for member in _etcd(cluster).members()}
    assert listed[cluster["members"]["etcd2"].peer_url]["learner"] is True
    # A learner does not vote: the one voter still has quorum.
    assert _etcd(cluster).health()["quorum"] is True
    cluster["members"]["etcd2"].start(added["initial_cluster"], "existing")
    assert _etcd(cluster).member_promote("etcd2", timeout=60)["learner"] is False

    _join(cluster, "etcd3")
    etcd_hosts.wait_for(_healthy(cluster, 3), "three voters", list(cluster["members"].values()))
    assert sorted(member["name"] for member in _etcd(cluster).members()) == FORMED


def test_every_member_answers_for_itself(cluster):
    report = _etcd(cluster, "etcd2").health()
    assert report["healthy"] and report["quorum"]
    assert {name: entry["healthy"] for name, entry in report["members"].items()} == {
        node: True for node in FORMED
    }


def test_status_names_one_leader_and_each_members_database(cluster):
    status = _etcd(cluster).status()
    assert status["leader"] in FORMED
    assert [name for name, entry in status["members"].items() if entry["is_leader"]] == [
        status["leader"]
    ]
    for entry in status["members"].values():
        assert entry["version"].startswith("3.4.")
        assert entry["db_size"] > 0
        assert entry["raft_index"] > 0
        assert entry["learner"] is False


def test_overview_and_settings_come_from_the_cluster_and_the_topology(cluster):
    etcd = _etcd(cluster)
    overview = etcd.overview()
    assert overview["healthy"] and overview["quorum"] and overview["voters"] == 3
    assert overview["leader"] in FORMED
    assert sorted(overview["members"]) == FORMED
    assert overview["alarms"] == []
    settings = etcd.settings()
    assert settings["bin_dir"] == "/usr/bin"
    assert settings["line"] == "3.4"
    assert settings["service"] == "paas-etcd"
    assert etcd.endpoints()["etcd2"] == "https://198.19.3.22:2379"
    assert etcd.peer_url("etcd2") == "https://198.19.3.22:2380"


def test_consistent_put_and_get(cluster):
    written = _etcd(cluster, "etcd1").put("/paas/functional", "value-1")
    assert written["revision"] > 0
    assert _etcd(cluster, "etcd3").get("/paas/functional") == "value-1"
    assert _etcd(cluster).get("/paas/absent") is None


def test_an_alarm_makes_the_cluster_unhealthy_until_disarmed(cluster):
    assert _etcd(cluster).alarms() == []
    # The client raises the NOSPACE alarm as etcd does when its quota is reached.
    etcd1 = cluster["members"]["etcd1"]
    credentials = cluster["minions"]["etcd1"].modules.paas_pki.profile("etcd-healthcheck-client")
    client = etcd3.client(
        host=etcd1.address,
        ca_cert=credentials["ca"],
        cert_key=credentials["key"],
        cert_cert=credentials["cert"],
    )
    try:
        client.create_alarm()
    finally:
        client.close()
    raised = _etcd(cluster).alarms()
    assert {alarm["alarm"] for alarm in raised} == {"NOSPACE"}
    assert _etcd(cluster).health()["healthy"] is False
    assert _etcd(cluster).disarm() == []
    assert _etcd(cluster).health()["healthy"] is True


def test_defrag_reports_each_members_database_before_and_after(cluster):
    report = _etcd(cluster).defrag()
    assert sorted(report) == FORMED
    for sizes in report.values():
        assert 0 < sizes["db_size"] <= sizes["db_size_before"]
    assert list(_etcd(cluster).defrag(member="etcd2")) == ["etcd2"]


def test_snapshot_round_trip_keeps_every_key(cluster):
    etcd = _etcd(cluster)
    for index in range(20):
        etcd.put(f"/paas/snapshot/{index:02d}", f"value-{index}")
    path = cluster["tmp"] / "snapshots" / "now.db"
    saved = etcd.snapshot_save(str(path))
    assert saved["path"] == str(path)
    assert saved["keys"] >= 21
    assert path.stat().st_mode & 0o777 == 0o600
    assert etcd.snapshot_check(str(path))["revision"] == saved["revision"]

    etcd1 = cluster["members"]["etcd1"]
    restored_dir = cluster["tmp"] / "restored" / "data"
    # Restored as a one-member cluster on other ports of etcd1's address, beside the live one.
    restored = etcd.snapshot_restore(
        str(path),
        data_dir=str(restored_dir),
        name="etcd1",
        initial_cluster=f"etcd1=https://{etcd1.address}:12380",
    )
    assert restored["token"].startswith("paas-ft-restore-")
    assert restored_dir.stat().st_mode & 0o777 == 0o700
    assert restored_dir.owner() == "etcd"
    scratch = etcd_hosts.Member(
        "etcd1",
        etcd1.address,
        etcd1.namespace,
        {"etcd-server": etcd1.server, "etcd-peer": etcd1.peer},
        cluster["tmp"] / "restored",
    )
    scratch.start(
        f"etcd1=https://{etcd1.address}:12380",
        "new",
        client_port=12379,
        peer_port=12380,
    )
    try:
        endpoint = f"https://{etcd1.address}:12379"
        etcd_hosts.wait_for(
            lambda: etcd.member_health(endpoint)["healthy"], "the restored member", [scratch]
        )
        for index in range(20):
            assert etcd.get(f"/paas/snapshot/{index:02d}", endpoint=endpoint) == f"value-{index}"
        assert [member["name"] for member in etcd.members(endpoint=endpoint)] == ["etcd1"]
    finally:
        scratch.stop()


def test_a_damaged_snapshot_is_refused_and_never_kept(cluster):
    etcd = _etcd(cluster)
    good = cluster["tmp"] / "snapshots" / "now.db"
    damaged = cluster["tmp"] / "snapshots" / "damaged.db"
    data = bytearray(good.read_bytes())
    data[4096] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(CommandExecutionError, match="sha256 does not match"):
        etcd.snapshot_check(str(damaged))
    with pytest.raises(CommandExecutionError, match="sha256 does not match"):
        etcd.snapshot_restore(str(damaged), data_dir=str(cluster["tmp"] / "never"))
    assert not (cluster["tmp"] / "never").exists()


def test_restore_refuses_a_data_directory_with_data(cluster):
    etcd1 = cluster["members"]["etcd1"]
    with pytest.raises(CommandExecutionError, match="holds an etcd member's data"):
        _etcd(cluster).snapshot_restore(
            str(cluster["tmp"] / "snapshots" / "now.db"), data_dir=str(etcd1.data_dir)
        )


def test_membership_refusals_name_the_reason(cluster):
    etcd = _etcd(cluster)
    with pytest.raises(CommandExecutionError, match=r"etcd2 \(.*\) is already a member"):
        etcd.member_add("etcd2")
    with pytest.raises(SaltInvocationError, match="cp1 is not an etcd node of the topology"):
        etcd.member_add("cp1")
    with pytest.raises(CommandExecutionError, match="ghost is not a member"):
        etcd.member_remove("ghost")


def test_remove_is_refused_when_it_would_cost_quorum(cluster):
    members = cluster["members"]
    members["etcd2"].stop()
    try:
        before = _etcd(cluster).members()
        assert _etcd(cluster).removal_refusal("etcd3").startswith("removing etcd3 would cost")
        with pytest.raises(CommandExecutionError) as refused:
            _etcd(cluster).member_remove("etcd3")
        assert "removing etcd3 would cost quorum: 1 healthy of the 2 voters left, 2 needed" in str(
            refused.value
        )
        assert "unhealthy: etcd2" in str(refused.value)
        assert _etcd(cluster).members() == before
    finally:
        members["etcd2"].restart()
    etcd_hosts.wait_for(_healthy(cluster, 3), "etcd2 back", list(members.values()))


def test_removed_member_rejoins_under_its_name_once_its_data_is_wiped(cluster):
    etcd = _etcd(cluster)
    etcd.put("/paas/before-removal", "kept")
    etcd3 = cluster["members"]["etcd3"]
    assert etcd.member_remove("etcd3")["removed"] == "etcd3"
    etcd3.stop()
    assert sorted(member["name"] for member in etcd.members()) == ["etcd1", "etcd2"]
    shutil.rmtree(etcd3.data_dir)

    _join(cluster, "etcd3")
    etcd_hosts.wait_for(_healthy(cluster, 3), "etcd3 re-added", list(cluster["members"].values()))
    assert etcd.get("/paas/before-removal", endpoint=etcd3.client_url) == "kept"


def test_a_voter_is_not_added_when_the_larger_cluster_would_lack_quorum(cluster):
    members = cluster["members"]
    members["etcd2"].stop()
    try:
        # Two healthy voters of three have quorum; of four they would not.
        with pytest.raises(CommandExecutionError, match="would cost quorum: 2 healthy voters, 3"):
            _etcd(cluster).member_add("etcd4", learner=False)
        assert len(_etcd(cluster).members()) == 3
    finally:
        members["etcd2"].restart()
    etcd_hosts.wait_for(_healthy(cluster, 3), "etcd2 back", list(members.values()))


def test_only_one_learner_at_a_time(cluster):
    etcd = _etcd(cluster)
    added = etcd.member_add("etcd4")
    assert etcd.is_member("etcd4") is True
    assert etcd.lookup_member("etcd4")["started"] is False
    assert etcd.initial_cluster("etcd4") == added["initial_cluster"]
    assert etcd.lookup_member("etcd5") is None
    assert etcd.removal_refusal("etcd4") is None
    try:
        with pytest.raises(CommandExecutionError, match="was added but never started"):
            etcd.member_add("etcd5")
    finally:
        assert etcd.member_remove("etcd4") == {"removed": "etcd4", "id": added["id"]}
    assert len(etcd.members()) == 3
    assert etcd.is_member("etcd4") is False
