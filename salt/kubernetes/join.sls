{#- This node joins the cluster, unless it has joined already (a joined node is never
    joined again). Applied by salt-run paas_kubernetes.join (orch.kubernetes), which
    passes the run's credentials inline as the pillar kubeadm_join; applied otherwise, a
    node that has not joined fails, saying so. #}
{%- from "kubernetes/map.jinja" import node with context %}

kubernetes-join-node:
  kubeadm.joined:
    - name: {{ node.id }}
