"""
The gateway pair on the lab's machines (Debian 13: keepalived 2.3, haproxy 3.0, nftables,
conntrackd): one gateway holds both VIPs, publishes the API and the ingress on them and
NATs the private nodes out; losing it, however it is lost, moves everything to the other
one, and connections through the NAT go on.

The world outside is this host's address on the public bridge (tests/e2e/outside.py);
the API behind haproxy is the kube-apiserver double on each control plane (lab/kube/, as
orch.cluster's Kubernetes layers set it up; an apiserver leaving the rotation is
tests/e2e/test_kubernetes.py's), the ingress the lab's stand-in on the worker
(lab/files/standin.py).
Failures are caused and watched from the host (nsenter, ip -n), not through Salt, which
would be slower than what it watches.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

from lab.config import load_lab
from lab.machines import leader_pid
from tests.e2e.lab_helpers import (
    GATEWAYS,
    PRIVATE_VIP,
    PUBLIC_VIP,
    api_served_by,
    failures,
    holder,
    lab_command,
    on,
    orchestrate,
    other,
    paas_report,
    salt_json,
    salt_text,
    vips_of,
    wait_until,
)
from tests.e2e.outside import HostFlow, NodeFlow, Outside

pytestmark = pytest.mark.e2e

OUTSIDE = "198.18.0.1"
ADDRESSES = {
    "gw1": {"public": "198.18.0.11", "private": "198.18.1.11"},
    "gw2": {"public": "198.18.0.12", "private": "198.18.1.12"},
    "etcd1": {"private": "198.18.1.21"},
    "worker1": {"private": "198.18.1.41"},
}
CONNTRACKD = "conntrackd -C /etc/conntrackd/conntrackd.conf"


def vrrp_state(gateway: str) -> list[str]:
    """The last transition keepalived's notify script recorded: state and time."""
    return on(gateway, "cat /run/paas-gateway/vrrp-state").split()


def api_healthz() -> str:
    """The apiserver's /healthz on the public VIP, anonymously (its certificate is
    kubeadm's CA's, which this host does not hold)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    url = f"https://{PUBLIC_VIP}:6443/healthz"
    with urllib.request.urlopen(url, context=context, timeout=5) as reply:
        return reply.read().decode().strip()


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.read().decode().strip()


def seen_from(node: str, outside: Outside) -> str:
    """The address the outside world sees when ``node`` connects to it."""
    return on(node, f"curl -sS -m 5 http://{OUTSIDE}:{outside.http_port}/").strip()


def backends(gateway: str) -> dict[tuple[str, str], str]:
    status = salt_json("salt", gateway, "paas_gateway.backends")[gateway]
    return {(row["proxy"], row["server"]): row["status"] for row in status}


def conntrack_synced(gateway: str, node: str, port: int) -> bool:
    """Whether ``gateway``'s conntrackd holds, from its peer, the connection from ``node``
    to the outside's ``port`` (its external cache)."""
    listing = on(gateway, f"{CONNTRACKD} -e")
    source, destination = f"src={ADDRESSES[node]['private']}", f"dport={port}"
    return any(source in line and destination in line for line in listing.splitlines())


@pytest.fixture(scope="module")
def outside(lab):
    service = Outside(OUTSIDE)
    yield service
    service.close()


@pytest.fixture
def settled(lab):
    """One gateway holds both VIPs, both gateways are healthy; restored after a test."""
    assert wait_until(holder, timeout=30), {gateway: vips_of(gateway) for gateway in GATEWAYS}
    yield holder()
    for gateway in GATEWAYS:
        on(gateway, "rm -f /run/systemd/system/haproxy.service.d/paas-test.conf", check=False)
        on(gateway, "nft delete table inet paas_test", check=False)
        on(gateway, "systemctl daemon-reload; systemctl start haproxy keepalived", check=False)
    assert wait_until(holder, timeout=30)


def test_one_gateway_holds_both_vips_and_the_configs_pass_their_checks(settled):
    for gateway in GATEWAYS:
        on(gateway, "keepalived --config-test --use-file /etc/keepalived/keepalived.conf")
        on(gateway, "haproxy -c -q -f /etc/haproxy/haproxy.cfg")
        on(gateway, "nft --check --file /etc/nftables.conf")
        assert on(gateway, "sysctl -n net.ipv4.ip_forward").strip() == "1"
        state = "MASTER" if gateway == settled else "BACKUP"
        assert vrrp_state(gateway)[0] == state
    assert vips_of(other(settled)) == set()


def test_paas_status_names_the_holder_and_the_backends(settled):
    code, report = paas_report("status")
    assert code == 0, report["problems"]
    status = report["gateways"]
    assert status["holder"] == settled
    assert status["split_brain"] is False and status["problems"] == []
    for gateway in GATEWAYS:
        node = status["nodes"][gateway]
        assert node["vips"]["public"]["held"] is (gateway == settled)
        assert all(node["services"].values()), node["services"]
        servers = {(row["proxy"], row["server"]): row["status"] for row in node["backends"]}
        assert servers == {
            ("kube-apiserver", "cp1"): "UP",
            ("kube-apiserver", "cp2"): "UP",
            ("kube-apiserver", "cp3"): "UP",
            ("ingress-http", "worker1"): "UP",
            ("ingress-https", "worker1"): "UP",
        }
    table = salt_text("salt-run", "paas.status")
    assert f"gateways: both VIPs on {settled}" in table


def test_private_nodes_reach_the_outside_through_the_nat_as_the_public_vip(settled, outside):
    for node in ("etcd1", "worker1"):
        assert on(node, "ip route show default").startswith(f"default via {PRIVATE_VIP} ")
        assert seen_from(node, outside) == PUBLIC_VIP


def _connect(address: str, port: int) -> str:
    """refused, open or silent (dropped): what a TCP connect from this host meets."""
    try:
        with socket.create_connection((address, port), timeout=2):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "silent"


def test_the_public_side_drops_all_but_the_published_ports(settled):
    public = ADDRESSES[settled]["public"]
    for port in (6443, 80, 443):
        assert _connect(PUBLIC_VIP, port) == "open", port
    # Nothing listens there, and the gateway does not even say so.
    assert _connect(PUBLIC_VIP, 2379) == "silent"
    assert _connect(public, 22) == "silent"
    assert _connect(public, 8404) == "silent"
    # The stats page is on each gateway's private address only.
    for gateway in GATEWAYS:
        listening = on(gateway, "ss -Hltn 'sport = :8404'")
        assert f"{ADDRESSES[gateway]['private']}:8404" in listening, listening
        assert len(listening.splitlines()) == 1, listening
        page = on("etcd1", f"curl -sS -m 5 http://{ADDRESSES[gateway]['private']}:8404/stats")
        assert "kube-apiserver" in page


def test_the_vips_publish_the_api_and_the_ingress(settled):
    assert api_healthz() == "ok"
    assert on("etcd1", f"curl -sk -m 5 https://{PRIVATE_VIP}:6443/healthz").strip() == "ok"
    served = {api_served_by() for _ in range(9)}
    assert served == {"cp1", "cp2", "cp3"}
    assert http_get(f"http://{PUBLIC_VIP}/") == "worker1 ingress 30080"
    assert http_get(f"http://{PUBLIC_VIP}:443/") == "worker1 ingress 30443"
    assert on("etcd1", f"curl -sS -m 5 http://{PRIVATE_VIP}/").strip() == "worker1 ingress 30080"


def test_the_vips_stay_put_for_a_minute_while_both_gateways_are_healthy(settled):
    transitions = {gateway: vrrp_state(gateway) for gateway in GATEWAYS}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert holder() == settled
        time.sleep(0.2)
    assert {gateway: vrrp_state(gateway) for gateway in GATEWAYS} == transitions


def _kill_keepalived(gateway: str) -> None:
    on(gateway, "systemctl kill --signal=SIGKILL keepalived")


def _stop_keepalived(gateway: str) -> None:
    on(gateway, "systemctl stop keepalived")


def _haproxy_dies(gateway: str) -> None:
    # haproxy's unit restarts it within 0.1 s, before any check could tell; here it
    # dies and stays dead, as when it cannot start again.
    on(
        gateway,
        "mkdir -p /run/systemd/system/haproxy.service.d && "
        "printf '[Service]\\nRestart=no\\n' > /run/systemd/system/haproxy.service.d/paas-test.conf"
        " && systemctl daemon-reload && systemctl kill --signal=SIGKILL haproxy",
    )


def _restore_haproxy(gateway: str) -> None:
    on(
        gateway,
        "rm /run/systemd/system/haproxy.service.d/paas-test.conf && systemctl daemon-reload "
        "&& systemctl start haproxy",
    )


def _failover(outside: Outside, fail) -> tuple[str, str]:
    """With a connection open from worker1 through the NAT, make the VIPs' holder fail
    with ``fail``; check that everything moved and the connection went on; return the
    old and the new holder."""
    old = holder()
    new = other(old)
    flow = NodeFlow("worker1", OUTSIDE, outside.echo_port)
    try:
        # conntrackd has given the other gateway the connection before anything fails.
        assert wait_until(lambda: conntrack_synced(new, "worker1", outside.echo_port), 10)
        fail(old)
        assert wait_until(lambda: holder() == new, timeout=15), {
            gateway: vips_of(gateway) for gateway in GATEWAYS
        }
        moved = time.monotonic()
        # keepalived's notify script logged the takeover on the new holder.
        assert wait_until(
            lambda: (
                "paas_gateway is now MASTER"
                in on(new, "journalctl -t paas-gateway --no-pager --since=-30s")
            ),
            timeout=10,
            interval=0.5,
        )
        # The API through the VIP and a new connection through the NAT work again.
        assert wait_until(lambda: _answers(api_healthz) == "ok", timeout=15)
        assert wait_until(lambda: seen_from("etcd1", outside) == PUBLIC_VIP, timeout=15)
        time.sleep(1)
        record = flow.stop()
    finally:
        flow.kill()
    # The connection opened before went on after the move, and lost nothing.
    assert record["errors"] == [], record
    assert record["echoed"] == record["sent"] > 0, record
    assert record["last_echo"] > moved, record
    assert outside.echo_peers[-1] == PUBLIC_VIP
    return old, new


def _answers(call) -> str | None:
    try:
        return call()
    except OSError:
        return None


def _no_flap(old: str, new: str) -> None:
    """The old holder is back as backup, and the VIPs stay on the new one."""
    assert wait_until(lambda: vrrp_state(old)[0] == "BACKUP", timeout=60, interval=0.5)
    settled_at = vrrp_state(new)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert holder() == new
        time.sleep(0.1)
    assert vrrp_state(new) == settled_at


@pytest.mark.parametrize(
    ("fail", "restore"),
    [
        (_kill_keepalived, None),
        (_stop_keepalived, lambda gateway: on(gateway, "systemctl start keepalived")),
        (_haproxy_dies, _restore_haproxy),
    ],
    ids=["keepalived-sigkill", "keepalived-graceful-stop", "haproxy-dies"],
)
def test_losing_the_holder_moves_both_vips_and_connections_go_on(settled, outside, fail, restore):
    old, new = _failover(outside, fail)
    if restore is None:
        # keepalived killed: its unit took the VIPs off and starts it again by itself.
        assert wait_until(lambda: on(old, "systemctl is-active keepalived", check=False)
                          .strip() == "active", timeout=30, interval=0.5)  # fmt: skip
    else:
        restore(old)
    _no_flap(old, new)


def test_powering_off_the_holder_moves_both_vips_and_connections_go_on(settled, outside):
    def power_off(gateway: str) -> None:
        (machine,) = [m for m in load_lab().machines if m.id == gateway]
        # SIGKILL to the machine's PID 1: everything in it dies at once, as in a power
        # cut; and its links go down with it (its namespace outlives it in the lab).
        subprocess.run(["kill", "-KILL", str(leader_pid(machine))], check=True)
        for interface in machine.interfaces:
            subprocess.run(["ip", "link", "set", interface.host_name, "down"], check=True)

    old, new = _failover(outside, power_off)
    # `lab up` boots it again and converges the platform; the VIPs stay where they are.
    assert lab_command("up").returncode == 0
    _no_flap(old, new)


def test_a_split_brain_is_reported_and_settles_when_vrrp_is_back(settled):
    # Neither gateway hears the other: each believes it is the only one left.
    for gateway in GATEWAYS:
        on(gateway, "nft add table inet paas_test && nft add chain inet paas_test input "
                    "'{ type filter hook input priority -10; }' && "
                    "nft add rule inet paas_test input ip protocol vrrp drop")  # fmt: skip
    try:
        assert wait_until(
            lambda: all(vips_of(g) == {PUBLIC_VIP, PRIVATE_VIP} for g in GATEWAYS), timeout=15
        )
        code, report = paas_report("status")
        assert code == 2 and report["severity"] == "down", report["problems"]
        status = report["gateways"]
        assert status["split_brain"] is True
        assert status["holder"] is None
        assert any("split brain" in problem for problem in status["problems"]), status
    finally:
        for gateway in GATEWAYS:
            on(gateway, "nft delete table inet paas_test")
    assert wait_until(holder, timeout=15)
    status = salt_json("salt-run", "paas.status")["gateways"]
    assert status["split_brain"] is False and status["holder"] == holder()
    # The network last heard whichever claimed the VIPs last: the holder tells it again.
    assert wait_until(lambda: _answers(api_healthz) == "ok", timeout=10)
    assert on("etcd1", f"curl -sk -m 5 https://{PRIVATE_VIP}:6443/healthz").strip() == "ok"


def _changes(steps: dict) -> dict:
    found = {}
    for name, step in steps.items():
        assert step["result"] is True, (name, failures(step))
        for minion, states in (step.get("changes", {}).get("ret") or {}).items():
            for key, result in states.items():
                if result["changes"]:
                    found[f"{minion}: {key.split('_|-')[1]}"] = result["changes"]
    return found


def _apply_gateway(paas: dict) -> dict:
    """``state.apply gateway`` on both gateways with ``paas`` merged into their pillar;
    each gateway's results by state id."""
    reply = salt_json(
        "salt", "-L", ",".join(GATEWAYS), "state.apply", "gateway",
        f"pillar={json.dumps({'paas': paas})}",
    )  # fmt: skip
    return {
        gateway: {key.split("_|-")[1]: value for key, value in reply[gateway].items()}
        for gateway in GATEWAYS
    }


def test_reapplying_changes_nothing_and_a_changed_config_reloads_without_a_drop(settled, outside):
    through_nat = NodeFlow("worker1", OUTSIDE, outside.echo_port)
    through_haproxy = HostFlow(PUBLIC_VIP, 80)
    try:
        assert _changes(orchestrate("orch.gateway")) == {}
        # A changed health-check interval rewrites haproxy's config on both gateways:
        # haproxy reloads, and the connections it carries go on.
        changed = _apply_gateway({"gateway": {"check_interval_ms": 400}})
        for gateway, results in changed.items():
            assert results["gateway-config-haproxy"]["changes"], gateway
            assert results["gateway-service-haproxy"]["changes"], gateway
            assert "inter 400ms" in on(gateway, "cat /etc/haproxy/haproxy.cfg")
        reloaded = time.monotonic()
        time.sleep(1)
        nat, proxied = through_nat.stop(), through_haproxy.stop()
    finally:
        through_nat.kill()
        through_haproxy.stop()
    assert nat["errors"] == [] and nat["echoed"] == nat["sent"] > 0, nat
    assert proxied["errors"] == [] and proxied["last_answer"] > reloaded, proxied
    assert nat["last_echo"] > reloaded, nat
    # Back to the topology's settings, through the orchestration, one gateway at a time.
    assert "gw1: gateway-config-haproxy" in _changes(orchestrate("orch.gateway"))
    assert _changes(orchestrate("orch.gateway")) == {}


def test_a_config_its_daemon_refuses_is_not_installed(settled):
    # keepalived --config-test refuses a check script that does not exist.
    before = {gateway: on(gateway, "cat /etc/keepalived/keepalived.conf") for gateway in GATEWAYS}
    transitions = {gateway: vrrp_state(gateway) for gateway in GATEWAYS}
    reply = _apply_gateway({"lookup": {"gateway": {"keepalived": {"check": "/nonexistent/check"}}}})
    for gateway, results in reply.items():
        config = results["gateway-config-keepalived"]
        assert config["result"] is False and "check_cmd" in config["comment"], config
        assert "not found" in config["comment"], config
        assert results["gateway-service-keepalived"]["result"] is False
        assert results["gateway-service-keepalived"]["changes"] == {}
        assert on(gateway, "cat /etc/keepalived/keepalived.conf") == before[gateway]
    assert holder() == settled
    assert {gateway: vrrp_state(gateway) for gateway in GATEWAYS} == transitions
