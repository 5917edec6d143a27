{#- A control plane's certificates current and loaded: kubeadm's renewed inside the renewal
    window (kubeadm certs renew all), then every static Pod whose process started before
    one of its files was written (those, or the PKI's renewed etcd client certificate)
    restarted, the apiserver ready again. Applied one control plane at a time
    (orch.kubernetes, salt-run paas.renew). #}
{%- from "kubernetes/map.jinja" import node with context %}

kubernetes-certificates-renewed:
  kubeadm.certificates_renewed:
    - name: {{ node.id }}

kubernetes-certificates-loaded:
  paas_control_plane.certificates_loaded:
    - name: {{ node.id }}
    - require:
      - kubeadm: kubernetes-certificates-renewed
