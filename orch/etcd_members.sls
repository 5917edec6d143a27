{#- The etcd cluster, in order: the first etcd node (which alone may start a cluster, and
    only when none exists), then every other node one at a time (each added as a learner
    before it starts, promoted once caught up; a running member restarts only when its
    configuration changed, one at a time), then members that left the topology are
    removed, and the cluster must be whole. #}
{%- set etcd_nodes = salt["paas_topology.node_ids"]("etcd") %}

{%- if etcd_nodes %}

paas-etcd-first:
  salt.state:
    - tgt: {{ etcd_nodes[0] }}
    - sls: etcd
    - pillar:
        etcd_bootstrap: True
    - expect_minions: True
    - failhard: True
    - require:
      - salt: paas-cluster-pki

paas-etcd-members:
  salt.state:
    - tgt: {{ etcd_nodes[1:] | join(",") }}
    - tgt_type: list
    - sls: etcd
    - batch: 1
    - expect_minions: True
    - failhard: True
    - require:
      - salt: paas-etcd-first

paas-etcd-whole:
  salt.state:
    - tgt: {{ etcd_nodes[0] }}
    - sls: etcd.prune
    - expect_minions: True
    - failhard: True
    - require:
      - salt: paas-etcd-members
{%- endif %}
