{#- The etcd cluster alone: `salt-run state.orchestrate orch.etcd`. Brings it up from
    nothing, scales it to the topology's etcd nodes, and changes nothing when it is so.
    The certificates come first (no change when they are current). #}
{%- from "orch/layers.jinja" import gate, pki, etcd with context %}
{{ gate() }}
{{ pki(after="paas-cluster-salt-python") }}
{{ etcd(after="paas-cluster-pki") }}
