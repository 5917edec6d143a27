{%- from "common/map.jinja" import common, topology, private_node with context %}
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

{%- if private_node %}

# A private node's way out is the gateways' NAT, through the private VIP: a unit sets the
# route at boot and whenever the route is missing (common.service).
common-config-default-route-unit:
  file.managed:
    - name: /etc/systemd/system/{{ common.default_route_service }}.service
    - user: root
    - group: root
    - mode: "0644"
    - contents: |
        # Managed by Salt (salt/common) from paas:networks:private:vip.
        [Unit]
        Description=Default route through the gateways' private VIP
        After=network-online.target
        Wants=network-online.target

        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart=/usr/sbin/ip route replace default via {{ topology.networks.private.vip }}

        [Install]
        WantedBy=multi-user.target
{%- endif %}
