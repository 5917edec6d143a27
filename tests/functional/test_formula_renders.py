"""
Every role of the formula renders for every node of both shipped topologies: the
operator's documented example (``pillar/paas.sls``, which ``pillar.example`` is) and the
lab's (``lab/pillar/paas.sls``). Each node is a minion of its own (salt-factories'
``Loaders``, ``file_roots`` on the repository's ``salt/``, the pillar file itself read
through a ``top.sls``), and ``state.show_sls`` renders each role it has, with the facts
the roles must take from the topology's views checked in what they rendered. Nothing is
applied here: the roles that can run on this host are applied in the other tests.
"""

from __future__ import annotations

import itertools

import pytest
import salt.config
import yaml
from saltfactories.utils.functional import Loaders

from tests.functional.etcd_hosts import REPO

TOPOLOGIES = {"operator-example": "pillar/paas.sls", "lab": "lab/pillar/paas.sls"}
ORCHESTRATIONS = ("orch.cluster", "orch.gateway", "orch.etcd")
CLUSTER_STEPS = [
    "paas-cluster-topology-valid",
    "paas-cluster-sync-modules",
    "paas-cluster-common",
    "paas-cluster-gateway-first",
    "paas-cluster-gateways",
    "paas-cluster-pki-ca",
    "paas-cluster-pki",
    "paas-etcd-first",
    "paas-etcd-members",
    "paas-etcd-whole",
]
UNIT_CHECKER = "/usr/local/libexec/paas-verify-unit"


def _topology(name: str) -> dict:
    return yaml.safe_load((REPO / TOPOLOGIES[name]).read_text())["paas"]


def _roles_sls(topology: dict, node_id: str) -> list[str]:
    """The roles a node is converged with, as orch.cluster targets them."""
    if node_id == topology["master"]["id"]:
        return ["pki.ca", "pki", *ORCHESTRATIONS]
    roles = next(node["roles"] for node in topology["nodes"] if node["id"] == node_id)
    sls = ["common"]
    if "gateway" in roles:
        sls.append("gateway")
    if "etcd" in roles or "control-plane" in roles:
        sls.append("pki")
    if "etcd" in roles:
        sls += ["etcd", "etcd.prune"]
    return sls


def _minion_ids(topology: dict) -> list[str]:
    return [node["id"] for node in topology["nodes"]] + [topology["master"]["id"]]


CASES = [
    pytest.param(name, node_id, id=f"{name}-{node_id}")
    for name in TOPOLOGIES
    for node_id in _minion_ids(_topology(name))
]


class Formula:
    """The minions of each topology, made when first asked for, and what they render."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.minions: dict[tuple[str, str], Loaders] = {}
        self.shown: dict[tuple[str, str, str], dict] = {}

    def _minion(self, topology_name: str, node_id: str) -> Loaders:
        key = (topology_name, node_id)
        if key in self.minions:
            return self.minions[key]
        pillar_dir = self.tmp / topology_name / "pillar"
        if not pillar_dir.exists():
            pillar_dir.mkdir(parents=True)
            (pillar_dir / "top.sls").write_text("base:\n  '*':\n    - paas\n")
            (pillar_dir / "paas.sls").symlink_to(REPO / TOPOLOGIES[topology_name])
        opts = salt.config.minion_config(None)
        opts.update(
            id=node_id,
            file_client="local",
            cachedir=str(self.tmp / topology_name / node_id / "cache"),
            file_roots={"base": [str(REPO / "salt")]},
            pillar_roots={"base": [str(pillar_dir)]},
            module_dirs=[str(REPO / "_modules")],
            states_dirs=[str(REPO / "_states")],
            utils_dirs=[str(REPO / "_utils")],
        )
        minion = Loaders(
            opts,
            loaded_base_name=f"salt.loaded.render_{topology_name.replace('-', '_')}_"
            f"{node_id.replace('-', '_')}",
        )
        topology = _topology(topology_name)
        node = next((entry for entry in topology["nodes"] if entry["id"] == node_id), None)
        if node and "gateway" in node["roles"]:
            # A gateway's addresses as its interfaces hold them: eth0 public, eth1 private.
            minion.opts["grains"]["ip4_interfaces"] = {
                "lo": ["127.0.0.1"],
                "eth0": [node["addresses"]["public"]],
                "eth1": [node["addresses"]["private"]],
            }
        self.minions[key] = minion
        return minion

    def show(self, topology_name: str, node_id: str, sls: str) -> dict:
        """``state.show_sls sls`` on the node: each state's arguments and function, by id."""
        key = (topology_name, node_id, sls)
        if key not in self.shown:
            shown = self._minion(topology_name, node_id).modules.state.show_sls(sls)
            assert isinstance(shown, dict), f"{sls} did not render on {node_id}: {shown}"
            self.shown[key] = {state_id: _state(body) for state_id, body in shown.items()}
        return self.shown[key]


def _state(body: dict) -> dict:
    """A rendered state as ``{"function": "file.managed", "args": {...}, "order": ...}``."""
    module = next(key for key in body if not key.startswith("__"))
    args, function = {}, None
    for item in body[module]:
        if isinstance(item, dict):
            args.update(item)
        else:
            function = item
    order = args.pop("order")
    return {
        "function": f"{module}.{function}",
        "args": args,
        "order": order,
        "sls": body["__sls__"],
    }


@pytest.fixture(scope="module")
def formula(tmp_path_factory) -> Formula:
    return Formula(tmp_path_factory.mktemp("formula"))


@pytest.mark.parametrize(("topology_name", "node_id"), CASES)
def test_every_role_of_every_node_renders(formula, topology_name, node_id):
    topology = _topology(topology_name)
    for sls in _roles_sls(topology, node_id):
        shown = formula.show(topology_name, node_id, sls)
        assert shown, f"{sls} rendered no state on {node_id}"


@pytest.mark.parametrize("topology_name", TOPOLOGIES)
def test_common_names_each_node_and_routes_private_nodes_through_the_private_vip(
    formula, topology_name
):
    topology = _topology(topology_name)
    for node in topology["nodes"]:
        shown = formula.show(topology_name, node["id"], "common")
        assert shown["common-config-hostname-file"]["args"]["contents"] == node["id"]
        route_unit = shown.get("common-config-default-route-unit")
        if "public" in node["addresses"]:
            assert route_unit is None, f"{node['id']} is a gateway: its own public side"
        else:
            assert (
                f"via {topology['networks']['private']['vip']}\n"
                in (route_unit["args"]["contents"])
            )
            assert route_unit["args"]["check_cmd"] == (f"{UNIT_CHECKER} paas-default-route.service")


@pytest.mark.parametrize("topology_name", TOPOLOGIES)
def test_each_gateway_file_is_installed_through_its_checker(formula, topology_name):
    checkers = {
        "gateway-config-nftables": "nft --check --file",
        "gateway-config-haproxy": "haproxy -c -q -f",
        "gateway-config-notify": "sh -n",
        "gateway-config-keepalived-unit": f"{UNIT_CHECKER} keepalived.service.d/paas.conf",
        "gateway-config-keepalived": "keepalived --config-test --use-file",
        # conntrackd has no configuration checker.
        "gateway-config-conntrackd": None,
    }
    topology = _topology(topology_name)
    gateways = [node for node in topology["nodes"] if "gateway" in node["roles"]]
    for priority, node in zip((150, 100), gateways, strict=True):
        shown = formula.show(topology_name, node["id"], "gateway")
        for state_id, checker in checkers.items():
            assert shown[state_id]["args"].get("check_cmd") == checker, state_id
        settings = shown["gateway-config-keepalived"]["args"]["context"]["settings"]
        assert settings["priority"] == priority
        assert {name: network["interface"] for name, network in settings["networks"].items()} == {
            "public": "eth0",
            "private": "eth1",
        }


@pytest.mark.parametrize("topology_name", TOPOLOGIES)
def test_the_etcd_environment_names_each_members_own_urls_and_certificates(formula, topology_name):
    topology = _topology(topology_name)
    pki_dir = topology.get("pki", {}).get("dir", "/etc/paas/pki")
    for node in topology["nodes"]:
        if "etcd" not in node["roles"]:
            continue
        address = node["addresses"]["private"]
        shown = formula.show(topology_name, node["id"], "etcd")
        environment = shown["etcd-config-environment"]
        assert environment["args"]["source"] == "salt://etcd/files/etcd.env.jinja"
        member = environment["args"]["context"]["member"]
        assert member["name"] == node["id"]
        assert member["client_url"] == f"https://{address}:2379"
        assert member["peer_url"] == f"https://{address}:2380"
        assert member["certificates"] == {
            "ca": f"{pki_dir}/etcd-ca.crt",
            "server": {"cert": f"{pki_dir}/etcd-server.crt", "key": f"{pki_dir}/etcd-server.key"},
            "peer": {"cert": f"{pki_dir}/etcd-peer.crt", "key": f"{pki_dir}/etcd-peer.key"},
        }
        unit = shown["etcd-config-unit"]["args"]
        assert unit["context"]["member"] == member
        assert unit["check_cmd"] == f"{UNIT_CHECKER} paas-etcd.service"
        assert shown["etcd-service-member"]["function"] == "etcd_member.present"
        assert shown["etcd-service-member"]["args"]["name"] == node["id"]


def test_etcd_installs_from_the_source_the_topology_names(formula):
    # The lab's topology takes the distribution's package; the example pins an archive.
    lab = formula.show("lab", "etcd1", "etcd")
    assert lab["etcd-install-packages"]["args"]["pkgs"] == ["etcd-server", "etcd-client"]
    assert "etcd-install-archive" not in lab

    example = formula.show("operator-example", "etcd1", "etcd")
    archive = _topology("operator-example")["etcd"]["archive"]
    extracted = example["etcd-install-archive"]["args"]
    assert extracted["source"] == archive["url"]
    assert extracted["source_hash"] == f"sha256={archive['sha256']}"
    assert "etcd-install-packages" not in example


@pytest.mark.parametrize("topology_name", TOPOLOGIES)
def test_etcd_prune_keeps_the_members_of_the_topology(formula, topology_name):
    topology = _topology(topology_name)
    etcd_nodes = [node["id"] for node in topology["nodes"] if "etcd" in node["roles"]]
    shown = formula.show(topology_name, etcd_nodes[0], "etcd.prune")
    assert shown["etcd-prune-members"]["function"] == "etcd_member.pruned"
    assert shown["etcd-prune-members"]["args"]["name"] == f"paas-{topology['cluster']['name']}"
    assert shown["etcd-prune-cluster-healthy"]["args"]["voters"] == len(etcd_nodes)


@pytest.mark.parametrize("topology_name", TOPOLOGIES)
def test_pki_issues_each_node_the_profiles_of_its_roles(formula, topology_name):
    topology = _topology(topology_name)
    wanted = {
        "etcd": ["etcd-server", "etcd-peer", "etcd-healthcheck-client"],
        "control-plane": ["kube-apiserver-etcd-client"],
    }
    for node in topology["nodes"]:
        profiles = [profile for role in node["roles"] for profile in wanted.get(role, [])]
        if not profiles:
            continue
        shown = formula.show(topology_name, node["id"], "pki")
        issued = [
            state["args"]["name"]
            for state in shown.values()
            if state["function"] == "paas_pki.certificate"
        ]
        assert issued == profiles, node["id"]
    master = topology["master"]["id"]
    assert formula.show(topology_name, master, "pki") == {
        "pki-certificates-etcd-admin-client": {
            "function": "paas_pki.certificate",
            "args": {"name": "etcd-admin-client"},
            "order": 10000,
            "sls": "pki.certificates",
        }
    }
    assert formula.show(topology_name, master, "pki.ca")["pki-ca"]["function"] == (
        "paas_pki.ca_present"
    )


def _steps(shown: dict) -> list[str]:
    return sorted(shown, key=lambda state_id: shown[state_id]["order"])


def _requires(state: dict) -> list[str]:
    return list(state["args"].get("require", []))


@pytest.mark.parametrize("topology_name", TOPOLOGIES)
def test_orch_cluster_runs_the_layers_in_order_each_requiring_the_one_before(
    formula, topology_name
):
    topology = _topology(topology_name)
    shown = formula.show(topology_name, topology["master"]["id"], "orch.cluster")

    assert _steps(shown) == CLUSTER_STEPS
    assert _requires(shown[CLUSTER_STEPS[0]]) == []
    for before, step in itertools.pairwise(CLUSTER_STEPS):
        assert _requires(shown[step]) == [before], step
    for step in CLUSTER_STEPS:
        assert shown[step]["args"]["failhard"] is True, step

    ids = {
        role: [node["id"] for node in topology["nodes"] if role in node["roles"]]
        for role in ("gateway", "etcd")
    }
    targets = {step: shown[step]["args"].get("tgt") for step in CLUSTER_STEPS}
    assert targets["paas-cluster-gateway-first"] == ids["gateway"][0]
    assert targets["paas-cluster-gateways"] == ",".join(ids["gateway"][1:])
    assert targets["paas-etcd-first"] == ids["etcd"][0]
    assert targets["paas-etcd-members"] == ",".join(ids["etcd"][1:])
    assert shown["paas-etcd-members"]["args"]["batch"] == 1
    assert shown["paas-etcd-first"]["args"]["pillar"] == {"etcd_bootstrap": True}


@pytest.mark.parametrize(
    ("orchestration", "steps"),
    [
        ("orch.gateway", [*CLUSTER_STEPS[:2], *CLUSTER_STEPS[3:5]]),
        ("orch.etcd", [*CLUSTER_STEPS[:2], *CLUSTER_STEPS[5:]]),
    ],
)
@pytest.mark.parametrize("topology_name", TOPOLOGIES)
def test_one_layers_orchestration_runs_its_steps_in_order(
    formula, topology_name, orchestration, steps
):
    topology = _topology(topology_name)
    shown = formula.show(topology_name, topology["master"]["id"], orchestration)

    assert _steps(shown) == steps
    for before, step in itertools.pairwise(steps):
        assert _requires(shown[step]) == [before], step
