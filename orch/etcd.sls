{#- The etcd cluster on its own: `salt-run state.orchestrate orch.etcd`. Brings it up from
    nothing, scales it to the topology's etcd nodes, and changes nothing when it is so.
    The certificates come first (no change when they are current). #}
include:
  - orch.gate
  - orch.pki
  - orch.etcd_members
