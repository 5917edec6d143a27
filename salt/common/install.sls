{%- from "common/map.jinja" import common with context %}

common-install-packages:
  pkg.installed:
    - pkgs: {{ common.packages | json }}
