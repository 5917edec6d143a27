# The lab's pillar environment, `lab`: the only one the lab's master reads
# (lab/master.py), so that the operator's pillar/ beside it never is. Every minion,
# and the master's own minion that runs orchestrations, reads the whole topology.
lab:
  '*':
    - paas
