{#- The node's kubeadm configuration (paas_topology.kubeadm_configuration): Init and Cluster
    on the first control plane, Join without secrets on the others. kubeadm validates the
    new file before it replaces the old one. #}
{%- from "kubernetes/map.jinja" import kubernetes, node with context %}

include:
  - kubernetes.install

kubernetes-config-validator:
  file.managed:
    - name: {{ kubernetes.validator }}
    - source: salt://kubernetes/files/paas-kubeadm-validate
    - makedirs: True
    - user: root
    - group: root
    - mode: "0755"
    - check_cmd: sh -n

kubernetes-config-kubeadm:
  file.managed:
    - name: {{ node.config_file }}
    - contents: {{ salt["paas_topology.kubeadm_configuration"]() | json }}
    - makedirs: True
    - dir_mode: "0700"
    - user: root
    - group: root
    - mode: "0600"
    - check_cmd: {{ kubernetes.validator }}
    - require:
      - file: kubernetes-config-validator
      - sls: kubernetes.install
