{#- The check every systemd unit and drop-in of the platform passes before it is installed
    (systemd-analyze verify, its warnings about the new file counted as errors). Roles
    that write units include this. #}
{%- from "common/unit_checker.jinja" import unit_checker %}

common-unit-checker:
  file.managed:
    - name: {{ unit_checker }}
    - source: salt://common/files/paas-verify-unit
    - makedirs: True
    - user: root
    - group: root
    - mode: "0755"
    - check_cmd: sh -n
