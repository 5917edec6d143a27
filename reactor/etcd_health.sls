{#- An etcd node's health beacon reported (salt/beacon/<minion>/etcd_health/). The
    reactor only hands off: the decision (debounce, confirmation by the other members,
    the lock) and the orchestration it starts live in the paas_dr runner, which runs in
    the reactor's worker threads, apart from the reactor's event loop. #}
etcd-health-decide:
  runner.paas_dr.react:
    - args:
      - event: {{ data | json }}
