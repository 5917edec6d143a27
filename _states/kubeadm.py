"""
A Kubernetes node of the platform as a state: the cluster initialized on the first
control plane, every other node joined.

``kubeadm.initialized`` runs ``kubeadm init`` once, on the first control plane, after the
platform's own checks (the external etcd's version among them), then deletes the
bootstrap tokens and the ``kubeadm-certs`` Secret that init made: a join always uses the
credentials of its own run. ``kubeadm.joined`` joins a node with the credentials
``salt-run paas_kubernetes.join`` passes inline for one run (pillar ``kubeadm_join``:
``ca_hash``, and ``sealed:<node>``: the ``token`` and, for a control plane, the
``certificate_key``, each sealed to the node's own Salt key); a node that has
joined is never joined again, and needs no credentials to say so. Neither state puts a
secret in its comment or changes. Under ``test=True`` they say what they would do
(with the same change keys) without credentials and without changing anything.

Changes are recorded as each step commits: an init whose token clean-up failed returns
``result: False`` with the init among its changes.

:depends: the ``paas_kubeadm`` execution module, the topology's Kubernetes view
    (``paas_topology.kubernetes_node``)
"""

from __future__ import annotations

import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "kubeadm"

JOIN_PILLAR = "kubeadm_join"
INIT_CREDENTIALS = "kubeadm init's bootstrap tokens and kube-system/kubeadm-certs Secret"


def __virtual__():
    if "paas_kubeadm.joined" not in __salt__:
        return (False, "kubeadm: the paas_kubeadm execution module is not loaded")
    if "paas_state.ret" not in __utils__:
        return (False, "kubeadm: the paas_state utils module is not synced")
    return __virtualname__


def _this_node(ret: dict, state: str) -> dict | None:
    return __utils__["paas_state.elsewhere"](ret, f"kubeadm.{state}", __opts__["id"])


def initialized(name: str) -> dict:
    """
    Initialize the cluster on this node, the first control plane of the topology, unless
    it is initialized already: ``kubeadm init --config <file> --upload-certs`` after the
    platform's checks, then init's bootstrap tokens and uploaded certificates deleted.
    A failed init leaves the node cleaned by ``kubeadm reset -f`` and names kubeadm's
    error.

    name
        This node's id; the state only manages the node it runs on.

    .. code-block:: yaml

        kubernetes-init-cluster:
          kubeadm.initialized:
            - name: cp1
    """
    ret = __utils__["paas_state.ret"](name)
    wrong = _this_node(ret, "initialized")
    if wrong:
        return wrong
    try:
        if __salt__["paas_kubeadm.initialized"]():
            ret["comment"] = f"{name} is initialized: kubeadm init runs once."
            return ret
        refusal = __salt__["paas_kubeadm.init_refusal"]()
        if refusal:
            return __utils__["paas_state.failed"](ret, f"{refusal}.")
        if __opts__["test"]:
            return _predict_init(ret)
        done = __salt__["paas_kubeadm.init"]()
        __utils__["paas_state.record"](ret, "cluster", None, f"initialized on {name}")
        made = [token["id"] for token in __salt__["paas_kubeadm.tokens"]()]
        __salt__["paas_kubeadm.revoke"](*made)
        __utils__["paas_state.record"](ret, "init_credentials", INIT_CREDENTIALS, "deleted")
    except (CommandExecutionError, SaltInvocationError) as err:
        return __utils__["paas_state.failed"](ret, str(err))
    ret["comment"] = f"{name} initialized the cluster{_etcd_note(done['etcd'])}."
    return ret


def _etcd_note(check: dict) -> str:
    if not check["checked"]:
        return f" (external etcd version not checked: {check['reason']})"
    notes = []
    if check["versions"]:
        notes.append(f"external etcd {', '.join(sorted(set(check['versions'].values())))}")
    if check["unreachable"]:
        notes.append(f"etcd's version could not be read: {'; '.join(check['unreachable'])}")
    return f" ({'; '.join(notes)})"


def _predict_init(ret: dict) -> dict:
    # An etcd below the minimum is refused now; one that does not answer yet (its layer
    # has not run) is only a caveat of the prediction.
    check = __salt__["paas_kubeadm.etcd_version_check"](reachable=False)
    name = ret["name"]
    __utils__["paas_state.record"](ret, "cluster", None, f"initialized on {name}")
    __utils__["paas_state.record"](ret, "init_credentials", INIT_CREDENTIALS, "deleted")
    return __utils__["paas_state.predicted"](
        ret, f"{name} would initialize the cluster{_etcd_note(check)}."
    )


def joined(name: str) -> dict:
    """
    Join this node to the cluster, unless it has joined already (a joined node is never
    joined again). The credentials come from the pillar ``kubeadm_join``, which
    ``salt-run paas_kubernetes.join`` passes inline for its run; a failed join leaves
    the node cleaned by ``kubeadm reset -f`` and names kubeadm's error.

    name
        This node's id; the state only manages the node it runs on.

    .. code-block:: yaml

        kubernetes-join-node:
          kubeadm.joined:
            - name: worker1
    """
    ret = __utils__["paas_state.ret"](name)
    wrong = _this_node(ret, "joined")
    if wrong:
        return wrong
    try:
        if __salt__["paas_kubeadm.joined"]():
            ret["comment"] = f"{name} has joined: a node is never joined again."
            return ret
        node = __salt__["paas_topology.kubernetes_node"]()
        if node["first"]:
            return __utils__["paas_state.failed"](
                ret,
                f"{name} is the first control plane: it initializes the cluster "
                "(kubeadm.initialized), it does not join one.",
            )
        role = node["role"]
        if __opts__["test"]:
            __utils__["paas_state.record"](ret, "node", None, f"joined as a {role}")
            return __utils__["paas_state.predicted"](
                ret, f"{name} would join the cluster as a {role}."
            )
        given = __pillar__.get(JOIN_PILLAR) or {}
        sealed = (given.get("sealed") or {}).get(name) or {}
        missing = [
            key
            for key in (
                "token",
                *(["certificate_key"] if role == "control-plane" else []),
            )
            if not sealed.get(key)
        ] + ([] if given.get("ca_hash") else ["ca_hash"])
        if missing:
            return __utils__["paas_state.failed"](
                ret,
                f"{name} has not joined, and the pillar {JOIN_PILLAR} lacks "
                f"{', '.join(missing)} for it: joins are run by salt-run "
                "paas_kubernetes.join (orch.kubernetes), which passes the credentials for "
                "its run only, sealed to each joining node's key.",
            )
        __salt__["paas_kubeadm.join"](
            _unseal(sealed["token"]),
            given["ca_hash"],
            _unseal(sealed["certificate_key"]) if role == "control-plane" else None,
        )
        __utils__["paas_state.record"](ret, "node", None, f"joined as a {role}")
    except (CommandExecutionError, SaltInvocationError) as err:
        return __utils__["paas_state.failed"](ret, str(err))
    ret["comment"] = f"{name} joined the cluster as a {role}."
    return ret


def certificates_renewed(name: str) -> dict:
    """
    kubeadm's certificates on this control plane are outside the renewal window
    (``paas:pki:renew_days``): when one is inside it, or has expired, ``kubeadm certs
    renew all`` renews them all. kubeadm's CAs are not renewed (kubeadm cannot; they last
    ten years). Nothing happens on a node without a control plane of kubeadm's.

    .. code-block:: yaml

        kubernetes-certificates-renewed:
          kubeadm.certificates_renewed:
            - name: cp1
    """
    ret = __utils__["paas_state.ret"](name)
    refused = _this_node(ret, "certificates_renewed")
    if refused:
        return refused
    try:
        if not __salt__["paas_kubeadm.initialized"]():
            ret["comment"] = "No control plane of kubeadm's runs here: nothing to renew."
            return ret
        due = _due_certificates()
        if not due:
            ret["comment"] = "kubeadm's certificates are outside the renewal window."
            return ret
        if __opts__["test"]:
            ret["changes"] = {"renew": due}
            return __utils__["paas_state.predicted"](
                ret, f"kubeadm certs renew all would run: {', '.join(due)} inside the window."
            )
        ret["changes"] = __salt__["paas_kubeadm.renew_certificates"]()
        left = _due_certificates()
        if left:
            return __utils__["paas_state.failed"](
                ret, f"kubeadm certs renew all left {', '.join(left)} inside the renewal window"
            )
    except (CommandExecutionError, SaltInvocationError) as err:
        return __utils__["paas_state.failed"](ret, str(err))
    ret["comment"] = f"kubeadm certs renew all renewed {', '.join(due)} (and the rest)."
    return ret


def _due_certificates() -> list[str]:
    """kubeadm's certificates inside the renewal window or expired, its CAs aside."""
    return [
        row["profile"]
        for row in __salt__["paas_control_plane.certificates"]()
        if row.get("signed_by") and (row.get("renewal_due") or row.get("days_left", 0) < 0)
    ]


def _unseal(sealed: str) -> str:
    # Opened here, in the state, with this minion's own Salt key: a module function would
    # let any job return the secret.
    pem = os.path.join(__opts__["pki_dir"], "minion.pem")
    try:
        return __utils__["paas_transfer.unseal"](pem, sealed).decode()
    except (ValueError, UnicodeDecodeError) as err:
        raise CommandExecutionError(
            f"{__opts__['id']}: the join credentials do not open with this minion's key: {err}"
        ) from err
