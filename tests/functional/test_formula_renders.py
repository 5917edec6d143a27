"""
Every role of the formula renders for every node of both shipped topologies: the
operator's documented example (``pillar/paas.sls``, which ``pillar.example`` is) and the
lab's (``lab/pillar/paas.sls``). Each node is a minion of its own (salt-factories'
``Loaders``, ``file_roots`` on the repository's ``salt/``, the pillar file itself read
through a ``top.sls``), and ``state.show_sls`` renders each role it has, with the facts
the roles must take from the topology's views checked in what they rendered. Nothing is
applied here: the roles that can run on this host are applied in the other tests. The
kubeadm configuration each Kubernetes node renders goes through its check_cmd
(salt/kubernetes/files/paas-kubeadm-validate) with the lab's kubeadm double as kubeadm.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import salt.config
import yaml
from saltfactories.utils.functional import Loaders

from tests.functional.etcd_hosts import REPO

TOPOLOGIES = {"operator-example": "pillar/paas.sls", "lab": "lab/pillar/paas.sls"}
ORCHESTRATIONS = ("orch.cluster", "orch.gateway", "orch.etcd", "orch.kubernetes")
CLUSTER_STEPS = [
    "paas-cluster-topology-valid",
    "paas-cluster-sync-modules",
    "paas-cluster-preflight",
    "paas-cluster-salt-python-installed",
    "paas-cluster-salt-python",
    "paas-cluster-common",
    "paas-cluster-gateway-first",
    "paas-cluster-gateways",
    "paas-cluster-pki-ca",
    "paas-cluster-pki",
    "paas-etcd-first",
    "paas-etcd-members",
    "paas-etcd-whole",
    "paas-kubernetes-nodes",
    "paas-kubernetes-init",
    "paas-kubernetes-control-planes",
    "paas-kubernetes-certificates",
    "paas-kubernetes-workers",
    "paas-kubernetes-verify",
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
    if "control-plane" in roles or "worker" in roles:
        sls.append("kubernetes")
        first = next(node["id"] for node in topology["nodes"] if "control-plane" in node["roles"])
        sls.append("kubernetes.init_cluster" if node_id == first else "kubernetes.join")
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
        for role in ("gateway", "etcd", "control-plane", "worker")
    }
    targets = {step: shown[step]["args"].get("tgt") for step in CLUSTER_STEPS}
    every_minion = [*(node["id"] for node in topology["nodes"]), topology["master"]["id"]]
    assert targets["paas-cluster-salt-python-installed"] == ",".join(every_minion)
    assert shown["paas-cluster-salt-python-installed"]["args"]["sls"] == "salt_python"
    assert shown["paas-cluster-salt-python"]["args"]["minions"] == every_minion
    assert targets["paas-cluster-gateway-first"] == ids["gateway"][0]
    assert targets["paas-cluster-gateways"] == ",".join(ids["gateway"][1:])
    assert targets["paas-etcd-first"] == ids["etcd"][0]
    assert targets["paas-etcd-members"] == ",".join(ids["etcd"][1:])
    assert shown["paas-etcd-members"]["args"]["batch"] == 1
    assert shown["paas-etcd-first"]["args"]["pillar"] == {"etcd_bootstrap": True}
    assert targets["paas-kubernetes-nodes"] == ",".join(ids["control-plane"] + ids["worker"])
    assert shown["paas-kubernetes-nodes"]["args"]["sls"] == "kubernetes"
    assert targets["paas-kubernetes-init"] == ids["control-plane"][0]
    # Certificates loaded one control plane at a time, each apiserver ready before the next.
    assert targets["paas-kubernetes-certificates"] == ",".join(ids["control-plane"])
    assert shown["paas-kubernetes-certificates"]["args"]["sls"] == "kubernetes.certificates"
    assert shown["paas-kubernetes-certificates"]["args"]["batch"] == 1


@pytest.mark.parametrize(
    ("orchestration", "steps"),
    [
        ("orch.gateway", [*CLUSTER_STEPS[:5], *CLUSTER_STEPS[6:8]]),
        ("orch.etcd", [*CLUSTER_STEPS[:5], *CLUSTER_STEPS[8:13]]),
        ("orch.kubernetes", [*CLUSTER_STEPS[:5], *CLUSTER_STEPS[8:10], *CLUSTER_STEPS[13:]]),
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


def _kubernetes_nodes(topology: dict) -> list[dict]:
    return [node for node in topology["nodes"] if {"control-plane", "worker"} & set(node["roles"])]


@pytest.mark.parametrize("topology_name", TOPOLOGIES)
def test_kubernetes_packages_come_pinned_and_held_from_the_signed_repository(
    formula, topology_name
):
    topology = _topology(topology_name)
    version = topology["versions"]["kubernetes"]
    line = ".".join(version.split(".")[:2])
    repository = topology.get("kubernetes", {}).get("repository", {})
    url = repository.get("url", "https://pkgs.k8s.io/core:/stable:/v{line}/deb/")
    key_url = repository.get("key_url", "https://pkgs.k8s.io/core:/stable:/v{line}/deb/Release.key")
    for node in _kubernetes_nodes(topology):
        shown = formula.show(topology_name, node["id"], "kubernetes")
        sources = shown["kubernetes-install-repository"]["args"]
        assert sources["name"] == "/etc/apt/sources.list.d/paas-kubernetes.list"
        assert (
            f"deb [signed-by=/etc/apt/keyrings/paas-kubernetes.gpg] {url.format(line=line)} /\n"
            in sources["contents"]
        )
        assert shown["kubernetes-install-repository-key"]["args"]["source"] == (
            key_url.format(line=line)
        )
        assert (
            "--output /etc/apt/keyrings/paas-kubernetes.gpg"
            in (shown["kubernetes-install-repository-keyring"]["args"]["name"])
        )
        pin = shown["kubernetes-install-pin"]["args"]
        assert pin["name"] == "/etc/apt/preferences.d/paas-kubernetes"
        assert pin["contents"].splitlines()[1:] == [
            "Package: kubeadm kubelet kubectl",
            f"Pin: version {version}-*",
            "Pin-Priority: 1001",
        ]
        packages = shown["kubernetes-install-kubernetes-packages"]["args"]
        assert packages["pkgs"] == [
            {"kubeadm": f"{version}-*"},
            {"kubelet": f"{version}-*"},
            {"kubectl": f"{version}-*"},
        ]
        assert packages["hold"] is True
        # The lab's image installs every distribution package a role lists: only those.
        distribution = shown["kubernetes-install-packages"]["args"]["pkgs"]
        assert not {"kubeadm", "kubelet", "kubectl"} & set(distribution)
        assert {"containerd", "runc", "gnupg"} <= set(distribution)
        assert shown["kubernetes-install-kubelet-enabled"]["function"] == "service.enabled"


@pytest.mark.parametrize("topology_name", TOPOLOGIES)
def test_containerd_runs_with_the_systemd_cgroup_driver_and_the_sandbox_image(
    formula, topology_name
):
    topology = _topology(topology_name)
    sandbox = topology.get("kubernetes", {}).get("sandbox_image", "registry.k8s.io/pause:3.10")
    for node in _kubernetes_nodes(topology):
        shown = formula.show(topology_name, node["id"], "kubernetes")
        config = shown["kubernetes-install-containerd-config"]["args"]
        assert config["name"] == "/etc/containerd/config.toml"
        assert "containerd --config" in config["check_cmd"]
        assert config["context"]["node"]["sandbox_image"] == sandbox
        template = (REPO / "salt/kubernetes/files/containerd-config.toml.jinja").read_text()
        assert "SystemdCgroup = true" in template
        assert 'sandbox_image = "{{ node.sandbox_image }}"' in template
        running = shown["kubernetes-install-containerd-running"]
        assert running["args"]["watch"] == [{"file": "kubernetes-install-containerd-config"}]
        sysctls = {
            state["args"]["name"]: state["args"]["value"]
            for state in shown.values()
            if state["function"] == "sysctl.present"
        }
        assert sysctls == {
            "net.ipv4.ip_forward": 1,
            "net.bridge.bridge-nf-call-iptables": 1,
            "net.bridge.bridge-nf-call-ip6tables": 1,
        }
        # Loaded, or built in (no /sys/module entry then): modprobe only when neither.
        assert shown["kubernetes-install-module-overlay"]["args"]["unless"] == (
            "test -d /sys/module/overlay || grep -qw overlay /proc/filesystems"
        )
        assert shown["kubernetes-install-module-br_netfilter"]["args"]["unless"] == (
            "test -d /sys/module/br_netfilter || test -d /proc/sys/net/bridge"
        )
        assert shown["kubernetes-install-modules-file"]["args"]["contents"].splitlines()[1:] == [
            "br_netfilter",
            "overlay",
        ]


@pytest.mark.parametrize("topology_name", TOPOLOGIES)
def test_each_kubernetes_node_gets_its_kubeadm_configuration_checked_by_kubeadm(
    formula, topology_name
):
    topology = _topology(topology_name)
    nodes = _kubernetes_nodes(topology)
    first = next(node["id"] for node in nodes if "control-plane" in node["roles"])
    for node in nodes:
        shown = formula.show(topology_name, node["id"], "kubernetes")
        config = shown["kubernetes-config-kubeadm"]["args"]
        assert (config["name"], config["mode"]) == ("/etc/paas/kubernetes/kubeadm.yaml", "0600")
        assert config["check_cmd"] == "/usr/local/libexec/paas-kubeadm-validate"
        documents = list(yaml.safe_load_all(config["contents"]))
        kinds = [document["kind"] for document in documents]
        if node["id"] == first:
            assert kinds == [
                "InitConfiguration",
                "ClusterConfiguration",
                "KubeletConfiguration",
            ]
            assert (
                documents[0]["localAPIEndpoint"]["advertiseAddress"]
                == (node["addresses"]["private"])
            )
        else:
            assert kinds == ["JoinConfiguration"]
            assert "token" not in documents[0]["discovery"]["bootstrapToken"]
        assert documents[0]["nodeRegistration"]["name"] == node["id"]


@pytest.fixture(scope="module")
def kubeadm_double_path(tmp_path_factory):
    """A PATH whose kubeadm is the lab's double (lab/kube/kubeadm.py), which validates a
    configuration as kubeadm 1.34 does."""
    bin_dir = tmp_path_factory.mktemp("kubeadm-double")
    kubeadm = bin_dir / "kubeadm"
    kubeadm.write_text(f'#!/bin/sh\nexec {sys.executable} {REPO / "lab/kube/kubeadm.py"} "$@"\n')
    kubeadm.chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def _validate(path: str, config, tmp_path) -> subprocess.CompletedProcess:
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(config)
    return subprocess.run(
        [REPO / "salt/kubernetes/files/paas-kubeadm-validate", candidate],
        capture_output=True,
        text=True,
        env={"PATH": path},
        check=False,
    )


@pytest.mark.parametrize("topology_name", TOPOLOGIES)
def test_kubeadms_check_accepts_every_nodes_configuration_without_its_secrets(
    formula, kubeadm_double_path, tmp_path, topology_name
):
    for node in _kubernetes_nodes(_topology(topology_name)):
        shown = formula.show(topology_name, node["id"], "kubernetes")
        config = shown["kubernetes-config-kubeadm"]["args"]["contents"]

        result = _validate(kubeadm_double_path, config, tmp_path)

        assert (result.returncode, result.stdout) == (0, "ok\n"), (node["id"], result.stderr)
        assert (tmp_path / "candidate.yaml").read_text() == config, "the check changed the file"


def test_kubeadms_check_refuses_an_unknown_field_and_a_join_needs_its_placeholders(
    formula, kubeadm_double_path, tmp_path
):
    cp1 = formula.show("lab", "cp1", "kubernetes")["kubernetes-config-kubeadm"]["args"]
    refused = _validate(
        kubeadm_double_path, cp1["contents"].replace("podSubnet", "podCIDR"), tmp_path
    )
    assert refused.returncode == 1
    assert 'unknown field "networking.podCIDR"' in refused.stderr

    # What the placeholders are for: kubeadm itself refuses the join file as it is kept.
    worker = formula.show("lab", "worker1", "kubernetes")["kubernetes-config-kubeadm"]["args"]
    (tmp_path / "join.yaml").write_text(worker["contents"])
    bare = subprocess.run(
        ["kubeadm", "config", "validate", "--config", tmp_path / "join.yaml"],
        capture_output=True,
        text=True,
        env={"PATH": kubeadm_double_path},
        check=False,
    )
    assert bare.returncode == 1
    assert "the bootstrap token is invalid" in bare.stderr
