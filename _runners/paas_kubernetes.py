"""
Kubernetes joins and their check, run from the master.

``salt-run paas_kubernetes.join role=control-plane`` joins the control planes of the
topology that have not joined yet, one at a time, each Ready before the next;
``role=worker`` joins the workers, ``paas:kubernetes:worker_batch`` at a time. Nodes
that have joined are never joined again; when none is left, nothing is made or changed.
Otherwise the run's credentials are made on the first control plane, sealed there to
each joining node's Salt public key, and revoked when the run ends, whatever happened:
every token it made deleted and the ``kube-system/kubeadm-certs`` Secret removed. A
failed join stops the run and names the node and kubeadm's error (the node was cleaned
by ``kubeadm reset -f``); a re-run resumes.

``salt-run paas_kubernetes.plan role=...`` says what ``join`` would do;
``salt-run paas_kubernetes.verify`` checks that every node of the topology is a Node,
Ready, with its role's labels, and that the API answers through both VIPs.

Each returns data, without any secret, with a ``retcode``: 0 when all is well, 1 when
something failed (named in ``problems`` or ``failed``). The work is the
``paas_kubernetes`` utils module's, which the orchestration's ``paas_kubernetes`` states
call too.

:depends: the ``paas_kubernetes``, ``paas_topology``, ``paas_master`` and
    ``paas_apiserver`` utils modules (``utils_dirs``); ``paas_kubeadm`` and
    ``paas_control_plane`` on the Kubernetes nodes
"""

from __future__ import annotations

__virtualname__ = "paas_kubernetes"


def __virtual__():
    if "paas_kubernetes.join" not in __utils__:
        return (False, "paas_kubernetes: the paas_kubernetes utils module is not loaded")
    return __virtualname__


def plan(role: str = "worker") -> dict:
    """
    Say what ``join`` would do for ``role``, changing nothing: the nodes that have
    joined, those that would join and in which batches, those that did not answer.

    CLI Example:

    .. code-block:: bash

        salt-run paas_kubernetes.plan role=worker
    """
    return _exit(__utils__["paas_kubernetes.plan"](__opts__, _uses(), role=role))


def join(role: str = "worker", timeout: int = 600) -> dict:
    """
    Join the nodes of ``role`` (``control-plane`` or ``worker``) that have not joined
    yet, with credentials made for this run and revoked at its end. Stops at the first
    failed join, naming the node and kubeadm's error; exit code 1 then, 0 otherwise.

    timeout
        Seconds a node's join, or a control plane's wait for Ready, may take.

    CLI Example:

    .. code-block:: bash

        salt-run paas_kubernetes.join role=control-plane
        salt-run paas_kubernetes.join role=worker
    """
    return _exit(__utils__["paas_kubernetes.join"](__opts__, _uses(), role=role, timeout=timeout))


def verify(timeout: int = 120) -> dict:
    """
    Check the cluster against the topology: every control plane and worker is a Node,
    Ready, control planes labelled ``node-role.kubernetes.io/control-plane`` and
    workers not; the API answers ``/readyz`` through both VIPs, from the master, over
    TLS checked against the cluster's CA. Nodes are read on the first control plane
    with its admin kubeconfig, which never leaves it (``paas_control_plane.status``). Waits
    up to ``timeout`` seconds for all of it; exit code 1 with every problem named when
    it does not happen, 0 otherwise.

    CLI Example:

    .. code-block:: bash

        salt-run paas_kubernetes.verify
    """
    return _exit(__utils__["paas_kubernetes.verify"](__opts__, _uses(), timeout=timeout))


def _exit(report: dict) -> dict:
    # salt-run exits with the "retcode" of the returned dict.
    __context__["retcode"] = report["retcode"]
    return report


def _uses() -> dict:
    # The utils functions the joins call, resolved here: in the utils module's own
    # loader this module's __utils__ would not resolve.
    return {name: __utils__[name] for name in __utils__["paas_kubernetes.uses"]()}
