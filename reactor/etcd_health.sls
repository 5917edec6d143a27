{#- An etcd node's health beacon reported (salt/beacon/<minion>/etcd_health/), or any
    minion sent an event with that tag: Salt puts a minion's event on the bus as the
    minion wrote it. The reactor only hands off: the paas_dr runner checks the report's
    signature, records it, suspects, probes etcd itself before it acts, and holds the
    lock; it runs in the reactor's worker threads, apart from the reactor's event loop. #}
etcd-health-decide:
  runner.paas_dr.react:
    - args:
      - event: {{ data | json }}
      - tag: {{ tag | json }}
