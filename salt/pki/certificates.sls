{#- One state per certificate profile of this node, derived from its roles. An etcd node's
    server and peer keys belong to etcd's user, which the etcd role defines. #}
{%- set profiles = salt["paas_pki.profiles"]() %}
{%- set etcd_node = "etcd" in salt["paas_topology.roles"]() %}

{%- if etcd_node %}

include:
  - etcd.user
{%- endif %}

{%- for profile in profiles %}

pki-certificates-{{ profile }}:
  paas_pki.certificate:
    - name: {{ profile }}
{%- if etcd_node %}
    - require:
      - user: etcd-user
{%- endif %}
{%- endfor %}
