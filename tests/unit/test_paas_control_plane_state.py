"""
The control plane set aside during an etcd restore and put back: the static Pod manifests
moved out of the kubelet's path and back, the wait for the apiserver to go (its port
closed the way a kubelet stops the Pod) and to say ``/readyz`` ok over TLS (a real HTTPS
server here), the kubelet restarted only when it has run since before the restore or
manifests came back, a re-run that changes nothing, test mode that predicts exactly what
a run changes, and a node without Kubernetes left alone.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests import tls

COMPONENTS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]


class Node:
    """A control plane's files under tmp_path, its kubelet's start time, and its apiserver."""

    def __init__(self, tmp_path):
        self.manifests = tmp_path / "manifests"
        self.manifests.mkdir()
        self.paused = tmp_path / "paused"
        self.pki = tmp_path / "pki"
        self.pki.mkdir()
        ca = tls.authority("kubernetes")
        tls.write(self.pki / "ca.crt", ca[0])
        tls.write(self.pki / "apiserver.crt", *tls.issue(ca, "kube-apiserver", ("127.0.0.1",)))
        self.kubelet_conf = tmp_path / "kubelet.conf"
        self.kubelet_conf.write_text("kubelet")
        for component in COMPONENTS:
            (self.manifests / f"{component}.yaml").write_text(component)
        self.routes = {"/readyz": (200, "ok")}
        self.apiserver = self.serve()
        self.port = self.apiserver.port
        self.restarts = []
        self.kubelet_started = time.time() - 3600
        self.role = "control-plane"

    def serve(self, port: int = 0) -> tls.HttpsStandIn:
        """The apiserver: HTTPS with the cluster CA's certificate for 127.0.0.1."""
        return tls.HttpsStandIn(self.pki / "apiserver.crt", self.routes, port=port)

    def view(self, node_id):
        return {
            "id": node_id,
            "address": "127.0.0.1",
            "role": self.role,
            "endpoint": {"host": "198.18.1.2", "port": self.port},
            "manifests_dir": str(self.manifests),
            "paused_manifests_dir": str(self.paused),
            "control_plane_components": COMPONENTS,
            "kubelet_kubeconfig": str(self.kubelet_conf),
            "pki_dir": str(self.pki),
            "services": {"kubelet": "kubelet"},
        }

    def kubelet(self):
        """Stop the apiserver once its manifest is gone, as the kubelet does."""

        def watch():
            deadline = time.monotonic() + 10
            while (self.manifests / "kube-apiserver.yaml").exists():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
            self.apiserver.stop()

        threading.Thread(target=watch, daemon=True).start()

    def restart(self, service):
        self.restarts.append(service)
        self.kubelet_started = time.time()
        if (self.manifests / "kube-apiserver.yaml").exists() and self.apiserver is None:
            self.apiserver = self.serve(self.port)
        return True

    def show(self, argv, python_shell):
        """``systemctl show --timestamp=unix --property=ActiveEnterTimestamp --value``."""
        assert argv[:2] == ["systemctl", "show"] and python_shell is False, argv
        assert "--property=ActiveEnterTimestamp" in argv and argv[-1] == "kubelet", argv
        return f"@{int(self.kubelet_started)}\n"


@pytest.fixture(scope="module")
def state_module(import_repo_module):
    return import_repo_module("_states/paas_control_plane.py", "paas_control_plane_state")


@pytest.fixture
def node(tmp_path):
    made = Node(tmp_path)
    yield made
    made.apiserver.stop()


@pytest.fixture
def opts():
    return {"id": "cp1", "test": False}


@pytest.fixture(scope="module")
def apiserver_utils(import_repo_module):
    return import_repo_module("_utils/paas_apiserver.py", "paas_apiserver_utils")


@pytest.fixture
def configure_loader_modules(state_module, apiserver_utils, state_utils, node, opts):
    salt = {
        "paas_topology.kubernetes_node": node.view,
        "service.restart": node.restart,
        "cmd.run_stdout": node.show,
    }
    utils = {"paas_apiserver.readyz": apiserver_utils.readyz, **state_utils}
    return {state_module: {"__salt__": salt, "__utils__": utils, "__opts__": opts}}


def _pause(state_module, node):
    node.kubelet()
    ret = state_module.paused("cp1", timeout=10)
    assert ret["result"] is True, ret
    node.apiserver = None


def test_paused_sets_the_manifests_aside_and_waits_for_the_apiserver_to_go(state_module, node):
    node.kubelet()
    ret = state_module.paused("cp1", timeout=10)
    assert ret["result"] is True, ret
    assert ret["changes"] == {"paused": COMPONENTS}
    assert sorted(path.name for path in node.paused.iterdir()) == [f"{c}.yaml" for c in COMPONENTS]
    assert list(node.manifests.iterdir()) == []
    again = state_module.paused("cp1")
    assert again["result"] is True and again["changes"] == {}, again
    node.apiserver = node.serve(node.port)


def test_paused_fails_when_the_apiserver_keeps_answering(state_module, node):
    ret = state_module.paused("cp1", timeout=1)
    assert ret["result"] is False
    assert f"still accepts connections on 127.0.0.1:{node.port}" in ret["comment"]


def test_paused_under_test_moves_nothing(state_module, node, opts):
    opts["test"] = True
    ret = state_module.paused("cp1")
    assert ret["result"] is None and ret["changes"] == {"paused": COMPONENTS}
    assert len(list(node.manifests.iterdir())) == 3


def test_resumed_puts_them_back_restarts_the_kubelet_once_and_waits_for_readyz(state_module, node):
    since = int(time.time())
    _pause(state_module, node)
    ret = state_module.resumed("cp1", since=since, timeout=10)
    assert ret["result"] is True, ret
    assert ret["changes"] == {"kubelet": "restarted", "resumed": COMPONENTS}
    assert len(list(node.manifests.iterdir())) == 3 and list(node.paused.iterdir()) == []
    assert node.restarts == ["kubelet"]
    again = state_module.resumed("cp1", since=since, timeout=10)
    assert again["result"] is True and again["changes"] == {}, again
    assert node.restarts == ["kubelet"]


def test_resumed_fails_while_the_apiserver_answers_but_is_not_ready(state_module, node):
    _pause(state_module, node)
    node.routes["/readyz"] = (
        500,
        "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed",
    )
    ret = state_module.resumed("cp1", timeout=1)
    assert ret["result"] is False, ret
    assert f"not ready at https://127.0.0.1:{node.port}/readyz" in ret["comment"]
    assert "HTTP 500" in ret["comment"] and "etcd failed" in ret["comment"]


def test_a_workers_kubelet_restarts_when_it_ran_since_before_the_restore(state_module, node):
    node.role = "worker"
    for path in node.manifests.iterdir():
        path.unlink()
    since = int(time.time())
    ret = state_module.resumed("worker1", since=since)
    assert ret["result"] is True and ret["changes"] == {"kubelet": "restarted"}, ret
    assert node.restarts == ["kubelet"]
    again = state_module.resumed("worker1", since=since)
    assert again["result"] is True and again["changes"] == {}, again
    assert node.restarts == ["kubelet"]


def test_by_hand_with_nothing_set_aside_nothing_changes(state_module, node):
    ret = state_module.resumed("cp1")
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert node.restarts == []


def test_resumed_under_test_predicts_exactly_what_a_run_changes(state_module, node, opts):
    since = int(time.time())
    _pause(state_module, node)
    opts["test"] = True
    predicted = state_module.resumed("cp1", since=since, timeout=10)
    assert predicted["result"] is None, predicted
    assert node.restarts == [] and list(node.manifests.iterdir()) == []
    opts["test"] = False
    ran = state_module.resumed("cp1", since=since, timeout=10)
    assert ran["result"] is True and ran["changes"] == predicted["changes"], (predicted, ran)
    opts["test"] = True
    after = state_module.resumed("cp1", since=since, timeout=10)
    assert after["result"] is True and after["changes"] == {}, after


def test_a_node_without_kubernetes_is_left_alone(state_module, node):
    node.kubelet_conf.unlink()
    ret = state_module.resumed("cp1", since=int(time.time()))
    assert ret["result"] is True and ret["changes"] == {}
    assert node.restarts == []
