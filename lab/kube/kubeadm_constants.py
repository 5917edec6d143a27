"""
The kubeadm double's constants: kubeadm 1.34's own (cmd/kubeadm/app/constants/constants.go:
where it writes, the names of what it uploads, the minimum versions and resources) and
its feature gates (cmd/kubeadm/app/features/features.go).

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

try:
    from lab.kube import kube_common
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kube_common  # type: ignore[no-redef]


KUBERNETES_VERSION = kube_common.KUBERNETES_VERSION
# constants.go: MinimumControlPlaneVersion is one minor below kubeadm's.
MINIMUM_CONTROL_PLANE_VERSION = (1, 33, 0)
MINIMUM_ADDRESSES_IN_SERVICE_SUBNET = 10
MINIMUM_ADDRESSES_IN_POD_SUBNET = 4
MAXIMUM_BITS_FOR_SERVICE_SUBNET = 20
POD_SUBNET_NODE_MASK_MAX_DIFF = 16
DEFAULT_CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"
NODE_BOOTSTRAP_TOKEN_AUTH_GROUP = "system:bootstrappers:kubeadm:default-node-token"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
# features/features.go: InitFeatureGates in kubeadm 1.34.
FEATURE_GATES = {
    "ControlPlaneKubeletLocalMode",
    "NodeLocalCRISocket",
    "PublicKeysECDSA",
    "RootlessControlPlane",
    "WaitForAllControlPlaneComponents",
}

# Where kubeadm writes; --rootfs prefixes every path, as kubeadm's chroot into it would.
KUBERNETES_DIR = "/etc/kubernetes"
MANIFESTS_DIR = "/etc/kubernetes/manifests"
KUBELET_DIR = "/var/lib/kubelet"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBELET_FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
KUBELET_CLIENT_PEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
SUPER_ADMIN_CONF = "/etc/kubernetes/super-admin.conf"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
BOOTSTRAP_KUBELET_CONF = "/etc/kubernetes/bootstrap-kubelet.conf"
CONTROLLER_MANAGER_CONF = "/etc/kubernetes/controller-manager.conf"
SCHEDULER_CONF = "/etc/kubernetes/scheduler.conf"
KUBEADM_CONFIG_MAP = "kubeadm-config"
KUBELET_CONFIG_MAP = "kubelet-config"
KUBEADM_CERTS_SECRET = "kubeadm-certs"
CLUSTER_INFO = "cluster-info"
BOOTSTRAP_TOKEN_SECRET_TYPE = "bootstrap.kubernetes.io/token"
JWS_PREFIX = "jws-kubeconfig-"
DEFAULT_CERT_TOKEN_TTL = "2h0m0s"
LABEL_CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
LABEL_EXCLUDE_LB = "node.kubernetes.io/exclude-from-external-load-balancers"
KUBELET_HEALTHZ = "http://127.0.0.1:10248/healthz"
# constants.go: MinExternalEtcdVersion in kubeadm 1.34.
MIN_EXTERNAL_ETCD_VERSION = "3.5.24-0"
CONTROL_PLANE_NUM_CPU = 2
CONTROL_PLANE_MEM_MB = 1700
