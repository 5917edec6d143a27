{#- The etcd cluster lost quorum: `salt-run paas.restore [snapshot=PATH] [fenced=NODES]`
    (or the reactor's runner, paas_dr.react, once the master's own probe confirmed it;
    both hold the lock), or `salt-run state.orchestrate orch.etcd_restore` by hand.

    1. The snapshot a restore from backup would use is checked first (pillar `snapshot`,
       a file on the master, or the off-node one holding the highest revision): a
       corrupt or truncated snapshot, or one whose content is not what its name says,
       stops the run before anything is stopped.
    2. The control planes' apiservers, controller-managers and schedulers are stopped (a
       platform without Kubernetes yet skips this).
    3. paas_restore.stop: etcd stopped on every etcd node but the fenced ones (pillar
       `fenced`: machines confirmed off), and confirmed stopped by each node's minion
       (unit inactive, nothing listening on etcd's ports) before anything is forced.
    4. paas_restore.seed: when a member still has its data, the one with the highest
       revision becomes a cluster of its own (--force-new-cluster, once, everything else
       stopped): nothing it had is lost. Only when none has, every member is restored
       from the same snapshot with a new cluster token and its revision bumped
       (--bump-revision --mark-compacted), and the revisions lost are counted. While a
       node is fenced, an unattended restore (pillar `dr_unattended`) never restores
       from a snapshot.
    5. The other etcd nodes join again as new members, one at a time (the etcd formula);
       the cluster must then have the topology's voters (less the fenced), one leader,
       equal hashes.
    6. The control planes' static Pods are put back and every kubelet that has run since
       before the restore restarts (kubernetes.resumed, told when the restore started).
       Should a step after 2 fail, the runner that started the restore (paas_dr) puts
       them back. #}
{#- The topology this run rendered with, handed down to every runner step: the master's
    pillar is compiled once for the run, not again by each step. #}
{%- set topology = salt["pillar.get"]("paas") | json %}
{%- set etcd_nodes = salt["paas_topology.node_ids"]("etcd") %}
{%- set fenced = salt["pillar.get"]("fenced", []) %}
{%- set used = etcd_nodes | reject("in", fenced) | list %}
{%- set control_planes = salt["paas_topology.node_ids"]("control-plane") %}
{%- set kubernetes_nodes = (control_planes + salt["paas_topology.node_ids"]("worker")) | unique | list %}
{%- set snapshot = salt["pillar.get"]("snapshot", "") %}
{#- The master's time as the restore begins: a kubelet started before it restarts. #}
{%- set restore_started = salt["status.time"]("%s") | int %}

paas-etcd-restore-check:
  salt.runner:
    - name: paas_restore.check
    - snapshot: "{{ snapshot }}"
    - topology: {{ topology }}
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
  salt.runner:
    - name: paas_restore.stop
    - fenced: {{ fenced | json }}
    - topology: {{ topology }}
    - failhard: True
    - require:
      - paas-etcd-restore-check

paas-etcd-restore-seed:
  salt.runner:
    - name: paas_restore.seed
    - snapshot: "{{ snapshot }}"
    - fenced: {{ fenced | json }}
    - unattended: {{ salt["pillar.get"]("dr_unattended", False) | json }}
    - topology: {{ topology }}
    - failhard: True
    - require:
      - paas-etcd-restore-etcd-stopped

paas-etcd-restore-members:
  salt.state:
    - tgt: {{ used | join(",") }}
    - tgt_type: list
    - sls: etcd
    - batch: 1
    - expect_minions: True
    - failhard: True
    - require:
      - paas-etcd-restore-seed

{%- if not fenced %}

paas-etcd-restore-whole:
  salt.state:
    - tgt: {{ used[:1] | join(",") }}
    - tgt_type: list
    - sls: etcd.prune
    - expect_minions: True
    - failhard: True
    - require:
      - paas-etcd-restore-members
    - require_in:
      - paas-etcd-restore-verify
{%- endif %}

paas-etcd-restore-verify:
  salt.runner:
    - name: paas_restore.verify
    - fenced: {{ fenced | json }}
    - topology: {{ topology }}
    - failhard: True
    - require:
      - paas-etcd-restore-members

{%- if kubernetes_nodes %}

paas-etcd-restore-kubernetes:
  salt.state:
    - tgt: {{ kubernetes_nodes | join(",") }}
    - tgt_type: list
    - sls: kubernetes.resumed
    - pillar:
        restore_started: {{ restore_started }}
    - failhard: True
    - require:
      - paas-etcd-restore-verify
{%- endif %}
