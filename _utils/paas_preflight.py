"""
The machines checked before anything changes on them: ``salt-run paas.preflight``, and
the first step after the modules are synced of every orchestration.

The master says what each node must measure for its roles (``asks``), each node's
``paas_preflight.facts`` measures it and nothing else (it changes nothing), and the
master judges the answers (``judge``): each failure names the node, the check, what was
found, what is wanted and the fix. ``paas:preflight:ignore`` lists the checks the
operator accepts, everywhere (``swap``) or on one node (``etcd1:etcd_disk``).

:depends: the ``paas_master`` and ``paas_topology`` utils modules, handed in by the
    caller (``uses``); ``paas_preflight`` on the minions
"""

from __future__ import annotations

import time

import salt.version

CHECKS = (
    "os", "salt", "swap", "cgroup", "modules", "ports", "time_sync", "clock_skew",
    "etcd_disk", "disk_free", "names", "sources",
)  # fmt: skip
SUPPORTED_OS = {"debian": ("12", "13")}
# The DR compares the times of the nodes' reports and the master's: a clock further off
# than this, either way, is wrong for it.
MAX_SKEW_S = 1.0
# etcd's hardware guidance: the 99th percentile of its WAL's fdatasync under 10 ms.
FDATASYNC_P99_MS = 10.0
# Room for etcd's database at its quota and a snapshot of it beside.
ETCD_FREE_QUOTAS = 2
# The kernel modules the Kubernetes role loads (salt/kubernetes/defaults.yaml), each with
# what shows it in the kernel already: loaded or built in (a module built in without
# parameters has no /sys/module entry, and a container cannot load one).
KUBERNETES_MODULES = {
    "overlay": {"filesystem": "overlay"},
    "br_netfilter": {"path": "/proc/sys/net/bridge"},
}
# The ports a role's own services hold, and the process names (as /proc/<pid>/comm
# gives them) that may hold each: a port held by anything else is taken.
KUBELET_PORT = 10250
CONTROL_PLANE_PORTS = {
    10250: ("kubelet",),
    10257: ("kube-controller",),
    10259: ("kube-scheduler",),
}
ASK_TIMEOUT = 60
USES = (
    "paas_master.minions",
    "paas_master.answer",
    "paas_topology.with_defaults",
    "paas_topology.etcd",
    "paas_topology.kubernetes",
)


def uses() -> tuple[str, ...]:
    """The utils functions ``run`` calls, which the caller hands in as
    ``{name: its __utils__[name]}`` (a utils module gets no ``__utils__`` of its own)."""
    return USES


def _roles(entry: dict) -> set[str]:
    return set(entry["roles"])


def asks(topology: dict, node_id: str, utils: dict) -> dict:
    """What node ``node_id`` of a valid topology must measure for its roles."""
    filled = utils["paas_topology.with_defaults"](topology)
    entry = next(entry for entry in filled["nodes"] if entry["id"] == node_id)
    roles = _roles(entry)
    kubernetes = bool(roles & {"control-plane", "worker"})
    ports: dict[int, tuple[str, ...]] = {}
    sources = []
    python = filled["python"]
    sources.append(python["find_links"] or python["index_url"])
    disk = None
    if "etcd" in roles:
        etcd = utils["paas_topology.etcd"](filled)
        for port in (etcd["client_port"], etcd["peer_port"], filled["etcd"]["metrics_port"]):
            ports[port] = ("etcd",)
        disk = {"path": etcd["data_dir"], "quota_bytes": etcd["quota_bytes"]}
        if etcd["source"] == "archive" and etcd["archive"]["url"].startswith("http"):
            sources.append(etcd["archive"]["url"])
    if "gateway" in roles:
        gateway = filled["gateway"]
        for port in (gateway["api_port"], 80, 443, gateway["stats_port"]):
            ports[port] = ("haproxy",)
    if kubernetes:
        ports[KUBELET_PORT] = ("kubelet",)
        sources.append(utils["paas_topology.kubernetes"](filled)["repository"]["key_url"])
    if "control-plane" in roles:
        ports.update(CONTROL_PLANE_PORTS)
        ports[filled["gateway"]["api_port"]] = ("kube-apiserver",)
    names = {other["id"]: sorted(other["addresses"].values()) for other in filled["nodes"]}
    return {
        "node": node_id,
        "roles": sorted(roles),
        "swap": kubernetes or "etcd" in roles,
        "cgroup": kubernetes,
        "modules": KUBERNETES_MODULES if kubernetes else {},
        "ports": {str(port): list(owners) for port, owners in sorted(ports.items())},
        "disk": disk,
        "names": names,
        "sources": sources,
    }


def _failure(check: str, found, wanted, fix: str) -> dict:
    return {"check": check, "found": str(found), "wanted": str(wanted), "fix": fix}


def judge(asked: dict, facts: dict, window: tuple[float, float], master_salt: str) -> list:
    """Every failure in a node's ``facts`` against what it was ``asked``; ``window`` is
    the master's clock when it asked and when the answer came."""
    failures = []
    os_release = facts["os"]
    supported = SUPPORTED_OS.get(os_release.get("id", ""), ())
    if os_release.get("version_id") not in supported:
        failures.append(
            _failure(
                "os",
                os_release.get("pretty_name") or os_release,
                "Debian 12 or 13",
                "install Debian 12 (bookworm) or 13 (trixie) on the machine",
            )
        )
    if facts["salt"] != master_salt:
        failures.append(
            _failure(
                "salt",
                f"Salt {facts['salt']}",
                f"Salt {master_salt}, the master's",
                f"install Salt {master_salt} on the node",
            )
        )
    if asked["swap"] and facts["swap"]:
        failures.append(
            _failure(
                "swap",
                f"swap on: {', '.join(facts['swap'])}",
                "no swap (the kubelet refuses it; etcd's latency suffers from it)",
                "swapoff -a, and remove the swap lines of /etc/fstab",
            )
        )
    if asked["cgroup"] and not facts["cgroup_v2"]:
        failures.append(
            _failure(
                "cgroup",
                "cgroup v1 (no /sys/fs/cgroup/cgroup.controllers)",
                "cgroup v2, the unified hierarchy (containerd's systemd cgroup driver)",
                "boot with systemd.unified_cgroup_hierarchy=1 (Debian 12 and 13 do by default)",
            )
        )
    missing = [module for module in asked["modules"] if not facts["modules"].get(module)]
    if missing:
        failures.append(
            _failure(
                "modules",
                f"not available: {', '.join(missing)}",
                f"kernel modules {', '.join(asked['modules'])} in the kernel or loadable",
                "install the kernel's modules (linux-image) or use a kernel built with them",
            )
        )
    for port, owners in asked["ports"].items():
        holders = facts["listeners"].get(port, [])
        foreign = [holder for holder in holders if holder["name"] not in owners]
        if foreign:
            held = ", ".join(f"{holder['name']} (pid {holder['pid']})" for holder in foreign)
            failures.append(
                _failure(
                    "ports",
                    f"port {port} held by {held}",
                    f"port {port} free, or held by {' or '.join(owners)}",
                    f"stop what holds port {port} on the node",
                )
            )
    if facts["time_sync"] != "yes":
        failures.append(
            _failure(
                "time_sync",
                f"NTPSynchronized={facts['time_sync']}",
                "NTPSynchronized=yes",
                "let systemd-timesyncd (the common state enables it) or chrony reach an "
                "NTP server (paas:time:ntp_servers)",
            )
        )
    asked_at, answered_at = window
    skew = 0.0
    if facts["time"] < asked_at - MAX_SKEW_S:
        skew = facts["time"] - asked_at
    elif facts["time"] > answered_at + MAX_SKEW_S:
        skew = facts["time"] - answered_at
    if skew:
        failures.append(
            _failure(
                "clock_skew",
                f"{skew:+.1f} s from the master's clock",
                f"within {MAX_SKEW_S:.0f} s of the master's clock",
                "synchronize the node's clock (and the master's) with NTP",
            )
        )
    disk = facts.get("disk")
    if asked["disk"] and disk:
        if disk.get("error"):
            failures.append(
                _failure(
                    "etcd_disk",
                    disk["error"],
                    f"fdatasync measured under {asked['disk']['path']}",
                    "give etcd's data directory a writable local disk",
                )
            )
        elif disk["fdatasync_p99_ms"] > FDATASYNC_P99_MS:
            failures.append(
                _failure(
                    "etcd_disk",
                    f"fdatasync p99 {disk['fdatasync_p99_ms']:.1f} ms on {disk['path']}",
                    f"under {FDATASYNC_P99_MS:.0f} ms (etcd's hardware guidance)",
                    "put etcd's data directory (paas:etcd:data_dir) on an SSD or faster disk",
                )
            )
        wanted_free = ETCD_FREE_QUOTAS * asked["disk"]["quota_bytes"]
        if disk.get("free_bytes") is not None and disk["free_bytes"] < wanted_free:
            failures.append(
                _failure(
                    "disk_free",
                    f"{disk['free_bytes'] / 2**30:.1f} GiB free on {disk['path']}",
                    f"{wanted_free / 2**30:.1f} GiB (twice paas:etcd:quota_bytes)",
                    "free space there, or move paas:etcd:data_dir to a larger disk",
                )
            )
    for name, addresses in asked["names"].items():
        resolved = set(facts["names"].get(name) or [])
        if name == asked["node"]:
            # Debian's own /etc/hosts line for the machine's name (127.0.1.1), which the
            # platform's baseline replaces.
            resolved = {address for address in resolved if not address.startswith("127.")}
        wrong = sorted(resolved - set(addresses))
        if wrong:
            failures.append(
                _failure(
                    "names",
                    f"{name} resolves to {', '.join(wrong)}",
                    f"{name} unresolved or {' or '.join(addresses)} (the platform writes "
                    "/etc/hosts)",
                    f"remove the other address of {name} from DNS or /etc/hosts",
                )
            )
    for source, answer in facts["sources"].items():
        if answer != "ok":
            failures.append(
                _failure(
                    "sources",
                    f"{source}: {answer}",
                    f"{source} reachable from the node",
                    "open the way from the node to it (proxy, firewall, security group), "
                    "or name a source it reaches in the topology",
                )
            )
    return failures


def ignored(ignore: list[str], node: str, check: str) -> bool:
    return check in ignore or f"{node}:{check}" in ignore


def run(opts: dict, utils: dict, topology: dict, timeout: int = ASK_TIMEOUT) -> dict:
    """Ask every node of a valid topology, judge, and report: ``failures`` (node, check,
    found, wanted, fix), ``ignored`` (those the topology accepts), ``silent`` (the nodes
    that did not answer), and ``nodes`` (how many were checked)."""
    filled = utils["paas_topology.with_defaults"](topology)
    ignore = filled["preflight"]["ignore"]
    asked = {entry["id"]: asks(filled, entry["id"], utils) for entry in filled["nodes"]}
    failures, accepted, silent = [], [], {}
    # One question to every node (each reads its own part): the nodes measure at once,
    # and each answer's clock falls between the master's before and after.
    asked_at = time.time()
    with utils["paas_master.minions"](opts) as minions:
        replies = minions.run(
            list(asked), "paas_preflight.facts", [asked], timeout=timeout, gather_job_timeout=10
        )
    answered_at = time.time()
    for node, what in asked.items():
        reply = replies[node]
        if (
            not isinstance(reply, dict)
            or reply.get("retcode")
            or not isinstance(reply.get("ret"), dict)
        ):
            silent[node] = str(utils["paas_master.answer"](reply))
            continue
        for failure in judge(what, reply["ret"], (asked_at, answered_at), salt.version.__version__):
            entry = {"node": node, **failure}
            (accepted if ignored(ignore, node, failure["check"]) else failures).append(entry)
    return {"failures": failures, "ignored": accepted, "silent": silent, "nodes": len(asked)}
