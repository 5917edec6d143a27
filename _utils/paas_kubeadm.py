"""
The kubeadm configuration of a node, from the platform's topology.

kubeadm reads ``kubeadm.k8s.io/v1beta4`` (cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go):
the first control plane gets an ``InitConfiguration`` and the ``ClusterConfiguration``,
every other node a ``JoinConfiguration`` (``kubeadm join`` takes no
``ClusterConfiguration``: the joining node reads the cluster's from the cluster). The
configuration holds no secret: the bootstrap token, the CA's hash and the certificate
key are added to a temporary copy at join time (``paas_kubeadm`` execution module).

Everything comes from the topology's ``kubernetes_node`` view. Plain Python like
``paas_topology``, so the same code serves the execution modules (``__utils__``) and the
tests.

:depends: PyYAML (a dependency of Salt itself)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import yaml

API_VERSION = "kubeadm.k8s.io/v1beta4"
HEADER = (
    "# Managed by Salt (salt/kubernetes) from the paas topology: kubeadm's configuration\n"
    "# of this node, without its secrets (those are added at join time, never kept here).\n"
)

_VIEWS: list[ModuleType] = []


def _views() -> ModuleType:
    # Salt's loader gives utils modules no __utils__, so the topology's views are read
    # from the module beside this one (both are synced to the same directory).
    if not _VIEWS:
        path = Path(__file__).with_name("paas_topology.py")
        spec = importlib.util.spec_from_file_location("paas_kubeadm_topology", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _VIEWS.append(module)
    return _VIEWS[0]


def cluster_configuration(topology: dict) -> dict:
    """
    The ``ClusterConfiguration`` of a valid ``topology``: the version, the API endpoint
    (the private VIP through the gateways), the external etcd with the apiserver's
    client certificate of the platform's PKI (the etcd CA, never kubeadm's own), the
    apiserver's extra names, and the cluster's networks.
    """
    cluster = _views().kubernetes(topology)
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


def init_configuration(topology: dict, node_id: str) -> dict:
    """
    The ``InitConfiguration`` of the first control plane ``node_id``: its apiserver's
    address and port, its registration, and the token ``kubeadm init`` makes anyway
    (kubeadm adds one valid for 24 h when none is configured) limited to the run's TTL.
    Raises ``ValueError`` for a node that is not the first control plane.
    """
    node = _views().kubernetes_node(topology, node_id)
    if not node["first"]:
        raise ValueError(
            f"{node_id} is not the first control plane ({node['first_control_plane']}): "
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


def join_configuration(topology: dict, node_id: str) -> dict:
    """
    The ``JoinConfiguration`` of ``node_id`` (any Kubernetes node but the first control
    plane), without its secrets: discovery through the API endpoint only, and for a
    control plane its own apiserver's address and port. Raises ``ValueError`` for the
    first control plane, which inits.
    """
    node = _views().kubernetes_node(topology, node_id)
    if node["first"]:
        raise ValueError(f"{node_id} is the first control plane: it runs kubeadm init, not join")
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


def documents(topology: dict, node_id: str) -> list[dict]:
    """The configuration documents of ``node_id``: Init and Cluster on the first control
    plane, Join on every other Kubernetes node."""
    if _views().kubernetes_node(topology, node_id)["first"]:
        return [init_configuration(topology, node_id), cluster_configuration(topology)]
    return [join_configuration(topology, node_id)]


def render(topology: dict, node_id: str) -> str:
    """``documents`` as the multi-document YAML file kubeadm reads (``--config``)."""
    body = yaml.safe_dump_all(
        documents(topology, node_id), default_flow_style=False, sort_keys=False
    )
    return HEADER + body


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
