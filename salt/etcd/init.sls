# An etcd member of the platform's cluster: installed, configured, and a voting member.
include:
  - etcd.install
  - etcd.config
  - etcd.service
  - etcd.backup
  - etcd.beacon
