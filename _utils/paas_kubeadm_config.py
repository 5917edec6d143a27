"""
The kubeadm configuration of a node, from the platform's topology.

kubeadm reads ``kubeadm.k8s.io/v1beta4`` (cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go):
the first control plane gets an ``InitConfiguration`` and the ``ClusterConfiguration``,
every other node a ``JoinConfiguration`` (``kubeadm join`` takes no
``ClusterConfiguration``: the joining node reads the cluster's from the cluster). The
configuration holds no secret: the bootstrap token, the CA's hash and the certificate
key are added to a temporary copy at join time (``paas_kubeadm`` execution module).

Everything comes from the topology's views, handed in by the caller (the ``paas_topology``
execution module): a node's ``kubernetes_node`` view, which holds the cluster's
``kubernetes`` view too. Plain Python, so the same code serves the execution modules
(``__utils__["paas_kubeadm_config.render"]``) and the tests.

:depends: PyYAML (a dependency of Salt itself)
"""

from __future__ import annotations

import yaml

API_VERSION = "kubeadm.k8s.io/v1beta4"
KUBELET_API_VERSION = "kubelet.config.k8s.io/v1beta1"
HEADER = (
    "# Managed by Salt (salt/kubernetes) from the paas topology: kubeadm's configuration\n"
    "# of this node, without its secrets (those are added at join time, never kept here).\n"
)


def cluster_configuration(cluster: dict) -> dict:
    """
    The ``ClusterConfiguration`` of the cluster (its ``kubernetes`` view, or any node's
    ``kubernetes_node`` view, which holds it): the version, the API endpoint (the private
    VIP through the gateways), the external etcd with the apiserver's client certificate
    of the platform's PKI (the etcd CA, never kubeadm's own), the apiserver's extra
    names, and the cluster's networks.
    """
    endpoint = cluster["endpoint"]
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterConfiguration",
        "clusterName": cluster["cluster_name"],
        "kubernetesVersion": f"v{cluster['version']}",
        "controlPlaneEndpoint": f"{endpoint['host']}:{endpoint['port']}",
        "certificatesDir": cluster["pki_dir"],
        "etcd": {
            "external": {
                "endpoints": list(cluster["etcd"]["endpoints"]),
                "caFile": cluster["etcd"]["ca"],
                "certFile": cluster["etcd"]["cert"],
                "keyFile": cluster["etcd"]["key"],
            }
        },
        "apiServer": {"certSANs": list(cluster["cert_sans"])},
        "networking": {
            "podSubnet": cluster["pod_subnet"],
            "serviceSubnet": cluster["service_subnet"],
            "dnsDomain": cluster["dns_domain"],
        },
    }


def init_configuration(node: dict) -> dict:
    """
    The ``InitConfiguration`` of the first control plane (its ``kubernetes_node`` view):
    its apiserver's address and port, its registration, and the token ``kubeadm init``
    makes anyway (kubeadm adds one valid for 24 h when none is configured) limited to the
    run's TTL. Raises ``ValueError`` for a node that is not the first control plane.
    """
    if not node["first"]:
        raise ValueError(
            f"{node['id']} is not the first control plane ({node['first_control_plane']}): "
            "only that one runs kubeadm init; the others join"
        )
    return {
        "apiVersion": API_VERSION,
        "kind": "InitConfiguration",
        "bootstrapTokens": [
            {
                "description": "made by kubeadm init; the platform's joins use their own",
                "ttl": f"{node['token_ttl_minutes']}m",
            }
        ],
        "localAPIEndpoint": _local_api_endpoint(node),
        "nodeRegistration": _node_registration(node),
    }


def join_configuration(node: dict) -> dict:
    """
    The ``JoinConfiguration`` of a node (its ``kubernetes_node`` view; any Kubernetes
    node but the first control plane), without its secrets: discovery through the API
    endpoint only, and for a control plane its own apiserver's address and port. Raises
    ``ValueError`` for the first control plane, which inits.
    """
    if node["first"]:
        raise ValueError(f"{node['id']} is the first control plane: it runs kubeadm init, not join")
    endpoint = node["endpoint"]
    configuration = {
        "apiVersion": API_VERSION,
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {"apiServerEndpoint": f"{endpoint['host']}:{endpoint['port']}"}
        },
        "nodeRegistration": _node_registration(node),
    }
    if node["role"] == "control-plane":
        configuration["controlPlane"] = {"localAPIEndpoint": _local_api_endpoint(node)}
    return configuration


def kubelet_configuration() -> dict:
    """
    The cluster's ``KubeletConfiguration`` (kubeadm keeps it in the ``kubelet-config``
    ConfigMap, and every node's kubelet reads it from there): the kubelet renews its own
    client certificate before it expires (``rotateCertificates``, kubeadm's default too,
    said here so that no default of another version turns it off).
    """
    return {
        "apiVersion": KUBELET_API_VERSION,
        "kind": "KubeletConfiguration",
        "rotateCertificates": True,
    }


def documents(node: dict) -> list[dict]:
    """The configuration documents of a node (its ``kubernetes_node`` view): Init,
    Cluster and Kubelet on the first control plane, Join on every other Kubernetes
    node."""
    if node["first"]:
        return [init_configuration(node), cluster_configuration(node), kubelet_configuration()]
    return [join_configuration(node)]


def render(node: dict) -> str:
    """``documents`` as the multi-document YAML file kubeadm reads (``--config``)."""
    body = yaml.safe_dump_all(documents(node), default_flow_style=False, sort_keys=False)
    return HEADER + body


def upload_documents(node: dict) -> list[dict]:
    """
    The first control plane's documents for ``kubeadm init phase upload-certs``: the
    same, but the external etcd without a client certificate and key. kubeadm uploads the
    files the configuration names (copycerts.go, certsToTransfer), and one it cannot read
    goes up empty; a joining control plane writes no empty entry (DownloadCerts), so it
    keeps the client certificate and key the platform issued it, made on that node,
    instead of receiving the first control plane's. The etcd CA goes up as before.
    """
    init, cluster, kubelet = documents(node)
    external = cluster["etcd"]["external"]
    external["certFile"] = external["keyFile"] = ""
    return [init, cluster, kubelet]


def _local_api_endpoint(node: dict) -> dict:
    return {"advertiseAddress": node["address"], "bindPort": node["endpoint"]["port"]}


def _node_registration(node: dict) -> dict:
    registration = {
        "name": node["id"],
        "criSocket": node["cri_socket"],
        # The kubelet's address is the node's private one, where the cluster's traffic
        # runs, whichever interface holds the default route.
        "kubeletExtraArgs": [{"name": "node-ip", "value": node["address"]}],
    }
    if node["role"] == "control-plane" and "worker" in node["roles"]:
        # No control-plane taint: this node takes workloads too.
        registration["taints"] = []
    return registration
