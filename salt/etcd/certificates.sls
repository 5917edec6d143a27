{#- This member's etcd presents the certificates on its disk: a renewed one is served at
    once (etcd reads its files for every new connection), else etcd restarts and must be
    healthy again. Applied one etcd node at a time (orch.etcd, salt-run paas.renew). #}
{%- from "etcd/map.jinja" import member with context %}

etcd-certificates-served:
  etcd_member.certificates_served:
    - name: {{ member.name }}
