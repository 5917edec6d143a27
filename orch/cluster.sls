{#- Converge the whole platform, layer by layer. Each step requires the one before;
    the first checks the topology, and a failure stops the run before any node changes. #}
{%- set nodes = salt["paas_topology.node_ids"]() | join(",") %}
{%- set master = salt["paas_topology.master_id"]() %}
{%- set certificate_holders = salt["paas_pki.holders"]() | join(",") %}

paas-cluster-topology-valid:
  paas_topology.valid:
    - failhard: True

# The states render with the custom modules (paas_topology first of all).
paas-cluster-sync-modules:
  salt.state:
    - sls: sync_modules
    - tgt: {{ nodes }},{{ master }}
    - tgt_type: list
    - expect_minions: True
    - failhard: True
    - require:
      - paas_topology: paas-cluster-topology-valid

paas-cluster-common:
  salt.state:
    - tgt: {{ nodes }}
    - tgt_type: list
    - sls: common
    - expect_minions: True
    - failhard: True
    - require:
      - salt: paas-cluster-sync-modules

paas-cluster-pki-ca:
  salt.state:
    - tgt: {{ master }}
    - sls: pki.ca
    - expect_minions: True
    - failhard: True
    - require:
      - salt: paas-cluster-common

# In batches: every node's signing requests go through the master to its minion, and
# a small master answers a few at a time better than all of them at once.
paas-cluster-pki:
  salt.state:
    - tgt: {{ certificate_holders }}
    - tgt_type: list
    - sls: pki
    - batch: 3
    - expect_minions: True
    - failhard: True
    - require:
      - salt: paas-cluster-pki-ca
