{%- from "common/map.jinja" import common, topology with context %}
{%- set node_id = grains["id"] %}

common-config-hostname-file:
  file.managed:
    - name: /etc/hostname
    - contents: {{ node_id }}
    - user: root
    - group: root
    - mode: "0644"

common-config-hostname-apply:
  cmd.run:
    - name: hostname {{ node_id }}
    - unless: test "$(hostname)" = "{{ node_id }}"
    - require:
      - file: common-config-hostname-file

common-config-hosts:
  file.managed:
    - name: /etc/hosts
    - source: salt://common/files/hosts.jinja
    - template: jinja
    - user: root
    - group: root
    - mode: "0644"
    - context:
        hosts: {{ salt["paas_topology.hosts"]() | json }}

{%- for key, value in common.sysctls | dictsort %}

common-config-sysctl-{{ key }}:
  sysctl.present:
    - name: {{ key }}
    - value: {{ value }}
    - config: {{ common.sysctl_file }}
{%- endfor %}

common-config-timesyncd:
  file.managed:
    - name: {{ common.timesyncd_config }}
    - makedirs: True
    - user: root
    - group: root
    - mode: "0644"
    - contents: |
        # Managed by Salt (salt/common) from paas:time.
        [Time]
        {%- if topology.time.ntp_servers %}
        NTP={{ topology.time.ntp_servers | join(" ") }}
        {%- endif %}
    - require:
      - sls: common.install
