{#- etcd's system user: it owns the member's data and its server and peer keys, so the PKI
    needs it before etcd is installed (the distribution's package would make the same). #}
{%- from "etcd/map.jinja" import member with context %}

etcd-user:
  user.present:
    - name: {{ member.user }}
    - system: True
    - createhome: False
    - shell: /usr/sbin/nologin
