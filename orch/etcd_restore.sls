{#- The etcd cluster lost quorum: `salt-run state.orchestrate orch.etcd_restore` (or
    `salt-run paas.restore [snapshot=PATH]`, or the reactor's runner, paas_dr.react).

    1. The snapshot a restore from backup would use is checked first (pillar `snapshot`,
       a file on the master, or the newest verified off-node one): a corrupt or truncated
       snapshot stops the run before anything is stopped.
    2. The control planes' apiservers, controller-managers and schedulers are stopped (a
       platform without Kubernetes yet skips this), then every member's etcd.
    3. paas_restore.seed: when a member still has its data, the one with the highest
       revision becomes a cluster of its own (--force-new-cluster, once, everything else
       stopped): nothing it had is lost. Only when none has, every member is restored
       from the same snapshot with a new cluster token and its revision bumped
       (--bump-revision --mark-compacted), and the revisions lost are counted.
    4. The other etcd nodes join again as new members, one at a time (the etcd formula);
       the cluster must then have the topology's voters, one leader, equal hashes.
    5. The control planes' static Pods are put back and every kubelet restarts. #}
{%- set etcd_nodes = salt["paas_topology.node_ids"]("etcd") %}
{%- set control_planes = salt["paas_topology.node_ids"]("control-plane") %}
{%- set kubernetes_nodes = (control_planes + salt["paas_topology.node_ids"]("worker")) | unique | list %}
{%- set snapshot = salt["pillar.get"]("snapshot", "") %}

paas-etcd-restore-check:
  salt.runner:
    - name: paas_restore.check
    - snapshot: "{{ snapshot }}"
    - failhard: True

{%- if control_planes %}

paas-etcd-restore-apiservers-stopped:
  salt.state:
    - tgt: {{ control_planes | join(",") }}
    - tgt_type: list
    - sls: kubernetes.paused
    - failhard: True
    - require:
      - paas-etcd-restore-check
    - require_in:
      - paas-etcd-restore-etcd-stopped
{%- endif %}

paas-etcd-restore-etcd-stopped:
  salt.function:
    - name: service.stop
    - tgt: {{ etcd_nodes | join(",") }}
    - tgt_type: list
    - arg:
      - {{ salt["paas_topology.etcd"]()["service"] }}
    - failhard: True
    - require:
      - paas-etcd-restore-check

paas-etcd-restore-seed:
  salt.runner:
    - name: paas_restore.seed
    - snapshot: "{{ snapshot }}"
    - failhard: True
    - require:
      - paas-etcd-restore-etcd-stopped

paas-etcd-restore-members:
  salt.state:
    - tgt: {{ etcd_nodes | join(",") }}
    - tgt_type: list
    - sls: etcd
    - batch: 1
    - expect_minions: True
    - failhard: True
    - require:
      - paas-etcd-restore-seed

paas-etcd-restore-whole:
  salt.state:
    - tgt: {{ etcd_nodes[:1] | join(",") }}
    - tgt_type: list
    - sls: etcd.prune
    - expect_minions: True
    - failhard: True
    - require:
      - paas-etcd-restore-members

paas-etcd-restore-verify:
  salt.runner:
    - name: paas_restore.verify
    - failhard: True
    - require:
      - paas-etcd-restore-whole

{%- if kubernetes_nodes %}

paas-etcd-restore-kubernetes:
  salt.state:
    - tgt: {{ kubernetes_nodes | join(",") }}
    - tgt_type: list
    - sls: kubernetes.resumed
    - failhard: True
    - require:
      - paas-etcd-restore-verify
{%- endif %}
