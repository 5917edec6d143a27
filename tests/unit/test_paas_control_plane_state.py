"""
The control plane set aside during an etcd restore and put back: the static Pod manifests
moved out of the kubelet's path and back, the wait for the apiserver to go (its port
closed the way a kubelet stops the Pod) and to say ``/readyz`` ok over TLS (a real HTTPS
server here), the kubelet restarted only when it has run since before the restore or
manifests came back, a re-run that changes nothing, test mode that predicts exactly what
a run changes, and a node without Kubernetes left alone.

And the static Pods restarted on renewed files (``certificates_loaded``): a component whose
process started before a file its manifest names was written is stopped by moving its
manifest out of the kubelet's path and started by putting it back, the apiserver waited
for; the processes are a stand-in (``_processes`` and their ``/proc/<pid>``) that the
stand-in kubelet stops while a manifest is out and starts again once it is back.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import yaml

from tests import tls

COMPONENTS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]


class Node:
    """A control plane's files under tmp_path, its kubelet's start time, and its apiserver."""

    def __init__(self, tmp_path):
        self.manifests = tmp_path / "manifests"
        self.manifests.mkdir()
        self.paused = tmp_path / "paused"
        self.restart_dir = tmp_path / "restart"
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
            "restart_manifests_dir": str(self.restart_dir),
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


# certificates_loaded: the static Pods run with the files they read now.

# Process ids no machine has (above Linux's largest pid_max): only the stand-in knows them.
FIRST_PID = 10**9
HOUR = 3600


def _manifest(node: Node, component: str, command: list[str], args: list[str] = ()) -> None:
    """A static Pod manifest as kubeadm writes it: the component's flags in its command."""
    container = {
        "name": component,
        "image": f"registry.k8s.io/{component}:v1.34.2",
        "command": [component, *command],
        **({"args": list(args)} if args else {}),
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": component, "namespace": "kube-system"},
        "spec": {"containers": [container]},
    }
    node.manifests.joinpath(f"{component}.yaml").write_text(yaml.safe_dump(pod))


def _written(path, seconds_ago: float) -> str:
    """``path`` written ``seconds_ago`` (its modification time)."""
    path.write_text(path.name)
    when = time.time() - seconds_ago
    os.utime(path, (when, when))
    return str(path)


class Kubelet:
    """The control plane's processes as ``_processes`` and ``/proc/<pid>`` show them, kept
    by a stand-in kubelet: a process runs while its manifest is in the static Pod path,
    and a new one starts (now) once the manifest is back after it stopped."""

    def __init__(self, node: Node):
        self.node = node
        self.running: dict[str, dict[int, float]] = {}
        self.pending: set[str] = set()
        self.next_pid = FIRST_PID
        # (component, where its manifest was) each time a process was seen gone.
        self.stopped: list[tuple[str, str]] = []
        self.stuck = False
        self.comes_back = True

    def start(self, component: str, started: float) -> int:
        self.next_pid += 1
        self.running[component] = {self.next_pid: started}
        return self.next_pid

    def _in_path(self, component: str) -> bool:
        return (self.node.manifests / f"{component}.yaml").exists()

    def processes(self, component: str) -> dict[int, float]:
        if component in self.pending and self._in_path(component) and self.comes_back:
            self.pending.discard(component)
            self.start(component, time.time())
        return dict(self.running.get(component, {}))

    def proc_exists(self, pid: int) -> bool:
        (component,) = [name for name, pids in self.running.items() if pid in pids] or [None]
        if component is None:
            return False
        if self.stuck or self._in_path(component):
            return True
        where = "restart" if (self.node.restart_dir / f"{component}.yaml").exists() else "?"
        self.stopped.append((component, where))
        del self.running[component]
        self.pending.add(component)
        return False


@pytest.fixture
def kubelet(state_module, node, monkeypatch) -> Kubelet:
    made = Kubelet(node)
    monkeypatch.setattr(state_module, "_processes", made.processes)
    exists = os.path.exists

    def proc_aware_exists(path) -> bool:
        head, _, pid = str(path).rpartition("/")
        if head == "/proc" and pid.isdigit() and int(pid) > FIRST_PID:
            return made.proc_exists(int(pid))
        return exists(path)

    monkeypatch.setattr(os.path, "exists", proc_aware_exists)
    return made


@pytest.fixture
def readyz(state_module) -> list[tuple[str, int]]:
    """The waits for the apiserver's /readyz (``paas_apiserver.readyz``), each ok."""
    asked = []

    def ready(address, port, context, timeout):
        asked.append((address, port))
        return "ok"

    state_module.__utils__["paas_apiserver.readyz"] = ready
    return asked


@pytest.fixture
def files(node, tmp_path) -> dict[str, str]:
    """Each component's manifest naming its files, all written two hours ago."""
    written = {
        name: _written(node.pki / name, 2 * HOUR)
        for name in ("apiserver.crt", "apiserver-etcd-client.crt", "front-proxy-client.crt")
    }
    for name in ("controller-manager.conf", "scheduler.conf"):
        written[name] = _written(tmp_path / name, 2 * HOUR)
    _manifest(
        node,
        "kube-apiserver",
        [
            "--advertise-address=198.18.1.31",
            f"--tls-cert-file={written['apiserver.crt']}",
            f"--etcd-certfile={written['apiserver-etcd-client.crt']}",
            f"--proxy-client-cert-file={written['front-proxy-client.crt']}",
            "--secure-port=6443",
        ],
    )
    _manifest(
        node, "kube-controller-manager", [f"--kubeconfig={written['controller-manager.conf']}"]
    )
    _manifest(node, "kube-scheduler", [f"--kubeconfig={written['scheduler.conf']}"])
    return written


def _renew(path: str) -> None:
    """A file written again now (a renewal)."""
    os.utime(path, None)


def _manifests_in_place(node: Node) -> bool:
    return sorted(path.name for path in node.manifests.iterdir()) == [
        f"{c}.yaml" for c in COMPONENTS
    ] and (not node.restart_dir.exists() or list(node.restart_dir.iterdir()) == [])


def test_a_component_started_before_a_file_it_names_was_renewed_is_restarted(
    state_module, node, kubelet, readyz, files
):
    for component in COMPONENTS:
        kubelet.start(component, time.time() - HOUR)
    old_controller_manager = kubelet.running["kube-controller-manager"]
    _renew(files["apiserver-etcd-client.crt"])

    ret = state_module.certificates_loaded("cp1", timeout=10)

    assert ret["result"] is True, ret
    assert ret["changes"] == {"restarted": {"kube-apiserver": [files["apiserver-etcd-client.crt"]]}}
    assert ret["comment"] == "kube-apiserver restarted on their new files."
    # Stopped while its manifest was out of the kubelet's path, and back in it after.
    assert kubelet.stopped == [("kube-apiserver", "restart")]
    assert _manifests_in_place(node)
    (restarted,) = kubelet.running["kube-apiserver"].values()
    assert restarted > time.time() - 60
    assert readyz == [("127.0.0.1", node.port)]
    assert kubelet.running["kube-controller-manager"] == old_controller_manager

    again = state_module.certificates_loaded("cp1", timeout=10)

    assert again["result"] is True and again["changes"] == {}, again
    assert kubelet.stopped == [("kube-apiserver", "restart")] and len(readyz) == 1


def test_components_restart_together_and_only_the_apiserver_is_waited_for(
    state_module, node, kubelet, readyz, files
):
    for component in COMPONENTS:
        kubelet.start(component, time.time() - HOUR)
    _renew(files["controller-manager.conf"])
    _renew(files["scheduler.conf"])

    ret = state_module.certificates_loaded("cp1", timeout=10)

    assert ret["result"] is True, ret
    assert ret["changes"] == {
        "restarted": {
            "kube-controller-manager": [files["controller-manager.conf"]],
            "kube-scheduler": [files["scheduler.conf"]],
        }
    }
    assert kubelet.stopped == [
        ("kube-controller-manager", "restart"),
        ("kube-scheduler", "restart"),
    ]
    assert _manifests_in_place(node)
    assert readyz == []


def test_components_that_started_after_their_files_were_written_are_left_alone(
    state_module, node, kubelet, readyz, files
):
    for component in COMPONENTS:
        kubelet.start(component, time.time() - HOUR)

    ret = state_module.certificates_loaded("cp1", timeout=10)

    assert ret["result"] is True and ret["changes"] == {}, ret
    assert ret["comment"] == "Every control plane component runs with the files it reads now."
    assert kubelet.stopped == [] and readyz == []
    assert _manifests_in_place(node)


@pytest.mark.parametrize(("after_start", "restarted"), [(0.5, False), (1.5, True)])
def test_a_file_written_within_a_second_of_the_start_counts_as_read(
    state_module, node, kubelet, readyz, files, after_start, restarted
):
    started = time.time() - HOUR
    kubelet.start("kube-scheduler", started)
    when = started + after_start
    os.utime(files["scheduler.conf"], (when, when))

    ret = state_module.certificates_loaded("cp1", timeout=10)

    assert ret["result"] is True, ret
    assert bool(ret["changes"]) is restarted


def test_a_component_that_does_not_run_is_not_judged(state_module, node, kubelet, readyz, files):
    kubelet.start("kube-scheduler", time.time() - HOUR)
    _renew(files["apiserver.crt"])

    ret = state_module.certificates_loaded("cp1", timeout=10)

    assert ret["result"] is True and ret["changes"] == {}, ret
    assert kubelet.stopped == [] and readyz == []
    assert _manifests_in_place(node)


def test_test_mode_predicts_the_restarts_a_run_makes_and_moves_nothing(
    state_module, node, kubelet, readyz, files, opts
):
    for component in COMPONENTS:
        kubelet.start(component, time.time() - HOUR)
    _renew(files["apiserver.crt"])
    _renew(files["scheduler.conf"])
    opts["test"] = True

    predicted = state_module.certificates_loaded("cp1", timeout=10)

    assert predicted["result"] is None, predicted
    assert predicted["comment"] == (
        "kube-apiserver, kube-scheduler would be restarted on their new files."
    )
    assert kubelet.stopped == [] and readyz == [] and not node.restart_dir.exists()
    assert _manifests_in_place(node)
    opts["test"] = False

    ran = state_module.certificates_loaded("cp1", timeout=10)

    assert ran["result"] is True and ran["changes"] == predicted["changes"], ran
    assert ran["changes"] == {
        "restarted": {
            "kube-apiserver": [files["apiserver.crt"]],
            "kube-scheduler": [files["scheduler.conf"]],
        }
    }


def test_a_component_that_does_not_stop_fails_the_state_and_its_manifest_goes_back(
    state_module, node, kubelet, readyz, files
):
    kubelet.start("kube-apiserver", time.time() - HOUR)
    _renew(files["apiserver.crt"])
    kubelet.stuck = True

    ret = state_module.certificates_loaded("cp1", timeout=0)

    assert ret["result"] is False
    assert ret["comment"] == (
        "kube-apiserver on cp1 did not stop within 0s of its manifest leaving the kubelet's "
        "static Pod path"
    )
    assert _manifests_in_place(node)
    assert node.restart_dir.exists(), "the manifest was moved out"
    assert readyz == []


def test_a_component_that_does_not_start_again_fails_the_state(
    state_module, node, kubelet, readyz, files
):
    kubelet.start("kube-controller-manager", time.time() - HOUR)
    _renew(files["controller-manager.conf"])
    kubelet.comes_back = False

    ret = state_module.certificates_loaded("cp1", timeout=0)

    assert ret["result"] is False
    assert ret["comment"] == "kube-controller-manager on cp1 did not start again within 0s"
    assert kubelet.stopped == [("kube-controller-manager", "restart")]
    assert _manifests_in_place(node)


def test_the_files_of_a_manifest_are_the_existing_paths_of_its_flags(state_module, node, tmp_path):
    present = [_written(tmp_path / name, 0) for name in ("b.crt", "a.key", "c.conf")]
    _manifest(
        node,
        "kube-apiserver",
        [
            f"--tls-cert-file={present[0]}",
            f"--tls-private-key-file={present[1]}",
            f"--client-ca-file={tmp_path / 'missing.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC",
            "--audit-log-path=relative/audit.log",
            str(tmp_path),
            f"--cert-dir={tmp_path}",
        ],
        args=[f"--kubeconfig={present[2]}", f"--tls-cert-file={present[0]}"],
    )

    assert state_module._files(node.view("cp1"), "kube-apiserver") == sorted(present)


def test_the_processes_of_a_name_are_found_with_their_start_time(state_module):
    # The real /proc: this test's own process, by the name the kernel keeps for it.
    with open("/proc/self/comm", encoding="utf-8") as handle:
        name = handle.read().strip()
    with open("/proc/stat", encoding="ascii") as handle:
        booted = next(int(line.split()[1]) for line in handle if line.startswith("btime "))

    found = state_module._processes(name)

    assert os.getpid() in found
    assert booted <= found[os.getpid()] <= time.time()
