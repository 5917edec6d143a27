{#- Every file is checked before it is installed (check_cmd runs on the new file; a file
    that fails leaves the old one in place): by its own daemon's checker, the notify
    script by the shell, the unit drop-in by systemd. conntrackd has no configuration
    checker. #}
{%- from "gateway/map.jinja" import gateway, settings with context %}
{%- from "common/unit_checker.jinja" import unit_checker %}
{%- set context = {"gateway": gateway, "settings": settings} %}

include:
  - common.unit_checker
  - gateway.install

{%- for key, value in gateway.sysctls | dictsort %}

gateway-config-sysctl-{{ key }}:
  sysctl.present:
    - name: {{ key }}
    - value: {{ value }}
    - config: {{ gateway.sysctl_file }}
{%- endfor %}

gateway-config-nftables:
  file.managed:
    - name: {{ gateway.nftables.config }}
    - source: salt://gateway/files/nftables.conf.jinja
    - template: jinja
    - context: {{ context | json }}
    - user: root
    - group: root
    - mode: "0755"
    - check_cmd: nft --check --file
    - require:
      - sls: gateway.install

gateway-config-conntrackd:
  file.managed:
    - name: {{ gateway.conntrackd.config }}
    - source: salt://gateway/files/conntrackd.conf.jinja
    - template: jinja
    - context: {{ context | json }}
    - user: root
    - group: root
    - mode: "0644"
    - require:
      - sls: gateway.install

gateway-config-haproxy:
  file.managed:
    - name: {{ gateway.haproxy.config }}
    - source: salt://gateway/files/haproxy.cfg.jinja
    - template: jinja
    - context: {{ context | json }}
    - user: root
    - group: root
    - mode: "0644"
    - check_cmd: haproxy -c -q -f
    - require:
      - sls: gateway.install

gateway-config-notify:
  file.managed:
    - name: {{ gateway.keepalived.notify }}
    - source: salt://gateway/files/notify.sh.jinja
    - template: jinja
    - context: {{ context | json }}
    - makedirs: True
    - user: root
    - group: root
    - mode: "0755"
    - check_cmd: sh -n

# keepalived killed (SIGKILL, OOM) cannot remove the VIPs it held, and the peer takes
# them: the unit removes them whenever keepalived stops, and starts it again.
gateway-config-keepalived-unit:
  file.managed:
    - name: /etc/systemd/system/{{ settings.services.keepalived }}.service.d/paas.conf
    - makedirs: True
    - user: root
    - group: root
    - mode: "0644"
    - contents: |
        # Managed by Salt (salt/gateway).
        [Service]
        {%- for name in ("public", "private") %}
        {%- set network = settings.networks[name] %}
        ExecStopPost=-/usr/sbin/ip -4 addr del {{ network.vip }}/{{ network.prefix }} dev {{ network.interface }}
        {%- endfor %}
        Restart=on-failure
        RestartSec=1s
    - check_cmd: {{ unit_checker }} {{ settings.services.keepalived }}.service.d/paas.conf
    - require:
      - file: common-unit-checker
      - sls: gateway.install

gateway-config-keepalived:
  file.managed:
    - name: {{ gateway.keepalived.config }}
    - source: salt://gateway/files/keepalived.conf.jinja
    - template: jinja
    - context: {{ context | json }}
    - user: root
    - group: root
    - mode: "0644"
    - check_cmd: keepalived --config-test --use-file
    - require:
      - sls: gateway.install
      - file: gateway-config-notify
