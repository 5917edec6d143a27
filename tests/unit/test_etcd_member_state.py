"""
The ``etcd_member`` state module's decisions under Salt's loader dunders, with the
``etcd_cluster`` functions it calls replaced by a recording stand-in: when it may start
a cluster, what ``test=True`` says (and that it then changes nothing), that a member
which just joined is not restarted for its new configuration, and refusals. And
``certificates_served``: etcd restarted only when a listener presents another certificate
than the one on disk (``paas_pki.serves``, a stand-in here), and then waited for.

The real module against real etcd is in tests/functional and tests/e2e.
"""

from __future__ import annotations

import os

import pytest
from salt.exceptions import CommandExecutionError

ENDPOINTS = {n: f"https://198.18.1.2{n[-1]}:2379" for n in ("etcd1", "etcd2", "etcd3")}
# What replacing a member calls, in order: removed, added as a learner, restarted on an
# emptied data directory, promoted.
REPLACEMENT = [
    "etcd_cluster.member_remove",
    "etcd_cluster.member_add",
    "service.stop",
    "service.start",
    "etcd_cluster.member_promote",
]


def _member(name: str, learner: bool = False, started: bool = True) -> dict:
    return {
        "id": f"{name[-1]}0",
        "name": name if started else "",
        "peer_urls": [f"https://198.18.1.2{name[-1]}:2380"],
        "client_urls": [ENDPOINTS[name]] if started else [],
        "learner": learner,
        "started": started,
    }


def _member_named(name: str) -> dict:
    """A started voter that is no etcd node of the topology."""
    return {**_member("etcd1"), "id": f"{name[-1]}0", "name": name}


class FakeCluster:
    """What etcd_cluster would answer, and every call that would change something."""

    def __init__(self, tmp_path):
        self.members: list[dict] | None = [_member("etcd1"), _member("etcd2")]
        self.calls: list[tuple] = []
        self.data_dir = tmp_path / "data"
        self.data_dir.mkdir()
        self.running = True
        self.refusal: str | None = None
        # Calls that fail, by name, with the error they raise (once only, if so set).
        self.failures: dict[str, str] = {}
        self.failures_once = False
        # The member id the started etcd answers with (the one member_add gave).
        self.started_as = "30"
        # Whether this node's etcd answers healthy before the state starts it.
        self.healthy = True
        # Whether a start of this node's etcd succeeded (it is healthy from then on).
        self.started = False
        self.journal = "-- journal --"
        # What paas_pki.serves answers for this node's listeners, by profile: True (its
        # certificate on disk), False (an old one), None (nothing listens).
        self.served: dict[str, bool | None] = {"etcd-server": True, "etcd-peer": True}
        self.asked_served: list[tuple] = []
        self.health_asked: list[str] = []

    def view(self, name: str) -> dict:
        """The topology's etcd view of node ``name`` (paas_topology.etcd_member)."""
        return {
            "name": name,
            "client_url": ENDPOINTS[name],
            "peer_url": f"https://198.18.1.2{name[-1]}:2380",
            "members": {node: {"client_url": url} for node, url in ENDPOINTS.items()},
            "data_dir": str(self.data_dir),
            "service": "paas-etcd",
            "membership_env": str(self.data_dir.parent / "membership.env"),
            "token": "paas-test",
            "user": "etcd",
        }

    def salt(self) -> dict:
        def lookup_member(name):
            if self.members is None:
                raise CommandExecutionError("no etcd endpoint answered")
            return next((m for m in self.members if m["name"] == name), None)

        def record(name):
            def call(*args, **kwargs):
                self.calls.append((name, *args))
                if name in self.failures:
                    error = self.failures[name]
                    if self.failures_once:
                        del self.failures[name]
                    raise CommandExecutionError(error)
                if name == "service.start":
                    self.started = True
                if name == "etcd_cluster.member_add":
                    return {"id": "30", "initial_cluster": "etcd1=a,etcd2=b,etcd3=c"}
                return True

            return call

        return {
            "paas_topology.etcd_member": self.view,
            "etcd_cluster.endpoints": lambda: ENDPOINTS,
            "etcd_cluster.members": lambda: self.members,
            "etcd_cluster.lookup_member": lookup_member,
            "etcd_cluster.initial_cluster": lambda name: "etcd1=a,etcd2=b,etcd3=c",
            "etcd_cluster.member_status": lambda endpoint: {"id": self.started_as},
            "etcd_cluster.member_health": self.member_health,
            "paas_pki.serves": self.serves,
            "etcd_health.has_log": self.has_log,
            "etcd_cluster.health": lambda: {"quorum": True, "healthy": True},
            "etcd_cluster.removal_refusal": lambda name: self.refusal,
            "etcd_cluster.member_add": record("etcd_cluster.member_add"),
            "etcd_cluster.member_promote": record("etcd_cluster.member_promote"),
            "etcd_cluster.member_remove": record("etcd_cluster.member_remove"),
            "service.status": lambda service: self.running,
            "service.start": record("service.start"),
            "service.stop": record("service.stop"),
            "service.restart": record("service.restart"),
            "cmd.run": lambda *args, **kwargs: self.journal,
            "file.user_to_uid": lambda user: os.getuid(),
            "file.group_to_gid": lambda group: os.getgid(),
        }

    def with_log(self) -> None:
        """This node's member as etcd leaves it once started: a store and its log."""
        (self.data_dir / "member" / "snap").mkdir(parents=True)
        (self.data_dir / "member" / "snap" / "db").write_bytes(b"store")
        (self.data_dir / "member" / "wal").mkdir()
        (self.data_dir / "member" / "wal" / "0000000000000000-0000000000000000.wal").touch()

    def has_log(self, data_dir: str) -> bool:
        wal = os.path.join(data_dir, "member", "wal")
        return os.path.isdir(wal) and any(e.endswith(".wal") for e in os.listdir(wal))

    def serves(self, profile: str, address: str, port: int, client: str) -> bool | None:
        self.asked_served.append((profile, address, port, client))
        answer = self.served[profile]
        if isinstance(answer, str):
            raise CommandExecutionError(answer)
        return answer

    def member_health(self, endpoint: str) -> dict:
        self.health_asked.append(endpoint)
        if self.healthy or self.started:
            return {"healthy": True, "error": None}
        return {"healthy": False, "error": "connection refused"}


@pytest.fixture(scope="module")
def state_module(import_repo_module):
    return import_repo_module("_states/etcd_member.py", "etcd_member_state_module")


@pytest.fixture
def cluster(tmp_path):
    return FakeCluster(tmp_path)


@pytest.fixture
def opts():
    return {"id": "etcd3", "test": False}


@pytest.fixture
def configure_loader_modules(state_module, cluster, opts, state_utils):
    return {state_module: {"__salt__": cluster.salt(), "__opts__": opts, "__utils__": state_utils}}


def test_a_healthy_member_changes_nothing(state_module, cluster, opts):
    cluster.members.append(_member("etcd3"))
    cluster.with_log()
    ret = state_module.present("etcd3")
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert cluster.calls == []


def test_test_mode_says_a_join_would_happen_and_does_nothing(state_module, cluster, opts):
    opts["test"] = True
    cluster.with_log()
    (cluster.data_dir / "member" / "stale").write_text("an old member's data")
    ret = state_module.present("etcd3")
    assert ret["result"] is None, ret
    assert "would be added as a learner" in ret["comment"]
    assert ret["changes"]
    assert cluster.calls == []
    assert (cluster.data_dir / "member" / "stale").exists()


def test_a_join_wipes_old_data_before_the_member_starts(state_module, cluster):
    cluster.with_log()
    (cluster.data_dir / "member" / "stale").write_text("an old member's data")
    ret = state_module.present("etcd3")
    assert ret["result"] is True, ret
    assert [call[0] for call in cluster.calls] == [
        "etcd_cluster.member_add",
        "service.stop",
        "service.start",
        "etcd_cluster.member_promote",
    ]
    assert not (cluster.data_dir / "member").exists()
    membership = (cluster.data_dir.parent / "membership.env").read_text()
    assert "ETCD_INITIAL_CLUSTER=etcd1=a,etcd2=b,etcd3=c" in membership
    assert "ETCD_INITIAL_CLUSTER_STATE=existing" in membership


@pytest.mark.parametrize(
    "case",
    [
        ("etcd1", False, False, "bootstrap is not allowed here"),
        ("etcd3", True, False, "only the first etcd node of the topology (etcd1)"),
        ("etcd1", True, True, "holds data: this member was part of a cluster"),
    ],
    ids=["not-allowed", "not-the-first-node", "data-left"],
)
def test_no_new_cluster_unless_it_is_safe(state_module, cluster, opts, case):
    node, bootstrap, has_data, reason = case
    opts["id"] = node
    cluster.members = None
    if has_data:
        cluster.with_log()
    ret = state_module.present(node, bootstrap=bootstrap)
    assert ret["result"] is False
    assert reason in ret["comment"]
    assert cluster.calls == []


def test_the_first_node_starts_a_cluster_when_none_exists(state_module, cluster, opts):
    opts["id"] = "etcd1"
    cluster.members = None
    ret = state_module.present("etcd1", bootstrap=True)
    assert ret["result"] is True, ret
    assert cluster.calls == [("service.stop", "paas-etcd"), ("service.start", "paas-etcd")]
    assert (
        "ETCD_INITIAL_CLUSTER_STATE=new" in (cluster.data_dir.parent / "membership.env").read_text()
    )


def test_a_configuration_change_restarts_a_member_and_test_mode_only_says_so(
    state_module, cluster, opts
):
    restarted = {"service": {"old": "running", "new": "restarted"}}
    opts["test"] = True
    predicted = state_module.mod_watch("etcd3")
    assert predicted["result"] is None and predicted["changes"] == restarted
    assert cluster.calls == []
    opts["test"] = False
    ret = state_module.mod_watch("etcd3")
    assert ret["result"] is True and ret["changes"] == restarted, ret
    assert cluster.calls == [("service.restart", "paas-etcd")]


def test_a_join_reports_each_step_as_it_commits_and_test_mode_predicts_it(
    state_module, cluster, opts
):
    cluster.with_log()
    cluster.running = False
    opts["test"] = True
    predicted = state_module.present("etcd3")["changes"]
    assert cluster.calls == []
    opts["test"] = False
    ret = state_module.present("etcd3")
    assert ret["result"] is True, ret
    assert ret["changes"] == {
        "member": {"old": None, "new": "voter 30"},
        "data_dir": {"old": "1 entry", "new": "empty"},
        "membership": {"old": None, "new": "etcd1=a,etcd2=b,etcd3=c"},
        "service": {"old": "stopped", "new": "running"},
    }
    assert predicted == {**ret["changes"], "member": {"old": None, "new": "voter"}}


def test_a_member_that_started_as_another_cluster_is_not_reported_as_joined(state_module, cluster):
    cluster.started_as = "9a"
    ret = state_module.present("etcd3")
    assert ret["result"] is False
    assert "etcd3 runs as member 9a, not as 30, the member the cluster added" in ret["comment"]
    assert "etcd_cluster.member_promote" not in [call[0] for call in cluster.calls]
    assert ret["changes"]["member"] == {"old": None, "new": "learner 30"}


def test_absent_on_the_node_itself_predicts_the_stop_and_the_wipe(state_module, cluster, opts):
    cluster.members.append(_member("etcd3"))
    cluster.with_log()
    opts["test"] = True
    predicted = state_module.absent("etcd3")
    assert predicted["result"] is None and cluster.calls == []
    opts["test"] = False
    ret = state_module.absent("etcd3")
    assert ret["result"] is True, ret
    assert (
        ret["changes"]
        == predicted["changes"]
        == {
            "member": {"old": "30", "new": None},
            "service": {"old": "running", "new": "stopped"},
            "data_dir": {"old": "1 entry", "new": "empty"},
        }
    )
    assert not (cluster.data_dir / "member").exists()


def test_a_start_that_fails_after_the_member_was_added_reports_what_happened(state_module, cluster):
    cluster.failures["service.start"] = "Job for paas-etcd.service failed"
    ret = state_module.present("etcd3")
    assert ret["result"] is False
    assert "systemctl start paas-etcd failed: Job for paas-etcd.service failed" in ret["comment"]
    assert "-- journal --" in ret["comment"]
    assert ret["changes"] == {
        "member": {"old": None, "new": "learner 30"},
        "membership": {"old": None, "new": "etcd1=a,etcd2=b,etcd3=c"},
    }


def test_a_re_add_that_fails_after_the_removal_reports_the_removal(state_module, cluster):
    cluster.members.append(_member("etcd3"))
    cluster.failures["etcd_cluster.member_add"] = "the cluster has no quorum"
    ret = state_module.present("etcd3")
    assert ret["result"] is False and ret["comment"] == "the cluster has no quorum"
    assert ret["changes"] == {
        "reason": f"{cluster.data_dir} holds no write-ahead log",
        "member": {"old": "voter 30 without its data", "new": None},
    }
    assert [call[0] for call in cluster.calls] == [
        "etcd_cluster.member_remove",
        "etcd_cluster.member_add",
    ]


def test_pruned_removes_members_that_left_the_topology_one_at_a_time(state_module, cluster, opts):
    cluster.members += [_member_named("etcd4"), _member_named("etcd5")]
    opts["test"] = True
    predicted = state_module.pruned("paas-test")
    assert predicted["result"] is None
    assert predicted["changes"] == {"members": {"old": None, "new": ["etcd4", "etcd5"]}}
    assert cluster.calls == []
    opts["test"] = False
    ret = state_module.pruned("paas-test")
    assert ret["result"] is True and ret["changes"] == predicted["changes"], ret
    assert cluster.calls == [
        ("etcd_cluster.member_remove", "etcd4"),
        ("etcd_cluster.member_remove", "etcd5"),
    ]


def test_pruned_reports_the_removals_made_before_one_failed(state_module, cluster):
    cluster.members += [_member_named("etcd4"), _member_named("etcd5")]
    calls = []

    def remove(name, timeout):
        calls.append(name)
        if name == "etcd5":
            raise CommandExecutionError("removing etcd5 would cost quorum")
        return {"removed": name}

    state_module.__salt__["etcd_cluster.member_remove"] = remove
    ret = state_module.pruned("paas-test")
    assert ret["result"] is False and ret["comment"] == "removing etcd5 would cost quorum"
    assert ret["changes"] == {"members": {"old": None, "new": ["etcd4"]}}
    assert calls == ["etcd4", "etcd5"]


def test_pruned_with_every_member_in_the_topology_changes_nothing(state_module, cluster):
    ret = state_module.pruned("paas-test")
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert cluster.calls == []


def test_absent_refuses_what_would_cost_quorum_even_under_test(state_module, cluster, opts):
    opts["test"] = True
    cluster.refusal = "removing etcd2 would cost quorum: 1 healthy of the 2 voters left"
    ret = state_module.absent("etcd2")
    assert ret["result"] is False
    assert ret["comment"] == cluster.refusal
    assert cluster.calls == []


def test_absent_of_a_non_member_changes_nothing(state_module, cluster):
    ret = state_module.absent("etcd5")
    assert ret == {
        "name": "etcd5",
        "result": True,
        "changes": {},
        "comment": "etcd5 is not a member.",
    }


def test_present_manages_only_the_node_it_runs_on(state_module, cluster):
    ret = state_module.present("etcd1")
    assert ret["result"] is False
    assert ret["comment"] == "etcd_member.present manages the node it runs on (etcd3), not etcd1"
    assert cluster.calls == []


def test_a_stopped_member_whose_start_fails_reports_no_change(state_module, cluster):
    cluster.members.append(_member("etcd3"))
    cluster.with_log()
    cluster.running = False
    cluster.failures["service.start"] = "Job for paas-etcd.service failed"
    ret = state_module.present("etcd3")
    assert ret["result"] is False and ret["changes"] == {}, ret
    assert "systemctl start paas-etcd failed" in ret["comment"]


def test_a_member_with_a_store_and_no_log_is_replaced(state_module, cluster, opts):
    # Its data directory was emptied under a running cluster and systemd restarted it with
    # an initial cluster that no longer matches ("member count is unequal"): etcd opened a
    # fresh store, wrote no log, and exits in a loop without a panic.
    cluster.members.append(_member("etcd3"))
    (cluster.data_dir / "member" / "snap").mkdir(parents=True)
    (cluster.data_dir / "member" / "snap" / "db").write_bytes(b"fresh")
    cluster.healthy = False
    opts["test"] = True
    predicted = state_module.present("etcd3")
    assert predicted["result"] is None, predicted
    assert "it would be removed and added again" in predicted["comment"]
    assert cluster.calls == [] and (cluster.data_dir / "member" / "snap" / "db").exists()
    opts["test"] = False
    ret = state_module.present("etcd3")
    assert ret["result"] is True, ret
    assert ret["changes"]["reason"] == f"{cluster.data_dir} holds no write-ahead log"
    assert ret["changes"]["member"] == {"old": "voter 30 without its data", "new": "voter 30"}
    assert [call[0] for call in cluster.calls] == REPLACEMENT
    assert not (cluster.data_dir / "member").exists()


def test_a_first_node_with_only_a_store_still_does_not_start_a_cluster(state_module, cluster, opts):
    # Without a log etcd would start it afresh, but the store may be all that is left of
    # the cluster: bootstrap never wipes it.
    cluster.members, opts["id"] = None, "etcd1"
    (cluster.data_dir / "member" / "snap").mkdir(parents=True)
    (cluster.data_dir / "member" / "snap" / "db").write_bytes(b"kept")
    ret = state_module.present("etcd1", bootstrap=True)
    assert ret["result"] is False and "holds data" in ret["comment"], ret
    assert cluster.calls == [] and (cluster.data_dir / "member" / "snap" / "db").exists()


PANIC = (
    '{"level":"info","msg":"starting an etcd server"}\n'
    "panic: tocommit(11) is out of range [lastIndex(0)]. Was the raft log corrupted, "
    "truncated, or lost?\n"
    "goroutine 1 [running]:"
)


def test_a_member_whose_emptied_data_makes_it_panic_is_replaced(state_module, cluster):
    # Its data directory was emptied under a running cluster and systemd restarted it: a
    # fresh log under the old member ID, a panic on the leader's first append, in a loop.
    cluster.members.append(_member("etcd3"))
    cluster.with_log()
    cluster.healthy, cluster.journal = False, PANIC
    ret = state_module.present("etcd3")
    assert ret["result"] is True, ret
    assert ret["changes"]["reason"].startswith("its etcd panics: tocommit(11) is out of range")
    assert ret["changes"]["member"] == {"old": "voter 30 without its data", "new": "voter 30"}
    assert [call[0] for call in cluster.calls] == REPLACEMENT
    assert not (cluster.data_dir / "member").exists()


def test_a_panicking_member_is_only_predicted_under_test(state_module, cluster, opts):
    cluster.members.append(_member("etcd3"))
    cluster.with_log()
    cluster.healthy, cluster.journal, opts["test"] = False, PANIC, True
    ret = state_module.present("etcd3")
    assert ret["result"] is None and "it would be replaced" in ret["comment"], ret
    assert cluster.calls == []


def test_an_unhealthy_member_without_a_panic_is_not_replaced(state_module, cluster):
    cluster.members.append(_member("etcd3"))
    cluster.with_log()
    cluster.healthy = False
    ret = state_module.present("etcd3", timeout=0)
    assert ret["result"] is False
    assert "is a member but not healthy: connection refused" in ret["comment"]
    assert cluster.calls == []


def test_replaced_leaves_a_healthy_member_alone(state_module, cluster):
    cluster.members.append(_member("etcd3"))
    ret = state_module.replaced("etcd3")
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert "nothing to replace" in ret["comment"]
    assert cluster.calls == []


def test_replaced_promotes_a_healthy_learner_a_half_way_run_left_and_test_mode_says_so(
    state_module, cluster, opts
):
    cluster.members.append(_member("etcd3", learner=True))
    opts["test"] = True
    predicted = state_module.replaced("etcd3")
    opts["test"] = False
    ret = state_module.replaced("etcd3")

    assert predicted["result"] is None and "would be promoted" in predicted["comment"]
    assert ret["result"] is True, ret
    assert ret["changes"] == predicted["changes"]
    assert [call[0] for call in cluster.calls] == ["etcd_cluster.member_promote"]


def test_replaced_removes_wipes_and_re_adds_a_member_whose_data_dir_is_gone(state_module, cluster):
    cluster.members.append(_member("etcd3"))
    cluster.data_dir.rmdir()
    cluster.healthy = False
    ret = state_module.replaced("etcd3")
    assert ret["result"] is True, ret
    assert ret["changes"]["data_dir"] == {"old": "missing", "new": "empty"}
    assert ret["changes"]["member"]["new"] == "voter 30"
    assert cluster.data_dir.is_dir() and oct(cluster.data_dir.stat().st_mode)[-3:] == "700"
    assert [call[0] for call in cluster.calls][:2] == [
        "etcd_cluster.member_remove",
        "etcd_cluster.member_add",
    ]


def test_replaced_refuses_what_would_cost_quorum(state_module, cluster, opts):
    cluster.members.append(_member("etcd3"))
    cluster.healthy = False
    cluster.refusal = "removing etcd3 would leave 1 of 2 voters healthy: quorum is 2"
    opts["test"] = True
    ret = state_module.replaced("etcd3")
    assert ret["result"] is False and ret["comment"] == cluster.refusal
    opts["test"] = False
    cluster.failures["etcd_cluster.member_remove"] = cluster.refusal
    ret = state_module.replaced("etcd3")
    assert ret["result"] is False and ret["comment"] == cluster.refusal
    assert ret["changes"] == {}


def test_replaced_manages_only_the_node_it_runs_on(state_module, cluster):
    ret = state_module.replaced("etcd1")
    assert ret["result"] is False and "manages the node it runs on (etcd3)" in ret["comment"]


def test_a_stopped_member_whose_start_panics_on_its_data_is_replaced(state_module, cluster):
    cluster.members.append(_member("etcd3"))
    cluster.with_log()
    cluster.running, cluster.healthy, cluster.journal = False, False, PANIC
    cluster.failures["service.start"] = "Job for paas-etcd.service failed"
    cluster.failures_once = True
    ret = state_module.present("etcd3")
    assert ret["result"] is True, ret
    assert ret["changes"]["reason"].startswith("its etcd panics: tocommit(11)")
    assert [call[0] for call in cluster.calls] == ["service.start", *REPLACEMENT]


def test_a_stopped_member_that_fails_to_start_without_a_panic_is_an_error(state_module, cluster):
    cluster.members.append(_member("etcd3"))
    cluster.with_log()
    cluster.running, cluster.healthy = False, False
    cluster.failures["service.start"] = "Job for paas-etcd.service failed"
    ret = state_module.present("etcd3")
    assert ret["result"] is False
    assert "systemctl start paas-etcd failed" in ret["comment"]
    assert [call[0] for call in cluster.calls] == ["service.start"]


# certificates_served: etcd presents the certificates on its disk.

RESTARTED = {"service": {"old": "running", "new": "restarted"}}


def test_an_etcd_that_presents_its_files_is_not_restarted(state_module, cluster):
    ret = state_module.certificates_served("etcd3")

    assert ret["result"] is True and ret["changes"] == {}, ret
    assert ret["comment"] == "etcd3's etcd presents the certificates on its disk."
    assert cluster.calls == []
    assert cluster.asked_served == [
        ("etcd-server", "198.18.1.23", 2379, "etcd-healthcheck-client"),
        ("etcd-peer", "198.18.1.23", 2380, "etcd-healthcheck-client"),
    ]


@pytest.mark.parametrize("stale", ["etcd-server", "etcd-peer"])
def test_an_etcd_that_presents_an_old_certificate_is_restarted_once_and_healthy(
    state_module, cluster, stale
):
    cluster.served[stale] = False
    port = 2379 if stale == "etcd-server" else 2380

    ret = state_module.certificates_served("etcd3")

    assert ret["result"] is True and ret["changes"] == RESTARTED, ret
    assert cluster.calls == [("service.restart", "paas-etcd")]
    assert f"it presented an old {stale} on 198.18.1.23:{port}" in ret["comment"]
    assert cluster.health_asked == [ENDPOINTS["etcd3"]]


def test_a_restarted_etcd_that_does_not_become_healthy_fails_the_state(state_module, cluster):
    cluster.served["etcd-peer"] = False
    cluster.healthy = False

    ret = state_module.certificates_served("etcd3", timeout=0)

    assert ret["result"] is False
    assert ret["comment"] == "etcd3 is a member but not healthy: connection refused"
    assert ret["changes"] == RESTARTED
    assert cluster.calls == [("service.restart", "paas-etcd")]


@pytest.mark.parametrize("silent", ["etcd-server", "etcd-peer"])
def test_an_etcd_that_does_not_listen_is_left_to_start_with_its_files(
    state_module, cluster, silent
):
    cluster.served[silent] = None
    # Even with the other listener presenting an old certificate.
    cluster.served[({"etcd-server", "etcd-peer"} - {silent}).pop()] = False

    ret = state_module.certificates_served("etcd3")

    assert ret["result"] is True and ret["changes"] == {}, ret
    assert ret["comment"] == "etcd3's etcd is not running: it will start with its files."
    assert cluster.calls == []


def test_test_mode_predicts_the_restart_of_a_stale_etcd_and_does_not_restart_it(
    state_module, cluster, opts
):
    cluster.served["etcd-server"] = False
    opts["test"] = True

    predicted = state_module.certificates_served("etcd3")

    assert predicted["result"] is None and predicted["changes"] == RESTARTED, predicted
    assert "etcd3's etcd would be restarted" in predicted["comment"]
    assert "etcd-server on 198.18.1.23:2379" in predicted["comment"]
    assert cluster.calls == []


def test_a_handshake_that_fails_fails_the_state_without_a_restart(state_module, cluster):
    cluster.served["etcd-server"] = "etcd3: no TLS handshake with 198.18.1.23:2379: timed out"

    ret = state_module.certificates_served("etcd3")

    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"] == "etcd3: no TLS handshake with 198.18.1.23:2379: timed out"
    assert cluster.calls == []


def test_certificates_served_manages_only_the_node_it_runs_on(state_module, cluster):
    # On etcd3 (opts), named etcd1: etcd1's listeners present etcd1's certificates, never
    # the files on etcd3's disk.
    cluster.served.update({"etcd-server": False, "etcd-peer": False})

    ret = state_module.certificates_served("etcd1")

    assert cluster.calls == []
    assert ret["result"] is False and "manages the node it runs on (etcd3)" in ret["comment"]
