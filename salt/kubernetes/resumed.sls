{#- After an etcd restore (orch.etcd_restore): a control plane's static Pods put back, and
    every joined node's kubelet restarted, so that nothing serves from a cache of the data
    before the restore. A node that has not joined is left alone. #}
kubernetes-resumed:
  paas_control_plane.resumed:
    - name: {{ grains["id"] }}
