"""
A control plane's static Pods set aside while etcd is restored, and put back after.

``paused`` moves kubeadm's ``kube-apiserver``, ``kube-controller-manager`` and
``kube-scheduler`` manifests out of the kubelet's static Pod path (the kubelet then stops
those Pods) and waits until this node's apiserver no longer accepts connections, so no
apiserver writes to etcd or serves from its watch cache while the data under it is
replaced. ``resumed`` puts them back and restarts a kubelet that has run since before the
restore (Kubernetes' own advice after an etcd restore: nothing keeps serving from a cache
of the data before it), a worker's too; on a control plane it waits until the apiserver
says ``/readyz`` ok. What is already back and restarted is left alone, so a re-run
changes nothing. A node without Kubernetes (no kubelet configuration, no manifests) is
left alone: a platform whose Kubernetes layer is not up yet is restored the same way.

:depends: the ``paas_topology`` module (the ``kubernetes_node`` view) and the
    ``paas_apiserver`` utils module
"""

from __future__ import annotations

import os
import socket
import ssl
import time

import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "paas_control_plane"
# A file written this soon after a process started counts as read by it: /proc gives
# start times in clock ticks, rounded down.
START_SLACK_S = 1


def __virtual__():
    if "paas_topology.kubernetes_node" not in __salt__:
        return (False, "paas_control_plane: the paas_topology module is not synced")
    if "paas_apiserver.readyz" not in __utils__:
        return (False, "paas_control_plane: the paas_apiserver utils module is not synced")
    if "paas_state.ret" not in __utils__:
        return (False, "paas_control_plane: the paas_state utils module is not synced")
    return __virtualname__


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


def _wait_gone(node: dict, timeout: int) -> None:
    port = node["endpoint"]["port"]
    deadline = time.monotonic() + timeout
    while _answers(node["address"], port):
        if time.monotonic() > deadline:
            raise CommandExecutionError(
                f"the apiserver on {node['id']} still accepts connections on "
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
    ret = __utils__["paas_state.ret"](name)
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
        _wait_gone(node, timeout)
    except (CommandExecutionError, SaltInvocationError, OSError) as err:
        return {**ret, "result": False, "comment": str(err)}
    ret["comment"] = f"{', '.join(running)} stopped: their manifests are set aside."
    return ret


def resumed(name: str, since: float = 0, timeout: int = 300) -> dict:
    """
    Put back the static Pod manifests ``paused`` set aside and restart the kubelet (a
    worker's too) when it has run since before ``since`` or when manifests were put back;
    on a control plane, wait until the apiserver says ``/readyz`` ok. Nothing to put back
    and a kubelet started after ``since``: nothing changes.

    since
        When the restore started (seconds since the epoch, the master's clock; the
        nodes' clocks agree with it within seconds, and ``paas.dr`` says when one does
        not). 0, by hand: only manifests put back restart the kubelet.

    .. code-block:: yaml

        kubernetes-resumed:
          paas_control_plane.resumed:
            - name: cp1
            - since: 1796619480
    """
    ret = __utils__["paas_state.ret"](name)
    try:
        node = __salt__["paas_topology.kubernetes_node"](__opts__["id"])
        if not os.path.isfile(node["kubelet_kubeconfig"]):
            ret["comment"] = "This node has not joined Kubernetes: nothing to restart."
            return ret
        waiting = _manifests(node, "paused_manifests_dir")
        started = _kubelet_started(node)
        stale = since > 0 and (started is None or started < since)
        if not waiting and not stale:
            ret["comment"] = "Nothing is set aside and the kubelet started after the restore."
            return ret
        ret["changes"] = {"kubelet": "restarted", **({"resumed": waiting} if waiting else {})}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = "The kubelet would be restarted" + (
                f", and {', '.join(waiting)} started again." if waiting else "."
            )
            return ret
        _move(node, waiting, "paused_manifests_dir", "manifests_dir")
        if not __salt__["service.restart"](node["services"]["kubelet"]):
            raise CommandExecutionError(f"systemctl restart {node['services']['kubelet']} failed")
        if node["role"] == "control-plane":
            _wait_ready(node, timeout)
    except (CommandExecutionError, SaltInvocationError, OSError) as err:
        return {**ret, "result": False, "comment": str(err)}
    ret["comment"] = "The kubelet was restarted" + (
        f", and {', '.join(waiting)} started again." if waiting else "."
    )
    return ret


def certificates_loaded(name: str, timeout: int = 300) -> dict:
    """
    This control plane's static Pods run with the certificate and kubeconfig files they
    read now: a component whose process started before one of the files its manifest
    names was written (a renewed etcd client certificate, ``kubeadm certs renew``) is
    restarted as Kubernetes' documentation says (its manifest moved out of the kubelet's
    path until its process is gone, then back), and the apiserver must answer
    ``/readyz`` again. Components restart together, and the manifests always go back. A
    component that does not run here is not judged (nothing to compare with).

    .. code-block:: yaml

        kubernetes-certificates-loaded:
          paas_control_plane.certificates_loaded:
            - name: cp1
    """
    ret = __utils__["paas_state.ret"](name)
    try:
        node = __salt__["paas_topology.kubernetes_node"](__opts__["id"])
        stale = {}
        for component in _manifests(node, "manifests_dir"):
            processes = _processes(component)
            if not processes:
                continue
            started = min(processes.values())
            newer = [
                path
                for path in _files(node, component)
                if os.path.getmtime(path) > started + START_SLACK_S
            ]
            if newer:
                stale[component] = (processes, newer)
        if not stale:
            ret["comment"] = "Every control plane component runs with the files it reads now."
            return ret
        ret["changes"] = {
            "restarted": {component: newer for component, (_, newer) in stale.items()}
        }
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"{', '.join(stale)} would be restarted on their new files."
            return ret
        _restart(node, stale, timeout)
    except (CommandExecutionError, SaltInvocationError, OSError, yaml.YAMLError) as err:
        return {**ret, "result": False, "comment": str(err)}
    ret["comment"] = f"{', '.join(stale)} restarted on their new files."
    return ret


def _files(node: dict, component: str) -> list[str]:
    """The files a component's manifest names in its command (``--flag=/path``)."""
    with open(os.path.join(node["manifests_dir"], f"{component}.yaml"), encoding="utf-8") as f:
        manifest = yaml.safe_load(f) or {}
    found = []
    for container in manifest.get("spec", {}).get("containers", []):
        for argument in [*container.get("command", []), *container.get("args", [])]:
            value = str(argument).partition("=")[2]
            if value.startswith("/") and os.path.isfile(value):
                found.append(value)
    return sorted(set(found))


def _processes(component: str) -> dict[int, float]:
    """The running processes named ``component`` (``/proc/PID/comm``, which holds the
    first 15 characters of a name), with when each started (seconds since the epoch)."""
    with open("/proc/stat", encoding="ascii") as handle:
        booted = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
                if handle.read().strip() != component[:15]:
                    continue
            with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
                # Field 22, after the parenthesised name (which may hold spaces).
                started = int(handle.read().rpartition(")")[2].split()[19])
        except (OSError, IndexError, ValueError):
            continue
        found[int(pid)] = booted + started / ticks
    return found


def _restart(node: dict, stale: dict, timeout: int) -> None:
    """Stop the stale components by moving their manifests out of the kubelet's path,
    wait until their processes are gone, and put the manifests back, whatever happened;
    then wait until each runs again and the apiserver is ready."""
    components = list(stale)
    deadline = time.monotonic() + timeout
    _move(node, components, "manifests_dir", "restart_manifests_dir")
    try:
        for component, (processes, _) in stale.items():
            while any(os.path.exists(f"/proc/{pid}") for pid in processes):
                if time.monotonic() > deadline:
                    raise CommandExecutionError(
                        f"{component} on {node['id']} did not stop within {timeout}s of its "
                        "manifest leaving the kubelet's static Pod path"
                    )
                time.sleep(0.5)
    finally:
        _move(node, components, "restart_manifests_dir", "manifests_dir")
    restarted = time.time()
    for component in components:
        while not any(started >= restarted - 1 for started in _processes(component).values()):
            if time.monotonic() > deadline:
                raise CommandExecutionError(
                    f"{component} on {node['id']} did not start again within {timeout}s"
                )
            time.sleep(0.5)
    if "kube-apiserver" in stale:
        _wait_ready(node, max(1, int(deadline - time.monotonic())))


def _kubelet_started(node: dict) -> float | None:
    """When the kubelet's unit last became active (seconds since the epoch), or None
    when it is not active."""
    shown = __salt__["cmd.run_stdout"](
        [
            "systemctl", "show", "--timestamp=unix", "--property=ActiveEnterTimestamp",
            "--value", node["services"]["kubelet"],
        ],
        python_shell=False,
    ).strip()  # fmt: skip
    return float(shown[1:]) if shown.startswith("@") else None


def _wait_ready(node: dict, timeout: int) -> None:
    """Until this node's apiserver answers ``/readyz`` with 200 over TLS checked against
    the cluster's CA (``paas_apiserver.readyz``)."""
    port = node["endpoint"]["port"]
    context = ssl.create_default_context(cafile=os.path.join(node["pki_dir"], "ca.crt"))
    deadline = time.monotonic() + timeout
    while True:
        answer = __utils__["paas_apiserver.readyz"](node["address"], port, context, 2)
        if answer == "ok":
            return
        if time.monotonic() > deadline:
            raise CommandExecutionError(
                f"the apiserver on {node['id']} is not ready at "
                f"https://{node['address']}:{port}/readyz after {timeout}s: {answer}"
            )
        time.sleep(0.5)
