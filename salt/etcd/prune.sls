{#- Members that are no longer etcd nodes of the topology leave the cluster, one at a
    time, each removal refused if it would cost quorum; then the cluster must be whole. #}
{%- set wanted = salt["etcd_cluster.endpoints"]() %}
{%- set members = salt["etcd_cluster.members"]() %}
{%- set ns = namespace(previous=None) %}

{%- for member in members if member.name and member.name not in wanted %}

etcd-prune-{{ member.name }}:
  etcd_member.absent:
    - name: {{ member.name }}
{%- if ns.previous %}
    - require:
      - etcd_member: etcd-prune-{{ ns.previous }}
{%- endif %}
    - require_in:
      - etcd_member: etcd-prune-cluster-healthy
{%- set ns.previous = member.name %}
{%- endfor %}

etcd-prune-cluster-healthy:
  etcd_member.cluster_healthy:
    - voters: {{ wanted | length }}
