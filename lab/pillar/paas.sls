# The lab's topology: the nine machines `python -m lab up` builds on this host, and the
# only pillar the lab's master reads (with the overlay the lab writes for a variant).
# Every key is documented in pillar/paas.sls (pillar.example).
paas:
  cluster:
    name: paas-lab
    domain: paas.lab
  networks:
    public:
      cidr: 198.18.0.0/24
      gateway: 198.18.0.1
      vip: 198.18.0.10
      vrrp_router_id: 51
    private:
      cidr: 198.18.1.0/24
      vip: 198.18.1.10
      vrrp_router_id: 52
  master:
    id: paas-master
    address: 198.18.1.1
  nodes:
    - id: gw1
      roles: [gateway]
      addresses: {public: 198.18.0.11, private: 198.18.1.11}
    - id: gw2
      roles: [gateway]
      addresses: {public: 198.18.0.12, private: 198.18.1.12}
    - id: etcd1
      roles: [etcd]
      addresses: {private: 198.18.1.21}
    - id: etcd2
      roles: [etcd]
      addresses: {private: 198.18.1.22}
    - id: etcd3
      roles: [etcd]
      addresses: {private: 198.18.1.23}
    - id: cp1
      roles: [control-plane]
      addresses: {private: 198.18.1.31}
    - id: cp2
      roles: [control-plane]
      addresses: {private: 198.18.1.32}
    - id: cp3
      roles: [control-plane]
      addresses: {private: 198.18.1.33}
    - id: worker1
      roles: [worker]
      addresses: {private: 198.18.1.41}
  pki:
    # The lab's master is this host: its CA lives with the rest of the lab's state.
    ca_dir: /var/lib/paas-lab/ca
    # The master looks for certificates to renew every minute (the e2e renewal run
    # waits for it), not every hour.
    renew_check_minutes: 1
  dr:
    # The snapshots the master receives and the reactor's records, with the rest of the
    # lab's state on this host.
    receive_dir: /var/lib/paas-lab/dr/snapshots
    # A lost member is seen within a few seconds (three reports in a row, 2 s apart).
    beacon_interval_seconds: 2
    # A healthy member reports its revision every 10 s: what a restore from a snapshot
    # counts its loss against is never far behind.
    heartbeat_seconds: 10
  preflight:
    # What the lab's machines get from this host and cannot change: its clock (a
    # container cannot set it), which the kernel here reports unsynchronized (adjtimex:
    # STA_UNSYNC, no NTP daemon on the host); its cgroup v1 hierarchy (the kubelet 1.34
    # still runs on it, in maintenance mode); its one disk, which the three etcd machines
    # share with each other and with everything the lab and its tests run (measured
    # while nine machines boot, fdatasync's 99th percentile reached 10.2 ms: the host's
    # load, not a machine's disk). Each node's clock_skew to the master is still checked,
    # and etcd_disk is still measured and reported, as ignored.
    ignore: [time_sync, cgroup, etcd_disk]
  python:
    # The lab's wheelhouse: the wheels of requirements-minion.lock for the nodes' Python,
    # served by the lab beside its package repository (docs/lab.md). The machines' Salt
    # has none of them until orch.cluster's first step installs them from here.
    find_links: http://198.18.1.1:8081/wheels/
  versions:
    kubernetes: "1.34.2"
  kubernetes:
    # Subnets of the lab's own reserved block (198.18.0.0/15), clear of its two networks:
    # nothing routed is ever used.
    pod_subnet: 198.19.0.0/17
    service_subnet: 198.19.128.0/20
    # The lab's apt repository of kubeadm, kubelet and kubectl packages holding the
    # doubles, served by the lab on its master (docs/lab.md).
    repository:
      url: http://198.18.1.1:8081/core:/stable:/v1.34/deb/
      key_url: http://198.18.1.1:8081/core:/stable:/v1.34/deb/Release.key
    # Debian 13's etcd-server is 3.5.16 and kubeadm 1.34 wants 3.5.24 or newer for an
    # external etcd: the lab runs on the distribution's package, so it skips kubeadm's
    # ExternalEtcdVersion check (and the platform's own check before init), explicitly.
    ignore_preflight_errors: [ExternalEtcdVersion]
