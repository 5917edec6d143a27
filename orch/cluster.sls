{#- Converge the whole platform, layer by layer. Each step requires the one before;
    the first checks the topology, and a failure stops the run before any node changes. #}
{%- set nodes = salt["paas_topology.node_ids"]() | join(",") %}

include:
  - orch.gate
  - orch.gateway
  - orch.pki
  - orch.etcd_members

paas-cluster-common:
  salt.state:
    - tgt: {{ nodes }}
    - tgt_type: list
    - sls: common
    - expect_minions: True
    - failhard: True
    - require:
      - salt: paas-cluster-sync-modules

extend:
  paas-cluster-gateway-first:
    salt.state:
      - require:
        - salt: paas-cluster-common
  paas-cluster-pki-ca:
    salt.state:
      - require:
        - salt: paas-cluster-gateways
