{%- from "common/map.jinja" import common, node with context %}

include:
  - common.config

common-service-timesyncd-enabled:
  service.enabled:
    - name: {{ common.timesyncd_service }}
    - require:
      - sls: common.config

# A container takes its clock from its host, and timesyncd's unit skips itself there;
# systemd's own detection decides, as it does for the unit.
common-service-timesyncd-running:
  service.running:
    - name: {{ common.timesyncd_service }}
    - unless: systemd-detect-virt --quiet --container
    - watch:
      - file: common-config-timesyncd
    - require:
      - service: common-service-timesyncd-enabled
{%- if node.default_route %}

common-service-default-route-enabled:
  service.enabled:
    - name: {{ common.default_route_service }}
    - require:
      - file: common-config-default-route-unit

common-service-default-route:
  cmd.run:
    - name: systemctl restart {{ common.default_route_service }}
    - unless: ip route show default | grep -q "^default via {{ node.default_route }} "
    - require:
      - service: common-service-default-route-enabled
{%- endif %}
