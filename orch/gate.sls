{#- The start of every orchestration: the topology is valid (or nothing runs), and every
    minion has the platform's modules, which the states render with. #}
{%- set nodes = salt["paas_topology.node_ids"]() | join(",") %}
{%- set master = salt["paas_topology.master_id"]() %}

paas-cluster-topology-valid:
  paas_topology.valid:
    - failhard: True

paas-cluster-sync-modules:
  salt.state:
    - sls: sync_modules
    - tgt: {{ nodes }},{{ master }}
    - tgt_type: list
    - expect_minions: True
    - failhard: True
    - require:
      - paas_topology: paas-cluster-topology-valid
