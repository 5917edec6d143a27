{%- from "common/map.jinja" import common with context %}

include:
  - common.config

{#- A container takes its clock from its host: timesyncd's unit skips itself there,
    so it is only enabled; on a machine it runs. #}
common-service-timesyncd:
{%- if grains.get("virtual") == "container" %}
  service.enabled:
{%- else %}
  service.running:
    - enable: True
    - watch:
      - file: common-config-timesyncd
{%- endif %}
    - name: {{ common.timesyncd_service }}
    - require:
      - sls: common.config
