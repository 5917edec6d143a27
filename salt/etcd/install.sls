{#- etcd from the distribution's package or from an upstream release archive pinned by
    version and sha256 (paas:etcd:source). #}
{%- from "etcd/map.jinja" import etcd, member with context %}

include:
  - etcd.user

{%- if member.source == "package" %}

etcd-install-packages:
  pkg.installed:
    - pkgs: {{ etcd.packages | json }}
    - require:
      - user: etcd-user

# The package's own unit (its default config, plain http on localhost) never runs:
# the platform's paas-etcd unit does.
etcd-install-package-service-off:
  service.dead:
    - name: {{ etcd.package_service }}
    - enable: False
    - require:
      - pkg: etcd-install-packages
{%- else %}

# An upstream release unpacks to etcd-v<version>-linux-amd64/ with etcd, etcdctl, etcdutl.
etcd-install-archive:
  archive.extracted:
    - name: {{ member.bin_dir | path_join("..") }}
    - source: {{ member.archive.url }}
    - source_hash: sha256={{ member.archive.sha256 }}
    - archive_format: tar
    - user: root
    - group: root
    - trim_output: 10
{%- endif %}
