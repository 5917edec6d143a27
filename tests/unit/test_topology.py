"""
The topology's validator, defaults and helpers (``_utils/paas_topology.py``).

Each rule is proven by one mutation of the lab's topology (``lab/pillar/paas.sls``): the
validator must report exactly one error on the field the mutation broke, naming the
node it belongs to (or no node, for a cluster-wide setting).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
import yaml

# The lab's nodes, by their index in paas:nodes.
GW1, GW2, ETCD1, ETCD2, ETCD3, CP1, CP2, CP3, WORKER1 = range(9)
# A digest that is no placeholder (the sha256 of "etcd").
DIGEST = "c38cbd92fce41312f3fbdce60510013b7f0d4004a03b45c8e762f98f1ed4006c"


def _entry(topology: dict, node_id: str) -> dict:
    (entry,) = [entry for entry in topology["nodes"] if entry["id"] == node_id]
    return entry


def _parent(topology: dict, path: str) -> tuple[Any, str]:
    # "nodes.cp2.addresses.private": a node is named by its id in a path.
    *parents, last = path.split(".")
    target: Any = topology
    for key in parents:
        target = _entry({"nodes": target}, key) if isinstance(target, list) else target[key]
    return target, last


def set_(path: str, value: Any) -> Callable[[dict], None]:
    def mutate(topology: dict) -> None:
        parent, key = _parent(topology, path)
        parent[key] = value

    return mutate


def delete(path: str) -> Callable[[dict], None]:
    def mutate(topology: dict) -> None:
        parent, key = _parent(topology, path)
        del parent[key]

    return mutate


def drop_nodes_with_role(role: str) -> Callable[[dict], None]:
    def mutate(topology: dict) -> None:
        topology["nodes"] = [entry for entry in topology["nodes"] if role not in entry["roles"]]

    return mutate


def drop_nodes(*node_ids: str) -> Callable[[dict], None]:
    def mutate(topology: dict) -> None:
        topology["nodes"] = [entry for entry in topology["nodes"] if entry["id"] not in node_ids]

    return mutate


def add_etcd_member(topology: dict) -> None:
    topology["nodes"].append(
        {"id": "etcd4", "roles": ["etcd"], "addresses": {"private": "198.18.1.24"}}
    )


def field(index: int, rest: str) -> str:
    return f"paas:nodes[{index}]:{rest}"


class BrokenRule(NamedTuple):
    name: str
    mutate: Callable[[dict], None]
    node: str | None  # the node the error names
    field: str  # the field it names
    fragment: str  # a fragment of its message


# A duplicate node id is reported on both nodes: see its own test below.
_BROKEN_RULES = [
    # Identity and addresses.
    (
        "two_nodes_share_an_address",
        set_("nodes.cp2.addresses.private", "198.18.1.31"),
        "cp2",
        field(CP2, "addresses:private"),
        "address 198.18.1.31 is already used by node cp1",
    ),
    (
        "node_reuses_the_master_address",
        set_("nodes.worker1.addresses.private", "198.18.1.1"),
        "worker1",
        field(WORKER1, "addresses:private"),
        "address 198.18.1.1 is already used by paas:master:address",
    ),
    (
        "node_private_address_outside_the_private_network",
        set_("nodes.etcd2.addresses.private", "198.18.2.5"),
        "etcd2",
        field(ETCD2, "addresses:private"),
        "198.18.2.5 is outside the private network 198.18.1.0/24",
    ),
    (
        "gateway_public_address_outside_the_public_network",
        set_("nodes.gw1.addresses.public", "198.18.1.200"),
        "gw1",
        field(GW1, "addresses:public"),
        "198.18.1.200 is outside the public network 198.18.0.0/24",
    ),
    (
        "master_address_outside_the_private_network",
        set_("master.address", "198.18.0.200"),
        None,
        "paas:master:address",
        "198.18.0.200 is outside the private network 198.18.1.0/24",
    ),
    (
        "public_gateway_outside_the_public_network",
        set_("networks.public.gateway", "10.0.0.1"),
        None,
        "paas:networks:public:gateway",
        "10.0.0.1 is outside the public network 198.18.0.0/24",
    ),
    (
        "node_on_the_broadcast_address",
        set_("nodes.worker1.addresses.private", "198.18.1.255"),
        "worker1",
        field(WORKER1, "addresses:private"),
        "is the network or broadcast address of 198.18.1.0/24",
    ),
    # Virtual IPs.
    (
        "private_vip_equal_to_a_node_address",
        set_("networks.private.vip", "198.18.1.41"),
        None,
        "paas:networks:private:vip",
        "VIP 198.18.1.41 is the address of node worker1",
    ),
    (
        "public_vip_equal_to_a_gateway_public_address",
        set_("networks.public.vip", "198.18.0.12"),
        None,
        "paas:networks:public:vip",
        "VIP 198.18.0.12 is the address of node gw2",
    ),
    (
        "public_vip_outside_the_public_network",
        set_("networks.public.vip", "198.18.5.10"),
        None,
        "paas:networks:public:vip",
        "198.18.5.10 is outside the public network 198.18.0.0/24",
    ),
    (
        "private_vip_outside_the_private_network",
        set_("networks.private.vip", "198.18.0.99"),
        None,
        "paas:networks:private:vip",
        "198.18.0.99 is outside the private network 198.18.1.0/24",
    ),
    # Role counts.
    ("one_etcd_member", drop_nodes("etcd2", "etcd3"), None, "paas:nodes", "1 etcd node(s)"),
    ("two_etcd_members", drop_nodes("etcd3"), None, "paas:nodes", "2 etcd node(s)"),
    ("four_etcd_members", add_etcd_member, None, "paas:nodes", "4 etcd node(s)"),
    ("no_etcd_member", drop_nodes_with_role("etcd"), None, "paas:nodes", "0 etcd node(s)"),
    ("no_gateway", drop_nodes_with_role("gateway"), None, "paas:nodes", "0 gateway node(s)"),
    ("one_gateway", drop_nodes("gw2"), None, "paas:nodes", "1 gateway node(s)"),
    (
        "no_control_plane",
        drop_nodes_with_role("control-plane"),
        None,
        "paas:nodes",
        "no control-plane node",
    ),
    ("no_worker", drop_nodes_with_role("worker"), None, "paas:nodes", "no worker node"),
    (
        "unknown_role",
        set_("nodes.cp3.roles", ["control-plane", "database"]),
        "cp3",
        field(CP3, "roles[1]"),
        "'database' is not one of: gateway, etcd, control-plane, worker",
    ),
    # Unknown keys.
    ("unknown_top_level_key", set_("colour", "blue"), None, "paas:colour", "unknown key"),
    (
        "unknown_key_in_a_network",
        set_("networks.private.mtu", 9000),
        None,
        "paas:networks:private:mtu",
        "unknown key (known keys: cidr, vip, vrrp_router_id)",
    ),
    (
        "unknown_key_in_a_node",
        set_("nodes.etcd1.rack", "r1"),
        "etcd1",
        field(ETCD1, "rack"),
        "unknown key",
    ),
    # Missing required fields.
    (
        "missing_cluster_name",
        delete("cluster.name"),
        None,
        "paas:cluster:name",
        "missing required field",
    ),
    (
        "node_without_a_private_address",
        delete("nodes.cp1.addresses.private"),
        "cp1",
        field(CP1, "addresses:private"),
        "missing required field",
    ),
    ("missing_nodes", delete("nodes"), None, "paas:nodes", "missing required field"),
    # Wrong types.
    (
        "string_where_an_integer_belongs",
        set_("networks.public.vrrp_router_id", "51"),
        None,
        "paas:networks:public:vrrp_router_id",
        "must be an integer, not a string",
    ),
    (
        "boolean_where_an_integer_belongs",
        set_("pki.leaf_days", True),
        None,
        "paas:pki:leaf_days",
        "must be an integer, not a boolean",
    ),
    (
        "list_where_a_mapping_belongs",
        set_("networks.private", ["198.18.1.0/24"]),
        None,
        "paas:networks:private",
        "must be a mapping, not a list",
    ),
    (
        "list_where_a_node_mapping_belongs",
        set_("nodes.worker1.addresses", ["198.18.1.41"]),
        "worker1",
        field(WORKER1, "addresses"),
        "must be a mapping, not a list",
    ),
    (
        "address_that_is_not_an_ip",
        set_("nodes.worker1.addresses.private", "worker-one"),
        "worker1",
        field(WORKER1, "addresses:private"),
        "'worker-one' is not an IPv4 address",
    ),
    (
        "cidr_with_an_impossible_prefix",
        set_("networks.public.cidr", "198.18.0.0/33"),
        None,
        "paas:networks:public:cidr",
        "'198.18.0.0/33' is not an IPv4 network in CIDR form",
    ),
    (
        "cidr_that_is_not_a_network",
        set_("networks.private.cidr", "private-lan"),
        None,
        "paas:networks:private:cidr",
        "'private-lan' is not an IPv4 network in CIDR form",
    ),
    # Public addresses belong to gateways only.
    (
        "public_address_on_a_private_node",
        set_("nodes.etcd1.addresses.public", "198.18.0.21"),
        "etcd1",
        field(ETCD1, "addresses:public"),
        "only gateways have a public address",
    ),
    (
        "gateway_without_a_public_address",
        delete("nodes.gw2.addresses.public"),
        "gw2",
        field(GW2, "addresses:public"),
        "a gateway needs a public address",
    ),
    # Networks.
    (
        "overlapping_networks",
        set_("networks.private.cidr", "198.18.0.0/23"),
        None,
        "paas:networks:private:cidr",
        "198.18.0.0/23 overlaps the public network 198.18.0.0/24",
    ),
    (
        "equal_vrrp_router_ids",
        set_("networks.private.vrrp_router_id", 51),
        None,
        "paas:networks:private:vrrp_router_id",
        "must differ from the public network's vrrp_router_id",
    ),
    # PKI lifetimes.
    (
        "renewal_window_as_long_as_the_leaf_lifetime",
        set_("pki", {"leaf_days": 30, "renew_days": 30}),
        None,
        "paas:pki:renew_days",
        "30 must be shorter than leaf_days (30)",
    ),
    (
        "renewal_window_longer_than_the_leaf_lifetime",
        set_("pki", {"leaf_days": 30, "renew_days": 60}),
        None,
        "paas:pki:renew_days",
        "60 must be shorter than leaf_days (30)",
    ),
    # etcd.
    (
        "election_timeout_under_five_heartbeats",
        set_("etcd", {"heartbeat_ms": 200, "election_ms": 900}),
        None,
        "paas:etcd:election_ms",
        "900 must be at least five heartbeats (5 x heartbeat_ms = 1000)",
    ),
    (
        "archive_source_without_its_digest",
        set_(
            "etcd",
            {"source": "archive", "archive": {"version": "3.5.24", "url": "https://e.test/e.tgz"}},
        ),
        None,
        "paas:etcd:archive:sha256",
        "is required when source is archive",
    ),
    (
        "archive_of_another_etcd_line",
        set_(
            "etcd",
            {
                "source": "archive",
                "archive": {"version": "3.4.37", "url": "https://e.test/e.tgz", "sha256": DIGEST},
            },
        ),
        None,
        "paas:etcd:archive:version",
        "3.4.37 is not of the etcd line in paas:versions:etcd (3.5)",
    ),
    (
        "archive_digest_that_is_not_sha256",
        set_("etcd", {"archive": {"sha256": "abc"}}),
        None,
        "paas:etcd:archive:sha256",
        "'abc' is not a sha256 digest (64 lower-case hex digits)",
    ),
    (
        "unknown_etcd_source",
        set_("etcd", {"source": "snap"}),
        None,
        "paas:etcd:source",
        "'snap' is not one of: package, archive",
    ),
    # Gateways.
    (
        "a_third_gateway",
        lambda topology: topology["nodes"].append(
            {
                "id": "gw3",
                "roles": ["gateway"],
                "addresses": {"public": "198.18.0.13", "private": "198.18.1.13"},
            }
        ),
        None,
        "paas:nodes",
        "3 gateway nodes; the gateways are a pair",
    ),
    (
        "vrrp_version_2_with_sub_second_adverts",
        set_("gateway", {"vrrp_version": 2, "advert_ms": 100}),
        None,
        "paas:gateway:advert_ms",
        "100 is not whole seconds; VRRP version 2 adverts in seconds",
    ),
    (
        "vrrp_version_3_advert_finer_than_centiseconds",
        set_("gateway", {"advert_ms": 105}),
        None,
        "paas:gateway:advert_ms",
        "105 is not a multiple of 10; VRRP version 3 adverts in centiseconds",
    ),
    (
        "vrrp_version_that_does_not_exist",
        set_("gateway", {"vrrp_version": 4}),
        None,
        "paas:gateway:vrrp_version",
        "must be at most 3, not 4",
    ),
    (
        "network_with_host_bits_set",
        set_("networks.public.cidr", "198.18.0.5/24"),
        None,
        "paas:networks:public:cidr",
        "'198.18.0.5/24' has host bits set; the network is 198.18.0.0/24",
    ),
    (
        "relative_certificate_directory",
        set_("pki", {"dir": "etc/pki"}),
        None,
        "paas:pki:dir",
        "'etc/pki' is not an absolute path",
    ),
    # Formula overrides: only what the formula alone uses, with the right types.
    (
        "lookup_moving_what_a_module_relies_on",
        set_("lookup", {"etcd": {"data_dir": "/srv/etcd"}}),
        None,
        "paas:lookup:etcd:data_dir",
        "unknown key (known keys: package_service, packages)",
    ),
    (
        "lookup_moving_the_haproxy_socket",
        set_("lookup", {"gateway": {"haproxy": {"socket": "/run/other.sock"}}}),
        None,
        "paas:lookup:gateway:haproxy:socket",
        "unknown key (known keys: config)",
    ),
    (
        "lookup_of_an_unknown_role",
        set_("lookup", {"database": {}}),
        None,
        "paas:lookup:database",
        "unknown key (known keys: common, etcd, gateway, kubernetes)",
    ),
    (
        "lookup_sysctl_that_is_not_a_scalar",
        set_("lookup", {"common": {"sysctls": {"net.core.somaxconn": [8192]}}}),
        None,
        "paas:lookup:common:sysctls:net.core.somaxconn",
        "must be a string or an integer, not a list",
    ),
    (
        "lookup_relative_config_path",
        set_("lookup", {"gateway": {"keepalived": {"config": "keepalived.conf"}}}),
        None,
        "paas:lookup:gateway:keepalived:config",
        "'keepalived.conf' is not an absolute path",
    ),
    # Kubernetes.
    (
        "pod_subnet_overlapping_the_private_network",
        set_("kubernetes.pod_subnet", "198.18.1.0/24"),
        None,
        "paas:kubernetes:pod_subnet",
        "198.18.1.0/24 overlaps the private network 198.18.1.0/24",
    ),
    (
        "service_subnet_overlapping_the_public_network",
        set_("kubernetes.service_subnet", "198.18.0.0/24"),
        None,
        "paas:kubernetes:service_subnet",
        "198.18.0.0/24 overlaps the public network 198.18.0.0/24",
    ),
    (
        "service_subnet_overlapping_the_pod_subnet",
        set_("kubernetes.service_subnet", "198.19.64.0/20"),
        None,
        "paas:kubernetes:service_subnet",
        "198.19.64.0/20 overlaps the pod_subnet 198.19.0.0/17",
    ),
    (
        "pod_subnet_with_host_bits_set",
        set_("kubernetes.pod_subnet", "198.19.0.5/17"),
        None,
        "paas:kubernetes:pod_subnet",
        "'198.19.0.5/17' has host bits set; the network is 198.19.0.0/17",
    ),
    (
        "pod_subnet_smaller_than_a_node_s_share",
        set_("kubernetes.pod_subnet", "198.19.0.0/25"),
        None,
        "paas:kubernetes:pod_subnet",
        "198.19.0.0/25 has a /25 prefix; kubeadm takes a pod_subnet between /8 and /24",
    ),
    (
        "service_subnet_larger_than_kubeadm_takes",
        set_("kubernetes.service_subnet", "10.0.0.0/8"),
        None,
        "paas:kubernetes:service_subnet",
        "10.0.0.0/8 has a /8 prefix; kubeadm takes a service_subnet between /12 and /28",
    ),
    (
        "service_subnet_that_is_not_a_network",
        set_("kubernetes.service_subnet", "services"),
        None,
        "paas:kubernetes:service_subnet",
        "'services' is not an IPv4 network in CIDR form",
    ),
    (
        "dns_domain_that_is_not_a_domain",
        set_("kubernetes.dns_domain", "Cluster_Local"),
        None,
        "paas:kubernetes:dns_domain",
        "'Cluster_Local' is not a valid DNS domain",
    ),
    (
        "worker_batch_of_zero",
        set_("kubernetes.worker_batch", 0),
        None,
        "paas:kubernetes:worker_batch",
        "must be at least 1, not 0",
    ),
    (
        "token_ttl_longer_than_a_day",
        set_("kubernetes.token_ttl_minutes", 1441),
        None,
        "paas:kubernetes:token_ttl_minutes",
        "must be at most 1440, not 1441",
    ),
    (
        "ignoring_a_preflight_check_other_than_the_etcd_version",
        set_("kubernetes.ignore_preflight_errors", ["ExternalEtcdVersion", "Swap"]),
        None,
        "paas:kubernetes:ignore_preflight_errors[1]",
        "'Swap' is not one of: ExternalEtcdVersion",
    ),
    (
        "ignoring_the_etcd_version_twice",
        set_("kubernetes.ignore_preflight_errors", ["ExternalEtcdVersion"] * 2),
        None,
        "paas:kubernetes:ignore_preflight_errors[1]",
        "'ExternalEtcdVersion' is listed twice",
    ),
    (
        "kubernetes_line_without_its_release",
        set_("versions.kubernetes", "1.34"),
        None,
        "paas:versions:kubernetes",
        "'1.34' is not a full version like 1.34.2",
    ),
    (
        "kubernetes_line_without_a_known_etcd_minimum",
        set_("versions.kubernetes", "1.33.5"),
        None,
        "paas:versions:kubernetes",
        "'1.33.5' is not one of: 1.34",
    ),
    (
        "repository_apt_cannot_read",
        set_("kubernetes.repository.url", "salt://kubernetes/repo/"),
        None,
        "paas:kubernetes:repository:url",
        "'salt://kubernetes/repo/' is not an http(s):// URL, which apt reads",
    ),
    (
        "repository_key_url_with_an_unknown_placeholder",
        set_("kubernetes.repository.key_url", "https://pkgs.k8s.io/v{version}/Release.key"),
        None,
        "paas:kubernetes:repository:key_url",
        "may hold {line} (the Kubernetes line) and no other field",
    ),
    (
        "sandbox_image_that_is_not_an_image",
        set_("kubernetes.sandbox_image", "pause 3.10"),
        None,
        "paas:kubernetes:sandbox_image",
        "'pause 3.10' is not a container image reference",
    ),
    (
        "unknown_kubernetes_key",
        set_("kubernetes.pod_cidr", "10.244.0.0/16"),
        None,
        "paas:kubernetes:pod_cidr",
        "unknown key",
    ),
    (
        "lookup_moving_the_kubeadm_configuration",
        set_("lookup", {"kubernetes": {"config_file": "/root/kubeadm.yaml"}}),
        None,
        "paas:lookup:kubernetes:config_file",
        "unknown key",
    ),
    # Salt's Python's source.
    (
        "python_index_pip_cannot_read",
        set_("python.index_url", "salt://wheels/"),
        None,
        "paas:python:index_url",
        "'salt://wheels/' is not an http(s):// URL of a package index",
    ),
    (
        "python_wheelhouse_neither_directory_nor_url",
        set_("python.find_links", "wheels/"),
        None,
        "paas:python:find_links",
        "'wheels/' is neither an absolute directory on the nodes nor the http(s):// URL",
    ),
    # The master's own minion.
    (
        "master_minion_id_taken_by_a_node",
        set_("master.id", "cp1"),
        None,
        "paas:master:id",
        "'cp1' is also a node's id; the master is not a node",
    ),
]


BROKEN_RULES = [BrokenRule(*case) for case in _BROKEN_RULES]


@pytest.mark.parametrize("rule", BROKEN_RULES, ids=[rule.name for rule in BROKEN_RULES])
def test_broken_rule_is_the_only_error_and_names_its_node_and_field(
    topology_utils, lab_topology, rule
):
    rule.mutate(lab_topology)

    errors = topology_utils.validate(lab_topology)

    assert [(e.node, e.field) for e in errors] == [(rule.node, rule.field)], list(map(str, errors))
    (error,) = errors
    assert rule.fragment in error.message
    where = f"node {rule.node}: {rule.field}" if rule.node else rule.field
    assert str(error) == f"{where}: {error.message}"


def test_duplicate_node_id_is_reported_on_every_node_that_carries_it(topology_utils, lab_topology):
    set_("nodes.etcd3.id", "etcd2")(lab_topology)

    errors = topology_utils.validate(lab_topology)

    assert [(e.node, e.field) for e in errors] == [
        ("etcd2", field(ETCD2, "id")),
        ("etcd2", field(ETCD3, "id")),
    ]
    assert all(e.message == "duplicate node id 'etcd2'" for e in errors)
    assert str(errors[1]) == "node etcd2: paas:nodes[4]:id: duplicate node id 'etcd2'"


def test_every_error_is_reported_not_only_the_first(topology_utils, lab_topology):
    set_("nodes.etcd2.addresses.private", "198.18.2.5")(lab_topology)
    set_("networks.private.vip", "198.18.1.41")(lab_topology)
    drop_nodes("gw2")(lab_topology)

    errors = topology_utils.validate(lab_topology)

    # gw2 gone: etcd2 is now paas:nodes[2].
    assert {(e.node, e.field) for e in errors} == {
        ("etcd2", "paas:nodes[2]:addresses:private"),
        (None, "paas:networks:private:vip"),
        (None, "paas:nodes"),
    }


def test_shape_errors_hide_the_rules_between_fields(topology_utils, lab_topology):
    # The address rules would also complain about this node, but a wrong shape is
    # reported alone so that one mistake is not reported many times over.
    set_("nodes.cp1.addresses.private", 7)(lab_topology)
    set_("networks.private.vip", "198.18.1.41")(lab_topology)

    errors = topology_utils.validate(lab_topology)

    assert [(e.node, e.field) for e in errors] == [("cp1", field(CP1, "addresses:private"))]


@pytest.mark.parametrize("garbage", [None, "paas", ["gw1", "gw2"], 42])
def test_topology_that_is_not_a_mapping_is_one_error_on_paas(topology_utils, garbage):
    (error,) = topology_utils.validate(garbage)

    assert (error.node, error.field) == (None, "paas")
    assert "must be a mapping" in error.message


@pytest.mark.parametrize("path", ["lab/pillar/paas.sls", "pillar/paas.sls", "pillar.example"])
def test_shipped_topologies_are_valid(topology_utils, repo_root, path):
    topology = yaml.safe_load((repo_root / path).read_text())["paas"]

    assert topology_utils.validate(topology) == []


@pytest.mark.parametrize("path", ["pillar/paas.sls", "pillar.example"])
def test_a_shipped_topology_with_a_zero_digest_is_refused_naming_the_field(
    topology_utils, repo_root, path
):
    topology = yaml.safe_load((repo_root / path).read_text())["paas"]
    topology["etcd"]["archive"]["sha256"] = "0" * 64

    (error,) = topology_utils.validate(topology)
    assert error.field == "paas:etcd:archive:sha256"
    assert "is a placeholder, not a digest" in error.message
    assert "SHA256SUMS" in error.message


def test_debians_etcd_on_kubernetes_134_is_refused_naming_the_source_and_the_fix(
    topology_utils, repo_root
):
    topology = yaml.safe_load((repo_root / "pillar/paas.sls").read_text())["paas"]
    topology["etcd"] = {"source": "package"}

    assert [str(error) for error in topology_utils.validate(topology)] == [
        "paas:etcd:source: package: the distribution's etcd-server, 3.5.16 on Debian 13, is "
        "older than kubeadm 1.34 accepts for an external etcd (3.5.24 or newer; its "
        "ExternalEtcdVersion preflight stops kubeadm init): use source: archive with an "
        "upstream release of 3.5.24 or newer, or list ExternalEtcdVersion in "
        "paas:kubernetes:ignore_preflight_errors to run on it anyway"
    ]
    topology["kubernetes"]["ignore_preflight_errors"] = ["ExternalEtcdVersion"]
    assert topology_utils.validate(topology) == []


@pytest.mark.parametrize(
    ("version", "refused"), [("3.5.16", True), ("3.5.23", True), ("3.5.24", False)]
)
def test_an_archive_older_than_kubeadms_minimum_is_refused_unless_the_check_is_ignored(
    topology_utils, lab_topology, version, refused
):
    lab_topology["kubernetes"]["ignore_preflight_errors"] = []
    lab_topology["etcd"] = {
        "source": "archive",
        "archive": {"version": version, "url": "https://e.test/e.tgz", "sha256": DIGEST},
    }

    errors = topology_utils.validate(lab_topology)

    assert [error.field for error in errors] == (["paas:etcd:archive:version"] if refused else [])
    if refused:
        assert errors[0].message.startswith(f"{version} is older than kubeadm 1.34 accepts")
        assert "pin a release of 3.5.24 or newer" in errors[0].message


def test_a_fencing_command_must_be_an_absolute_argv_that_names_the_node(
    topology_utils, lab_topology
):
    lab_topology["dr"]["fencing"] = {"command": ["openstack", "server", "stop", "{server}"]}

    assert [str(error) for error in topology_utils.validate(lab_topology)] == [
        "paas:dr:fencing:command: 'openstack' must be an absolute path: the master runs it "
        "without a shell",
        "paas:dr:fencing:command[3]: '{server}': only {node} and {address} are filled in "
        "('server')",
        "paas:dr:fencing:command: names no node: it must hold {node} or {address}, or every "
        "fencing would power off the same machine",
    ]
    lab_topology["dr"]["fencing"] = {"command": ["/usr/bin/openstack", "server", "stop", "{node}"]}
    assert topology_utils.validate(lab_topology) == []
    assert topology_utils.dr(lab_topology)["fencing"]["command"][-1] == "{node}"


def test_with_defaults_fills_every_optional_key(topology_utils, lab_topology):
    del lab_topology["cluster"]["domain"]
    del lab_topology["master"]["id"]
    del lab_topology["pki"]
    del lab_topology["versions"]
    del lab_topology["kubernetes"]
    del lab_topology["dr"]
    # Every default but one is valid: Debian's etcd, on Kubernetes 1.34, is refused.
    assert [error.field for error in topology_utils.validate(lab_topology)] == ["paas:etcd:source"]

    filled = topology_utils.with_defaults(lab_topology)

    assert filled["cluster"] == {"name": "paas-lab", "domain": "paas.internal"}
    assert filled["master"] == {"id": "paas-master", "address": "198.18.1.1"}
    assert filled["versions"] == {"etcd": "3.5", "kubernetes": "1.34.2"}
    assert filled["pki"] == {
        "dir": "/etc/paas/pki",
        "ca_dir": "/etc/paas/ca",
        "key_type": "ec",
        "ca_days": 3650,
        "leaf_days": 365,
        "renew_days": 30,
        "renew_check_minutes": 60,
    }
    assert filled["etcd"] == {
        "source": "package",
        "archive": {},
        "data_dir": "/var/lib/paas-etcd",
        "snapshot_dir": "/var/lib/paas-etcd-snapshots",
        "config_dir": "/etc/paas/etcd",
        "heartbeat_ms": 100,
        "election_ms": 1000,
        "metrics_port": 2381,
        "quota_bytes": 2147483648,
    }
    assert filled["gateway"] == {
        "vrrp_version": 3,
        "advert_ms": 100,
        "api_port": 6443,
        "ingress": {"http_port": 30080, "https_port": 30443},
        "check_interval_ms": 300,
        "check_fall": 3,
        "check_rise": 2,
        "stats_port": 8404,
        "sync_port": 3780,
    }
    assert filled["dr"] == {
        "snapshot_interval_minutes": 5,
        "snapshot_retention": 48,
        "offsite_retention": 288,
        "receive_dir": "/var/lib/paas/dr/snapshots",
        "drill_interval_minutes": 60,
        "beacon_interval_seconds": 5,
        "heartbeat_seconds": 60,
        "unhealthy_reports_before_action": 3,
        "lock_expiry_minutes": 15,
        "fencing": {"command": [], "timeout_seconds": 120},
    }
    assert filled["time"] == {"ntp_servers": []}
    assert filled["kubernetes"] == {
        "pod_subnet": "10.244.0.0/16",
        "service_subnet": "10.96.0.0/12",
        "dns_domain": "cluster.local",
        "worker_batch": 10,
        "token_ttl_minutes": 15,
        "sandbox_image": "registry.k8s.io/pause:3.10",
        "repository": {
            "url": "https://pkgs.k8s.io/core:/stable:/v{line}/deb/",
            "key_url": "https://pkgs.k8s.io/core:/stable:/v{line}/deb/Release.key",
        },
        "ignore_preflight_errors": [],
    }
    assert filled["nodes"] == lab_topology["nodes"]


def test_with_defaults_keeps_given_values_and_leaves_its_input_alone(topology_utils, lab_topology):
    original = copy.deepcopy(lab_topology)

    filled = topology_utils.with_defaults(lab_topology)

    assert filled["cluster"]["domain"] == "paas.lab"
    assert filled["pki"]["ca_dir"] == "/var/lib/paas-lab/ca"
    assert filled["pki"]["dir"] == "/etc/paas/pki"
    assert lab_topology == original


def test_with_defaults_gives_each_topology_its_own_default_lists(topology_utils, lab_topology):
    first = topology_utils.with_defaults(lab_topology)
    first["time"]["ntp_servers"].append("ntp.example")

    second = topology_utils.with_defaults(lab_topology)

    assert second["time"]["ntp_servers"] == []


@pytest.mark.parametrize(
    ("garbage", "ids"),
    [
        (None, []),
        ("nodes", []),
        (["gw1"], []),
        ({}, []),
        ({"nodes": None}, []),
        ({"nodes": "gw1"}, []),
        ({"nodes": {"id": "gw1"}}, []),
        ({"nodes": [None, "gw1", 3, ["gw2"]]}, []),
        ({"nodes": [{"roles": ["etcd"]}, {"id": 7}, {"id": None}, {"id": "etcd1"}]}, ["etcd1"]),
    ],
)
def test_node_ids_tolerates_a_malformed_topology(topology_utils, garbage, ids):
    assert topology_utils.node_ids(garbage) == ids


def test_node_ids_by_role_keep_pillar_order_and_skip_malformed_roles(topology_utils, lab_topology):
    assert topology_utils.node_ids(lab_topology) == [
        "gw1",
        "gw2",
        "etcd1",
        "etcd2",
        "etcd3",
        "cp1",
        "cp2",
        "cp3",
        "worker1",
    ]
    assert topology_utils.node_ids(lab_topology, "etcd") == ["etcd1", "etcd2", "etcd3"]
    malformed = {"nodes": [{"id": "a", "roles": "etcd"}, {"id": "b", "roles": ["etcd"]}]}
    assert topology_utils.node_ids(malformed, "etcd") == ["b"]


@pytest.mark.parametrize("garbage", [None, "x", {}, {"master": None}, {"master": {"id": 3}}])
def test_master_id_falls_back_to_the_default_on_a_malformed_topology(topology_utils, garbage):
    assert topology_utils.master_id(garbage) == "paas-master"


def test_node_finds_a_node_by_id_and_none_for_an_unknown_id(topology_utils, lab_topology):
    assert topology_utils.node(lab_topology, "cp2") == {
        "id": "cp2",
        "roles": ["control-plane"],
        "addresses": {"private": "198.18.1.32"},
    }
    assert topology_utils.node(lab_topology, "cp9") is None


def test_nodes_filter_by_role_in_pillar_order(topology_utils, lab_topology):
    gateways = topology_utils.nodes(lab_topology, "gateway")

    assert [entry["id"] for entry in gateways] == ["gw1", "gw2"]
    assert topology_utils.nodes(lab_topology) == lab_topology["nodes"]


def test_hosts_name_every_node_the_master_and_the_vips(topology_utils, lab_topology):
    entries = topology_utils.hosts(topology_utils.with_defaults(lab_topology))

    by_address = dict(entries)
    assert len(by_address) == len(entries), "an address appears twice"
    for entry in lab_topology["nodes"]:
        node_id = entry["id"]
        assert by_address[entry["addresses"]["private"]] == [f"{node_id}.paas.lab", node_id]
    assert by_address["198.18.0.11"] == ["gw1-public.paas.lab", "gw1-public"]
    assert by_address["198.18.0.12"] == ["gw2-public.paas.lab", "gw2-public"]
    assert by_address["198.18.1.1"] == ["salt.paas.lab", "salt"]
    assert by_address["198.18.0.10"] == ["paas-lab-public-vip.paas.lab", "paas-lab-public-vip"]
    assert by_address["198.18.1.10"] == [
        "paas-lab-private-vip.paas.lab",
        "paas-lab-private-vip",
    ]
    # Nine private addresses, two gateway public ones, the master, two VIPs.
    assert len(entries) == 9 + 2 + 1 + 2


def test_gateway_settings_pair_each_gateway_with_its_peer(topology_utils, lab_topology):
    first = topology_utils.gateway(lab_topology, "gw1")
    second = topology_utils.gateway(lab_topology, "gw2")

    # The first gateway in pillar order wins the first election.
    assert (first["priority"], second["priority"]) == (150, 100)
    assert (first["peer"], second["peer"]) == ("gw2", "gw1")
    assert first["networks"]["public"] == {
        "cidr": "198.18.0.0/24",
        "prefix": 24,
        "vip": "198.18.0.10",
        "router_id": 51,
        "address": "198.18.0.11",
        "peer_address": "198.18.0.12",
    }
    assert second["networks"]["private"]["address"] == "198.18.1.12"
    assert second["networks"]["private"]["peer_address"] == "198.18.1.11"
    assert first["advert_int"] == "0.1"
    assert [node["id"] for node in first["control_planes"]] == ["cp1", "cp2", "cp3"]
    assert first["workers"] == [{"id": "worker1", "address": "198.18.1.41"}]


def test_gateway_settings_follow_the_vrrp_timers(topology_utils, lab_topology):
    lab_topology["gateway"] = {"vrrp_version": 2, "advert_ms": 1000}

    settings = topology_utils.gateway(lab_topology, "gw1")

    assert (settings["vrrp_version"], settings["advert_int"]) == (2, "1")


def test_gateway_settings_refuse_a_node_that_is_not_a_gateway(topology_utils, lab_topology):
    with pytest.raises(ValueError, match="etcd1 is not a gateway of the topology"):
        topology_utils.gateway(lab_topology, "etcd1")


def test_formula_defaults_are_exactly_what_the_lookup_schema_lets_pillar_override(
    topology_utils, repo_root
):
    def schema_keys(field, prefix: str = "") -> set[str]:
        found = set()
        for key, child in field.fields.items():
            if child.kind == "mapping":
                found |= schema_keys(child, f"{prefix}{key}:")
            else:
                found.add(f"{prefix}{key}")
        return found

    def default_keys(mapping: dict, field, prefix: str = "") -> set[str]:
        found = set()
        for key, value in mapping.items():
            child = field.fields.get(key)
            if child is not None and child.kind == "mapping":
                found |= default_keys(value, child, f"{prefix}{key}:")
            else:
                found.add(f"{prefix}{key}")
        return found

    for role, field in topology_utils.SCHEMA.fields["lookup"].fields.items():
        defaults = yaml.safe_load((repo_root / "salt" / role / "defaults.yaml").read_text())[role]
        assert default_keys(defaults, field) == schema_keys(field), role


def test_etcd_view_gives_every_member_its_urls_and_the_cluster_its_settings(
    topology_utils, lab_topology
):
    cluster = topology_utils.etcd(lab_topology)

    assert cluster["members"] == {
        f"etcd{n}": {
            "address": f"198.18.1.2{n}",
            "client_url": f"https://198.18.1.2{n}:2379",
            "peer_url": f"https://198.18.1.2{n}:2380",
        }
        for n in (1, 2, 3)
    }
    assert cluster["initial_cluster"] == (
        "etcd1=https://198.18.1.21:2380,etcd2=https://198.18.1.22:2380,"
        "etcd3=https://198.18.1.23:2380"
    )
    assert (cluster["service"], cluster["user"], cluster["bin_dir"]) == (
        "paas-etcd",
        "etcd",
        "/usr/bin",
    )
    assert cluster["unit_file"] == "/etc/systemd/system/paas-etcd.service"
    assert (cluster["env_file"], cluster["membership_env"]) == (
        "/etc/paas/etcd/etcd.env",
        "/etc/paas/etcd/membership.env",
    )
    assert cluster["metrics_url"] == "http://127.0.0.1:2381"
    assert cluster["token"] == "paas-paas-lab"


def test_etcd_member_view_names_its_own_urls_and_certificates(topology_utils, lab_topology):
    lab_topology["pki"]["dir"] = "/srv/pki"

    member = topology_utils.etcd_member(lab_topology, "etcd2")

    assert (member["name"], member["address"]) == ("etcd2", "198.18.1.22")
    assert (member["client_url"], member["peer_url"]) == (
        "https://198.18.1.22:2379",
        "https://198.18.1.22:2380",
    )
    assert member["certificates"] == {
        "ca": "/srv/pki/etcd-ca.crt",
        "server": {"cert": "/srv/pki/etcd-server.crt", "key": "/srv/pki/etcd-server.key"},
        "peer": {"cert": "/srv/pki/etcd-peer.crt", "key": "/srv/pki/etcd-peer.key"},
    }
    with pytest.raises(ValueError, match="cp1 is not an etcd node of the topology"):
        topology_utils.etcd_member(lab_topology, "cp1")


def test_etcd_view_follows_an_archive_source(topology_utils, lab_topology):
    lab_topology["etcd"] = {
        "source": "archive",
        "archive": {"version": "3.5.24", "url": "https://example/e.tgz", "sha256": "0" * 64},
    }

    assert topology_utils.etcd(lab_topology)["bin_dir"] == "/opt/etcd/etcd-v3.5.24-linux-amd64"


def test_dr_view_gives_the_timers_the_master_directories_and_the_cluster(
    topology_utils, lab_topology
):
    lab_topology["dr"] = {"receive_dir": "/srv/dr/snapshots", "unhealthy_reports_before_action": 5}

    dr = topology_utils.dr(lab_topology)

    assert (dr["receive_dir"], dr["state_dir"]) == ("/srv/dr/snapshots", "/srv/dr/state")
    assert (dr["unhealthy_reports_before_action"], dr["snapshot_interval_minutes"]) == (5, 5)
    assert dr["master_id"] == "paas-master"
    assert list(dr["etcd"]["members"]) == ["etcd1", "etcd2", "etcd3"]


def test_certificate_profiles_follow_roles_and_name_their_paths(topology_utils, lab_topology):
    assert topology_utils.certificate_profiles(lab_topology, "etcd1") == [
        "etcd-server",
        "etcd-peer",
        "etcd-healthcheck-client",
    ]
    assert topology_utils.certificate_profiles(lab_topology, "cp1") == [
        "kube-apiserver-etcd-client"
    ]
    assert topology_utils.certificate_profiles(lab_topology, "paas-master") == ["etcd-admin-client"]
    assert topology_utils.certificate_profiles(lab_topology, "gw1") == []
    server = topology_utils.certificate_profile(lab_topology, "etcd1", "etcd-server")
    assert server["subjectAltName"] == [
        "IP:198.18.1.21",
        "DNS:etcd1",
        "DNS:etcd1.paas.lab",
        "IP:127.0.0.1",
        "DNS:localhost",
    ]
    assert (server["owner"], server["extendedKeyUsage"]) == ("etcd", "serverAuth, clientAuth")
    assert (server["cert"], server["key"], server["ca"]) == (
        "/etc/paas/pki/etcd-server.crt",
        "/etc/paas/pki/etcd-server.key",
        "/etc/paas/pki/etcd-ca.crt",
    )
    with pytest.raises(ValueError, match="cp1 may not have a etcd-peer certificate"):
        topology_utils.certificate_profile(lab_topology, "cp1", "etcd-peer")


def test_common_view_routes_private_nodes_through_the_private_vip(topology_utils, lab_topology):
    worker = topology_utils.common(lab_topology, "worker1")
    gateway = topology_utils.common(lab_topology, "gw1")

    assert worker["default_route"] == "198.18.1.10"
    assert gateway["default_route"] is None
    assert worker["hosts"] == [
        [address, names] for address, names in topology_utils.hosts(lab_topology)
    ]
    with pytest.raises(ValueError, match="paas-master is not a node of the paas topology"):
        topology_utils.common(lab_topology, "paas-master")


def test_kubernetes_view_orders_the_control_planes_and_names_the_external_etcd(
    topology_utils, lab_topology
):
    cluster = topology_utils.kubernetes(lab_topology)

    assert (cluster["version"], cluster["line"], cluster["package_version"]) == (
        "1.34.2",
        "1.34",
        "1.34.2-*",
    )
    assert cluster["control_planes"] == [
        {"id": f"cp{n}", "address": f"198.18.1.3{n}"} for n in (1, 2, 3)
    ]
    assert cluster["first_control_plane"] == "cp1"
    assert cluster["workers"] == [{"id": "worker1", "address": "198.18.1.41"}]
    assert cluster["endpoint"] == {"host": "198.18.1.10", "port": 6443}
    assert cluster["vips"] == {"private": "198.18.1.10", "public": "198.18.0.10"}
    assert (cluster["pod_subnet"], cluster["service_subnet"], cluster["dns_domain"]) == (
        "198.19.0.0/17",
        "198.19.128.0/20",
        "cluster.local",
    )
    assert (cluster["worker_batch"], cluster["token_ttl_minutes"]) == (10, 15)
    assert cluster["ignore_preflight_errors"] == ["ExternalEtcdVersion"]
    assert cluster["min_etcd_version"] == "3.5.24"
    assert cluster["etcd"] == {
        "endpoints": [f"https://198.18.1.2{n}:2379" for n in (1, 2, 3)],
        "ca": "/etc/paas/pki/etcd-ca.crt",
        "cert": "/etc/paas/pki/kube-apiserver-etcd-client.crt",
        "key": "/etc/paas/pki/kube-apiserver-etcd-client.key",
    }
    assert (cluster["config_file"], cluster["admin_kubeconfig"], cluster["pki_dir"]) == (
        "/etc/paas/kubernetes/kubeadm.yaml",
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/pki",
    )
    assert cluster["repository"] == {
        "url": "http://198.18.1.1:8081/core:/stable:/v1.34/deb/",
        "key_url": "http://198.18.1.1:8081/core:/stable:/v1.34/deb/Release.key",
    }


def test_kubernetes_view_puts_the_line_into_the_default_repository(topology_utils, lab_topology):
    del lab_topology["kubernetes"]["repository"]

    assert topology_utils.kubernetes(lab_topology)["repository"] == {
        "url": "https://pkgs.k8s.io/core:/stable:/v1.34/deb/",
        "key_url": "https://pkgs.k8s.io/core:/stable:/v1.34/deb/Release.key",
    }


def test_kubernetes_view_gives_the_apiserver_the_vips_gateways_and_cluster_names(
    topology_utils, lab_topology
):
    sans = topology_utils.kubernetes(lab_topology)["cert_sans"]

    assert sans[:4] == ["198.18.1.10", "198.18.0.10", "198.18.0.11", "198.18.0.12"]
    assert {"paas-lab", "paas-lab.paas.lab", "api.paas.lab", "paas-lab-private-vip"} <= set(sans)
    assert len(sans) == len(set(sans))


def test_kubernetes_node_view_says_who_inits_and_who_joins(topology_utils, lab_topology):
    first = topology_utils.kubernetes_node(lab_topology, "cp1")
    second = topology_utils.kubernetes_node(lab_topology, "cp2")
    worker = topology_utils.kubernetes_node(lab_topology, "worker1")

    assert (first["id"], first["address"], first["role"], first["first"]) == (
        "cp1",
        "198.18.1.31",
        "control-plane",
        True,
    )
    assert (second["role"], second["first"]) == ("control-plane", False)
    assert (worker["address"], worker["role"], worker["first"]) == ("198.18.1.41", "worker", False)
    assert worker["endpoint"] == first["endpoint"]
    with pytest.raises(ValueError, match="etcd1 is not a Kubernetes node of the topology"):
        topology_utils.kubernetes_node(lab_topology, "etcd1")


def test_a_control_plane_that_is_also_a_worker_joins_once_as_a_control_plane(
    topology_utils, lab_topology
):
    set_("nodes.cp3.roles", ["control-plane", "worker"])(lab_topology)

    cluster = topology_utils.kubernetes(lab_topology)

    assert [entry["id"] for entry in cluster["workers"]] == ["worker1"]
    cp3 = topology_utils.kubernetes_node(lab_topology, "cp3")
    assert (cp3["role"], cp3["roles"]) == ("control-plane", ["control-plane", "worker"])
