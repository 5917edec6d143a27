"""
The platform's topology: its schema, its defaults and its validator.

Everything the platform builds is derived from one pillar key, ``paas``. This module
is the only code that knows its shape. It is plain Python with no Salt dunders, so the
same code is used by the ``paas_topology`` execution and state modules (through
``__utils__``), by the ``paas`` runner on the master, and by the lab tool.

:depends: nothing beyond the standard library
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
from collections import Counter
from typing import Any, NamedTuple

ROLES = ("gateway", "etcd", "control-plane", "worker")
NETWORKS = ("public", "private")

_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DOMAIN = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_VERSION = re.compile(r"^\d+\.\d+(\.\d+)?$")
_RELEASE = re.compile(r"^\d+\.\d+\.\d+$")
_IMAGE = re.compile(
    r"^[a-z0-9][a-z0-9._-]*(:[0-9]+)?(/[a-z0-9._-]+)+(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$"
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# What salt-run paas.preflight checks (_utils/paas_preflight.py), by the names that
# paas:preflight:ignore may list.
PREFLIGHT_CHECKS = (
    "os", "salt", "swap", "cgroup", "modules", "ports", "time_sync", "clock_skew",
    "etcd_disk", "disk_free", "names", "sources",
)  # fmt: skip
_URL = re.compile(r"^(https?|salt|file)://\S+$")


# NamedTuple, not dataclass: Salt's loader runs this module without registering it
# in sys.modules, which dataclasses need to resolve postponed annotations.
class TopologyError(NamedTuple):
    """One thing wrong with a topology: where it is and what is wrong."""

    field: str
    message: str
    node: str | None = None

    def __str__(self) -> str:
        where = f"node {self.node}: {self.field}" if self.node else self.field
        return f"{where}: {self.message}"


class Field(NamedTuple):
    """What one key of the topology may hold."""

    kind: str
    required: bool = False
    default: Any = None
    fields: dict[str, Field] | None = None
    item: Field | None = None
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


# kubeadm refuses an external etcd older than its MinExternalEtcdVersion
# (cmd/kubeadm/app/constants/constants.go) in the ExternalEtcdVersion preflight, which
# runs on init only. By Kubernetes line; a line is supported once its figure is here.
MIN_EXTERNAL_ETCD_VERSION = {"1.34": "3.5.24"}
# The only kubeadm preflight check the topology may ask to skip: Debian's etcd 3.5 can be
# older than kubeadm's minimum while the platform works on it.
IGNORABLE_PREFLIGHT_ERRORS = ("ExternalEtcdVersion",)
# The etcd that etcd's source "package" installs: Debian 13 (trixie), the nodes' release,
# ships etcd-server 3.5.16 (https://packages.debian.org/trixie/etcd-server).
DISTRIBUTION_ETCD_VERSION = "3.5.16"
KUBERNETES_REPOSITORY = {
    "url": "https://pkgs.k8s.io/core:/stable:/v{line}/deb/",
    "key_url": "https://pkgs.k8s.io/core:/stable:/v{line}/deb/Release.key",
}


def _mapping(fields: dict[str, Field], required: bool = False) -> Field:
    return Field("mapping", required=required, fields=fields)


_NETWORK_FIELDS = {
    "cidr": Field("network", required=True),
    "vip": Field("address", required=True),
    "vrrp_router_id": Field("integer", required=True, minimum=1, maximum=255),
}

SCHEMA = _mapping(
    {
        "cluster": _mapping(
            {
                "name": Field("hostname", required=True),
                "domain": Field("domain", default="paas.internal"),
            },
            required=True,
        ),
        "networks": _mapping(
            {
                "public": _mapping(
                    {**_NETWORK_FIELDS, "gateway": Field("address", required=True)},
                    required=True,
                ),
                "private": _mapping(_NETWORK_FIELDS, required=True),
            },
            required=True,
        ),
        "master": _mapping(
            {
                "id": Field("hostname", default="paas-master"),
                "address": Field("address", required=True),
            },
            required=True,
        ),
        "nodes": Field(
            "list",
            required=True,
            item=_mapping(
                {
                    "id": Field("hostname", required=True),
                    "roles": Field("list", required=True, item=Field("string", choices=ROLES)),
                    "addresses": _mapping(
                        {
                            "public": Field("address"),
                            "private": Field("address", required=True),
                        },
                        required=True,
                    ),
                }
            ),
        ),
        "versions": _mapping(
            {
                "etcd": Field("version", default="3.5", choices=("3.4", "3.5")),
                # A full release: the packages are pinned to it (<version>-*).
                "kubernetes": Field(
                    "release", default="1.34.2", choices=tuple(MIN_EXTERNAL_ETCD_VERSION)
                ),
            }
        ),
        "kubernetes": _mapping(
            {
                "pod_subnet": Field("network", default="10.244.0.0/16"),
                "service_subnet": Field("network", default="10.96.0.0/12"),
                "dns_domain": Field("domain", default="cluster.local"),
                # Workers joined at once; the next batch waits for this one.
                "worker_batch": Field("integer", default=10, minimum=1),
                # The lifetime of the bootstrap token made for one run's joins.
                "token_ttl_minutes": Field("integer", default=15, minimum=1, maximum=1440),
                "sandbox_image": Field("image", default="registry.k8s.io/pause:3.10"),
                # {line} is replaced by the Kubernetes line (1.34): pkgs.k8s.io has one
                # flat repository per line.
                "repository": _mapping(
                    {
                        "url": Field("url", default=KUBERNETES_REPOSITORY["url"]),
                        "key_url": Field("url", default=KUBERNETES_REPOSITORY["key_url"]),
                    }
                ),
                # Explicit only: the platform's own etcd version check before init is
                # skipped too.
                "ignore_preflight_errors": Field(
                    "list", default=[], item=Field("string", choices=IGNORABLE_PREFLIGHT_ERRORS)
                ),
            }
        ),
        # The machines checked before anything changes (salt-run paas.preflight): the
        # checks the operator accepts, everywhere ("swap") or on one node ("etcd1:swap").
        "preflight": _mapping({"ignore": Field("list", default=[], item=Field("string"))}),
        # Salt's own Python on every minion: the libraries the platform's modules import
        # (requirements-minion.lock), from a package index or a wheelhouse.
        "python": _mapping(
            {
                "index_url": Field("url", default="https://pypi.org/simple/"),
                # A wheelhouse: an absolute directory on the nodes, or the http(s) URL of
                # a page of links to the wheels. When set, no index is read.
                "find_links": Field("string", default=""),
            }
        ),
        "etcd": _mapping(
            {
                # package: the distribution's etcd-server; archive: an upstream release.
                "source": Field("string", default="package", choices=("package", "archive")),
                "archive": _mapping(
                    {
                        "version": Field("version"),
                        "url": Field("url"),
                        "sha256": Field("sha256"),
                    }
                ),
                "data_dir": Field("path", default="/var/lib/paas-etcd"),
                # The member's environment files (etcd.env, membership.env).
                "config_dir": Field("path", default="/etc/paas/etcd"),
                "snapshot_dir": Field("path", default="/var/lib/paas-etcd-snapshots"),
                "heartbeat_ms": Field("integer", default=100, minimum=10, maximum=5000),
                "election_ms": Field("integer", default=1000, minimum=50, maximum=50000),
                "metrics_port": Field("integer", default=2381, minimum=1024, maximum=65535),
                "quota_bytes": Field("integer", default=2147483648, minimum=16777216),
            }
        ),
        "gateway": _mapping(
            {
                # VRRPv3 counts adverts in centiseconds, VRRPv2 in whole seconds.
                "vrrp_version": Field("integer", default=3, minimum=2, maximum=3),
                "advert_ms": Field("integer", default=100, minimum=10, maximum=40950),
                # The control plane's API port, published on both VIPs.
                "api_port": Field("integer", default=6443, minimum=1, maximum=65535),
                # The workers' ingress ports that the VIPs' :80 and :443 forward to.
                "ingress": _mapping(
                    {
                        "http_port": Field("integer", default=30080, minimum=1, maximum=65535),
                        "https_port": Field("integer", default=30443, minimum=1, maximum=65535),
                    }
                ),
                # haproxy's health checks: a dead backend is out after fall x interval.
                "check_interval_ms": Field("integer", default=300, minimum=100, maximum=60000),
                "check_fall": Field("integer", default=3, minimum=1, maximum=20),
                "check_rise": Field("integer", default=2, minimum=1, maximum=20),
                "stats_port": Field("integer", default=8404, minimum=1024, maximum=65535),
                # conntrackd's state sync between the two gateways (UDP, private side).
                "sync_port": Field("integer", default=3780, minimum=1024, maximum=65535),
            }
        ),
        "pki": _mapping(
            {
                "dir": Field("path", default="/etc/paas/pki"),
                "ca_dir": Field("path", default="/etc/paas/ca"),
                "key_type": Field("string", default="ec", choices=("ec", "rsa")),
                "ca_days": Field("integer", default=3650, minimum=1),
                "leaf_days": Field("integer", default=365, minimum=1),
                "renew_days": Field("integer", default=30, minimum=1),
                # How often the master's schedule looks for certificates inside the
                # renewal window and renews them (salt-run paas.renew).
                "renew_check_minutes": Field("integer", default=60, minimum=1, maximum=1440),
            }
        ),
        "dr": _mapping(
            {
                # The most data a restore from backup can lose.
                "snapshot_interval_minutes": Field("integer", default=5, minimum=1),
                # Verified snapshots kept on each etcd node, and per node on the master.
                "snapshot_retention": Field("integer", default=48, minimum=1),
                "offsite_retention": Field("integer", default=288, minimum=1),
                # Where the master keeps the snapshots the nodes send it.
                "receive_dir": Field("path", default="/var/lib/paas/dr/snapshots"),
                # The newest off-node snapshot restored into a scratch etcd and read back.
                "drill_interval_minutes": Field("integer", default=60, minimum=1),
                # The beacon's tick, and how often it reports an unchanged state.
                "beacon_interval_seconds": Field("integer", default=5, minimum=1),
                "heartbeat_seconds": Field("integer", default=60, minimum=5),
                # Consecutive bad reports from a member before the reactor acts on it.
                "unhealthy_reports_before_action": Field("integer", default=3, minimum=1),
                # A remediation's lock is taken over when its holder has not renewed it
                # for this long (the holder renews it while it works), or at once when
                # the holder's process is gone (a master restarted mid-way).
                "lock_expiry_minutes": Field("integer", default=15, minimum=1),
                # A command the master runs to power off an etcd node whose minion does
                # not answer when quorum is lost (a cloud's "stop server" call): only
                # its success lets an unattended restore go on without that node.
                # Without it, a silent node blocks the unattended restore.
                "fencing": _mapping(
                    {
                        # argv, no shell; {node} and {address} (its private address)
                        # are filled in.
                        "command": Field("list", default=[], item=Field("string")),
                        "timeout_seconds": Field("integer", default=120, minimum=1),
                    }
                ),
            }
        ),
        "time": _mapping({"ntp_servers": Field("list", default=[], item=Field("string"))}),
        # Overrides of the formulas' defaults (salt/<role>/defaults.yaml). Only what the
        # formula alone uses may be overridden: what a module relies on too (the etcd
        # service, data and binary directories; the gateway's haproxy socket, VRRP state
        # file and services) is fixed by the role's view below, or comes from the topology.
        "lookup": _mapping(
            {
                "common": _mapping(
                    {
                        "packages": Field("list", item=Field("string")),
                        "sysctls": Field("table", item=Field("scalar")),
                        "sysctl_file": Field("path"),
                        "timesyncd_service": Field("string"),
                        "timesyncd_config": Field("path"),
                        "default_route_service": Field("string"),
                    }
                ),
                "etcd": _mapping(
                    {
                        "packages": Field("list", item=Field("string")),
                        "package_service": Field("string"),
                    }
                ),
                "kubernetes": _mapping(
                    {
                        # The distribution's packages only (the lab's image holds them).
                        "packages": Field("list", item=Field("string")),
                        # From the Kubernetes repository, pinned and held at the version.
                        "kubernetes_packages": Field("list", item=Field("string")),
                        # Module name: a command that succeeds once it is in the kernel.
                        "modules": Field("table", item=Field("string")),
                        "modules_file": Field("path"),
                        "sysctls": Field("table", item=Field("scalar")),
                        "sysctl_file": Field("path"),
                        "containerd": _mapping({"config": Field("path")}),
                        "apt": _mapping(
                            {
                                "key_file": Field("path"),
                                "keyring": Field("path"),
                                "sources": Field("path"),
                                "pin": Field("path"),
                            }
                        ),
                        "validator": Field("path"),
                    }
                ),
                "gateway": _mapping(
                    {
                        "packages": Field("list", item=Field("string")),
                        "sysctls": Field("table", item=Field("scalar")),
                        "sysctl_file": Field("path"),
                        "keepalived": _mapping(
                            {
                                "config": Field("path"),
                                "notify": Field("path"),
                                "check": Field("string"),
                            }
                        ),
                        "haproxy": _mapping({"config": Field("path")}),
                        "nftables": _mapping({"config": Field("path")}),
                        "conntrackd": _mapping({"config": Field("path"), "socket": Field("path")}),
                    }
                ),
            }
        ),
    }
)

# Where the platform's own files and units are on every node. Fixed, not pillar: the
# formulas and the modules that read them must agree, so there is one place for each.
ETCD = {
    "client_port": 2379,
    "peer_port": 2380,
    "service": "paas-etcd",
    "user": "etcd",
}
GATEWAY = {
    "haproxy_socket": "/run/haproxy/admin.sock",
    "vrrp_state_file": "/run/paas-gateway/vrrp-state",
    # The distribution's unit of each daemon.
    "services": {
        "keepalived": "keepalived",
        "haproxy": "haproxy",
        "conntrackd": "conntrackd",
        "nftables": "nftables",
    },
}
KUBERNETES = {
    # The platform's kubeadm configuration (the formula writes it, kubeadm reads it).
    "config_file": "/etc/paas/kubernetes/kubeadm.yaml",
    # What kubeadm itself writes: a node is joined once kubelet.conf exists.
    "admin_kubeconfig": "/etc/kubernetes/admin.conf",
    "kubelet_kubeconfig": "/etc/kubernetes/kubelet.conf",
    "pki_dir": "/etc/kubernetes/pki",
    "manifests_dir": "/etc/kubernetes/manifests",
    # Where a restore of etcd keeps the control plane's static Pod manifests meanwhile:
    # out of the kubelet's staticPodPath, so the kubelet stops those Pods.
    "paused_manifests_dir": "/etc/kubernetes/paas-paused-manifests",
    # Where a restart on renewed certificates sets manifests for a moment.
    "restart_manifests_dir": "/etc/kubernetes/paas-restart-manifests",
    "control_plane_components": ("kube-apiserver", "kube-controller-manager", "kube-scheduler"),
    "containerd_socket": "/run/containerd/containerd.sock",
    "services": {"containerd": "containerd", "kubelet": "kubelet"},
}
# kubeadm's own limits on the subnets (cmd/kubeadm/app/apis/kubeadm/validation): the
# service subnet holds at least 10 addresses and at most 2^20; the pod subnet holds at
# least one node's /24 (the controller-manager's default node mask), and at most 2^16 of
# them.
SERVICE_SUBNET_PREFIXES = (12, 28)
POD_SUBNET_PREFIXES = (8, 24)
# Certificate profiles: roles that get it, extended key usage, who owns the key. etcd's
# server certificate authenticates as a client too: etcd's JSON gateway (/v3/ over HTTPS)
# dials etcd's own gRPC port presenting it (etcd-io/etcd#9785; etcd 3.4 has no separate
# gateway client certificate), as kubeadm's etcd server certificate does
# (docs/decisions/0004-etcd-server-certificate-client-auth.md).
CERTIFICATE_PROFILES = {
    "etcd-server": ("etcd", "serverAuth, clientAuth", ETCD["user"]),
    "etcd-peer": ("etcd", "serverAuth, clientAuth", ETCD["user"]),
    "etcd-healthcheck-client": ("etcd", "clientAuth", "root"),
    "kube-apiserver-etcd-client": ("control-plane", "clientAuth", "root"),
    "etcd-admin-client": ("master", "clientAuth", "root"),
}
# The CA certificate as nodes keep it, beside their own certificates.
CA_CERTIFICATE = "etcd-ca.crt"
KEY_USAGE_SERVER = "critical, digitalSignature, keyEncipherment"
KEY_USAGE_CLIENT = "critical, digitalSignature"


def validate(topology: Any) -> list[TopologyError]:
    """
    Return every error in ``topology`` (the value of the ``paas`` pillar key).

    An empty list means the topology is valid. Shape errors (unknown keys, missing
    fields, wrong types) are reported first; the rules between fields (addresses,
    role counts) are checked only on a topology whose shape is right, so that one
    mistake is not reported many times over.
    """
    errors: list[TopologyError] = []
    _check_shape(topology, SCHEMA, "paas", errors, node=None)
    if errors:
        return errors
    _check_nodes(topology, errors)
    _check_addresses(topology, errors)
    _check_roles(topology, errors)
    _check_settings(topology, errors)
    return errors


def with_defaults(topology: dict) -> dict:
    """Return a copy of a valid ``topology`` with every optional key filled in."""
    return _fill(copy.deepcopy(topology), SCHEMA)


def roles() -> tuple[str, ...]:
    """The roles a node may hold."""
    return ROLES


def nodes(topology: dict, role: str | None = None) -> list[dict]:
    """The nodes of ``topology``, in pillar order, optionally only those with ``role``."""
    return [node for node in topology["nodes"] if role is None or role in node["roles"]]


def node_ids(topology: Any, role: str | None = None) -> list[str]:
    """
    The ids of the nodes, tolerating a malformed topology.

    Orchestration files compute their targets with this while they render, before the
    validator has run; a malformed entry is skipped here and reported by the validator.
    """
    entries = topology.get("nodes") if isinstance(topology, dict) else None
    if not isinstance(entries, list):
        return []
    ids = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        roles = entry.get("roles")
        if role is None or (isinstance(roles, list) and role in roles):
            ids.append(entry["id"])
    return ids


def master_id(topology: Any) -> str:
    """The id of the master's own minion, tolerating a malformed topology like node_ids."""
    master = topology.get("master") if isinstance(topology, dict) else None
    if isinstance(master, dict) and isinstance(master.get("id"), str):
        return master["id"]
    return SCHEMA.fields["master"].fields["id"].default


def node(topology: dict, node_id: str) -> dict | None:
    """The node called ``node_id``, or ``None`` when the topology has no such node."""
    for entry in topology["nodes"]:
        if entry["id"] == node_id:
            return entry
    return None


def hosts(topology: dict) -> list[tuple[str, list[str]]]:
    """
    The name-to-address entries every node's ``/etc/hosts`` holds.

    A node's names resolve to its private address, where the cluster's traffic runs;
    a gateway's public address is ``<id>-public``. The master answers to ``salt``, the
    name a minion looks for by default, and the VIPs have names of their own.
    """
    domain = topology["cluster"]["domain"]
    name = topology["cluster"]["name"]
    entries = [(topology["master"]["address"], [f"salt.{domain}", "salt"])]
    for entry in topology["nodes"]:
        entries.append((entry["addresses"]["private"], [f"{entry['id']}.{domain}", entry["id"]]))
        public = entry["addresses"].get("public")
        if public:
            entries.append((public, [f"{entry['id']}-public.{domain}", f"{entry['id']}-public"]))
    for network in NETWORKS:
        vip = topology["networks"][network]["vip"]
        entries.append((vip, [f"{name}-{network}-vip.{domain}", f"{name}-{network}-vip"]))
    return entries


def _check_shape(value: Any, field: Field, path: str, errors: list, node: str | None) -> None:
    if field.kind == "table":
        if not isinstance(value, dict):
            errors.append(TopologyError(path, f"must be a mapping, not {_type_name(value)}", node))
            return
        for key, item in value.items():
            _check_shape(item, field.item, f"{path}:{key}", errors, node)
        return
    if field.kind == "mapping":
        _check_mapping(value, field, path, errors, node)
    elif field.kind == "list":
        if not isinstance(value, list):
            errors.append(TopologyError(path, f"must be a list, not {_type_name(value)}", node))
            return
        for index, item in enumerate(value):
            item_node = node
            if path == "paas:nodes":
                item_node = _node_label(item, index)
            _check_shape(item, field.item, f"{path}[{index}]", errors, item_node)
    else:
        message = _check_scalar(value, field)
        if message:
            errors.append(TopologyError(path, message, node))


def _check_mapping(value: Any, field: Field, path: str, errors: list, node: str | None) -> None:
    if not isinstance(value, dict):
        errors.append(TopologyError(path, f"must be a mapping, not {_type_name(value)}", node))
        return
    for key in value:
        if key not in field.fields:
            known = ", ".join(sorted(field.fields))
            errors.append(
                TopologyError(f"{path}:{key}", f"unknown key (known keys: {known})", node)
            )
    for key, child in field.fields.items():
        if key in value:
            _check_shape(value[key], child, f"{path}:{key}", errors, node)
        elif child.required:
            errors.append(TopologyError(f"{path}:{key}", "missing required field", node))


def _check_scalar(value: Any, field: Field) -> str | None:
    if field.kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, not {_type_name(value)}"
        if field.minimum is not None and value < field.minimum:
            return f"must be at least {field.minimum}, not {value}"
        if field.maximum is not None and value > field.maximum:
            return f"must be at most {field.maximum}, not {value}"
        return None
    if field.kind == "scalar":
        if isinstance(value, bool) or not isinstance(value, str | int):
            return f"must be a string or an integer, not {_type_name(value)}"
        return None
    if not isinstance(value, str):
        return f"must be a string, not {_type_name(value)}"
    if field.kind == "address":
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            return f"{value!r} is not an IPv4 address"
    elif field.kind == "network":
        # Host bits are allowed here so that _check_addresses can name the network meant.
        try:
            ipaddress.IPv4Network(value, strict=False)
        except ValueError:
            return f"{value!r} is not an IPv4 network in CIDR form (like 198.18.1.0/24)"
    elif field.kind == "hostname" and not _HOSTNAME.match(value):
        return f"{value!r} is not a valid host name (lower-case letters, digits and '-')"
    elif field.kind == "domain" and not _DOMAIN.match(value):
        return f"{value!r} is not a valid DNS domain"
    elif field.kind == "path" and not value.startswith("/"):
        return f"{value!r} is not an absolute path"
    elif field.kind == "sha256" and not _SHA256.match(value):
        return f"{value!r} is not a sha256 digest (64 lower-case hex digits)"
    elif field.kind == "sha256" and len(set(value)) == 1:
        return (
            f"{value!r} is a placeholder, not a digest: put the file's own sha256 (for a "
            "release, the line of its published SHA256SUMS)"
        )
    elif field.kind == "url" and not _URL.match(value):
        return f"{value!r} is not an http(s)://, salt:// or file:// URL"
    elif field.kind == "version" and not _VERSION.match(value):
        return f"{value!r} is not a version like 1.31 or 1.31.2"
    elif field.kind == "release" and not _RELEASE.match(value):
        return f"{value!r} is not a full version like 1.34.2 (the packages are pinned to it)"
    elif field.kind == "image" and not _IMAGE.match(value):
        return f"{value!r} is not a container image reference like registry.k8s.io/pause:3.10"
    if field.choices and _choice_of(value, field) not in field.choices:
        return f"{value!r} is not one of: {', '.join(field.choices)}"
    return None


def _choice_of(value: str, field: Field) -> str:
    # A version field accepts any patch release of an allowed minor line.
    if field.kind in ("version", "release"):
        return ".".join(value.split(".")[:2])
    return value


def _check_nodes(topology: dict, errors: list) -> None:
    counts = Counter(entry["id"] for entry in topology["nodes"])
    master_id = with_defaults(topology)["master"]["id"]
    if master_id in counts:
        errors.append(
            TopologyError(
                "paas:master:id", f"{master_id!r} is also a node's id; the master is not a node"
            )
        )
    for index, entry in enumerate(topology["nodes"]):
        path = f"paas:nodes[{index}]"
        if counts[entry["id"]] > 1:
            errors.append(
                TopologyError(f"{path}:id", f"duplicate node id {entry['id']!r}", entry["id"])
            )
        roles = Counter(entry["roles"])
        if not roles:
            errors.append(
                TopologyError(f"{path}:roles", "a node needs at least one role", entry["id"])
            )
        for role, count in roles.items():
            if count > 1:
                errors.append(
                    TopologyError(f"{path}:roles", f"role {role!r} is listed twice", entry["id"])
                )
        is_gateway = "gateway" in roles
        has_public = "public" in entry["addresses"]
        if is_gateway and not has_public:
            errors.append(
                TopologyError(
                    f"{path}:addresses:public", "a gateway needs a public address", entry["id"]
                )
            )
        if has_public and not is_gateway:
            errors.append(
                TopologyError(
                    f"{path}:addresses:public",
                    "only gateways have a public address; every other node is private",
                    entry["id"],
                )
            )


def _check_addresses(topology: dict, errors: list) -> None:
    networks = {
        name: ipaddress.IPv4Network(topology["networks"][name]["cidr"], strict=False)
        for name in NETWORKS
    }
    for name, network in networks.items():
        cidr = topology["networks"][name]["cidr"]
        if str(network) != cidr:
            errors.append(
                TopologyError(
                    f"paas:networks:{name}:cidr",
                    f"{cidr!r} has host bits set; the network is {network}",
                )
            )
    if networks["public"].overlaps(networks["private"]):
        errors.append(
            TopologyError(
                "paas:networks:private:cidr",
                f"{networks['private']} overlaps the public network {networks['public']}",
            )
        )

    # Every address the platform owns, with where it was declared, in pillar order.
    owned: list[tuple[str, str, str, str | None]] = [
        (topology["master"]["address"], "private", "paas:master:address", None),
        (topology["networks"]["public"]["gateway"], "public", "paas:networks:public:gateway", None),
    ]
    for index, entry in enumerate(topology["nodes"]):
        for network, address in entry["addresses"].items():
            owned.append(
                (address, network, f"paas:nodes[{index}]:addresses:{network}", entry["id"])
            )
    vips = [
        (topology["networks"][name]["vip"], name, f"paas:networks:{name}:vip", None)
        for name in NETWORKS
    ]

    for address, network, path, node_id in owned + vips:
        parsed = ipaddress.IPv4Address(address)
        subnet = networks[network]
        if parsed not in subnet:
            errors.append(
                TopologyError(path, f"{address} is outside the {network} network {subnet}", node_id)
            )
        elif parsed in (subnet.network_address, subnet.broadcast_address):
            errors.append(
                TopologyError(
                    path, f"{address} is the network or broadcast address of {subnet}", node_id
                )
            )

    first_owner: dict[str, str] = {}
    for address, _network, path, node_id in owned:
        if address in first_owner:
            errors.append(
                TopologyError(
                    path, f"address {address} is already used by {first_owner[address]}", node_id
                )
            )
        else:
            first_owner[address] = f"node {node_id}" if node_id else path
    for address, _network, path, _node_id in vips:
        if address in first_owner:
            errors.append(
                TopologyError(
                    path,
                    f"VIP {address} is the address of {first_owner[address]}; a VIP must be free",
                )
            )
    if topology["networks"]["public"]["vip"] == topology["networks"]["private"]["vip"]:
        errors.append(
            TopologyError("paas:networks:private:vip", "the two VIPs are the same address")
        )
    if (
        topology["networks"]["public"]["vrrp_router_id"]
        == topology["networks"]["private"]["vrrp_router_id"]
    ):
        errors.append(
            TopologyError(
                "paas:networks:private:vrrp_router_id",
                "must differ from the public network's vrrp_router_id",
            )
        )


def _check_roles(topology: dict, errors: list) -> None:
    counts = Counter(role for entry in topology["nodes"] for role in set(entry["roles"]))
    if counts["gateway"] < 2:
        errors.append(
            TopologyError(
                "paas:nodes",
                f"{counts['gateway']} gateway node(s); the platform needs at least 2 "
                "so that no gateway is a single point of failure",
            )
        )
    elif counts["gateway"] > 2:
        errors.append(
            TopologyError(
                "paas:nodes",
                f"{counts['gateway']} gateway nodes; the gateways are a pair (VRRP unicast "
                "peers, conntrackd syncs one peer), so there are exactly 2",
            )
        )
    etcd = counts["etcd"]
    if etcd < 3 or etcd % 2 == 0:
        errors.append(
            TopologyError(
                "paas:nodes",
                f"{etcd} etcd node(s); etcd needs an odd count of at least 3 (3, 5 or 7) "
                "to keep quorum when a member is lost",
            )
        )
    for role in ("control-plane", "worker"):
        if counts[role] == 0:
            errors.append(TopologyError("paas:nodes", f"no {role} node; the platform needs one"))


def _check_settings(topology: dict, errors: list) -> None:
    filled = with_defaults(topology)
    _check_etcd_settings(filled, errors)
    _check_gateway_settings(filled, errors)
    _check_kubernetes_settings(filled, errors)
    _check_fencing(filled["dr"]["fencing"], errors)
    _check_python_settings(filled["python"], errors)
    _check_preflight_settings(filled, errors)
    pki = filled["pki"]
    if pki["renew_days"] >= pki["leaf_days"]:
        errors.append(
            TopologyError(
                "paas:pki:renew_days",
                f"{pki['renew_days']} must be shorter than leaf_days ({pki['leaf_days']}), "
                "or every certificate would renew on every run",
            )
        )
    if pki["leaf_days"] > pki["ca_days"]:
        errors.append(
            TopologyError(
                "paas:pki:leaf_days",
                f"{pki['leaf_days']} is longer than the CA's lifetime ca_days ({pki['ca_days']})",
            )
        )


def _check_preflight_settings(topology: dict, errors: list) -> None:
    ids = {entry["id"] for entry in topology["nodes"] if isinstance(entry, dict)}
    for index, entry in enumerate(topology["preflight"]["ignore"]):
        node, _, check = entry.rpartition(":")
        problem = None
        if check not in PREFLIGHT_CHECKS:
            problem = f"{check!r} is not a preflight check ({', '.join(PREFLIGHT_CHECKS)})"
        elif node and node not in ids:
            problem = f"{node!r} is not a node of the topology"
        if problem:
            errors.append(
                TopologyError(
                    f"paas:preflight:ignore[{index}]",
                    f"{entry!r}: {problem}; an entry is CHECK or NODE:CHECK",
                )
            )


def _check_python_settings(python: dict, errors: list) -> None:
    if not python["index_url"].startswith(("http://", "https://")):
        errors.append(
            TopologyError(
                "paas:python:index_url",
                f"{python['index_url']!r} is not an http(s):// URL of a package index",
            )
        )
    find_links = python["find_links"]
    if find_links and not find_links.startswith(("/", "http://", "https://")):
        errors.append(
            TopologyError(
                "paas:python:find_links",
                f"{find_links!r} is neither an absolute directory on the nodes nor the "
                "http(s):// URL of a page of links to wheels",
            )
        )


def _check_etcd_settings(topology: dict, errors: list) -> None:
    etcd = topology["etcd"]
    # etcd itself refuses to start with an election timeout under five heartbeats.
    if etcd["election_ms"] < 5 * etcd["heartbeat_ms"]:
        errors.append(
            TopologyError(
                "paas:etcd:election_ms",
                f"{etcd['election_ms']} must be at least five heartbeats "
                f"(5 x heartbeat_ms = {5 * etcd['heartbeat_ms']})",
            )
        )
    if etcd["source"] != "archive":
        return
    archive = etcd["archive"]
    for key in ("version", "url", "sha256"):
        if archive.get(key) is None:
            errors.append(
                TopologyError(f"paas:etcd:archive:{key}", "is required when source is archive")
            )
    line = topology["versions"]["etcd"]
    version = archive.get("version")
    if version and ".".join(version.split(".")[:2]) != ".".join(line.split(".")[:2]):
        errors.append(
            TopologyError(
                "paas:etcd:archive:version",
                f"{version} is not of the etcd line in paas:versions:etcd ({line})",
            )
        )


def _check_fencing(fencing: dict, errors: list) -> None:
    command = fencing["command"]
    if not command:
        return
    if not command[0].startswith("/"):
        errors.append(
            TopologyError(
                "paas:dr:fencing:command",
                f"{command[0]!r} must be an absolute path: the master runs it without a shell",
            )
        )
    for index, argument in enumerate(command):
        try:
            argument.format(node="node", address="198.18.0.1")
        except (KeyError, IndexError, ValueError) as err:
            errors.append(
                TopologyError(
                    f"paas:dr:fencing:command[{index}]",
                    f"{argument!r}: only {{node}} and {{address}} are filled in ({err})",
                )
            )
    if not any("{node}" in argument or "{address}" in argument for argument in command):
        errors.append(
            TopologyError(
                "paas:dr:fencing:command",
                "names no node: it must hold {node} or {address}, or every fencing would "
                "power off the same machine",
            )
        )


def _check_gateway_settings(topology: dict, errors: list) -> None:
    gateway = topology["gateway"]
    advert = gateway["advert_ms"]
    if gateway["vrrp_version"] == 2 and advert % 1000:
        errors.append(
            TopologyError(
                "paas:gateway:advert_ms",
                f"{advert} is not whole seconds; VRRP version 2 adverts in seconds "
                "(sub-second adverts need vrrp_version 3)",
            )
        )
    elif advert % 10:
        errors.append(
            TopologyError(
                "paas:gateway:advert_ms",
                f"{advert} is not a multiple of 10; VRRP version 3 adverts in centiseconds",
            )
        )


def _check_kubernetes_settings(topology: dict, errors: list) -> None:
    settings = topology["kubernetes"]
    subnets = {}
    for name, (widest, narrowest) in (
        ("pod_subnet", POD_SUBNET_PREFIXES),
        ("service_subnet", SERVICE_SUBNET_PREFIXES),
    ):
        path = f"paas:kubernetes:{name}"
        subnet = ipaddress.IPv4Network(settings[name], strict=False)
        if str(subnet) != settings[name]:
            errors.append(
                TopologyError(
                    path, f"{settings[name]!r} has host bits set; the network is {subnet}"
                )
            )
            continue
        if not widest <= subnet.prefixlen <= narrowest:
            errors.append(
                TopologyError(
                    path,
                    f"{subnet} has a /{subnet.prefixlen} prefix; kubeadm takes a {name} "
                    f"between /{widest} and /{narrowest}",
                )
            )
            continue
        subnets[name] = subnet
    # The VIPs, nodes and master are inside the two networks (checked above), so a subnet
    # clear of both networks is clear of every address the platform owns.
    for name, subnet in subnets.items():
        for network in NETWORKS:
            cidr = ipaddress.IPv4Network(topology["networks"][network]["cidr"], strict=False)
            if subnet.overlaps(cidr):
                held = _holders(topology, network, subnet)
                errors.append(
                    TopologyError(
                        f"paas:kubernetes:{name}",
                        f"{subnet} overlaps the {network} network {cidr}"
                        + (f", where it holds {held}" if held else "")
                        + "; pods and services need addresses of their own",
                    )
                )
    if len(subnets) == 2 and subnets["pod_subnet"].overlaps(subnets["service_subnet"]):
        errors.append(
            TopologyError(
                "paas:kubernetes:service_subnet",
                f"{subnets['service_subnet']} overlaps the pod_subnet {subnets['pod_subnet']}",
            )
        )
    line = _line(topology["versions"]["kubernetes"])
    _check_etcd_for_kubeadm(topology, line, errors)
    for key, url in settings["repository"].items():
        path = f"paas:kubernetes:repository:{key}"
        if not url.startswith(("http://", "https://")):
            errors.append(TopologyError(path, f"{url!r} is not an http(s):// URL, which apt reads"))
            continue
        try:
            url.format(line=line)
        except (KeyError, IndexError, ValueError):
            errors.append(
                TopologyError(
                    path, f"{url!r} may hold {{line}} (the Kubernetes line) and no other field"
                )
            )
    ignored = settings["ignore_preflight_errors"]
    for index, check in enumerate(ignored):
        if check in ignored[:index]:
            errors.append(
                TopologyError(
                    f"paas:kubernetes:ignore_preflight_errors[{index}]",
                    f"{check!r} is listed twice",
                )
            )


def _holders(topology: dict, network: str, subnet: ipaddress.IPv4Network, shown: int = 3) -> str:
    """Who owns an address of ``network`` inside ``subnet``: nodes first, then the VIP and
    the master; the first few of them."""
    owners = [
        f"node {entry['id']} ({entry['addresses'][network]})"
        for entry in topology["nodes"]
        if network in entry["addresses"]
        and ipaddress.IPv4Address(entry["addresses"][network]) in subnet
    ]
    vip = topology["networks"][network]["vip"]
    if ipaddress.IPv4Address(vip) in subnet:
        owners.append(f"the {network} VIP {vip}")
    if network == "private" and ipaddress.IPv4Address(topology["master"]["address"]) in subnet:
        owners.append(f"the master ({topology['master']['address']})")
    if len(owners) > shown:
        owners = [*owners[:shown], f"{len(owners) - shown} more"]
    return ", ".join(owners)


def _check_etcd_for_kubeadm(topology: dict, line: str, errors: list) -> None:
    """kubeadm's ExternalEtcdVersion preflight refuses, at init, an etcd older than its
    line's minimum: say so before any change, unless the topology ignores that check."""
    if "ExternalEtcdVersion" in topology["kubernetes"]["ignore_preflight_errors"]:
        return
    minimum = MIN_EXTERNAL_ETCD_VERSION.get(line)
    etcd = topology["etcd"]
    if etcd["source"] == "archive":
        path, version = "paas:etcd:archive:version", etcd["archive"].get("version")
        what = str(version)
        fix = f"pin a release of {minimum} or newer"
    else:
        path, version = "paas:etcd:source", DISTRIBUTION_ETCD_VERSION
        what = f"package: the distribution's etcd-server, {version} on Debian 13,"
        fix = f"use source: archive with an upstream release of {minimum} or newer"
    if minimum is None or not version or not _VERSION.match(version):
        return
    if _numbers(version) < _numbers(minimum):
        errors.append(
            TopologyError(
                path,
                f"{what} is older than kubeadm {line} accepts for an external etcd "
                f"({minimum} or newer; its ExternalEtcdVersion preflight stops kubeadm init): "
                f"{fix}, or list ExternalEtcdVersion in "
                "paas:kubernetes:ignore_preflight_errors to run on it anyway",
            )
        )


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _line(version: str) -> str:
    return ".".join(version.split(".")[:2])


def gateway(topology: dict, node_id: str) -> dict:
    """
    What the gateway ``node_id`` of a valid ``topology`` is configured from: itself and
    its peer on both networks, the VIPs, its VRRP priority, the backends and timers.

    The first gateway in pillar order has the higher priority, so it takes the VIPs
    when both start; afterwards the VIPs stay where they are until that gateway fails.
    """
    topology = with_defaults(topology)
    pair = nodes(topology, "gateway")
    ids = [entry["id"] for entry in pair]
    if node_id not in ids:
        raise ValueError(f"{node_id} is not a gateway of the topology (gateways: {ids})")
    own = pair[ids.index(node_id)]
    peer = pair[1 - ids.index(node_id)]
    settings = topology["gateway"]
    networks = {}
    for name in NETWORKS:
        network = topology["networks"][name]
        networks[name] = {
            "cidr": network["cidr"],
            "prefix": int(network["cidr"].split("/")[1]),
            "vip": network["vip"],
            "router_id": network["vrrp_router_id"],
            "address": own["addresses"][name],
            "peer_address": peer["addresses"][name],
        }
    return {
        "id": node_id,
        "peer": peer["id"],
        "priority": 150 if ids.index(node_id) == 0 else 100,
        "vrrp_version": settings["vrrp_version"],
        # keepalived's advert_int is in seconds; VRRPv3 takes two decimals.
        "advert_int": f"{settings['advert_ms'] / 1000:g}",
        "networks": networks,
        "api_port": settings["api_port"],
        "ingress": settings["ingress"],
        "check": {
            "interval_ms": settings["check_interval_ms"],
            "fall": settings["check_fall"],
            "rise": settings["check_rise"],
        },
        "stats_port": settings["stats_port"],
        "sync_port": settings["sync_port"],
        "haproxy_socket": GATEWAY["haproxy_socket"],
        "vrrp_state_file": GATEWAY["vrrp_state_file"],
        "services": dict(GATEWAY["services"]),
        "control_planes": [
            {"id": entry["id"], "address": entry["addresses"]["private"]}
            for entry in nodes(topology, "control-plane")
        ],
        "workers": [
            {"id": entry["id"], "address": entry["addresses"]["private"]}
            for entry in nodes(topology, "worker")
        ],
    }


def common(topology: dict, node_id: str) -> dict:
    """
    What the common baseline of node ``node_id`` is configured from: its name, the
    platform's ``/etc/hosts`` entries, the NTP servers, and its default route: the
    private VIP for a private node (its way out is the gateways' NAT), none for a
    gateway (its own public side).
    """
    topology = with_defaults(topology)
    entry = node(topology, node_id)
    if entry is None:
        raise ValueError(
            f"{node_id} is not a node of the paas topology; the baseline is only for its nodes"
        )
    private = "public" not in entry["addresses"]
    return {
        "id": node_id,
        "hosts": [[address, names] for address, names in hosts(topology)],
        "ntp_servers": list(topology["time"]["ntp_servers"]),
        "default_route": topology["networks"]["private"]["vip"] if private else None,
    }


def etcd(topology: dict) -> dict:
    """
    How the platform runs etcd, the same on every node: version line, install source,
    binaries, unit, directories and files, timers, the cluster token, and every member
    of the topology with its client and peer URLs.
    """
    topology = with_defaults(topology)
    settings = topology["etcd"]
    if settings["source"] == "archive":
        # Where an upstream release unpacks under /opt/etcd.
        bin_dir = f"/opt/etcd/etcd-v{settings['archive']['version']}-linux-amd64"
    else:
        bin_dir = "/usr/bin"
    config_dir = settings["config_dir"]
    members = {}
    for entry in nodes(topology, "etcd"):
        address = entry["addresses"]["private"]
        members[entry["id"]] = {
            "address": address,
            "client_url": f"https://{address}:{ETCD['client_port']}",
            "peer_url": f"https://{address}:{ETCD['peer_port']}",
        }
    return {
        "line": topology["versions"]["etcd"],
        "source": settings["source"],
        "archive": dict(settings["archive"]),
        "bin_dir": bin_dir,
        "service": ETCD["service"],
        "unit_file": f"/etc/systemd/system/{ETCD['service']}.service",
        "user": ETCD["user"],
        "config_dir": config_dir,
        "env_file": f"{config_dir}/etcd.env",
        # Written when a member joins; the unit reads it only while the data dir is empty.
        "membership_env": f"{config_dir}/membership.env",
        # Present for one start only (etcd_cluster.force_new_cluster); under /run, so a
        # reboot never keeps it.
        "force_new_cluster_env": f"/run/{ETCD['service']}/force-new-cluster.env",
        "data_dir": settings["data_dir"],
        "snapshot_dir": settings["snapshot_dir"],
        "heartbeat_ms": settings["heartbeat_ms"],
        "election_ms": settings["election_ms"],
        "quota_bytes": settings["quota_bytes"],
        "metrics_url": f"http://127.0.0.1:{settings['metrics_port']}",
        "token": f"paas-{topology['cluster']['name']}",
        "client_port": ETCD["client_port"],
        "peer_port": ETCD["peer_port"],
        "members": members,
        "initial_cluster": ",".join(
            f"{name}={member['peer_url']}" for name, member in members.items()
        ),
    }


def dr(topology: dict) -> dict:
    """
    How the platform keeps etcd recoverable: the snapshot timer and retention on the
    nodes and on the master, the master's receive and state directories, the drill's
    timer, the beacon's timers, the reactor's debounce and its lock's expiry, and the
    etcd cluster (``etcd``) all of it is about.
    """
    topology = with_defaults(topology)
    settings = topology["dr"]
    receive_dir = settings["receive_dir"]
    return {
        **settings,
        "etcd": etcd(topology),
        "master_id": topology["master"]["id"],
        # The master's own client of every member, for its probe before it acts.
        "admin_client": certificate_paths(topology, "etcd-admin-client"),
        "private_addresses": {
            entry["id"]: entry["addresses"]["private"] for entry in nodes(topology, "etcd")
        },
        # The runner's records (beacon reports, the lock, drills, remediations).
        "state_dir": os.path.join(os.path.dirname(receive_dir.rstrip("/")), "state"),
    }


def etcd_member(topology: dict, node_id: str) -> dict:
    """
    What the etcd member on node ``node_id`` runs with: the cluster's settings
    (``etcd``), its name, address and URLs, and its certificates' paths.
    """
    cluster = etcd(topology)
    if node_id not in cluster["members"]:
        raise ValueError(
            f"{node_id} is not an etcd node of the topology "
            f"(etcd nodes: {', '.join(cluster['members'])})"
        )
    paths = {
        profile: certificate_paths(topology, profile) for profile in ("etcd-server", "etcd-peer")
    }
    return {
        **cluster,
        "name": node_id,
        **cluster["members"][node_id],
        "certificates": {
            "ca": paths["etcd-server"]["ca"],
            "server": {key: paths["etcd-server"][key] for key in ("cert", "key")},
            "peer": {key: paths["etcd-peer"][key] for key in ("cert", "key")},
        },
    }


def kubernetes(topology: dict) -> dict:
    """
    How the platform runs Kubernetes, the same on every node: version, package repository,
    the control planes (the first one inits, the others join it) and the workers, the API
    endpoint (the private VIP, through the gateways), the names the apiserver's
    certificate carries, the cluster's subnets, the join settings, kubeadm's files, and
    the external etcd (every member's client URL and the apiserver's client certificate).
    """
    topology = with_defaults(topology)
    settings = topology["kubernetes"]
    version = topology["versions"]["kubernetes"]
    line = _line(version)
    private_vip = topology["networks"]["private"]["vip"]
    public_vip = topology["networks"]["public"]["vip"]
    name = topology["cluster"]["name"]
    domain = topology["cluster"]["domain"]
    control_planes = [
        {"id": entry["id"], "address": entry["addresses"]["private"]}
        for entry in nodes(topology, "control-plane")
    ]
    # A node with both roles joins once, as a control plane.
    workers = [
        {"id": entry["id"], "address": entry["addresses"]["private"]}
        for entry in nodes(topology, "worker")
        if "control-plane" not in entry["roles"]
    ]
    gateways_public = [entry["addresses"]["public"] for entry in nodes(topology, "gateway")]
    vip_names = [
        names for address, names in hosts(topology) if address in (private_vip, public_vip)
    ]
    etcd_client = certificate_paths(topology, "kube-apiserver-etcd-client")
    return {
        "version": version,
        "line": line,
        "cluster_name": name,
        # pkgs.k8s.io's packages are <version>-<revision> (1.34.2-1.1).
        "package_version": f"{version}-*",
        "repository": {key: url.format(line=line) for key, url in settings["repository"].items()},
        "sandbox_image": settings["sandbox_image"],
        "control_planes": control_planes,
        "first_control_plane": control_planes[0]["id"],
        "workers": workers,
        "endpoint": {"host": private_vip, "port": topology["gateway"]["api_port"]},
        "vips": {"private": private_vip, "public": public_vip},
        "cert_sans": _unique(
            [private_vip, public_vip, *gateways_public, name, f"{name}.{domain}", f"api.{domain}"]
            + [vip_name for names in vip_names for vip_name in names]
        ),
        "pod_subnet": settings["pod_subnet"],
        "service_subnet": settings["service_subnet"],
        "dns_domain": settings["dns_domain"],
        "worker_batch": settings["worker_batch"],
        "token_ttl_minutes": settings["token_ttl_minutes"],
        "ignore_preflight_errors": list(settings["ignore_preflight_errors"]),
        "min_etcd_version": MIN_EXTERNAL_ETCD_VERSION[line],
        "config_file": KUBERNETES["config_file"],
        "admin_kubeconfig": KUBERNETES["admin_kubeconfig"],
        "kubelet_kubeconfig": KUBERNETES["kubelet_kubeconfig"],
        "pki_dir": KUBERNETES["pki_dir"],
        "manifests_dir": KUBERNETES["manifests_dir"],
        "paused_manifests_dir": KUBERNETES["paused_manifests_dir"],
        "restart_manifests_dir": KUBERNETES["restart_manifests_dir"],
        "control_plane_components": list(KUBERNETES["control_plane_components"]),
        "containerd_socket": KUBERNETES["containerd_socket"],
        "cri_socket": f"unix://{KUBERNETES['containerd_socket']}",
        "services": dict(KUBERNETES["services"]),
        "etcd": {
            "endpoints": [member["client_url"] for member in etcd(topology)["members"].values()],
            "ca": etcd_client["ca"],
            "cert": etcd_client["cert"],
            "key": etcd_client["key"],
        },
    }


def kubernetes_node(topology: dict, node_id: str) -> dict:
    """
    What node ``node_id`` of the Kubernetes cluster is: the cluster's settings
    (``kubernetes``), its id and private address, its role (``control-plane`` for a node
    holding that role, whatever else it holds; else ``worker``), every Kubernetes role it
    holds (a control plane that is also a worker takes workloads), and whether it is the
    first control plane, the one ``kubeadm init`` runs on.
    """
    cluster = kubernetes(topology)
    entry = node(topology, node_id)
    for role, members in (
        ("control-plane", cluster["control_planes"]),
        ("worker", cluster["workers"]),
    ):
        for member in members:
            if member["id"] == node_id:
                return {
                    **cluster,
                    "id": node_id,
                    "address": member["address"],
                    "role": role,
                    "roles": [
                        held for held in ("control-plane", "worker") if held in entry["roles"]
                    ],
                    "first": node_id == cluster["first_control_plane"],
                }
    kubernetes_nodes = [member["id"] for member in cluster["control_planes"] + cluster["workers"]]
    raise ValueError(
        f"{node_id} is not a Kubernetes node of the topology (control-plane or worker nodes: "
        f"{', '.join(kubernetes_nodes)})"
    )


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def certificate_paths(topology: dict, profile: str) -> dict:
    """Where a node keeps its certificate, key and CA certificate of ``profile``."""
    directory = with_defaults(topology)["pki"]["dir"]
    return {
        "cert": f"{directory}/{profile}.crt",
        "key": f"{directory}/{profile}.key",
        "ca": f"{directory}/{CA_CERTIFICATE}",
    }


def certificate_profile_roles() -> dict[str, str]:
    """Every certificate profile, with the role that gets it (``master``: its own minion)."""
    return {name: role for name, (role, _usage, _owner) in CERTIFICATE_PROFILES.items()}


def certificate_profiles(topology: dict, node_id: str) -> list[str]:
    """The certificate profiles node ``node_id`` (or the master's minion) gets from its roles."""
    held = set(_certificate_roles(topology, node_id))
    return [name for name, (role, _usage, _owner) in CERTIFICATE_PROFILES.items() if role in held]


def certificate_profile(topology: dict, node_id: str, name: str) -> dict:
    """
    What node ``node_id``'s certificate of profile ``name`` must be: subject, names,
    usages, lifetime, file paths and the key's owner. Raises ``ValueError`` for an unknown
    profile, an unknown node, or a profile the node's roles do not grant.
    """
    if name not in CERTIFICATE_PROFILES:
        raise ValueError(
            f"unknown certificate profile {name!r}; profiles are: {', '.join(CERTIFICATE_PROFILES)}"
        )
    topology = with_defaults(topology)
    roles = _certificate_roles(topology, node_id)
    if not roles:
        raise ValueError(f"{node_id} is neither a node of the topology nor its master")
    role, extended_usage, owner = CERTIFICATE_PROFILES[name]
    if role not in roles:
        raise ValueError(
            f"{node_id} may not have a {name} certificate: that profile is for the "
            f"{role} role, and {node_id} has roles {', '.join(roles)}"
        )
    pki = topology["pki"]
    common_name = {
        "etcd-healthcheck-client": f"{node_id}-healthcheck",
        "kube-apiserver-etcd-client": "kube-apiserver-etcd-client",
        "etcd-admin-client": "paas-admin",
    }.get(name, node_id)
    return {
        "name": name,
        "node": node_id,
        "CN": common_name,
        "subjectAltName": _alt_names(topology, name, node_id),
        "keyUsage": KEY_USAGE_SERVER if "serverAuth" in extended_usage else KEY_USAGE_CLIENT,
        "extendedKeyUsage": extended_usage,
        "days_valid": pki["leaf_days"],
        "renew_days": pki["renew_days"],
        "key_type": pki["key_type"],
        "owner": owner,
        **certificate_paths(topology, name),
    }


def _certificate_roles(topology: dict, node_id: str) -> list[str]:
    if node_id == master_id(topology):
        return ["master"]
    entry = node(topology, node_id)
    return list(entry["roles"]) if entry else []


def _alt_names(topology: dict, name: str, node_id: str) -> list[str]:
    if name not in ("etcd-server", "etcd-peer"):
        return []
    entry = node(topology, node_id)
    domain = topology["cluster"]["domain"]
    names = [f"IP:{entry['addresses']['private']}", f"DNS:{node_id}", f"DNS:{node_id}.{domain}"]
    if name == "etcd-server":
        # Local clients (etcdctl on the node, the health checks) reach it on loopback.
        names += ["IP:127.0.0.1", "DNS:localhost"]
    return names


def _fill(value: Any, field: Field) -> Any:
    if field.kind == "mapping":
        for key, child in field.fields.items():
            if key not in value:
                if child.kind == "mapping":
                    value[key] = _fill({}, child)
                elif child.default is not None:
                    value[key] = copy.deepcopy(child.default)
            else:
                value[key] = _fill(value[key], child)
    elif field.kind == "list" and field.item is not None:
        return [_fill(item, field.item) for item in value]
    return value


def _node_label(item: Any, index: int) -> str:
    if isinstance(item, dict) and isinstance(item.get("id"), str):
        return item["id"]
    return f"#{index}"


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)
