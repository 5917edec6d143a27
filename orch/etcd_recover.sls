{#- One etcd member lost, corrupt or wiped while the cluster keeps quorum:
    `salt-run state.orchestrate orch.etcd_recover pillar='{"member": "etcd3"}'`. The
    reactor's runner (paas_dr.react) starts it once the member's own reports suspect it
    and the master's own probe confirms it; an operator may too. The member is replaced (removed,
    never at the cost of quorum; its data wiped; added as a learner, started, promoted
    once caught up: nothing acknowledged is lost, the others have it all), then every
    voter must be healthy (members fenced by a restore may still be away: each is
    replaced as its machine comes back). A healthy member is left alone. #}
{%- set member = salt["pillar.get"]("member", "") %}
{%- set etcd_nodes = salt["paas_topology.node_ids"]("etcd") %}
{%- set others = etcd_nodes | reject("equalto", member) | list %}
{%- if member not in etcd_nodes %}
paas-etcd-recover-member:
  test.fail_without_changes:
    - name: "pillar member={{ member or '(none)' }} is not an etcd node of the topology ({{ etcd_nodes | join(', ') }})"
    - failhard: True
{%- else %}
paas-etcd-recover-member:
  salt.state:
    - tgt: {{ member }}
    - sls: etcd.replace
    - expect_minions: True
    - failhard: True

paas-etcd-recover-whole:
  salt.state:
    - tgt: {{ others[:1] | join(",") }}
    - tgt_type: list
    - sls: etcd.prune
    - pillar:
        etcd_voters: null
    - expect_minions: True
    - failhard: True
    - require:
      - paas-etcd-recover-member
{%- endif %}
