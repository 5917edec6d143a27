{%- from "gateway/map.jinja" import gateway with context %}

gateway-install-packages:
  pkg.installed:
    - pkgs: {{ gateway.packages | json }}
