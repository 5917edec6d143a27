{#- This node as a voting member: a running member restarts when its configuration
    changes; a node that is not a member joins (learner, start, promote); then the unit
    is enabled. Only orch.etcd may let the first etcd node start a new cluster. #}
{%- from "etcd/map.jinja" import etcd with context %}

include:
  - etcd.config

etcd-member-running:
  service.running:
    - name: {{ etcd.service }}
    - onlyif: test -d {{ etcd.data_dir }}/member
    - watch:
      - file: etcd-config-environment
      - file: etcd-config-unit

etcd-member-present:
  etcd_member.present:
    - name: {{ grains["id"] }}
    - bootstrap: {{ salt["pillar.get"]("etcd_bootstrap", False) }}
    - require:
      - service: etcd-member-running
      - file: etcd-config-data-dir

etcd-member-enabled:
  service.enabled:
    - name: {{ etcd.service }}
    - require:
      - etcd_member: etcd-member-present
