# The platform's topology: every key the `paas` pillar takes, with its meaning, and
# an example value for each. Start from this file: replace the values with your
# platform's and drop the optional keys you do not need. (pillar.example at the top of
# the repository is this file, under the formula convention's name.)
# `salt-run paas.validate` checks the pillar, `salt-run paas.validate topology=FILE` a
# file; `orch.cluster` refuses to change anything while the pillar's topology is invalid.
paas:
  # Required. The cluster's name (a host-name-like label) and the DNS domain under
  # which every node gets a name in /etc/hosts (default: paas.internal).
  cluster:
    name: prod-eu1
    domain: eu1.example.internal

  # Required. The two networks. Every node has a private address; only gateways have
  # a public one. Each network has a virtual IP that keepalived keeps on exactly one
  # gateway, with its own VRRP router id (1-255, the two must differ).
  networks:
    public:
      cidr: 198.18.0.0/24
      gateway: 198.18.0.1        # the upstream router of the public side
      vip: 198.18.0.10           # the address users and kubectl reach
      vrrp_router_id: 51
    private:
      cidr: 198.18.1.0/24
      vip: 198.18.1.10           # the private nodes' default route
      vrrp_router_id: 52

  # Required. The salt master: its own minion's id (default paas-master; that minion
  # holds the CA and runs the orchestrations' master-side steps) and its private address.
  master:
    id: paas-master
    address: 198.18.1.1

  # Required. Every machine: its minion id (also its host name), its roles, its
  # addresses. Roles: gateway (at least 2), etcd (an odd count: 3, 5 or 7),
  # control-plane (at least 1, 3 for HA), worker (at least 1). A node may hold
  # several roles, except that only gateways have a public address.
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

  # Optional. Software versions. etcd: the line, 3.4 or 3.5 (default 3.5; kubeadm wants
  # 3.5). kubernetes: a full release (default 1.34.2); kubeadm, kubelet and kubectl are
  # pinned to it (<version>-*) and held, and its line (1.34) picks the package repository
  # and the oldest etcd kubeadm accepts (1.34: 3.5.24). Supported lines: 1.34.
  versions:
    etcd: "3.5"
    kubernetes: "1.34.2"

  # Optional. The preflight checks (salt-run paas.preflight, and the first step after the
  # module sync of every orchestration) that the operator accepts: CHECK on every node, or
  # NODE:CHECK, of os, salt, swap, cgroup, modules, ports, time_sync, clock_skew,
  # etcd_disk, disk_free, names, sources (docs/operations.md).
  preflight:
    ignore: []

  # Optional. Salt's own Python on every minion (onedir or virtualenv): the first step
  # of every orchestration installs what the platform's modules import beyond Salt
  # (requirements-minion.lock, pinned, without dependencies) and protobuf's pure-Python
  # setting (etc/python/paas-protobuf-python.pth), then restarts the minion once.
  # index_url: the package index (an https:// mirror of PyPI). find_links: a wheelhouse
  # for machines without a way to an index, an absolute directory on the nodes or the
  # http(s):// URL of a page of links to the wheels (`pip wheel --no-deps -r
  # requirements-minion.lock` on the nodes' Python makes one); when set, no index is read.
  python:
    index_url: https://pypi.org/simple/
    find_links: ""

  # Optional. etcd. source: package (the distribution's etcd-server and etcd-client)
  # or archive (an upstream release, pinned: version of the line above, URL and sha256;
  # unpacked to /opt/etcd/etcd-v<version>-linux-amd64). Data and snapshot directories,
  # the directory of the member's environment files (etcd.env, membership.env), raft
  # timers in milliseconds (election at least 5 heartbeats), the local metrics port (http
  # on 127.0.0.1 only), and the backend quota in bytes.
  etcd:
    source: archive
    archive:
      version: 3.5.24
      url: https://github.com/etcd-io/etcd/releases/download/v3.5.24/etcd-v3.5.24-linux-amd64.tar.gz
      # The sha256 of etcd-v3.5.24-linux-amd64.tar.gz as kubespray pins it
      # (roles/kubespray_defaults/vars/main/checksums.yml, etcd_binary_checksums, amd64);
      # the release's own SHA256SUMS (same URL, file SHA256SUMS) must say the same.
      sha256: "042497e2ddcee06f22e5d486d81f58affa26b53ee423e2a6aaca3d3ea98c8191"
    data_dir: /var/lib/paas-etcd
    snapshot_dir: /var/lib/paas-etcd-snapshots
    config_dir: /etc/paas/etcd
    heartbeat_ms: 100
    election_ms: 1000
    metrics_port: 2381
    quota_bytes: 2147483648

  # Optional. The gateway pair. VRRP: version 3 (sub-second adverts, in multiples of
  # 10 ms) or 2 (whole seconds); a gateway that stops advertising loses the VIPs after
  # about 3 adverts. The first gateway in nodes wins the first election; after that the
  # VIPs stay where they are until their holder fails (no preemption). api_port: the
  # control plane's API port, published on both VIPs; ingress: the workers' ports that
  # the VIPs' :80 and :443 forward to. haproxy's health checks: every check_interval_ms,
  # a server is out after check_fall failures and back after check_rise successes. The
  # stats page listens on each gateway's private address, stats_port. sync_port:
  # conntrackd's UDP port between the two gateways, on the private side.
  gateway:
    vrrp_version: 3
    advert_ms: 100
    api_port: 6443
    ingress:
      http_port: 30080
      https_port: 30443
    check_interval_ms: 300
    check_fall: 3
    check_rise: 2
    stats_port: 8404
    sync_port: 3780

  # Optional. Kubernetes, joined with kubeadm on the platform's etcd, its API on the
  # private VIP at gateway:api_port. Every key is optional; the defaults are shown.
  kubernetes:
    # The pods' and the services' networks: networks in CIDR form without host bits, clear
    # of each other and of the public and private networks (so of every node and VIP).
    # kubeadm's limits: pod_subnet /8 to /24 (each node gets a /24 of it), service_subnet
    # /12 to /28.
    pod_subnet: 10.244.0.0/16
    service_subnet: 10.96.0.0/12
    # The cluster's DNS domain (Services are <name>.<namespace>.svc.<dns_domain>).
    dns_domain: cluster.local
    # Workers joined at once (at least 1); each batch is Ready before the next joins.
    worker_batch: 10
    # Lifetime of the bootstrap token made for one run's joins, in minutes (1 to 1440);
    # the run deletes it once the joins are done.
    token_ttl_minutes: 15
    # containerd's sandbox (pause) image.
    sandbox_image: registry.k8s.io/pause:3.10
    # The package repository (pkgs.k8s.io's layout: a flat repository per line), http(s)
    # only; {line} is replaced by the Kubernetes line of versions:kubernetes. The key is
    # fetched from key_url and is the only key apt trusts for this repository.
    repository:
      url: https://pkgs.k8s.io/core:/stable:/v{line}/deb/
      key_url: https://pkgs.k8s.io/core:/stable:/v{line}/deb/Release.key
    # kubeadm preflight errors to ignore; only ExternalEtcdVersion may be listed: it
    # lets kubeadm init run on an etcd older than kubeadm's minimum (and skips the
    # platform's own check of it before init). Use an etcd kubeadm accepts instead
    # (etcd:source archive, 3.5.24 or newer, as above) whenever you can.
    ignore_preflight_errors: []

  # Optional. Certificates: where nodes keep theirs (dir) and where the master's minion
  # keeps the CA (ca_dir; its key never leaves it), key type (ec = ECDSA P-256, or
  # rsa), lifetimes in days, how many days before expiry a certificate is renewed, and
  # how often the master's schedule looks for certificates to renew (salt-run paas.renew).
  pki:
    dir: /etc/paas/pki
    ca_dir: /etc/paas/ca
    key_type: ec
    ca_days: 3650
    leaf_days: 365
    renew_days: 30
    renew_check_minutes: 60

  # Optional. Disaster recovery: the etcd snapshot interval (the most a restore from
  # backup loses) and how many to keep on each node and, per node, on the master; the
  # restore drill's interval; the health beacon's tick and heartbeat; how many
  # consecutive unhealthy reports the reactor waits for before it probes etcd itself;
  # when a remediation's lock that was not renewed is taken over; fencing.
  dr:
    snapshot_interval_minutes: 5
    snapshot_retention: 48
    offsite_retention: 288
    receive_dir: /var/lib/paas/dr/snapshots
    drill_interval_minutes: 60
    beacon_interval_seconds: 5
    heartbeat_seconds: 60
    unhealthy_reports_before_action: 3
    lock_expiry_minutes: 15
    # Optional: how the master powers off an etcd node whose minion does not answer when
    # quorum is lost (argv, no shell; {node} and {address} filled in). Only its success
    # lets an unattended restore go on without that node; without it, a silent node
    # blocks the unattended restore until its minion answers or an operator fences it
    # (salt-run paas.restore fenced=NODE).
    # fencing:
    #   command: [/usr/local/bin/stop-server, "{node}"]
    #   timeout_seconds: 120

  # Optional. NTP servers for the nodes' time sync (default: none; the
  # distribution's pool). A container takes its clock from its host.
  time:
    ntp_servers:
      - 0.debian.pool.ntp.org
      - 1.debian.pool.ntp.org

  # Optional. Per-role overrides of the formula defaults (salt/<role>/defaults.yaml),
  # merged over them by salt/<role>/map.jinja.
  lookup:
    common:
      sysctls:
        net.core.somaxconn: 8192
    gateway:
      keepalived:
        # What keepalived runs every second to see haproxy alive (exit 0 = alive).
        check: /usr/bin/pidof -q haproxy
    kubernetes:
      # Where containerd reads its configuration (the role writes SystemdCgroup and the
      # sandbox image there). Other keys: packages (the distribution's: containerd, runc,
      # gnupg), kubernetes_packages (kubeadm, kubelet, kubectl, from the repository above),
      # modules and modules_file, sysctls and sysctl_file, apt (key_file, keyring,
      # sources, pin), validator (salt/kubernetes/defaults.yaml has them all).
      containerd:
        config: /etc/containerd/config.toml
