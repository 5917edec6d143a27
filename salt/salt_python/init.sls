{#- Salt's own Python on this minion: the libraries the platform's modules import
    (requirements-minion.lock) and protobuf's pure-Python setting, from the source the
    topology names (paas:python). The minion restarts after a change; orchestrations
    wait for paas_python.ready before their next step. #}
{%- set python = salt["paas_topology.get"]()["python"] %}
paas-salt-python:
  paas_python.installed:
    - lock: salt://salt_python/requirements-minion.lock
    - pth: salt://salt_python/paas-protobuf-python.pth
    - index_url: {{ python.index_url | json }}
    - find_links: {{ python.find_links | json }}
