"""
The Kubernetes joins and their check as orchestration steps, on the master.

``paas_kubernetes.joined`` joins the nodes of a role that have not joined and reports
them as its changes, so a run where every node had joined already changes nothing;
under ``test=True`` it plans instead and predicts the same change.
``paas_kubernetes.verified`` checks the cluster and changes nothing, in test mode too.
Both fail with what the run names (the node and kubeadm's error, or each problem), so
the orchestration's ``failhard`` stops there. The work is the ``paas_kubernetes`` utils
module's, the one ``salt-run paas_kubernetes.*`` runs too, called here in the
orchestration's own process with its master's opts; Salt's own ``salt.runner`` step
would go back through ``saltutil.runner``, report every run as a change and predict
nothing.

:depends: the ``paas_kubernetes`` utils module (the master's ``utils_dirs``), run by the
    orchestration's master minion
"""

from __future__ import annotations

__virtualname__ = "paas_kubernetes"


def __virtual__():
    if "paas_kubernetes.join" not in __utils__:
        return (False, "paas_kubernetes: the paas_kubernetes utils module is not loaded")
    return __virtualname__


def _run(function: str, **kwargs) -> tuple[bool, dict]:
    report = __utils__[f"paas_kubernetes.{function}"](__opts__, _uses(), **kwargs)
    return report["retcode"] == 0, report


def _problems(report: dict) -> list[str]:
    return [*report.get("failed", {}).values(), *report.get("problems", [])]


def joined(name: str, role: str, timeout: int = 600) -> dict:
    """
    Every node of ``role`` (``control-plane``: all but the first; ``worker``) has
    joined the cluster: those that had not are joined as ``salt-run
    paas_kubernetes.join`` joins them, with credentials made and revoked within the run.

    name
        A label for the step.

    role
        ``control-plane`` or ``worker``.

    timeout
        Seconds a node's join, or a control plane's wait for Ready, may take.

    .. code-block:: yaml

        paas-kubernetes-workers:
          paas_kubernetes.joined:
            - role: worker
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if __opts__["test"]:
        ok, report = _run("plan", role=role)
        if not ok:
            return {**ret, "result": False, "comment": "\n".join(_problems(report))}
        if report["to_join"]:
            ret["changes"]["joined"] = {"old": None, "new": report["to_join"]}
            sizes = {len(batch) for batch in report["batches"]}
            return {
                **ret,
                "result": None,
                "comment": f"{', '.join(report['to_join'])} would join as {role}s, in "
                f"{len(report['batches'])} batches of at most {max(sizes)}.",
            }
        ret["comment"] = f"Every {role} has joined."
        return ret
    ok, report = _run("join", role=role, timeout=timeout)
    if report.get("joined"):
        ret["changes"]["joined"] = {"old": None, "new": report["joined"]}
    if not ok:
        left = report.get("not_joined") or []
        stopped = f"\nNot joined, left for a re-run: {', '.join(left)}." if left else ""
        return {**ret, "result": False, "comment": "\n".join(_problems(report)) + stopped}
    if report.get("joined"):
        ret["comment"] = (
            f"{', '.join(report['joined'])} joined as {role}s; the run's credentials are revoked."
        )
    else:
        ret["comment"] = f"Every {role} has joined."
    return ret


def verified(name: str, timeout: int = 120) -> dict:
    """
    Every node of the topology is a Node of the cluster, Ready, with its role's labels,
    and the API answers through both VIPs (as ``salt-run paas_kubernetes.verify`` checks).
    Changes nothing, so under ``test=True`` it checks once without waiting: ``True``
    when the cluster passes now, ``None`` with the problems when it does not (the
    orchestration's steps before it may mend them).

    name
        A label for the step.

    timeout
        Seconds to wait for every Node to be Ready and the API to answer.

    .. code-block:: yaml

        paas-kubernetes-verify:
          paas_kubernetes.verified: []
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if __opts__["test"]:
        # It changes nothing, so test mode checks too, once, without waiting: what
        # passes now passes in a run; what does not may be mended by the steps before.
        ok, report = _run("verify", timeout=0)
        if not ok:
            return {
                **ret,
                "result": None,
                "comment": "Not verified now; the steps before this one may change that:\n"
                + "\n".join(_problems(report)),
            }
    else:
        ok, report = _run("verify", timeout=timeout)
    if not ok:
        return {**ret, "result": False, "comment": "\n".join(_problems(report))}
    ret["comment"] = (
        f"{len(report['nodes'])} Nodes Ready with their roles; the API answers through both VIPs."
    )
    return ret


def _uses() -> dict:
    # The utils functions the joins call, resolved here: in the utils module's own
    # loader this module's __utils__ would not resolve.
    return {name: __utils__[name] for name in __utils__["paas_kubernetes.uses"]()}
