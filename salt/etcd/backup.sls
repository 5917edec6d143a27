{#- The etcd node's snapshot timer: etcd_snapshot.take every paas:dr:snapshot_interval_minutes
    (a verified snapshot kept 0600 in the snapshot directory, the newest pushed to the
    master), in the minion's own scheduler, so a snapshot needs no master to be taken. #}
{%- set dr = salt["paas_topology.dr"]() %}

include:
  - etcd.config

etcd-backup-schedule:
  schedule.present:
    - name: paas-etcd-snapshot
    - function: etcd_snapshot.take
    - minutes: {{ dr.snapshot_interval_minutes }}
    # One snapshot at a time: a slow one (a large database) is never overlapped.
    - maxrunning: 1
    # The snapshot's return goes to the master's job cache too, as a job would.
    - return_job: True
    - require:
      - file: etcd-config-snapshot-dir
