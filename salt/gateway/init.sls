# A gateway: keepalived holds both VIPs on one of the pair, haproxy publishes the API and
# the ingress on them, nftables forwards and NATs the private network, conntrackd keeps
# the NAT's connections on the other gateway for a failover.
include:
  - gateway.install
  - gateway.config
  - gateway.service
