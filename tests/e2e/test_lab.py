"""The whole platform's machines on one host: the lab, driven by a real salt-master."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from lab import apt_repo, image, wheelhouse
from lab.processes import wait_for
from tests.e2e.lab_helpers import (
    MASTER_PIDFILE,
    REPO,
    lab_command,
    leftovers,
    master_processes,
    node_python,
    on,
    orchestrate,
    salt_json,
    step_of,
)

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
    return orchestrate("orch.cluster", *extra)


def test_baseline_applied_again_changes_nothing(lab):
    # `lab up` converged the platform once; a second run must find nothing to do.
    steps = _orchestrate_cluster()
    assert step_of(steps, "paas-cluster-common")["result"] is True
    for name, step in steps.items():
        assert step["result"] is True, (name, step["comment"])
        assert step["changes"] == {}, (name, step["changes"])


def test_baseline_gives_every_node_its_name_hosts_and_sysctls(lab):
    ids = ",".join(machine.id for machine in lab.machines)
    hostnames = salt_json("salt", "-L", ids, "cmd.run", "cat /etc/hostname")
    hosts = salt_json("salt", "-L", ids, "cmd.run", "getent hosts etcd2 gw1-public salt")
    sysctls = salt_json("salt", "-L", ids, "sysctl.get", "net.ipv4.tcp_keepalive_time")
    # Time sync is enabled everywhere; in a container (these machines) it does not run,
    # as its unit decides: the clock is the host's.
    timesync = salt_json(
        "salt", "-L", ids, "cmd.run",
        "systemctl is-enabled systemd-timesyncd; systemctl is-active systemd-timesyncd",
    )  # fmt: skip
    for machine in lab.machines:
        assert hostnames[machine.id] == machine.id
        resolved = hosts[machine.id].splitlines()
        assert resolved[0].split()[0] == "198.18.1.22"
        assert resolved[1].split()[0] == "198.18.0.11"
        assert resolved[2].split()[0] == lab.master_address
        assert sysctls[machine.id] == "600"
        assert timesync[machine.id].split() == ["enabled", "inactive"]


LOCK_URL = "salt://salt_python/requirements-minion.lock"


def test_salt_python_gets_the_modules_libraries_from_the_wheelhouse_not_the_image(lab):
    rootfs = image.CACHE_DIR / "images" / image.recipe_hash() / "rootfs"
    site = next((rootfs / "opt/salt/lib").glob("python3*/site-packages"))
    in_image = {path.name.lower() for path in site.iterdir()}
    for library in ("etcd3", "kubernetes", "grpc", "tenacity", "paas-protobuf-python.pth"):
        assert library not in in_image, f"the image's Salt already has {library}"

    ids = [machine.id for machine in lab.machines]
    ready = salt_json("salt", "-L", ",".join(ids), "paas_python.ready", LOCK_URL)
    pinned = len(wheelhouse.pins())
    assert ready == {node: {"python": "/opt/salt/bin/python3", "pins": pinned} for node in ids}
    # Each machine fetched them from the lab's wheelhouse: its server's request log.
    requests = apt_repo.SERVER.console.read_text()
    for machine in lab.machines:
        fetched = rf'^{re.escape(machine.address("private"))} .*"GET /wheels/etcd3-\S+\.whl HTTP'
        assert re.search(fetched, requests, re.MULTILINE), machine.id


def test_a_wheel_missing_from_the_wheelhouse_fails_naming_node_package_and_source(lab):
    node = "worker1"
    served_url = lab.topology["python"]["find_links"]
    served = wheelhouse.directory(
        served_url, lab.topology["kubernetes"]["repository"]["url"], lab.master_address
    )
    partial = served.with_name("wheels-without-tenacity")
    url = served_url.replace(f"/{served.name}/", f"/{partial.name}/")
    pinned = f"tenacity=={wheelhouse.pins()['tenacity']}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    for wheel in served.iterdir():
        if not wheel.name.startswith("tenacity-"):
            os.link(wheel, partial / wheel.name)
    override = json.dumps({"paas": {"python": {"find_links": url}}})
    try:
        on(node, "/opt/salt/bin/python -m pip uninstall --quiet --yes tenacity")
        reply = salt_json("salt", node, "state.apply", "salt_python", f"pillar={override}")
        (result,) = reply[node].values()
        assert result["result"] is False
        assert result["changes"] == {}
        assert result["comment"].startswith(f"{node}: {pinned} is not in the wheelhouse {url}")
        differing = salt_json("salt", node, "paas_python.differing", LOCK_URL)[node]
        assert list(differing) == ["tenacity"], "something was installed after all"
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        # Put back from the lab's own wheelhouse: the minion restarts on it.
        repaired = salt_json("salt", node, "state.apply", "salt_python")[node]
        assert salt_json("salt-run", "paas_python.ready", f"minions={node}") == {"ready": [node]}
    (step,) = repaired.values()
    assert step["result"] is True
    assert step["changes"]["installed"] == {"tenacity": {"old": None, "new": pinned.split("==")[1]}}


def test_preflight_passes_on_the_lab_and_a_taken_port_stops_the_run_naming_the_fix(lab):
    report = salt_json("salt-run", "paas.preflight")
    assert report["retcode"] == 0, report["problems"]
    assert report["nodes"] == len(lab.machines)
    # The kube-scheduler's port on cp3, held by something else.
    unit = "paas-test-port-taken"
    on("cp3", f"systemd-run --unit={unit} --collect python3 -m http.server 10259")
    try:
        assert wait_for(lambda: "10259" in on("cp3", "ss -Hltn 'sport = 10259'"), timeout=30)
        report = salt_json("salt-run", "paas.preflight")
        assert report["retcode"] == 1
        (row,) = report["failures"]
        assert row["node"] == "cp3" and row["check"] == "ports"
        assert row["found"].startswith("port 10259 held by python3 (pid ")
        assert row["wanted"] == "port 10259 free, or held by kube-scheduler"
        assert row["fix"] == "stop what holds port 10259 on the node"

        steps = _orchestrate_cluster()
        gate = step_of(steps, "paas-cluster-preflight")
        assert gate["result"] is False
        assert "cp3: ports: found port 10259 held by python3" in gate["comment"]
        assert not any("paas-cluster-salt-python" in key for key in steps)
        assert not any("paas-cluster-common" in key for key in steps)
    finally:
        on("cp3", f"systemctl stop {unit}", check=False)
    assert salt_json("salt-run", "paas.preflight")["retcode"] == 0


def test_bad_topology_stops_orchestration_before_any_node_changes(lab):
    node = lab.machines[-1].id
    marker = "198.18.1.250 changed-by-hand"
    salt_json("salt", node, "file.append", "/etc/hosts", marker)
    node_address = lab.machines[0].address("private")
    bad = json.dumps({"paas": {"networks": {"private": {"vip": node_address}}}})
    try:
        steps = _orchestrate_cluster(f"pillar={bad}")
        gate = step_of(steps, "paas-cluster-topology-valid")
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


def test_host_routes_nothing_from_the_lab_to_other_networks(lab):
    ruleset = json.loads(
        subprocess.run(
            ["nft", "-j", "list", "table", "inet", "paas-lab"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    rules = [item["rule"] for item in ruleset["nftables"] if "rule" in item]
    assert len(rules) == 2
    for rule in rules:
        assert rule["chain"] == "forward"
        assert {"drop": None} in rule["expr"]


def test_lab_up_again_reconverges_instead_of_failing(lab):
    result = lab_command("up", capture_output=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "master: already running" in result.stdout
    assert "machines: all running" in result.stdout


def _kill_master_main_process() -> set[int]:
    """SIGKILL the lab master's main process, as a crash or the OOM killer would; the
    master processes it leaves running."""
    main = int(MASTER_PIDFILE.read_text())
    os.kill(main, signal.SIGKILL)
    assert wait_for(lambda: main not in master_processes(), timeout=10, interval=0.1)
    left = master_processes()
    assert left, "no process outlived the master's main one: the test proves nothing"
    return left


def test_killed_master_is_down_and_lab_up_starts_it_anew_and_converges(lab):
    left = _kill_master_main_process()
    status = lab_command("status", capture_output=True)
    assert status.returncode == 0, status.stderr
    assert status.stdout.splitlines()[0].startswith("master: down")
    up = lab_command("up", capture_output=True)
    assert up.returncode == 0, up.stdout + up.stderr
    assert re.search(r"orch\.cluster: (\d+) steps, \1 ok, 0 failed", up.stdout), up.stdout
    # Nothing of the old master is left: every master process is the new one's.
    main = psutil.Process(int(MASTER_PIDFILE.read_text()))
    family = {main.pid, *(child.pid for child in main.children(recursive=True))}
    assert master_processes() <= family
    assert not left & master_processes()
    assert lab_command("status", capture_output=True).stdout.startswith("master: up\n")


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
    topology = yaml.safe_load((REPO / "lab/pillar/paas.sls").read_text())
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


KUBEADM_CERTIFICATES = (
    "admin.conf",
    "apiserver",
    "apiserver-kubelet-client",
    "controller-manager.conf",
    "front-proxy-client",
    "scheduler.conf",
    "ca",
    "front-proxy-ca",
)


def _certificate_rows() -> list[dict]:
    result = _salt_run("--out=json", "paas.certs")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)["certificates"]


def test_every_node_has_the_certificates_its_roles_need(lab):
    held = {(row["node"], row["profile"]): row for row in _certificate_rows()}
    control_planes = ("cp1", "cp2", "cp3")
    expected = {
        *[
            (node, profile)
            for node in ("etcd1", "etcd2", "etcd3")
            for profile in ("etcd-server", "etcd-peer", "etcd-healthcheck-client")
        ],
        *[(n, "kube-apiserver-etcd-client") for n in control_planes],
        ("paas-master", "etcd-admin-client"),
        # kubeadm's, as `kubeadm certs check-expiration` lists them; super-admin.conf is
        # written by init only.
        *[(n, name) for n in control_planes for name in KUBEADM_CERTIFICATES],
        ("cp1", "super-admin.conf"),
    }
    assert set(held) == expected
    for row in held.values():
        assert row["problems"] == [], row
        assert row["days_left"] >= 364
    table = _salt_run("paas.certs").stdout.splitlines()
    assert table[0] == "certificates: ok"
    assert table[2].split() == [
        "NODE", "PROFILE", "SERIAL", "NOT", "AFTER", "DAYS", "RENEWS", "PROBLEMS",
    ]  # fmt: skip
    assert len(table[3:-1]) == len(expected)
    # The master's schedule renews: every minute in the lab, and it has run.
    assert table[-1].startswith(
        "renewal window: the last 30 days; the master renews every minute (last "
    ), table[-1]


def test_certificate_in_its_renewal_window_is_renewed_and_leaks_no_key(lab):
    old = {row["profile"]: row["serial"] for row in _certificate_rows() if row["node"] == "etcd1"}
    events = subprocess.Popen(
        [str(Path(sys.executable).parent / "salt-run"), "state.event", "pretty=True"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(2)
        renew = json.dumps({"paas": {"pki": {"renew_days": 364}}})
        applied = salt_json("salt", "etcd1", "state.apply", "pki", f"pillar={renew}")["etcd1"]
    finally:
        events.terminate()
        captured, _ = events.communicate(timeout=30)
    renewed = [step for step in applied.values() if step["changes"].get("serial")]
    assert len(renewed) == 3, applied
    new = {row["profile"]: row["serial"] for row in _certificate_rows() if row["node"] == "etcd1"}
    for profile, serial in old.items():
        assert new[profile] != serial
    on_disk = salt_json(
        "salt", "etcd1", "cmd.run",
        "for f in /etc/paas/pki/etcd-*.crt; do openssl x509 -noout -serial -in $f; done",
    )["etcd1"]  # fmt: skip
    for serial in old.values():
        assert serial.replace(":", "") not in on_disk
    again = salt_json("salt", "etcd1", "state.apply", "pki")["etcd1"]
    assert all(step["changes"] == {} for step in again.values())
    # No private key in what the run put on the event bus, nor in any cache or pillar.
    # (The searches spell the pattern so that their own job records do not match it.)
    assert "salt/job/" in captured
    assert "PRIVATE KEY" not in captured
    master_caches = subprocess.run(
        ["grep", "-rlE", "PRIVATE[ ]KEY", "/var/lib/paas-lab/master/var/cache",
         "/var/lib/paas-lab/master-minion/var/cache"],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert master_caches.stdout == ""
    ids = ",".join(machine.id for machine in lab.machines)
    caches = salt_json(
        "salt", "-L", ids, "cmd.run", "grep -rlE 'PRIVATE[ ]KEY' /var/cache/salt || true"
    )
    assert set(caches.values()) == {""}, caches
    pillars = salt_json("salt", "-L", ids + ",paas-master", "pillar.items")
    assert "PRIVATE KEY" not in json.dumps(pillars)


REFUSED_REQUEST = """
import json
import salt.client

caller = salt.client.Caller()
csr = caller.cmd("x509.create_csr", private_key="/etc/paas/pki/etcd-peer.key", **{ARGS})
reply = caller.cmd(
    "publish.publish", "paas-master", "paas_pki.sign", arg=[csr, "{PROFILE}"], timeout=60
)
print(json.dumps(reply))
"""


@pytest.mark.parametrize(
    ("args", "profile", "reason"),
    [
        (
            {"CN": "etcd2", "subjectAltName": "IP:198.18.1.21"},
            "etcd-peer",
            "names that are not etcd2's: IP:198.18.1.21",
        ),
        ({"CN": "etcd1"}, "etcd-peer", "CN=etcd1 is not etcd2"),
        (
            {"CN": "etcd2", "basicConstraints": "critical, CA:TRUE"},
            "etcd-peer",
            "a CA certificate, which no node may have",
        ),
        ({"CN": "etcd2"}, "etcd-ca", "a CA certificate never is"),
        ({"CN": "kube-apiserver-etcd-client"}, "kube-apiserver-etcd-client", "control-plane role"),
    ],
)
def test_minion_asking_for_what_is_not_its_own_is_refused(lab, args, profile, reason):
    script = REFUSED_REQUEST.replace("{ARGS}", repr(args)).replace("{PROFILE}", profile)
    reply = json.loads(node_python("etcd2", script))
    assert reason in reply["paas-master"]["error"]
    assert "certificate" not in reply["paas-master"]


@pytest.fixture
def lab_down_first(lab):
    lab_command("down")
    assert not leftovers()


def test_lab_down_cleans_up_after_an_interrupted_up_and_a_dead_master(lab_down_first):
    # Kill `lab up` while the machines boot, as a crash or Ctrl-C would, and the master's
    # main process with it; `lab down` must still find and remove everything it had made,
    # the processes the master left among them.
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
    _kill_master_main_process()
    assert leftovers(), "the interrupted lab up had made nothing; the test proves nothing"
    down = lab_command("down")
    assert down.returncode == 0
    assert leftovers() == []
