{#- After an etcd restore (orch.etcd_restore, which passes pillar `restore_started`, the
    master's time when it began): a control plane's static Pods put back, and a kubelet
    that has run since before the restore restarted, a worker's too, so that nothing
    serves from a cache of the data before the restore. What is back already is left
    alone; a node that has not joined is left alone. #}
kubernetes-resumed:
  paas_control_plane.resumed:
    - name: {{ grains["id"] }}
    - since: {{ salt["pillar.get"]("restore_started", 0) }}
