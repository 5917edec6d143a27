# A Kubernetes node made ready for kubeadm: kernel, containerd, the pinned packages, and
# its kubeadm configuration. kubeadm init and join are the orchestration's (orch.kubernetes).
include:
  - kubernetes.install
  - kubernetes.config
