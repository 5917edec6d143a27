# Every minion, and the master's own minion that runs orchestrations, reads the
# whole topology: each node derives its part from it through paas_topology.
base:
  '*':
    - paas
