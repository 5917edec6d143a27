{#- The gateway pair: `salt-run state.orchestrate orch.gateway`. One gateway at a time, the
    first of the topology first, so that a change that breaks one (its checks fail, the
    run stops) leaves the other holding the VIPs; on a first run the first gateway comes
    up alone and takes the VIPs, and the second joins it as backup. #}
{%- set gateways = salt["paas_topology.node_ids"]("gateway") %}

include:
  - orch.gate

paas-cluster-gateway-first:
  salt.state:
    - tgt: {{ gateways[:1] | join(",") }}
    - tgt_type: list
    - sls: gateway
    - expect_minions: True
    - failhard: True
    - require:
      - salt: paas-cluster-sync-modules

paas-cluster-gateways:
  salt.state:
    - tgt: {{ gateways[1:] | join(",") }}
    - tgt_type: list
    - sls: gateway
    - expect_minions: True
    - failhard: True
    - require:
      - salt: paas-cluster-gateway-first
