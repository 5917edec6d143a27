{#- The gateway pair alone: `salt-run state.orchestrate orch.gateway`. #}
{%- from "orch/layers.jinja" import gate, gateways with context %}
{{ gate() }}
{{ gateways(after="paas-cluster-salt-python") }}
