{#- The gateway pair: `salt-run state.orchestrate orch.gateway`. One gateway at a time, so
    that a change that breaks one (its checks fail, the run stops) leaves the other
    holding the VIPs; a first run brings the first gateway up alone, and it takes them. #}
{%- set gateways = salt["paas_topology.node_ids"]("gateway") | join(",") %}

include:
  - orch.gate

paas-cluster-gateways:
  salt.state:
    - tgt: {{ gateways }}
    - tgt_type: list
    - sls: gateway
    - batch: 1
    - expect_minions: True
    - failhard: True
    - require:
      - salt: paas-cluster-sync-modules
