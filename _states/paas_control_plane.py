"""
A control plane's static Pods set aside while etcd is restored, and put back after.

``paused`` moves kubeadm's ``kube-apiserver``, ``kube-controller-manager`` and
``kube-scheduler`` manifests out of the kubelet's static Pod path (the kubelet then stops
those Pods) and waits until this node's apiserver no longer accepts connections, so no
apiserver writes to etcd or serves from its watch cache while the data under it is
replaced. ``resumed`` puts them back and restarts the kubelet (which starts them afresh,
with empty caches); on a worker it restarts the kubelet only. A node without
Kubernetes (no kubelet configuration, no manifests) is left alone: a platform whose
Kubernetes layer is not up yet is restored the same way.

:depends: the ``paas_topology`` module (the ``kubernetes_node`` view)
"""

from __future__ import annotations

import os
import socket
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "paas_control_plane"


def __virtual__():
    if "paas_topology.kubernetes_node" not in __salt__:
        return (False, "paas_control_plane: the paas_topology module is not synced")
    return __virtualname__


def _ret(name: str) -> dict:
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _manifests(node: dict, where: str) -> list[str]:
    folder = node[where]
    return [
        component
        for component in node["control_plane_components"]
        if os.path.isfile(os.path.join(folder, f"{component}.yaml"))
    ]


def _move(node: dict, components: list[str], source: str, target: str) -> None:
    os.makedirs(node[target], mode=0o700, exist_ok=True)
    for component in components:
        os.replace(
            os.path.join(node[source], f"{component}.yaml"),
            os.path.join(node[target], f"{component}.yaml"),
        )


def _answers(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def _wait(node: dict, answering: bool, timeout: int) -> None:
    port = node["endpoint"]["port"]
    deadline = time.monotonic() + timeout
    while _answers(node["address"], port) != answering:
        if time.monotonic() > deadline:
            state = "still accepts" if not answering else "does not accept"
            raise CommandExecutionError(
                f"the apiserver on {node['id']} {state} connections on "
                f"{node['address']}:{port} after {timeout}s"
            )
        time.sleep(0.5)


def paused(name: str, timeout: int = 120) -> dict:
    """
    Stop this control plane's apiserver, controller-manager and scheduler by moving their
    static Pod manifests out of the kubelet's path; wait until the apiserver is gone.

    .. code-block:: yaml

        kubernetes-control-plane-paused:
          paas_control_plane.paused:
            - name: cp1
    """
    ret = _ret(name)
    try:
        node = __salt__["paas_topology.kubernetes_node"](__opts__["id"])
        running = _manifests(node, "manifests_dir")
        if not running:
            ret["comment"] = "No control plane static Pod runs here."
            return ret
        ret["changes"] = {"paused": running}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"{', '.join(running)} would be stopped."
            return ret
        _move(node, running, "manifests_dir", "paused_manifests_dir")
        _wait(node, answering=False, timeout=timeout)
    except (CommandExecutionError, SaltInvocationError, OSError) as err:
        return {**ret, "result": False, "comment": str(err)}
    ret["comment"] = f"{', '.join(running)} stopped: their manifests are set aside."
    return ret


def resumed(name: str, timeout: int = 300) -> dict:
    """
    Put back the static Pod manifests ``paused`` set aside, restart the kubelet (a worker's
    too) and, on a control plane, wait until the apiserver accepts connections again.

    .. code-block:: yaml

        kubernetes-resumed:
          paas_control_plane.resumed:
            - name: cp1
    """
    ret = _ret(name)
    try:
        node = __salt__["paas_topology.kubernetes_node"](__opts__["id"])
        if not os.path.isfile(node["kubelet_kubeconfig"]):
            ret["comment"] = "This node has not joined Kubernetes: nothing to restart."
            return ret
        waiting = _manifests(node, "paused_manifests_dir")
        ret["changes"] = {"kubelet": "restarted", **({"resumed": waiting} if waiting else {})}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = "The kubelet would be restarted."
            return ret
        _move(node, waiting, "paused_manifests_dir", "manifests_dir")
        if not __salt__["service.restart"](node["services"]["kubelet"]):
            raise CommandExecutionError(f"systemctl restart {node['services']['kubelet']} failed")
        if node["role"] == "control-plane":
            _wait(node, answering=True, timeout=timeout)
    except (CommandExecutionError, SaltInvocationError, OSError) as err:
        return {**ret, "result": False, "comment": str(err)}
    ret["comment"] = "The kubelet was restarted" + (
        f", and {', '.join(waiting)} started again." if waiting else "."
    )
    return ret
