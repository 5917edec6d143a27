{#- The cluster as the topology says: members that are no longer etcd nodes of the topology
    leave, one at a time (each removal refused if it would cost quorum), then every voting
    member must be healthy and there must be as many as the topology has etcd nodes. Runs
    on one etcd node (orch.etcd's last step). #}
{%- from "etcd/map.jinja" import member with context %}

etcd-prune-members:
  etcd_member.pruned:
    - name: {{ member.token }}

etcd-prune-cluster-healthy:
  etcd_member.cluster_healthy:
    {#- orch.etcd_recover asks only that every voter be healthy (pillar etcd_voters:
        null): members still away (fenced by a restore) come back one at a time. #}
    - voters: {{ salt["pillar.get"]("etcd_voters", member.members | length) | json }}
    - require:
      - etcd_member: etcd-prune-members
