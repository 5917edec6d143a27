"""
The master's Kubernetes joins and their check (``_utils/paas_kubernetes.py``) through its
two ways in, each under Salt's loader dunders: ``salt-run paas_kubernetes.*``
(``_runners/paas_kubernetes.py``) and the orchestration's ``paas_kubernetes`` states
(``_states/paas_kubernetes.py``), which call the utils module itself, not the runner.

The join plan and its batches are pure functions of the topology's view and the nodes'
answers. The runs go through a stand-in for the minions (what each was asked, with
which pillar, and what it answers: ``paas_kubeadm.joined``, ``paas_kubeadm.credentials``,
``state.apply kubernetes.join``, ``paas_control_plane.status``, ``paas_kubeadm.revoke``) on
the lab's topology with more workers: who joins, in which order and batches, that the
run's credentials are revoked whatever happened, that a failure stops the run naming
the node and kubeadm's error, and that no secret is in what the runner returns.
"""

from __future__ import annotations

import contextlib
import json
import os

import pytest

from tests import tls
from tests.conftest import utils_of

TOKEN = "abcdef.0123456789abcdef"
CERTIFICATE_KEY = "0123456789abcdef" * 4
CA_HASH = "sha256:" + "ab" * 32
WORKERS = [f"worker{index}" for index in range(1, 6)]


def _state(comment: str, result: bool = True) -> dict:
    return {
        "kubeadm_|-kubernetes-join-node_|-node_|-joined": {
            "result": result,
            "comment": comment,
            "changes": {},
        }
    }


class Minions:
    """The minions as the runner's client to them (``paas_master.minions``) sees them."""

    def __init__(self, joined: dict):
        self.joined = dict(joined)
        self.ready = {node for node, done in joined.items() if done is True} | {"cp1"}
        self.calls: list[tuple] = []
        self.pillars: list[dict] = []
        # node -> the comment its state run fails with
        self.failures: dict[str, str] = {}
        self.not_ready: set[str] = set()
        self.credentials_error: str | None = None
        self.revoke_error: str | None = None
        self.made = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def ask(self, minions, function, *, timeout):
        self.calls.append(("ask", tuple(minions), function))
        return {minion: self.joined.get(minion, "no reply") for minion in minions}

    def call(self, minion, function, arg=(), kwarg=None, *, timeout):
        self.calls.append(("call", minion, function, tuple(arg), dict(kwarg or {})))
        if function == "paas_kubeadm.credentials":
            if self.credentials_error:
                return self.credentials_error
            self.made += 1
            # What cp1 seals to each joining node's key (here: names, not ciphertext).
            return {
                "token_id": f"abcde{self.made}",
                "ca_hash": CA_HASH,
                "ttl_minutes": arg[0],
                "sealed": {
                    node: {
                        "token": f"abcde{self.made} sealed to {key}",
                        "certificate_key": f"key sealed to {key}"
                        if kwarg["control_plane"]
                        else None,
                    }
                    for node, key in kwarg["recipients"].items()
                },
            }
        if function == "paas_kubeadm.revoke":
            if self.revoke_error:
                return self.revoke_error
            return {"tokens": list(arg), "kubeadm_certs_secret": "deleted"}
        if function == "paas_control_plane.status":
            return {
                "node": minion,
                "initialized": True,
                "nodes": [
                    {
                        "name": node,
                        "ready": node not in self.not_ready,
                        "reason": "container runtime is down" if node in self.not_ready else None,
                        "roles": ["control-plane"] if node.startswith("cp") else [],
                    }
                    for node in sorted(self.ready)
                ],
            }
        if function == "paas_kubeadm.ca_certificate":
            return "-----BEGIN CERTIFICATE-----"
        raise AssertionError(f"unexpected call {function}")

    def run(self, minions, function, arg, kwarg, *, timeout):
        """A state run: ``state.apply <sls>`` with the run's pillar."""
        assert function == "state.apply", function
        (sls,) = arg
        self.calls.append(("apply", tuple(minions), sls))
        self.pillars.append(kwarg["pillar"])
        replies = {}
        for minion in minions:
            if minion in self.failures:
                replies[minion] = {"ret": _state(self.failures[minion], False), "retcode": 2}
            else:
                self.joined[minion] = True
                self.ready.add(minion)
                replies[minion] = {"ret": _state(f"{minion} joined the cluster"), "retcode": 0}
        return replies

    def applied(self) -> list[tuple[str, ...]]:
        return [call[1] for call in self.calls if call[0] == "apply"]

    def functions(self) -> list[str]:
        return [call[2] for call in self.calls if call[0] == "call"]


@pytest.fixture(scope="module")
def joins(import_repo_module):
    return import_repo_module("_utils/paas_kubernetes.py", "paas_kubernetes_utils_module")


@pytest.fixture(scope="module")
def orchestration_utils(import_repo_module):
    return import_repo_module("_utils/paas_orchestration.py", "paas_orchestration_utils")


@pytest.fixture(scope="module")
def runner(import_repo_module):
    return import_repo_module("_runners/paas_kubernetes.py", "paas_kubernetes_runner_module")


@pytest.fixture(scope="module")
def orchestration_states(import_repo_module):
    return import_repo_module("_states/paas_kubernetes.py", "paas_kubernetes_state_module")


@pytest.fixture
def topology(lab_topology) -> dict:
    """The lab's topology with five workers, two to a batch."""
    lab_topology["nodes"] = [n for n in lab_topology["nodes"] if "worker" not in n["roles"]] + [
        {"id": node, "roles": ["worker"], "addresses": {"private": f"198.18.1.4{node[-1]}"}}
        for node in WORKERS
    ]
    lab_topology["kubernetes"]["worker_batch"] = 2
    return lab_topology


@pytest.fixture
def view(topology_utils, topology) -> dict:
    assert topology_utils.validate(topology) == []
    return topology_utils.kubernetes(topology)


@pytest.fixture
def minions() -> Minions:
    joined = {"cp2": False, "cp3": False, **dict.fromkeys(WORKERS, False)}
    joined["worker1"] = True
    return Minions(joined)


@pytest.fixture
def context() -> dict:
    return {}


@pytest.fixture
def master_opts(tmp_path) -> dict:
    """The master's opts, with the accepted keys of the Kubernetes nodes."""
    accepted = tmp_path / "minions"
    accepted.mkdir()
    for node in ("cp2", "cp3", *WORKERS):
        (accepted / node).write_text(f"{node}'s public key")
    return {"id": "paas-master", "pki_dir": str(tmp_path)}


@pytest.fixture(scope="module")
def apiserver_utils(import_repo_module):
    return import_repo_module("_utils/paas_apiserver.py", "paas_apiserver_utils")


@pytest.fixture
def dunders(
    joins,
    orchestration_utils,
    topology_utils,
    master_utils,
    context,
    master_opts,
    minions,
    apiserver_utils,
) -> dict:
    """The runner's and the states' loader dunders: the joins', the topology's and the
    master's utils (its client to the minions the stand-in above), the master's opts, a
    context."""
    utils = {
        **utils_of(joins, "paas_kubernetes"),
        **utils_of(orchestration_utils, "paas_orchestration"),
        **master_utils,
        **{
            f"paas_topology.{name}": getattr(topology_utils, name)
            for name in ("validate", "kubernetes")
        },
        "paas_master.minions": lambda opts: minions,
        "paas_apiserver.readyz": apiserver_utils.readyz,
    }
    return {"__utils__": utils, "__opts__": master_opts, "__context__": context}


@pytest.fixture
def configure_loader_modules(runner, joins, topology, dunders, master_pillar, monkeypatch):
    master_pillar({"paas": topology})
    monkeypatch.setattr(joins, "_readyz", lambda utils, address, port, ca: "ok")
    monkeypatch.setattr(joins, "POLL_SECONDS", 0)
    return {runner: dunders}


@contextlib.contextmanager
def patch_dunders(module, utils: dict, opts: dict):
    """Salt's loader dunders on a second module, for as long as a test runs."""
    module.__utils__, module.__opts__ = utils, opts
    try:
        yield
    finally:
        del module.__utils__, module.__opts__


def _no_secret(report) -> None:
    said = json.dumps(report)
    assert "0123456789abcdef" not in said
    assert CERTIFICATE_KEY not in said


# The plan.


def test_workers_are_cut_into_batches_in_topology_order(joins):
    assert joins.batches(WORKERS, 2) == [
        ["worker1", "worker2"],
        ["worker3", "worker4"],
        ["worker5"],
    ]
    assert joins.batches(WORKERS, 10) == [WORKERS]
    assert joins.batches([], 10) == []
    with pytest.raises(ValueError, match="at least one node"):
        joins.batches(WORKERS, 0)


def test_control_planes_join_one_at_a_time_and_the_first_never_joins(joins, view):
    assert joins.candidates(view, "control-plane") == ["cp2", "cp3"]
    assert joins.batch_size(view, "control-plane") == 1
    assert joins.candidates(view, "worker") == WORKERS
    assert joins.batch_size(view, "worker") == 2


def test_the_plan_leaves_out_joined_nodes_and_names_those_that_did_not_answer(joins):
    answers = {
        "worker1": True,
        "worker2": False,
        "worker3": "Minion did not return. [No response]",
        "worker4": False,
        "worker5": False,
    }
    plan = joins.join_plan(WORKERS, answers, 2)
    assert plan["already_joined"] == ["worker1"]
    assert plan["to_join"] == ["worker2", "worker4", "worker5"]
    assert plan["batches"] == [["worker2", "worker4"], ["worker5"]]
    assert plan["unanswered"] == {"worker3": "Minion did not return. [No response]"}


def test_plan_says_who_would_join_and_changes_nothing(runner, minions, context):
    report = runner.plan(role="worker")
    assert report["retcode"] == 0 and context["retcode"] == 0
    assert report["to_join"] == WORKERS[1:]
    assert report["batches"] == [["worker2", "worker3"], ["worker4", "worker5"]]
    assert minions.applied() == [] and minions.functions() == []


# Joins.


def test_workers_join_in_batches_with_one_token_revoked_at_the_end(runner, minions, context):
    report = runner.join(role="worker")
    assert report["retcode"] == 0 and context["retcode"] == 0, report
    assert report["already_joined"] == ["worker1"]
    assert report["joined"] == WORKERS[1:]
    assert minions.applied() == [("worker2", "worker3"), ("worker4", "worker5")]
    assert minions.functions() == ["paas_kubeadm.credentials", "paas_kubeadm.revoke"]
    credentials = next(call for call in minions.calls if call[2] == "paas_kubeadm.credentials")
    assert credentials[1] == "cp1"
    recipients = {node: f"{node}'s public key" for node in WORKERS[1:]}
    assert credentials[3:] == ((15,), {"control_plane": False, "recipients": recipients})
    # Each batch gets only what was sealed to its own nodes' keys.
    for pillar, batch in zip(minions.pillars, (WORKERS[1:3], WORKERS[3:]), strict=True):
        sealed = {
            node: {"token": f"abcde1 sealed to {node}'s public key", "certificate_key": None}
            for node in batch
        }
        assert pillar == {"kubeadm_join": {"ca_hash": CA_HASH, "sealed": sealed}}
    assert minions.calls[-1] == ("call", "cp1", "paas_kubeadm.revoke", ("abcde1",), {})
    assert report["revoked"] == {"tokens": ["abcde1"], "kubeadm_certs_secret": "deleted"}
    _no_secret(report)


def test_control_planes_join_one_at_a_time_each_ready_before_the_next(runner, minions):
    report = runner.join(role="control-plane")
    assert report["retcode"] == 0, report
    assert report["joined"] == ["cp2", "cp3"]
    steps = [call[2] if call[0] == "call" else call[1] for call in minions.calls[1:]]
    assert steps == [
        "paas_kubeadm.credentials",
        ("cp2",),
        "paas_control_plane.status",
        ("cp3",),
        "paas_control_plane.status",
        "paas_kubeadm.revoke",
    ]
    assert minions.pillars[0]["kubeadm_join"]["sealed"] == {
        "cp2": {
            "token": "abcde1 sealed to cp2's public key",
            "certificate_key": "key sealed to cp2's public key",
        }
    }
    _no_secret(report)


def test_a_control_plane_that_is_not_ready_stops_the_run_before_the_next(runner, minions):
    minions.not_ready.add("cp2")
    report = runner.join(role="control-plane", timeout=0)
    assert report["retcode"] == 1
    assert report["failed"] == {
        "cp2": "cp2 joined, but its Node is not Ready after 0 s: not Ready: "
        "container runtime is down"
    }
    assert report["not_joined"] == ["cp3"]
    assert minions.applied() == [("cp2",)]
    assert minions.functions()[-1] == "paas_kubeadm.revoke"


def test_a_failed_join_stops_the_run_names_node_and_error_and_still_revokes(
    runner, minions, context
):
    minions.failures["worker3"] = (
        "worker3: kubeadm join failed (exit code 1) error execution phase preflight: "
        "couldn't validate the identity of the API Server with token abcde1.<redacted>\n"
        "The node was cleaned with kubeadm reset -f; a re-run tries again."
    )
    report = runner.join(role="worker")
    assert report["retcode"] == 1 and context["retcode"] == 1
    assert report["joined"] == ["worker2"]
    assert list(report["failed"]) == ["worker3"]
    assert report["failed"]["worker3"].startswith("worker3: kubeadm join failed")
    assert "couldn't validate the identity of the API Server" in report["failed"]["worker3"]
    assert report["not_joined"] == ["worker3", "worker4", "worker5"]
    assert minions.applied() == [("worker2", "worker3")]
    assert minions.functions()[-1] == "paas_kubeadm.revoke"
    _no_secret(report)


def test_a_rerun_with_every_node_joined_makes_no_credentials(runner, minions):
    minions.joined.update(dict.fromkeys(WORKERS, True))
    report = runner.join(role="worker")
    assert report["retcode"] == 0
    assert report["joined"] == [] and report["already_joined"] == WORKERS
    assert minions.functions() == [] and minions.applied() == []


def test_a_node_that_does_not_answer_stops_the_run_before_any_credentials(runner, minions):
    del minions.joined["worker4"]
    report = runner.join(role="worker")
    assert report["retcode"] == 1
    assert report["problems"] == ["worker4 did not say whether it has joined: no reply"]
    assert minions.functions() == [] and minions.applied() == []


def test_credentials_that_cannot_be_made_stop_the_run_naming_the_first_control_plane(
    runner, minions
):
    minions.credentials_error = "exit code 1: cp1 is not initialized: there is no cluster to join"
    report = runner.join(role="worker")
    assert report["retcode"] == 1
    assert report["problems"] == [
        "cp1: the join credentials could not be made: exit code 1: cp1 is not initialized: "
        "there is no cluster to join"
    ]
    assert minions.applied() == []


def test_credentials_that_cannot_be_revoked_fail_the_run_with_what_to_do(runner, minions):
    minions.revoke_error = "exit code 1: cp1: the apiserver did not answer"
    report = runner.join(role="worker")
    assert report["retcode"] == 1
    (problem,) = report["problems"]
    assert "could not be revoked" in problem and "kubeadm token delete abcde1" in problem


def test_credentials_are_made_again_when_half_their_life_has_passed(
    runner, joins, minions, monkeypatch
):
    clock = iter(range(0, 100000, 500))
    monkeypatch.setattr(joins.time, "monotonic", lambda: next(clock))
    report = runner.join(role="worker")
    assert report["retcode"] == 0, report
    made = [call for call in minions.calls if call[2] == "paas_kubeadm.credentials"]
    assert len(made) == 2
    revoked = [call[3] for call in minions.calls if call[2] == "paas_kubeadm.revoke"]
    assert revoked == [("abcde1",), ("abcde2",)]
    assert [
        pillar["kubeadm_join"]["sealed"]["worker2"]["token"][:6] for pillar in minions.pillars[:1]
    ] == ["abcde1"]
    assert [
        pillar["kubeadm_join"]["sealed"]["worker4"]["token"][:6] for pillar in minions.pillars[1:]
    ] == ["abcde2"]


def test_an_unknown_role_is_refused(runner, minions):
    report = runner.join(role="etcd")
    assert report["retcode"] == 1 and "role must be one of" in report["problems"][0]
    assert minions.calls == []


# Verify.


def test_verify_passes_when_every_node_is_ready_with_its_role(runner, minions):
    minions.ready |= {"cp2", "cp3", *WORKERS}
    report = runner.verify()
    assert report["retcode"] == 0, report["problems"]
    assert set(report["nodes"]) == {"cp1", "cp2", "cp3", *WORKERS}
    assert report["api"] == {"private": "ok", "public": "ok"}


def test_verify_names_every_missing_unready_or_mislabelled_node(
    runner, joins, minions, monkeypatch
):
    minions.ready |= {"cp2", "worker1", "worker2", "worker3", "worker4", "stranger"}
    minions.not_ready.add("worker2")
    monkeypatch.setattr(
        joins,
        "_readyz",
        lambda utils, address, port, ca: "ok" if address != "198.18.0.10" else "refused",
    )
    report = runner.verify(timeout=0)
    assert report["retcode"] == 1
    assert report["problems"] == [
        "cp3 is not a Node of the cluster",
        "Node worker2 is not Ready: container runtime is down",
        "worker5 is not a Node of the cluster",
        "the API does not answer through the public VIP 198.18.0.10:6443: refused",
    ]
    assert report["unknown_nodes"] == ["stranger"]


@pytest.fixture(scope="module")
def readyz(joins, apiserver_utils):
    """The joins' own /readyz check (the other tests replace it)."""
    readyz, utils = joins._readyz, {"paas_apiserver.readyz": apiserver_utils.readyz}
    return lambda address, port, ca: readyz(utils, address, port, ca)


def test_the_api_is_ready_only_over_tls_the_clusters_ca_vouches_for(readyz, tmp_path):
    cluster_ca, other_ca = tls.authority("kubernetes"), tls.authority("another")
    tls.write(tmp_path / "apiserver.crt", *tls.issue(cluster_ca, "kube-apiserver", ("127.0.0.1",)))
    apiserver = tls.HttpsStandIn(tmp_path / "apiserver.crt", {"/readyz": (200, "ok")})
    try:
        assert readyz("127.0.0.1", apiserver.port, tls.pem(cluster_ca[0])) == "ok"
        assert "certificate verify failed" in readyz(
            "127.0.0.1", apiserver.port, tls.pem(other_ca[0])
        )
        apiserver.routes["/readyz"] = (500, "[+]ping ok\n[-]etcd failed: reason withheld\n")
        assert readyz("127.0.0.1", apiserver.port, tls.pem(cluster_ca[0])) == (
            "HTTP 500: [-]etcd failed: reason withheld"
        )
    finally:
        apiserver.stop()


# The orchestration's steps.


@pytest.fixture
def orchestration(orchestration_states, joins, dunders, configure_loader_modules):
    """The paas_kubernetes states with the loader dunders of the orchestration's master
    minion (its utils, the master's opts): the states, their opts, and each run of the
    joins' utils they made (function, arguments)."""
    opts, runs = {**dunders["__opts__"], "test": False}, []
    utils = dict(dunders["__utils__"])

    def recorded(name, function):
        def run(opts, utils, **kwargs):
            # Exactly the functions the joins name, resolved by the state: its own
            # __utils__ would not resolve inside the utils module's loader.
            assert set(utils) == set(joins.uses()), sorted(utils)
            runs.append((name, kwargs))
            return function(opts, utils, **kwargs)

        return run

    for name in ("plan", "join", "verify"):
        utils[f"paas_kubernetes.{name}"] = recorded(name, utils[f"paas_kubernetes.{name}"])
    with patch_dunders(orchestration_states, utils, opts):
        yield orchestration_states, opts, runs


def test_the_step_reports_the_joined_nodes_as_changes_and_nothing_on_a_rerun(orchestration):
    states, opts, runs = orchestration
    opts["test"] = True
    predicted = states.joined("paas-kubernetes-workers", role="worker")
    assert predicted["result"] is None
    assert runs == [("plan", {"role": "worker"})]
    opts["test"] = False
    ret = states.joined("paas-kubernetes-workers", role="worker")
    assert ret["result"] is True, ret
    assert ret["changes"] == predicted["changes"] == {"joined": {"old": None, "new": WORKERS[1:]}}
    again = states.joined("paas-kubernetes-workers", role="worker")
    assert again["result"] is True and again["changes"] == {}


def test_a_failed_join_fails_the_step_with_the_node_and_what_is_left(orchestration, minions):
    states, _, _ = orchestration
    minions.failures["worker2"] = "worker2: kubeadm join failed (exit code 1) boom"
    ret = states.joined("paas-kubernetes-workers", role="worker")
    assert ret["result"] is False
    assert ret["comment"].startswith("worker2: kubeadm join failed (exit code 1) boom")
    # worker3, in worker2's batch, joined all the same.
    assert ret["changes"] == {"joined": {"old": None, "new": ["worker3"]}}
    assert ret["comment"].endswith("left for a re-run: worker2, worker4, worker5.")


def test_the_verify_step_changes_nothing_and_fails_with_the_problems(orchestration, minions):
    states, _, _ = orchestration
    minions.ready |= {"cp2", "cp3", *WORKERS}
    assert states.verified("paas-kubernetes-verify")["result"] is True
    minions.ready.discard("cp3")
    failed = states.verified("paas-kubernetes-verify", timeout=0)
    assert failed["result"] is False and failed["changes"] == {}
    assert "cp3 is not a Node of the cluster" in failed["comment"]


def test_the_verify_step_checks_under_test_too_without_waiting(orchestration, minions):
    states, opts, runs = orchestration
    opts["test"] = True
    minions.ready |= {"cp2", "cp3", *WORKERS}
    passes = states.verified("paas-kubernetes-verify")
    assert (passes["result"], passes["changes"]) == (True, {}), passes
    minions.ready.discard("cp3")
    unknown = states.verified("paas-kubernetes-verify", timeout=600)
    assert (unknown["result"], unknown["changes"]) == (None, {}), unknown
    assert "cp3 is not a Node of the cluster" in unknown["comment"]
    assert runs == [("verify", {"timeout": 0})] * 2


def test_a_node_whose_key_is_not_accepted_gets_no_credentials(runner, minions, master_opts):
    os.remove(os.path.join(master_opts["pki_dir"], "minions", "worker4"))
    report = runner.join(role="worker")
    assert report["retcode"] == 1
    (problem,) = report["problems"]
    assert problem.startswith("worker4: its Salt key is not accepted on this master")
    assert minions.functions() == [] and minions.applied() == []
