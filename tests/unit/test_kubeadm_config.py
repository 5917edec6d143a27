"""
The kubeadm configuration rendered from the topology's views
(``_utils/paas_kubeadm_config.py``, handed a node's ``kubernetes_node`` view): what kubeadm
``v1beta4`` gets on the first control plane (Init and Cluster configurations) and on every
other node (a Join configuration without secrets), the kubelets' rotating client
certificates, and the topologies whose subnets
kubeadm must never see.
"""

from __future__ import annotations

import pytest
import yaml

KUBEADM = "kubeadm.k8s.io/v1beta4"


@pytest.fixture(scope="module")
def kubeadm(import_repo_module):
    return import_repo_module("_utils/paas_kubeadm_config.py", "paas_kubeadm_config_utils")


@pytest.fixture
def node(topology_utils, lab_topology):
    """A node's ``kubernetes_node`` view of the test's topology, as the caller hands it."""
    return lambda node_id: topology_utils.kubernetes_node(lab_topology, node_id)


def test_first_control_plane_gets_init_cluster_and_kubelet_configurations(kubeadm, node):
    documents = kubeadm.documents(node("cp1"))

    assert [(doc["apiVersion"], doc["kind"]) for doc in documents] == [
        (KUBEADM, "InitConfiguration"),
        (KUBEADM, "ClusterConfiguration"),
        ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"),
    ]
    # Every kubelet renews its own client certificate (kubeadm's kubelet-config ConfigMap).
    assert documents[2]["rotateCertificates"] is True


def test_cluster_configuration_runs_on_the_platforms_external_etcd(kubeadm, lab_topology, node):
    lab_topology["pki"]["dir"] = "/srv/pki"

    cluster = kubeadm.cluster_configuration(node("cp1"))

    # The etcd CA and the PKI's apiserver client certificate, never kubeadm's own CA.
    assert cluster["etcd"] == {
        "external": {
            "endpoints": [
                "https://198.18.1.21:2379",
                "https://198.18.1.22:2379",
                "https://198.18.1.23:2379",
            ],
            "caFile": "/srv/pki/etcd-ca.crt",
            "certFile": "/srv/pki/kube-apiserver-etcd-client.crt",
            "keyFile": "/srv/pki/kube-apiserver-etcd-client.key",
        }
    }
    assert "local" not in cluster["etcd"]


def test_cluster_configuration_follows_the_etcd_nodes_of_the_topology(kubeadm, lab_topology, node):
    lab_topology["nodes"] = [member for member in lab_topology["nodes"] if member["id"] != "etcd3"]
    lab_topology["nodes"][2]["roles"] = ["etcd", "control-plane"]  # etcd1
    lab_topology["nodes"].append(
        {"id": "etcd5", "roles": ["etcd"], "addresses": {"private": "198.18.1.25"}}
    )

    endpoints = kubeadm.cluster_configuration(node("cp1"))["etcd"]["external"]["endpoints"]

    assert endpoints == [
        "https://198.18.1.21:2379",
        "https://198.18.1.22:2379",
        "https://198.18.1.25:2379",
    ]


def test_cluster_configuration_names_the_api_vip_the_version_and_the_networks(
    kubeadm, lab_topology, node
):
    lab_topology["gateway"] = {"api_port": 8443}

    cluster = kubeadm.cluster_configuration(node("cp1"))

    assert cluster["controlPlaneEndpoint"] == "198.18.1.10:8443"
    assert cluster["kubernetesVersion"] == "v1.34.2"
    assert cluster["clusterName"] == "paas-lab"
    assert cluster["certificatesDir"] == "/etc/kubernetes/pki"
    assert cluster["networking"] == {
        "podSubnet": "198.19.0.0/17",
        "serviceSubnet": "198.19.128.0/20",
        "dnsDomain": "cluster.local",
    }


def test_apiserver_certificate_carries_both_vips_the_gateways_and_the_cluster_names(kubeadm, node):
    sans = kubeadm.cluster_configuration(node("cp1"))["apiServer"]["certSANs"]

    for name in (
        "198.18.1.10",
        "198.18.0.10",
        "198.18.0.11",
        "198.18.0.12",
        "paas-lab",
        "paas-lab.paas.lab",
        "api.paas.lab",
        "paas-lab-public-vip.paas.lab",
        "paas-lab-private-vip.paas.lab",
    ):
        assert name in sans
    # A node's own address is kubeadm's to add, on the node it runs on.
    assert "198.18.1.31" not in sans


def test_init_configuration_advertises_the_node_and_limits_inits_own_token(
    kubeadm, lab_topology, node
):
    lab_topology["kubernetes"]["token_ttl_minutes"] = 7

    init = kubeadm.init_configuration(node("cp1"))

    assert init["localAPIEndpoint"] == {"advertiseAddress": "198.18.1.31", "bindPort": 6443}
    assert init["nodeRegistration"] == {
        "name": "cp1",
        "criSocket": "unix:///run/containerd/containerd.sock",
        "kubeletExtraArgs": [{"name": "node-ip", "value": "198.18.1.31"}],
    }
    (token,) = init["bootstrapTokens"]
    assert token["ttl"] == "7m"
    assert "token" not in token


def test_control_plane_join_has_its_endpoint_and_no_secret(kubeadm, node):
    (join,) = kubeadm.documents(node("cp2"))

    assert (join["apiVersion"], join["kind"]) == (KUBEADM, "JoinConfiguration")
    assert join["discovery"] == {"bootstrapToken": {"apiServerEndpoint": "198.18.1.10:6443"}}
    assert join["controlPlane"] == {
        "localAPIEndpoint": {"advertiseAddress": "198.18.1.32", "bindPort": 6443}
    }
    assert join["nodeRegistration"]["name"] == "cp2"
    assert join["nodeRegistration"]["kubeletExtraArgs"] == [
        {"name": "node-ip", "value": "198.18.1.32"}
    ]


def test_worker_join_is_not_a_control_plane(kubeadm, node):
    join = kubeadm.join_configuration(node("worker1"))

    assert "controlPlane" not in join
    assert join["nodeRegistration"]["name"] == "worker1"
    assert "taints" not in join["nodeRegistration"]


def test_a_control_plane_that_is_also_a_worker_is_not_tainted(kubeadm, lab_topology, node):
    lab_topology["nodes"][6]["roles"] = ["control-plane", "worker"]  # cp2

    join = kubeadm.join_configuration(node("cp2"))

    assert join["nodeRegistration"]["taints"] == []
    assert "controlPlane" in join


@pytest.mark.parametrize("node_id", ["cp1", "cp2", "cp3", "worker1"])
def test_rendered_file_is_the_documents_and_holds_no_secret(kubeadm, node_id, node):
    text = kubeadm.render(node(node_id))

    assert text.startswith("# Managed by Salt")
    assert list(yaml.safe_load_all(text)) == kubeadm.documents(node(node_id))
    for secret in ("token:", "caCertHashes", "certificateKey", "tlsBootstrapToken"):
        assert secret not in text


def test_only_the_first_control_plane_inits_and_only_kubernetes_nodes_have_a_configuration(
    kubeadm, node
):
    with pytest.raises(ValueError, match="cp2 is not the first control plane"):
        kubeadm.init_configuration(node("cp2"))
    with pytest.raises(ValueError, match="cp1 is the first control plane"):
        kubeadm.join_configuration(node("cp1"))
    with pytest.raises(ValueError, match="etcd1 is not a Kubernetes node"):
        node("etcd1")


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        (
            "pod_subnet",
            "198.18.1.0/24",
            "198.18.1.0/24 overlaps the private network 198.18.1.0/24, where it holds "
            "node gw1 (198.18.1.11), node gw2 (198.18.1.12), node etcd1 (198.18.1.21), 8 more",
        ),
        (
            "service_subnet",
            "198.18.0.0/24",
            "198.18.0.0/24 overlaps the public network 198.18.0.0/24, where it holds "
            "node gw1 (198.18.0.11), node gw2 (198.18.0.12), the public VIP 198.18.0.10",
        ),
        ("service_subnet", "198.19.0.0/20", "198.19.0.0/20 overlaps the pod_subnet 198.19.0.0/17"),
        ("pod_subnet", "198.19.0.0/33", "'198.19.0.0/33' is not an IPv4 network in CIDR form"),
        ("service_subnet", "198.19.128.1/20", "has host bits set; the network is 198.19.128.0/20"),
    ],
)
def test_subnets_kubeadm_must_not_get_are_refused_naming_the_field_and_the_nodes(
    topology_utils, lab_topology, field, value, fragment
):
    lab_topology["kubernetes"][field] = value

    (error,) = topology_utils.validate(lab_topology)

    assert error.field == f"paas:kubernetes:{field}"
    assert fragment in error.message
