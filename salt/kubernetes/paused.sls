{#- This control plane's apiserver, controller-manager and scheduler stopped for an etcd
    restore (orch.etcd_restore): their static Pod manifests set aside, the apiserver gone
    before the run goes on. A node without them is left alone. #}
kubernetes-control-plane-paused:
  paas_control_plane.paused:
    - name: {{ grains["id"] }}
