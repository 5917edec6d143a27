{#- The etcd node's health beacon (_beacons/etcd_health.py): every
    paas:dr:beacon_interval_seconds it reads the member's health over HTTPS (never gRPC: it
    runs in the minion's main process) and reports a change, an unhealthy state on every
    tick, or a heartbeat, to the master's reactor. Configured once the member serves, so a
    member still being brought up is never reported down; silent while a state runs here.
    Saved to the minion's beacons.conf, so a restarted minion keeps it. #}
{%- set dr = salt["paas_topology.dr"]() %}

include:
  - etcd.service

etcd-beacon-health:
  beacon.present:
    - name: etcd_health
    - save: True
    - interval: {{ dr.beacon_interval_seconds }}
    - disable_during_state_run: True
    - require:
      - sls: etcd.service
