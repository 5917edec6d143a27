{#- The first control plane initializes the cluster: kubeadm init once (never again once
    initialized), after the platform's checks (the external etcd's version among them),
    then init's bootstrap tokens and uploaded certificates deleted. Applied by
    orch.kubernetes after the kubernetes role (packages, containerd, kubeadm's
    configuration) is in place on the node. #}
{%- from "kubernetes/map.jinja" import node with context %}

kubernetes-init-cluster:
  kubeadm.initialized:
    - name: {{ node.id }}
