"""The topology validator: every rule, with the node and field each error names."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _load_rules():
    spec = importlib.util.spec_from_file_location("paas_topology", REPO / "_utils/paas_topology.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


rules = _load_rules()
LAB = yaml.safe_load((REPO / "pillar/paas.sls").read_text())["paas"]


def _node(topology: dict, node_id: str) -> dict:
    (entry,) = [entry for entry in topology["nodes"] if entry["id"] == node_id]
    return entry


def _walk(topology: dict, keys) -> dict:
    # ("nodes", "cp2", "addresses") walks into the node whose id is cp2.
    target = topology
    for key in keys:
        target = _node({"nodes": target}, key) if isinstance(target, list) else target[key]
    return target


def _drop_role(role):
    def mutate(topology):
        topology["nodes"] = [e for e in topology["nodes"] if role not in e["roles"]]

    return mutate


def _set(path, value):
    def mutate(topology):
        *parents, last = path
        _walk(topology, parents)[last] = value

    return mutate


def _delete(path):
    def mutate(topology):
        *parents, last = path
        del _walk(topology, parents)[last]

    return mutate


def _keep_etcd(count):
    def mutate(topology):
        etcd = [e for e in topology["nodes"] if "etcd" in e["roles"]]
        for extra in etcd[count:]:
            topology["nodes"].remove(extra)

    return mutate


def _add_etcd(topology):
    topology["nodes"].append(
        {"id": "etcd4", "roles": ["etcd"], "addresses": {"private": "198.18.1.24"}}
    )


def _duplicate_id(topology):
    _node(topology, "etcd3")["id"] = "etcd2"


def _one_gateway(topology):
    topology["nodes"].remove(_node(topology, "gw2"))


# (case, mutation, node the error names, field it names, a fragment of the message)
CASES = [
    ("duplicate node id", _duplicate_id, "etcd2", "paas:nodes[4]:id", "duplicate node id"),
    (
        "two nodes share an address",
        _set(("nodes", "cp2", "addresses", "private"), "198.18.1.31"),
        "cp2",
        "paas:nodes[6]:addresses:private",
        "already used by node cp1",
    ),
    (
        "a node takes the master's address",
        _set(("nodes", "worker1", "addresses", "private"), "198.18.1.1"),
        "worker1",
        "paas:nodes[8]:addresses:private",
        "already used by paas:master:address",
    ),
    (
        "node address outside its network",
        _set(("nodes", "etcd2", "addresses", "private"), "198.18.2.5"),
        "etcd2",
        "paas:nodes[3]:addresses:private",
        "outside the private network 198.18.1.0/24",
    ),
    (
        "public address outside the public network",
        _set(("nodes", "gw1", "addresses", "public"), "198.18.1.200"),
        "gw1",
        "paas:nodes[0]:addresses:public",
        "outside the public network",
    ),
    (
        "master outside the private network",
        _set(("master", "address"), "198.18.0.200"),
        None,
        "paas:master:address",
        "outside the private network",
    ),
    (
        "upstream gateway outside the public network",
        _set(("networks", "public", "gateway"), "10.0.0.1"),
        None,
        "paas:networks:public:gateway",
        "outside the public network",
    ),
    (
        "VIP equal to a node address",
        _set(("networks", "private", "vip"), "198.18.1.41"),
        None,
        "paas:networks:private:vip",
        "is the address of node worker1",
    ),
    (
        "VIP outside its network",
        _set(("networks", "public", "vip"), "198.18.1.10"),
        None,
        "paas:networks:public:vip",
        "outside the public network",
    ),
    ("a single etcd member", _keep_etcd(1), None, "paas:nodes", "1 etcd node(s)"),
    ("an even etcd count", _keep_etcd(2), None, "paas:nodes", "2 etcd node(s)"),
    ("four etcd members", _add_etcd, None, "paas:nodes", "4 etcd node(s)"),
    ("no etcd at all", _drop_role("etcd"), None, "paas:nodes", "0 etcd node(s)"),
    ("no gateway", _drop_role("gateway"), None, "paas:nodes", "0 gateway node(s)"),
    ("only one gateway", _one_gateway, None, "paas:nodes", "1 gateway node(s)"),
    ("no control plane", _drop_role("control-plane"), None, "paas:nodes", "no control-plane"),
    ("no worker", _drop_role("worker"), None, "paas:nodes", "no worker"),
    (
        "unknown role",
        _set(("nodes", "cp3", "roles"), ["control-plane", "database"]),
        "cp3",
        "paas:nodes[7]:roles[1]",
        "'database' is not one of",
    ),
    ("unknown top-level key", _set(("colour",), "blue"), None, "paas:colour", "unknown key"),
    (
        "unknown key in a network",
        _set(("networks", "private", "mtu"), 9000),
        None,
        "paas:networks:private:mtu",
        "unknown key",
    ),
    (
        "unknown key in a node",
        _set(("nodes", "etcd1", "rack"), "r1"),
        "etcd1",
        "paas:nodes[2]:rack",
        "unknown key",
    ),
    ("missing cluster name", _delete(("cluster", "name")), None, "paas:cluster:name", "missing"),
    (
        "node without a private address",
        _delete(("nodes", "cp1", "addresses", "private")),
        "cp1",
        "paas:nodes[5]:addresses:private",
        "missing required field",
    ),
    ("no nodes key", _delete(("nodes",)), None, "paas:nodes", "missing required field"),
    (
        "string where an integer belongs",
        _set(("networks", "public", "vrrp_router_id"), "51"),
        None,
        "paas:networks:public:vrrp_router_id",
        "must be an integer, not a string",
    ),
    (
        "boolean where an integer belongs",
        _set(("pki",), {"leaf_days": True}),
        None,
        "paas:pki:leaf_days",
        "must be an integer, not a boolean",
    ),
    (
        "list where a mapping belongs",
        _set(("networks", "private"), ["198.18.1.0/24"]),
        None,
        "paas:networks:private",
        "must be a mapping, not a list",
    ),
    (
        "not an address",
        _set(("nodes", "worker1", "addresses", "private"), "worker-one"),
        "worker1",
        "paas:nodes[8]:addresses:private",
        "is not an IPv4 address",
    ),
    (
        "not a network",
        _set(("networks", "public", "cidr"), "198.18.0.0/33"),
        None,
        "paas:networks:public:cidr",
        "is not an IPv4 network",
    ),
    (
        "public address on a private node",
        _set(("nodes", "etcd1", "addresses", "public"), "198.18.0.21"),
        "etcd1",
        "paas:nodes[2]:addresses:public",
        "only gateways have a public address",
    ),
    (
        "gateway without a public address",
        _delete(("nodes", "gw2", "addresses", "public")),
        "gw2",
        "paas:nodes[1]:addresses:public",
        "a gateway needs a public address",
    ),
    (
        "overlapping networks",
        _set(("networks", "private", "cidr"), "198.18.0.0/23"),
        None,
        "paas:networks:private:cidr",
        "overlaps the public network",
    ),
    (
        "equal VRRP router ids",
        _set(("networks", "private", "vrrp_router_id"), 51),
        None,
        "paas:networks:private:vrrp_router_id",
        "must differ",
    ),
    (
        "master minion id taken by a node",
        _set(("master", "id"), "cp1"),
        None,
        "paas:master:id",
        "is also a node's id",
    ),
    (
        "relative certificate directory",
        _set(("pki",), {"dir": "etc/pki"}),
        None,
        "paas:pki:dir",
        "is not an absolute path",
    ),
    (
        "renewal window as long as the lifetime",
        _set(("pki",), {"leaf_days": 30, "renew_days": 30}),
        None,
        "paas:pki:renew_days",
        "must be shorter than leaf_days",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "node", "field", "fragment"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_topology_is_rejected_naming_node_and_field(mutate, node, field, fragment):
    topology = copy.deepcopy(LAB)
    mutate(topology)
    errors = rules.validate(topology)
    matching = [e for e in errors if e.field == field and fragment in e.message]
    assert matching, f"no error on {field} with {fragment!r}; got {[str(e) for e in errors]}"
    assert matching[0].node == node
    if node:
        assert str(matching[0]).startswith(f"node {node}: {field}: ")


@pytest.mark.parametrize("path", ["pillar/paas.sls", "pillar.example"])
def test_shipped_topologies_are_valid(path):
    assert rules.validate(yaml.safe_load((REPO / path).read_text())["paas"]) == []


def test_every_error_is_reported_not_only_the_first():
    topology = copy.deepcopy(LAB)
    _node(topology, "etcd2")["addresses"]["private"] = "198.18.2.5"
    topology["networks"]["private"]["vip"] = "198.18.1.41"
    fields = {error.field for error in rules.validate(topology)}
    assert {"paas:nodes[3]:addresses:private", "paas:networks:private:vip"} <= fields


def test_topology_that_is_not_a_mapping_is_rejected():
    (error,) = rules.validate(["gw1", "gw2"])
    assert error.field == "paas"
    assert "must be a mapping, not a list" in error.message


def test_defaults_fill_every_optional_key_without_touching_the_input():
    topology = copy.deepcopy(LAB)
    filled = rules.with_defaults(topology)
    assert filled["versions"]["etcd"] == "3.5"
    assert filled["pki"] == {
        "dir": "/etc/paas/pki",
        "ca_dir": "/var/lib/paas-lab/ca",
        "key_type": "ec",
        "ca_days": 3650,
        "leaf_days": 365,
        "renew_days": 30,
    }
    assert filled["cluster"]["domain"] == "paas.lab"
    assert (
        rules.with_defaults({"master": {"address": "198.18.1.1"}})["master"]["id"] == "paas-master"
    )
    assert filled["time"]["ntp_servers"] == []
    assert topology == LAB


@pytest.mark.parametrize("garbage", [None, "nodes", {"nodes": "gw1"}, {"nodes": [None, 3]}])
def test_node_ids_tolerate_a_malformed_topology(garbage):
    assert rules.node_ids(garbage) == []


def test_node_ids_by_role_keep_pillar_order():
    assert rules.node_ids(LAB, "etcd") == ["etcd1", "etcd2", "etcd3"]
    assert rules.node_ids({"nodes": [{"id": "a", "roles": "etcd"}, {"id": "b"}]}) == ["a", "b"]


def test_hosts_name_every_node_the_master_and_the_vips():
    entries = dict((address, names) for address, names in rules.hosts(rules.with_defaults(LAB)))
    assert entries["198.18.1.22"] == ["etcd2.paas.lab", "etcd2"]
    assert entries["198.18.0.11"] == ["gw1-public.paas.lab", "gw1-public"]
    assert entries["198.18.1.1"] == ["salt.paas.lab", "salt"]
    assert entries["198.18.1.10"] == ["paas-lab-private-vip.paas.lab", "paas-lab-private-vip"]
    assert entries["198.18.0.10"] == ["paas-lab-public-vip.paas.lab", "paas-lab-public-vip"]
