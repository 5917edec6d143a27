{#- Kubernetes alone: `salt-run state.orchestrate orch.kubernetes`. Prepares every
    control plane and worker, initializes the cluster on the first control plane once,
    joins the nodes that have not joined (control planes one at a time, workers in
    batches) and verifies the cluster; changes nothing when it is all in place. The
    certificates come first (no change when they are current): a new control plane needs
    its etcd client certificate before it joins. #}
{%- from "orch/layers.jinja" import gate, pki, kubernetes with context %}
{{ gate() }}
{{ pki(after="paas-cluster-salt-python") }}
{{ kubernetes(after="paas-cluster-pki") }}
