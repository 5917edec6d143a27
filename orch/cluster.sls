{#- Converge the whole platform, layer by layer. Each step requires the one before;
    the first checks the topology, and a failure stops the run before any node changes. #}
{%- set nodes = salt["paas_topology.node_ids"]() %}

paas-cluster-topology-valid:
  paas_topology.valid:
    - failhard: True

paas-cluster-common:
  salt.state:
    - tgt: {{ nodes | join(",") }}
    - tgt_type: list
    - sls: common
    - expect_minions: True
    - failhard: True
    - require:
      - paas_topology: paas-cluster-topology-valid
