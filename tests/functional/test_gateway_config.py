"""
The gateway's configuration applied for real: ``state.sls gateway.config`` run by a real
``salt-call --local`` for each gateway of the lab's topology, on this host's own daemons
(Debian 12: keepalived 2.2, haproxy 2.6, nftables, conntrackd), so the lab's newer ones
are not the only versions the formula is proven on. Every file goes through the
``check_cmd`` the formula gives it; keepalived's config test needs the gateway's
interfaces, and the gateway's sysctls are per network namespace, so each gateway runs in
a namespace whose eth0 and eth1 hold its public and private addresses. The files land in
a sandbox (tests/functional/sandbox.py): this host's own are never touched.
"""

from __future__ import annotations

import contextlib
import json
import shutil

import pytest
import yaml

from tests.functional.etcd_hosts import REPO
from tests.functional.sandbox import Interfaces, Sandbox, tree_state

GATEWAYS = ("gw1", "gw2")
# Every file gateway.config writes on a gateway (the unit checker comes with it).
FILES = {
    "/etc/keepalived/keepalived.conf",
    "/etc/haproxy/haproxy.cfg",
    "/etc/nftables.conf",
    "/etc/conntrackd/conntrackd.conf",
    "/etc/sysctl.d/60-paas-gateway.conf",
    "/etc/systemd/system/keepalived.service.d/paas.conf",
    "/usr/local/libexec/paas-gateway-notify",
    "/usr/local/libexec/paas-verify-unit",
}
KEEPALIVED = "/etc/keepalived/keepalived.conf"
DROP_IN = "/etc/systemd/system/keepalived.service.d/paas.conf"
# What the state would write on this host, were it not sandboxed.
HOST_PATHS = [
    "/etc/keepalived",
    "/etc/haproxy",
    "/etc/conntrackd",
    "/etc/nftables.conf",
    "/etc/sysctl.d/60-paas-gateway.conf",
    "/etc/systemd/system/keepalived.service.d",
    "/usr/local/libexec",
]


def _topology() -> dict:
    return yaml.safe_load((REPO / "lab/pillar/paas.sls").read_text())["paas"]


def _addresses(topology: dict, node_id: str) -> dict[str, str]:
    """The gateway's interfaces as the lab gives them: eth0 public, eth1 private."""
    node = next(entry for entry in topology["nodes"] if entry["id"] == node_id)
    return {
        interface: f"{node['addresses'][network]}/"
        f"{topology['networks'][network]['cidr'].split('/')[1]}"
        for interface, network in (("eth0", "public"), ("eth1", "private"))
    }


@pytest.fixture(scope="module")
def host_before() -> dict:
    """This host's own files where the gateway's would go, before any test ran."""
    return tree_state(HOST_PATHS)


@pytest.fixture(scope="module")
def gateways(tmp_path_factory, host_before):
    """Each gateway's sandbox, and the returns of its first and second run."""
    for tool in ("keepalived", "haproxy", "nft", "conntrackd"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: make test installs it (HOST_PACKAGES)")
    topology = _topology()
    tmp = tmp_path_factory.mktemp("gateways")
    with contextlib.ExitStack() as stack:
        applied = {}
        for node_id in GATEWAYS:
            namespace = stack.enter_context(
                Interfaces(f"paas-fg-{node_id}", _addresses(topology, node_id))
            )
            sandbox = Sandbox(node_id, tmp / node_id, topology, namespace)
            first = sandbox.apply("gateway.config")
            second = sandbox.apply("gateway.config")
            applied[node_id] = {"sandbox": sandbox, "first": first, "second": second}
        yield applied


def _failures(states: dict) -> dict:
    return {state_id: state["comment"] for state_id, state in states.items() if not state["result"]}


@pytest.mark.parametrize("node_id", GATEWAYS)
def test_the_first_run_installs_every_file_through_its_checker(gateways, node_id):
    first = gateways[node_id]["first"]

    assert _failures(first) == {}
    # Everything but the packages (installed on this host) changed.
    assert sorted(state_id for state_id, state in first.items() if not state["changes"]) == [
        "gateway-install-packages"
    ]
    assert set(gateways[node_id]["sandbox"].written()) == FILES


@pytest.mark.parametrize("node_id", GATEWAYS)
def test_the_second_run_changes_nothing(gateways, node_id):
    second = gateways[node_id]["second"]

    assert _failures(second) == {}
    assert {state_id: state["changes"] for state_id, state in second.items()} == {
        state_id: {} for state_id in second
    }


@pytest.mark.parametrize("node_id", GATEWAYS)
def test_the_written_files_pass_their_daemons_checks(gateways, node_id):
    sandbox = gateways[node_id]["sandbox"]
    for argv in (
        ["keepalived", "--config-test", "--use-file", KEEPALIVED],
        ["haproxy", "-c", "-q", "-f", "/etc/haproxy/haproxy.cfg"],
        ["nft", "--check", "--file", "/etc/nftables.conf"],
        ["sh", "-n", "/usr/local/libexec/paas-gateway-notify"],
    ):
        result = sandbox.run(argv)
        assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
    sysctls = sandbox.run(["sysctl", "-n", "net.ipv4.ip_forward", "net.ipv4.ip_nonlocal_bind"])
    assert sysctls.stdout.split() == ["1", "1"]


def test_the_pair_is_one_sync_group_of_unicast_peers(gateways):
    one, two = (gateways[node]["sandbox"].file(KEEPALIVED).read_text() for node in GATEWAYS)

    assert "priority 150" in one and "priority 100" in two
    for peer in ("198.18.0.12", "198.18.1.12"):
        assert f"unicast_peer {{\n        {peer}\n    }}" in one
    for peer in ("198.18.0.11", "198.18.1.11"):
        assert f"unicast_peer {{\n        {peer}\n    }}" in two
    for config in (one, two):
        assert "vrrp_sync_group paas_gateway {\n    group {\n        paas_public\n" in config
        assert "vrrp_version 3" in config and "advert_int 0.1" in config
        assert config.count("nopreempt") == 2 and "state MASTER" not in config
        assert "198.18.0.10/24 dev eth0" in config and "198.18.1.10/24 dev eth1" in config


def test_haproxy_publishes_the_api_and_ingress_to_the_topologys_backends(gateways):
    config = gateways["gw1"]["sandbox"].file("/etc/haproxy/haproxy.cfg").read_text()

    for node, address in (("cp1", "198.18.1.31"), ("cp2", "198.18.1.32"), ("cp3", "198.18.1.33")):
        assert f"server {node} {address}:6443" in config
    assert "server worker1 198.18.1.41:30080" in config
    assert "server worker1 198.18.1.41:30443" in config


def test_a_keepalived_config_whose_check_does_not_exist_is_refused_and_the_old_one_kept(
    gateways,
):
    sandbox = gateways["gw1"]["sandbox"]
    before = sandbox.file(KEEPALIVED).read_text()
    missing = {"paas": {"lookup": {"gateway": {"keepalived": {"check": "/nonexistent/check"}}}}}

    states = sandbox.apply("gateway.config", pillar=missing)

    refused = states["gateway-config-keepalived"]
    assert refused["result"] is False
    assert "check_cmd execution failed" in refused["comment"]
    assert "paas_haproxy" in refused["comment"]
    assert _failures(states).keys() == {"gateway-config-keepalived"}
    assert sandbox.file(KEEPALIVED).read_text() == before


def test_a_broken_keepalived_drop_in_is_refused_by_the_unit_checker_and_the_old_one_kept(
    gateways,
):
    sandbox = gateways["gw1"]["sandbox"]
    before = sandbox.file(DROP_IN).read_text()
    _returncode, shown = sandbox.salt_call("state.show_sls", "gateway.config")
    drop_in = {
        key: value
        for item in shown["gateway-config-keepalived-unit"]["file"]
        if isinstance(item, dict)
        for key, value in item.items()
    }
    assert drop_in["name"] == DROP_IN

    # The drop-in's own state, with a value systemd cannot parse (it would ignore it).
    returncode, data = sandbox.salt_call(
        "state.single",
        "file.managed",
        f"name={DROP_IN}",
        f"check_cmd={drop_in['check_cmd']}",
        f"contents={json.dumps(['[Service]', 'Restart=sometimes'])}",
    )

    (refused,) = data.values()
    assert returncode != 0
    assert refused["result"] is False
    assert "check_cmd execution failed" in refused["comment"]
    assert "sometimes" in refused["comment"]
    assert sandbox.file(DROP_IN).read_text() == before


def test_vrrp_version_2_whole_second_timers_pass_keepalived(gateways):
    sandbox = gateways["gw2"]["sandbox"]
    vrrp2 = {"paas": {"gateway": {"vrrp_version": 2, "advert_ms": 1000}}}
    try:
        states = sandbox.apply("gateway.config", pillar=vrrp2)

        assert _failures(states) == {}
        changed = [state_id for state_id, state in states.items() if state["changes"]]
        assert changed == ["gateway-config-keepalived"]
        config = sandbox.file(KEEPALIVED).read_text()
        assert "vrrp_version 2" in config and "advert_int 1\n" in config
    finally:
        restored = sandbox.apply("gateway.config")
    assert "vrrp_version 3" in sandbox.file(KEEPALIVED).read_text()
    assert _failures(restored) == {}


def test_this_hosts_own_files_are_untouched(gateways, host_before):
    assert tree_state(HOST_PATHS) == host_before
