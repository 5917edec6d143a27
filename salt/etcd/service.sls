{#- This node as a voting member: a node that is not a member joins (added as a learner,
    started, promoted), a member that is stopped starts, and a member whose configuration
    changed restarts (etcd_member's mod_watch) and must be healthy again before the run
    goes on; then it must present the certificates on its disk (etcd.certificates).
    Only orch.etcd may let the first etcd node start a new cluster. #}
{%- from "etcd/map.jinja" import member with context %}

include:
  - etcd.config
  - etcd.certificates

etcd-service-member:
  etcd_member.present:
    - name: {{ member.name }}
    - bootstrap: {{ salt["pillar.get"]("etcd_bootstrap", False) }}
    - require:
      - file: etcd-config-data-dir
    - watch:
      - file: etcd-config-environment
      - file: etcd-config-unit
    - require_in:
      - etcd_member: etcd-certificates-served

etcd-service-enabled:
  service.enabled:
    - name: {{ member.service }}
    - require:
      - etcd_member: etcd-service-member
