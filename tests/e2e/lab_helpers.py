"""Driving the lab and the salt CLIs from the e2e tests."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from lab.config import Machine, load_lab, variants
from lab.machines import leader_pid

REPO = Path(__file__).resolve().parents[2]
GATEWAYS = ["gw1", "gw2"]
PUBLIC_VIP, PRIVATE_VIP = "198.18.0.10", "198.18.1.10"
CONTROL_PLANES = {"cp1": "198.18.1.31", "cp2": "198.18.1.32", "cp3": "198.18.1.33"}
LAB_STATE = Path("/var/lib/paas-lab")
MASTER_PIDFILE = LAB_STATE / "master/main.pid"
CGROUP_FS = Path("/sys/fs/cgroup")


@contextlib.contextmanager
def reactor_paused(reason: str):
    """The DR reactor kept from acting (``paas_dr.pause``) while a test breaks etcd on
    purpose, and let act again afterwards, whatever happened."""
    paused = salt_json("salt-run", "paas_dr.pause", "minutes=30", f"reason={reason}")
    assert paused.get("paused"), paused
    try:
        yield
    finally:
        salt_json("salt-run", "paas_dr.resume")


def lab_command(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab", *argv], cwd=REPO, check=False, text=True, **kwargs
    )


def salt_json(*argv: str, timeout: int = 900) -> dict:
    """Run a salt CLI from the repository root (the Saltfile points it at etc/salt)."""
    # salt streams one JSON document per minion unless told to wait for all of them.
    static = ["--static"] if argv[0] == "salt" else []
    result = subprocess.run(
        [str(Path(sys.executable).parent / argv[0]), "--out=json", *static, *argv[1:]],
        cwd=REPO,
        check=False,
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"{' '.join(argv)} gave no JSON (exit {result.returncode}):\n{result}")


def paas_report(function: str, *args: str) -> tuple[int, dict]:
    """``salt-run paas.<function> [args]`` as a monitoring check runs it: its exit code
    (0 ok, 1 degraded, 2 down, 3 unknown) and its report."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "salt-run"), "--out=json", f"paas.{function}", *args],
        cwd=REPO,
        check=False,
        text=True,
        capture_output=True,
        timeout=300,
    )
    try:
        return result.returncode, json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"paas.{function} gave no JSON (exit {result.returncode}):\n{result}")


def salt_text(*argv: str) -> str:
    """What a salt CLI prints for a person (its default output), run from the root."""
    return subprocess.run(
        [str(Path(sys.executable).parent / argv[0]), *argv[1:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def orchestrate(sls: str, *extra: str) -> dict:
    """Run ``salt-run state.orchestrate sls`` and return its steps by state key."""
    reply = salt_json("salt-run", "state.orchestrate", sls, *extra)
    # One key: the master's own minion, which ran the orchestration.
    (steps,) = reply["data"].values()
    return steps


def step_of(steps: dict, state_id: str) -> dict:
    """The step ``state_id`` of an orchestration's steps."""
    (found,) = [step for key, step in steps.items() if f"_|-{state_id}_|-" in key]
    return found


def failures(step: dict) -> list[str]:
    """What failed inside an orchestration's ``salt.state`` step: minion, state, comment."""
    found = []
    for minion, states in (step.get("changes", {}).get("ret") or {}).items():
        if not isinstance(states, dict):
            found.append(f"{minion}: {states}")
            continue
        for key, result in states.items():
            if isinstance(result, dict) and result.get("result") is False:
                found.append(f"{minion}: {key.split('_|-')[1]}: {result.get('comment')}")
    return found or [step.get("comment", "")]


def _lines(*argv: str) -> list[str]:
    return subprocess.run(argv, check=False, capture_output=True, text=True).stdout.splitlines()


def lab_cgroups() -> list[Path]:
    """The lab's cgroup trees, whichever the cgroup layout (v2, or v1 with hierarchies)."""
    return [
        path for path in [CGROUP_FS / "paas-lab", *CGROUP_FS.glob("*/paas-lab")] if path.is_dir()
    ]


def master_processes() -> set[int]:
    """The lab's salt-master processes: by their command line, and every process in the
    master's cgroup (Salt renames some of its processes, EventPublisher among them)."""
    pids = {
        int(line.split()[0])
        for line in _lines("ps", "-eo", "pid=,args=")
        if "salt-master" in line and str(REPO / "etc/salt") in line
    }
    for cgroup in lab_cgroups():
        for procs in (cgroup / "master").rglob("cgroup.procs"):
            pids.update(int(pid) for pid in procs.read_text().split())
    return pids


def leftovers() -> list[str]:
    """What of the lab is still on this host, found without asking the lab's own code."""
    found = [
        f"namespace {line.split()[0]}"
        for line in _lines("ip", "netns", "list")
        if line.startswith("paas-lab")
    ]
    found += [
        f"link {line.split()[1]}"
        for line in _lines("ip", "-o", "link", "show")
        if "paas-lab" in line or " pl" in line
    ]
    # Machines, the master's minion, the package repository's server: each names its
    # files under the lab's state directory.
    found += [
        f"process {line.strip()}"
        for line in _lines("ps", "-eo", "pid=,args=")
        if str(LAB_STATE) in line
    ]
    found += [f"salt-master process {pid}" for pid in sorted(master_processes())]
    if _lines("nft", "list", "table", "inet", "paas-lab"):
        found.append("nftables table inet paas-lab")
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    found += [f"mount {line.split()[1]}" for line in mounts if str(LAB_STATE) in line]
    found += [f"cgroup {path}" for path in lab_cgroups()]
    if LAB_STATE.exists():
        found.append(f"directory {LAB_STATE}")
    if (REPO / "etc/salt/master.d/lab.conf").exists():
        found.append("file etc/salt/master.d/lab.conf")
    return found


def machine(node: str) -> Machine:
    """A machine of the lab's topology, or of one of its variants."""
    for variant in (None, *variants()):
        found = [m for m in load_lab(variant=variant).machines if m.id == node]
        if found:
            return found[0]
    raise LookupError(f"{node} is a machine of no topology of the lab")


def node_python(machine_id: str, script: str) -> str:
    """Run a Python script with the node's Salt (as its minion would) inside a machine."""
    result = subprocess.run(
        ["nsenter", "-t", str(leader_pid(machine(machine_id))), "-a", "/opt/salt/bin/python", "-"],
        input=script,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def on(node: str, command: str, check: bool = True) -> str:
    """Run a shell command inside a lab machine, as root, without going through Salt."""
    result = subprocess.run(
        ["nsenter", "-t", str(leader_pid(machine(node))), "-a", "sh", "-c", command],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert result.returncode == 0, f"{node}: {command}: {result.stdout}{result.stderr}"
    return result.stdout


def vips_of(gateway: str) -> set[str]:
    """The VIPs a gateway holds now (on a link that is up), read from its namespace."""
    reply = subprocess.run(
        ["ip", "-n", f"paas-lab-{gateway}", "-j", "-4", "addr", "show"],
        check=True,
        capture_output=True,
        text=True,
    )
    held = {
        info["local"]
        for link in json.loads(reply.stdout)
        if link.get("operstate") == "UP"
        for info in link["addr_info"]
    }
    return held & {PUBLIC_VIP, PRIVATE_VIP}


def holder() -> str | None:
    """The gateway holding both VIPs while the other holds none; None otherwise."""
    held = {gateway: vips_of(gateway) for gateway in GATEWAYS}
    for gateway in GATEWAYS:
        if held[gateway] == {PUBLIC_VIP, PRIVATE_VIP} and not held[other(gateway)]:
            return gateway
    return None


def wait_until(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def other(gateway: str) -> str:
    return next(name for name in GATEWAYS if name != gateway)


def api_served_by(address: str = PUBLIC_VIP, port: int = 6443) -> str:
    """The control plane whose apiserver served a TLS connection to ``address``: the
    one whose address its serving certificate (kubeadm's, per node) names."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((address, port), timeout=5) as connection,
        context.wrap_socket(connection) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    names = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    addresses = {str(ip) for ip in names.value.get_values_for_type(x509.IPAddress)}
    (node,) = [node for node, ip in CONTROL_PLANES.items() if ip in addresses]
    return node
