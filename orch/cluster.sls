{#- The whole platform: `salt-run state.orchestrate orch.cluster`. One layer after the
    other, each starting when the one above it has finished; the first checks the
    topology, and a failure stops the run before any node changes. #}
{%- from "orch/layers.jinja" import gate, common, gateways, pki, etcd, kubernetes with context %}
{{ gate() }}
{{ common(after="paas-cluster-salt-python") }}
{{ gateways(after="paas-cluster-common") }}
{{ pki(after="paas-cluster-gateways") }}
{{ etcd(after="paas-cluster-pki") }}
{{ kubernetes(after="paas-etcd-whole") }}
