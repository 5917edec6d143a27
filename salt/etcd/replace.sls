{#- This node's member replaced when it is not healthy (orch.etcd_recover): removed from
    the cluster unless that would cost quorum, its data wiped, added again as a learner,
    started and promoted once caught up. A healthy member is left alone. #}
{%- from "etcd/map.jinja" import member with context %}

etcd-member-replaced:
  etcd_member.replaced:
    - name: {{ member.name }}
