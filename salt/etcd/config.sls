{#- The platform's own unit and configuration: every setting from the topology's etcd view. #}
{%- from "etcd/map.jinja" import member with context %}
{%- from "common/unit_checker.jinja" import unit_checker %}

include:
  - common.unit_checker
  - etcd.install

etcd-config-data-dir:
  file.directory:
    - name: {{ member.data_dir }}
    - user: {{ member.user }}
    - group: {{ member.user }}
    - mode: "0700"
    - require:
      - sls: etcd.install

etcd-config-snapshot-dir:
  file.directory:
    - name: {{ member.snapshot_dir }}
    - user: root
    - group: root
    - mode: "0700"

etcd-config-environment:
  file.managed:
    - name: {{ member.env_file }}
    - source: salt://etcd/files/etcd.env.jinja
    - template: jinja
    - makedirs: True
    - user: root
    - group: root
    - mode: "0644"
    - context:
        member: {{ member | json }}

etcd-config-unit:
  file.managed:
    - name: {{ member.unit_file }}
    - source: salt://etcd/files/paas-etcd.service.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0644"
    - check_cmd: {{ unit_checker }} {{ member.service }}.service
    - context:
        member: {{ member | json }}
    - require:
      - file: common-unit-checker
      - sls: etcd.install
