"""The whole platform's machines on one host: the lab, driven by a real salt-master."""

from __future__ import annotations

import ipaddress
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.e2e.lab_helpers import REPO, lab_command, leftovers, salt_json

pytestmark = pytest.mark.e2e


def test_every_minion_answers_with_grains_that_match_the_topology(lab):
    ids = [machine.id for machine in lab.machines]
    grains = salt_json(
        "salt", "-L", ",".join(ids), "grains.item", "ipv4", "host", "init", "virtual"
    )
    assert sorted(grains) == sorted(ids)
    for machine in lab.machines:
        node = grains[machine.id]
        expected = {interface.address for interface in machine.interfaces}
        assert expected <= set(node["ipv4"]), machine.id
        assert node["host"] == machine.id
        assert node["init"] == "systemd"
        assert node["virtual"] == "systemd-nspawn"
        # Only gateways have an address on the public network.
        public = ipaddress.ip_network(lab.topology["networks"]["public"]["cidr"])
        on_public = [a for a in node["ipv4"] if ipaddress.ip_address(a) in public]
        assert bool(on_public) == ("gateway" in machine.roles), machine.id


def _orchestrate_cluster(*extra: str) -> dict:
    reply = salt_json("salt-run", "state.orchestrate", "orch.cluster", *extra)
    # One key: the master's own minion, which ran the orchestration.
    (steps,) = reply["data"].values()
    return steps


def _step(steps: dict, state_id: str) -> dict:
    (found,) = [step for key, step in steps.items() if f"_|-{state_id}_|-" in key]
    return found


def test_baseline_applied_again_changes_nothing(lab):
    # `lab up` converged the platform once; a second run must find nothing to do.
    steps = _orchestrate_cluster()
    assert _step(steps, "paas-cluster-common")["result"] is True
    for name, step in steps.items():
        assert step["result"] is True, (name, step["comment"])
        assert step["changes"] == {}, (name, step["changes"])


def test_baseline_gives_every_node_its_name_hosts_and_sysctls(lab):
    ids = ",".join(machine.id for machine in lab.machines)
    hostnames = salt_json("salt", "-L", ids, "cmd.run", "cat /etc/hostname")
    hosts = salt_json("salt", "-L", ids, "cmd.run", "getent hosts etcd2 gw1-public salt")
    sysctls = salt_json("salt", "-L", ids, "sysctl.get", "net.ipv4.tcp_keepalive_time")
    for machine in lab.machines:
        assert hostnames[machine.id] == machine.id
        resolved = hosts[machine.id].splitlines()
        assert resolved[0].split()[0] == "198.18.1.22"
        assert resolved[1].split()[0] == "198.18.0.11"
        assert resolved[2].split()[0] == lab.master_address
        assert sysctls[machine.id] == "600"


def test_bad_topology_stops_orchestration_before_any_node_changes(lab):
    node = lab.machines[-1].id
    marker = "198.18.1.250 changed-by-hand"
    salt_json("salt", node, "file.append", "/etc/hosts", marker)
    node_address = lab.machines[0].address("private")
    bad = json.dumps({"paas": {"networks": {"private": {"vip": node_address}}}})
    try:
        steps = _orchestrate_cluster(f"pillar={bad}")
        gate = _step(steps, "paas-cluster-topology-valid")
        assert gate["result"] is False
        assert "paas:networks:private:vip" in gate["comment"]
        assert not any("paas-cluster-common" in key for key in steps)
        hosts = salt_json("salt", node, "cmd.run", "cat /etc/hosts")[node]
        assert marker in hosts, "the baseline ran although the topology was invalid"
    finally:
        salt_json("salt", node, "state.apply", "common")
    assert marker not in salt_json("salt", node, "cmd.run", "cat /etc/hosts")[node]


def test_minion_cannot_fetch_pillar_files(lab):
    node = lab.machines[0].id
    for path in ("salt://pillar/paas.sls", "salt://paas.sls", "salt://../pillar/paas.sls"):
        assert not salt_json("salt", node, "cp.get_file_str", path)[node], path
    served = salt_json("salt", node, "cp.list_master")[node]
    assert "common/init.sls" in served
    assert not [path for path in served if path.startswith("pillar") or "paas.sls" in path]


def test_lab_up_again_reconverges_instead_of_failing(lab):
    result = lab_command("up", capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "master: already running" in result.stdout
    assert "machines: all running" in result.stdout


def _salt_run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "salt-run"), *argv],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
    )


def test_validate_runner_accepts_the_pillar_topology(lab):
    result = _salt_run("--out=json", "paas.validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == {
        "valid": True,
        "source": "pillar",
        "nodes": 9,
        "retcode": 0,
    }


def test_validate_runner_lists_every_error_of_a_topology_file_and_fails(lab, tmp_path):
    topology = yaml.safe_load((REPO / "pillar/paas.sls").read_text())
    topology["paas"]["nodes"][3]["addresses"]["private"] = "198.18.2.5"
    topology["paas"]["nodes"][4]["id"] = "etcd1"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(topology))
    result = _salt_run("paas.validate", f"topology={path}")
    assert result.returncode != 0
    assert "node etcd2: paas:nodes[3]:addresses:private: 198.18.2.5 is outside" in result.stdout
    assert "node etcd1: paas:nodes[4]:id: duplicate node id 'etcd1'" in result.stdout


def test_validate_runner_explains_an_unreadable_topology_file(lab, tmp_path):
    missing = _salt_run("paas.validate", f"topology={tmp_path / 'missing.yaml'}")
    assert missing.returncode != 0
    assert "cannot read topology file" in missing.stdout + missing.stderr
    (tmp_path / "nokey.yaml").write_text("cluster: {name: x}\n")
    no_key = _salt_run("paas.validate", f"topology={tmp_path / 'nokey.yaml'}")
    assert no_key.returncode != 0
    assert "has no top-level paas key" in no_key.stdout + no_key.stderr


@pytest.fixture
def lab_down_first(lab):
    lab_command("down")
    assert not leftovers()


def test_lab_down_cleans_up_after_an_interrupted_up(lab_down_first):
    # Kill `lab up` while the machines boot, as a crash or Ctrl-C would; `lab down` must
    # still find and remove everything it had made.
    process = subprocess.Popen(
        [sys.executable, "-m", "lab", "up", "--no-converge"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stdout:
            if "minions:" in line:
                break
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    time.sleep(1)
    assert leftovers(), "the interrupted lab up had made nothing; the test proves nothing"
    down = lab_command("down")
    assert down.returncode == 0
    assert leftovers() == []
