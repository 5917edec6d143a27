"""
The control plane set aside during an etcd restore and put back: the static Pod manifests
moved out of the kubelet's path and back, the wait for the apiserver's port (a real
listening socket here, closed the way a kubelet stops the Pod), the kubelet restart, and
a node without Kubernetes left alone.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

COMPONENTS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]


class Node:
    """A control plane's files under tmp_path, and an apiserver that is a listening socket."""

    def __init__(self, tmp_path):
        self.root = tmp_path
        self.manifests = tmp_path / "manifests"
        self.manifests.mkdir()
        self.paused = tmp_path / "paused"
        self.kubelet_conf = tmp_path / "kubelet.conf"
        self.kubelet_conf.write_text("kubelet")
        for component in COMPONENTS:
            (self.manifests / f"{component}.yaml").write_text(component)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.restarts = []
        self.role = "control-plane"

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
            self.listener.close()

        threading.Thread(target=watch, daemon=True).start()

    def restart(self, service):
        self.restarts.append(service)
        if (self.manifests / "kube-apiserver.yaml").exists():
            self.listener = socket.create_server(("127.0.0.1", self.port))
        return True


@pytest.fixture(scope="module")
def state_module(import_repo_module):
    return import_repo_module("_states/paas_control_plane.py", "paas_control_plane_state")


@pytest.fixture
def node(tmp_path):
    made = Node(tmp_path)
    yield made
    made.listener.close()


@pytest.fixture
def opts():
    return {"id": "cp1", "test": False}


@pytest.fixture
def configure_loader_modules(state_module, node, opts):
    salt = {"paas_topology.kubernetes_node": node.view, "service.restart": node.restart}
    return {state_module: {"__salt__": salt, "__opts__": opts}}


def test_paused_sets_the_manifests_aside_and_waits_for_the_apiserver_to_go(state_module, node):
    node.kubelet()
    ret = state_module.paused("cp1", timeout=10)
    assert ret["result"] is True, ret
    assert ret["changes"] == {"paused": COMPONENTS}
    assert sorted(path.name for path in node.paused.iterdir()) == [f"{c}.yaml" for c in COMPONENTS]
    assert list(node.manifests.iterdir()) == []
    again = state_module.paused("cp1")
    assert again["result"] is True and again["changes"] == {}, again


def test_paused_fails_when_the_apiserver_keeps_answering(state_module, node):
    ret = state_module.paused("cp1", timeout=1)
    assert ret["result"] is False
    assert f"still accepts connections on 127.0.0.1:{node.port}" in ret["comment"]


def test_paused_under_test_moves_nothing(state_module, node, opts):
    opts["test"] = True
    ret = state_module.paused("cp1")
    assert ret["result"] is None and ret["changes"] == {"paused": COMPONENTS}
    assert len(list(node.manifests.iterdir())) == 3


def test_resumed_puts_them_back_and_restarts_the_kubelet(state_module, node):
    node.kubelet()
    assert state_module.paused("cp1", timeout=10)["result"] is True
    ret = state_module.resumed("cp1", timeout=10)
    assert ret["result"] is True, ret
    assert ret["changes"] == {"kubelet": "restarted", "resumed": COMPONENTS}
    assert len(list(node.manifests.iterdir())) == 3 and list(node.paused.iterdir()) == []
    assert node.restarts == ["kubelet"]


def test_a_worker_only_restarts_its_kubelet(state_module, node):
    node.role = "worker"
    for path in node.manifests.iterdir():
        path.unlink()
    ret = state_module.resumed("worker1")
    assert ret["result"] is True and ret["changes"] == {"kubelet": "restarted"}, ret
    assert node.restarts == ["kubelet"]


def test_a_node_without_kubernetes_is_left_alone(state_module, node):
    node.kubelet_conf.unlink()
    ret = state_module.resumed("cp1")
    assert ret["result"] is True and ret["changes"] == {}
    assert node.restarts == []
