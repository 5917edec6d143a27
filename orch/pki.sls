{#- The etcd CA on the master's minion, then every certificate holder's certificates. #}
{%- set master = salt["paas_topology.master_id"]() %}
{%- set certificate_holders = salt["paas_pki.holders"]() | join(",") %}

include:
  - orch.gate

paas-cluster-pki-ca:
  salt.state:
    - tgt: {{ master }}
    - sls: pki.ca
    - expect_minions: True
    - failhard: True
    - require:
      - salt: paas-cluster-sync-modules

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
