"""
Which certificates the master renews, in which order: the plan of ``salt-run paas.renew``
(the master's schedule runs it every ``paas:pki:renew_check_minutes``), from the
inventory ``paas.certs`` reads.

A node whose own certificates of the platform are inside the renewal window (or expired)
applies ``pki``; an etcd node then ``etcd.certificates`` (its etcd presents the new ones,
restarted if it does not); a control plane ``kubernetes.certificates`` when the
platform's or kubeadm's certificates are due there (kubeadm's renewed, the static Pods
restarted on their new files). Nodes go one at a time: first the nodes that serve
nothing from their certificates (the master's minion), then the etcd nodes, then the
control planes, so that at most one etcd member and one apiserver restart at once. A
minion's inventory only chooses which of its own states run on it: what it says about
itself can restart nothing but its own services.
"""

from __future__ import annotations

# The order of the roles' turns: nothing served, etcd members, apiservers.
TURNS = ("other", "etcd", "control-plane")
# The state that loads renewed certificates into each turn's service.
LOADS = (("etcd", "etcd.certificates"), ("control-plane", "kubernetes.certificates"))


def due(row: dict) -> bool:
    """A certificate inside its renewal window or expired, with a known expiry; kubeadm's
    CAs aside (kubeadm cannot renew them)."""
    if row.get("days_left") is None:
        return False
    if row.get("source") == "kubeadm" and not row.get("signed_by"):
        return False
    return bool(row.get("renewal_due")) or row["days_left"] < 0


def plan(rows: list[dict], roles: dict[str, list[str]]) -> list[dict]:
    """
    The steps for the certificates in ``rows`` (``paas.certs``' rows) that are due: one
    per node, in turn order, each ``{"node", "turn", "sls", "certificates"}``.

    roles
        Each node's roles (``paas_topology.roles``), the master's minion with none.
    """
    wanted: dict[str, dict] = {}
    for row in rows:
        if not due(row):
            continue
        node = row["node"]
        held = roles.get(node, [])
        step = wanted.setdefault(node, {"node": node, "sls": [], "certificates": []})
        kubeadm = row.get("source") == "kubeadm"
        step["certificates"].append(f"kubeadm {row['profile']}" if kubeadm else row["profile"])
        if not kubeadm and "pki" not in step["sls"]:
            step["sls"].append("pki")
        if "etcd" in held and not kubeadm and "etcd.certificates" not in step["sls"]:
            step["sls"].append("etcd.certificates")
        if "control-plane" in held and "kubernetes.certificates" not in step["sls"]:
            step["sls"].append("kubernetes.certificates")
    for step in wanted.values():
        # A node's turn is that of the first service its step restarts.
        step["turn"] = next(
            (turn for turn, sls in LOADS if sls in step["sls"]),
            "other",
        )
        # pki before the states that load what it renewed.
        step["sls"].sort(key=lambda sls: sls != "pki")
    return sorted(wanted.values(), key=lambda step: (TURNS.index(step["turn"]), step["node"]))
