"""
The configuration salt/gateway writes, checked by the host's own daemons (Debian 12:
keepalived 2.2, haproxy 2.6, nftables), so the lab's newer ones (keepalived 2.3, haproxy
3.0) are not the only versions the templates are proven on. Each gateway's files are
rendered from the topology as the formula renders them (its defaults and
``paas_topology.gateway``), then checked the way the formula's ``check_cmd`` does, with
keepalived in a network namespace that has the gateway's interfaces.
"""

from __future__ import annotations

import shutil
import subprocess

import jinja2
import pytest
import yaml

from tests.functional.etcd_hosts import REPO

NETNS = "paas-ft-gw"
TEMPLATES = ("keepalived.conf", "haproxy.cfg", "nftables.conf", "conntrackd.conf", "notify.sh")


@pytest.fixture(scope="module")
def namespace():
    """A network namespace with the interfaces a lab gateway has: eth0 and eth1, up (each
    a veth whose other end stays in the namespace)."""
    subprocess.run(["ip", "netns", "delete", NETNS], check=False, capture_output=True)
    subprocess.run(["ip", "netns", "add", NETNS], check=True)
    try:
        for name in ("eth0", "eth1"):
            subprocess.run(
                ["ip", "-n", NETNS, "link", "add", name, "type", "veth", "peer", f"{name}-peer"],
                check=True,
            )
            for link in (name, f"{name}-peer"):
                subprocess.run(["ip", "-n", NETNS, "link", "set", link, "up"], check=True)
        yield NETNS
    finally:
        subprocess.run(["ip", "netns", "delete", NETNS], check=False)


def render(topology: dict, topology_utils, node_id: str, tmp_path, **overrides) -> dict:
    """Every gateway file for ``node_id``, written under ``tmp_path``; their paths."""
    settings = topology_utils.gateway(topology, node_id)
    for name, interface in (("public", "eth0"), ("private", "eth1")):
        settings["networks"][name]["interface"] = interface
    gateway = yaml.safe_load((REPO / "salt/gateway/defaults.yaml").read_text())["gateway"]
    # keepalived checks that the notify script exists, is executable and only root's.
    gateway["keepalived"]["notify"] = str(tmp_path / "notify.sh")
    for key, value in overrides.items():
        gateway["keepalived"][key] = value
    tmp_path.mkdir(parents=True, exist_ok=True)
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    paths = {}
    for name in TEMPLATES:
        source = (REPO / "salt/gateway/files" / f"{name}.jinja").read_text()
        paths[name] = tmp_path / name
        paths[name].write_text(
            environment.from_string(source).render(gateway=gateway, settings=settings)
        )
    paths["notify.sh"].chmod(0o755)
    tmp_path.chmod(0o755)
    return paths


def check(argv: list[str], netns: str | None = None) -> subprocess.CompletedProcess:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, *argv], capture_output=True, text=True, check=False)


@pytest.mark.parametrize("node_id", ["gw1", "gw2"])
@pytest.mark.parametrize(
    "timers",
    [{}, {"vrrp_version": 2, "advert_ms": 1000}],
    ids=["shipped-vrrp3", "vrrp2-whole-seconds"],
)
def test_each_gateways_files_pass_their_daemons_checks(
    lab_topology, topology_utils, namespace, tmp_path, *, node_id, timers
):
    for tool in ("keepalived", "haproxy", "nft"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: make test installs it (HOST_PACKAGES)")
    lab_topology["gateway"] = timers
    paths = render(lab_topology, topology_utils, node_id, tmp_path)

    keepalived = check(
        ["keepalived", "--config-test", "--use-file", str(paths["keepalived.conf"])], namespace
    )
    assert keepalived.returncode == 0, keepalived.stderr
    haproxy = check(["haproxy", "-c", "-q", "-f", str(paths["haproxy.cfg"])])
    assert haproxy.returncode == 0, haproxy.stdout + haproxy.stderr
    nft = check(["nft", "--check", "--file", str(paths["nftables.conf"])], namespace)
    assert nft.returncode == 0, nft.stderr
    sh = check(["sh", "-n", str(paths["notify.sh"])])
    assert sh.returncode == 0, sh.stderr


def test_the_pair_is_one_sync_group_of_unicast_peers(lab_topology, topology_utils, tmp_path):
    first = render(lab_topology, topology_utils, "gw1", tmp_path / "gw1")
    second = render(lab_topology, topology_utils, "gw2", tmp_path / "gw2")
    one, two = first["keepalived.conf"].read_text(), second["keepalived.conf"].read_text()

    assert "priority 150" in one and "priority 100" in two
    assert "unicast_peer {\n        198.18.0.12\n    }" in one
    assert "unicast_peer {\n        198.18.1.11\n    }" in two
    for config in (one, two):
        assert "vrrp_version 3" in config and "advert_int 0.1" in config
        assert config.count("nopreempt") == 2 and "state MASTER" not in config
        assert "198.18.0.10/24 dev eth0" in config and "198.18.1.10/24 dev eth1" in config


def test_keepalived_refuses_a_config_whose_check_does_not_exist(
    lab_topology, topology_utils, namespace, tmp_path
):
    paths = render(lab_topology, topology_utils, "gw1", tmp_path, check="/nonexistent/paas-check")

    result = check(
        ["keepalived", "--config-test", "--use-file", str(paths["keepalived.conf"])], namespace
    )

    assert result.returncode != 0
    assert "paas_haproxy" in result.stderr


def test_haproxy_refuses_a_config_with_a_backend_it_cannot_resolve(
    lab_topology, topology_utils, tmp_path
):
    paths = render(lab_topology, topology_utils, "gw1", tmp_path)
    config = paths["haproxy.cfg"]
    config.write_text(config.read_text().replace("198.18.1.31:6443", "cp1.invalid:6443"))

    result = check(["haproxy", "-c", "-f", str(config)])

    assert result.returncode != 0
    assert "cp1.invalid" in result.stdout + result.stderr
