{%- from "common/map.jinja" import common, node with context %}
{%- from "common/unit_checker.jinja" import unit_checker %}

include:
  - common.install
  - common.unit_checker

common-config-hostname-file:
  file.managed:
    - name: /etc/hostname
    - contents: {{ node.id }}
    - user: root
    - group: root
    - mode: "0644"

common-config-hostname-apply:
  cmd.run:
    - name: hostname {{ node.id }}
    - unless: test "$(hostname)" = "{{ node.id }}"
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
        hosts: {{ node.hosts | json }}

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
        {%- if node.ntp_servers %}
        NTP={{ node.ntp_servers | join(" ") }}
        {%- endif %}
    - require:
      - sls: common.install

{%- if node.default_route %}

# A private node's way out is the gateways' NAT, through the private VIP: a unit sets the
# route at boot and whenever the route is missing (common.service).
common-config-default-route-unit:
  file.managed:
    - name: /etc/systemd/system/{{ common.default_route_service }}.service
    - user: root
    - group: root
    - mode: "0644"
    - check_cmd: {{ unit_checker }} {{ common.default_route_service }}.service
    - require:
      - file: common-unit-checker
    - contents: |
        # Managed by Salt (salt/common) from paas:networks:private:vip.
        [Unit]
        Description=Default route through the gateways' private VIP
        After=network-online.target
        Wants=network-online.target

        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart=/usr/sbin/ip route replace default via {{ node.default_route }}

        [Install]
        WantedBy=multi-user.target
{%- endif %}
