{#- Started in the order traffic needs them: the firewall, the connection sync, haproxy,
    and last keepalived, which takes the VIPs. A changed file reloads its daemon (haproxy
    and nftables without dropping a connection; conntrackd restarts); an unchanged one
    touches nothing. #}
{%- from "gateway/map.jinja" import settings with context %}

include:
  - gateway.config

gateway-service-nftables:
  service.running:
    - name: {{ settings.services.nftables }}
    - enable: True
    - reload: True
    - watch:
      - file: gateway-config-nftables
    - require:
      - sysctl: gateway-config-sysctl-net.ipv4.ip_forward

gateway-service-conntrackd:
  service.running:
    - name: {{ settings.services.conntrackd }}
    - enable: True
    - watch:
      - file: gateway-config-conntrackd
    - require:
      - service: gateway-service-nftables

gateway-service-haproxy:
  service.running:
    - name: {{ settings.services.haproxy }}
    - enable: True
    - reload: True
    - watch:
      - file: gateway-config-haproxy
    - require:
      - sysctl: gateway-config-sysctl-net.ipv4.ip_nonlocal_bind
      - service: gateway-service-nftables

gateway-service-keepalived:
  service.running:
    - name: {{ settings.services.keepalived }}
    - enable: True
    - reload: True
    - watch:
      - file: gateway-config-keepalived
      - file: gateway-config-keepalived-unit
      - file: gateway-config-notify
    - require:
      - service: gateway-service-haproxy
      - service: gateway-service-conntrackd
