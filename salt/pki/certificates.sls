{#- One state per certificate profile of this node, derived from its roles. #}
{%- set profiles = salt["paas_pki.profiles"]() %}

{%- if "etcd" in salt["paas_topology.roles"]() %}

# etcd's keys belong to its service user, which may not exist before etcd is installed.
pki-certificates-user-etcd:
  user.present:
    - name: etcd
    - system: True
    - createhome: False
    - require_in:
{%- for profile in profiles %}
      - paas_pki: pki-certificates-{{ profile }}
{%- endfor %}
{%- endif %}

{%- for profile in profiles %}

pki-certificates-{{ profile }}:
  paas_pki.certificate:
    - name: {{ profile }}
{%- endfor %}
