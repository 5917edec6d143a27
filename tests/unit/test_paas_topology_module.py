"""
The ``paas_topology`` execution module and state module under Salt's loader dunders.

salt-factories' loader mock gives both modules the dunders a minion would: the pillar,
the real ``_utils/paas_topology.py`` as ``__utils__``, and the execution module as the
state module's ``__salt__``.
"""

from __future__ import annotations

import copy

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.topologies import two_mistakes

UTILS_FUNCTIONS = (
    "validate",
    "with_defaults",
    "roles",
    "nodes",
    "node_ids",
    "master_id",
    "node",
    "hosts",
    "gateway",
    "common",
    "etcd",
    "etcd_member",
)


@pytest.fixture(scope="module")
def execution_module(import_repo_module):
    return import_repo_module("_modules/paas_topology.py", "paas_topology_execution_module")


@pytest.fixture(scope="module")
def state_module(import_repo_module):
    return import_repo_module("_states/paas_topology.py", "paas_topology_state_module")


@pytest.fixture
def pillar(lab_topology):
    """This minion's pillar; a test changes it in place before it calls the module."""
    return {"paas": lab_topology}


@pytest.fixture
def opts():
    return {"id": "etcd2", "test": False}


@pytest.fixture
def grains():
    """gw1's interfaces: the public side first, and a VIP it holds now."""
    return {
        "ip4_interfaces": {
            "lo": ["127.0.0.1"],
            "eth0": ["198.18.0.11", "198.18.0.10"],
            "eth1": ["198.18.1.11"],
        }
    }


@pytest.fixture
def configure_loader_modules(
    execution_module, state_module, topology_utils, *, pillar, opts, grains
):
    utils = {f"paas_topology.{name}": getattr(topology_utils, name) for name in UTILS_FUNCTIONS}
    salt = {
        "paas_topology.validate": execution_module.validate,
        "paas_topology.node_ids": execution_module.node_ids,
    }
    return {
        execution_module: {
            "__pillar__": pillar,
            "__utils__": utils,
            "__opts__": opts,
            "__grains__": grains,
        },
        state_module: {"__pillar__": pillar, "__salt__": salt, "__opts__": opts},
    }


@pytest.fixture(params=[False, True], ids=["for-real", "test-mode"])
def testmode(request, opts):
    opts["test"] = request.param
    return request.param


def test_module_loads_only_with_its_utils(execution_module):
    assert execution_module.__virtual__() == "paas_topology"
    execution_module.__utils__.clear()
    loaded, reason = execution_module.__virtual__()
    assert loaded is False
    assert "utils module is not synced" in reason


def test_state_module_loads_only_with_the_execution_module(state_module):
    assert state_module.__virtual__() == "paas_topology"
    state_module.__salt__.clear()
    loaded, reason = state_module.__virtual__()
    assert loaded is False
    assert "execution module is not loaded" in reason


def test_validate_a_good_pillar_gives_no_error(execution_module):
    assert execution_module.validate() == []


def test_validate_without_paas_key_says_the_pillar_has_none(execution_module, pillar):
    pillar.clear()
    pillar["other"] = {"key": "value"}

    assert execution_module.validate() == [
        "paas: the pillar has no paas key (is pillar/top.sls assigning it?)"
    ]


def test_validate_points_at_a_pillar_that_did_not_render(execution_module, pillar):
    pillar.clear()
    pillar["_errors"] = ["Rendering SLS 'paas' failed: mapping values are not allowed here"]

    assert execution_module.validate() == [
        "paas: the pillar did not render: Rendering SLS 'paas' failed: "
        "mapping values are not allowed here"
    ]


def test_validate_names_node_and_field_of_every_error(execution_module, pillar):
    expected = two_mistakes(pillar["paas"])

    assert execution_module.validate() == expected


def test_validate_checks_a_given_topology_instead_of_the_pillar(execution_module, pillar):
    other = copy.deepcopy(pillar["paas"])
    expected = two_mistakes(other)

    assert execution_module.validate(topology=other) == expected
    assert execution_module.validate() == []


def test_get_refuses_a_bad_topology_listing_every_error(execution_module, pillar):
    expected = two_mistakes(pillar["paas"])

    with pytest.raises(CommandExecutionError) as raised:
        execution_module.get()

    message = str(raised.value)
    assert message.startswith("the paas topology is invalid:")
    for error in expected:
        assert error in message


def test_get_refuses_a_pillar_without_paas_key(execution_module, pillar):
    del pillar["paas"]

    with pytest.raises(CommandExecutionError, match="the pillar has no paas key"):
        execution_module.get()


def test_get_gives_the_topology_with_defaults(execution_module, pillar):
    topology = execution_module.get()

    assert topology["versions"] == {"etcd": "3.5", "kubernetes": "1.34.2"}
    assert topology["pki"]["ca_dir"] == "/var/lib/paas-lab/ca"
    assert "etcd" not in pillar["paas"]["versions"], "get() must not write defaults into the pillar"


def test_node_is_none_for_an_id_the_topology_does_not_hold(execution_module):
    assert execution_module.node("etcd9") is None
    assert execution_module.roles("etcd9") == []


def test_node_defaults_to_this_minion(execution_module):
    assert execution_module.node() == {
        "id": "etcd2",
        "roles": ["etcd"],
        "addresses": {"private": "198.18.1.22"},
    }
    assert execution_module.roles() == ["etcd"]
    assert execution_module.node("gw1")["addresses"]["public"] == "198.18.0.11"


def test_node_is_none_for_a_minion_that_is_not_a_node(execution_module, opts):
    opts["id"] = "paas-master"

    assert execution_module.node() is None


def test_node_refuses_a_bad_topology(execution_module, pillar):
    two_mistakes(pillar["paas"])

    with pytest.raises(CommandExecutionError, match="the paas topology is invalid"):
        execution_module.node("etcd1")


def test_nodes_by_role_and_refusal_of_an_unknown_role(execution_module):
    assert [entry["id"] for entry in execution_module.nodes("gateway")] == ["gw1", "gw2"]
    assert len(execution_module.nodes()) == 9
    with pytest.raises(SaltInvocationError, match="unknown role 'database'"):
        execution_module.nodes("database")


def test_node_ids_and_master_id_tolerate_a_malformed_pillar(execution_module, pillar):
    pillar["paas"]["nodes"] = [{"id": "gw1", "roles": ["gateway"]}, "etcd1", {"roles": []}]
    pillar["paas"]["master"] = "paas-master"

    assert execution_module.node_ids() == ["gw1"]
    assert execution_module.node_ids("gateway") == ["gw1"]
    assert execution_module.master_id() == "paas-master"
    pillar.clear()
    assert execution_module.node_ids() == []


def test_hosts_are_address_and_names_pairs(execution_module):
    hosts = execution_module.hosts()

    assert ["198.18.1.22", ["etcd2.paas.lab", "etcd2"]] in hosts
    assert ["198.18.1.1", ["salt.paas.lab", "salt"]] in hosts
    assert all(isinstance(entry, list) and len(entry) == 2 for entry in hosts)


def test_valid_state_fails_with_every_error_and_changes_nothing(state_module, pillar, testmode):
    expected = two_mistakes(pillar["paas"])

    ret = state_module.valid("paas-cluster-topology-valid")

    assert ret["name"] == "paas-cluster-topology-valid"
    assert ret["result"] is False
    assert ret["changes"] == {}
    assert ret["comment"].startswith("The paas topology is invalid; nothing was changed:")
    for error in expected:
        assert error in ret["comment"].splitlines()


def test_valid_state_fails_when_the_pillar_has_no_paas_key(state_module, pillar, testmode):
    pillar.clear()

    ret = state_module.valid("topology")

    assert ret["result"] is False
    assert ret["changes"] == {}
    assert "the pillar has no paas key" in ret["comment"]


def test_valid_state_succeeds_on_a_good_topology(state_module, testmode):
    ret = state_module.valid("paas-cluster-topology-valid")

    assert ret == {
        "name": "paas-cluster-topology-valid",
        "result": True,
        "changes": {},
        "comment": "The paas topology is valid (9 nodes).",
    }


def test_gateway_names_the_interface_of_each_address(execution_module, opts):
    opts["id"] = "gw1"

    settings = execution_module.gateway()

    assert settings["networks"]["public"]["interface"] == "eth0"
    assert settings["networks"]["private"]["interface"] == "eth1"
    assert settings["peer"] == "gw2"


def test_gateway_refuses_a_node_without_the_role(execution_module):
    with pytest.raises(CommandExecutionError, match="etcd2 is not a gateway of the topology"):
        execution_module.gateway()


def test_gateway_refuses_a_machine_whose_address_is_on_no_interface(execution_module, opts, grains):
    opts["id"] = "gw1"
    del grains["ip4_interfaces"]["eth1"]

    with pytest.raises(CommandExecutionError, match="no interface holds its private address"):
        execution_module.gateway()


def test_the_topology_is_validated_once_while_the_pillar_stays_the_same(
    execution_module, pillar, topology_utils
):
    calls = []

    def counting_validate(topology):
        calls.append(topology)
        return topology_utils.validate(topology)

    execution_module.__utils__["paas_topology.validate"] = counting_validate
    first = execution_module.get()
    first["cluster"]["name"] = "changed-by-a-caller"
    assert execution_module.get()["cluster"]["name"] == "paas-lab"
    execution_module.etcd_member("etcd2")
    assert len(calls) == 1

    pillar["paas"]["cluster"]["name"] = "renamed"
    assert execution_module.get()["cluster"]["name"] == "renamed"
    assert len(calls) == 2
    two_mistakes(pillar["paas"])
    with pytest.raises(CommandExecutionError, match="the paas topology is invalid"):
        execution_module.get()


def test_views_of_a_node_default_to_this_minion_and_refuse_a_node_without_the_role(
    execution_module, opts
):
    assert execution_module.etcd_member()["client_url"] == "https://198.18.1.22:2379"
    assert execution_module.common()["default_route"] == "198.18.1.10"
    opts["id"] = "cp1"
    with pytest.raises(CommandExecutionError, match="cp1 is not an etcd node of the topology"):
        execution_module.etcd_member()
    opts["id"] = "paas-master"
    with pytest.raises(CommandExecutionError, match="paas-master is not a node of the paas"):
        execution_module.common()
