{#- The platform's own unit and configuration: every setting from the topology. #}
{%- from "etcd/map.jinja" import etcd, node, pki with context %}

include:
  - etcd.install

etcd-config-data-dir:
  file.directory:
    - name: {{ etcd.data_dir }}
    - user: etcd
    - group: etcd
    - mode: "0700"
    - require:
      - sls: etcd.install

etcd-config-snapshot-dir:
  file.directory:
    - name: {{ etcd.snapshot_dir }}
    - user: root
    - group: root
    - mode: "0700"

etcd-config-environment:
  file.managed:
    - name: {{ etcd.config_dir }}/etcd.env
    - source: salt://etcd/files/etcd.env.jinja
    - template: jinja
    - makedirs: True
    - user: root
    - group: root
    - mode: "0644"
    - context:
        etcd: {{ etcd | json }}
        node: {{ node | json }}
        pki: {{ pki | json }}

etcd-config-unit:
  file.managed:
    - name: /etc/systemd/system/{{ etcd.service }}.service
    - source: salt://etcd/files/paas-etcd.service.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0644"
    - context:
        etcd: {{ etcd | json }}
