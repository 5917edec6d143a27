"""
Certificates of the platform's PKI, as states.

``paas_pki.ca_present`` keeps the etcd CA on the master's minion; ``paas_pki.certificate``
keeps one of a node's topology-derived certificates valid: issued by the current CA, with
the profile's names and usages, and renewed once it is inside the renewal window.

:depends: the ``paas_pki`` execution module
"""

from __future__ import annotations

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "paas_pki"


def __virtual__():
    if "paas_pki.profile" not in __salt__:
        return (False, "paas_pki: the paas_pki execution module is not loaded")
    return __virtualname__


def ca_present(name: str) -> dict:
    """
    Make sure the etcd CA exists on this minion (the master's). An existing CA is kept
    as it is: replacing a CA is never a side effect of a state run.

    name
        A label for the step.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    existing = __salt__["paas_pki.ca_certificate"]()
    if existing:
        ret["comment"] = "The etcd CA exists."
        return ret
    ret["changes"] = {"ca": {"old": None, "new": "a new etcd CA"}}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = "The etcd CA would be created."
        return ret
    try:
        created = __salt__["paas_pki.create_ca"]()
    except (CommandExecutionError, SaltInvocationError) as err:
        return {**ret, "result": False, "changes": {}, "comment": str(err)}
    ret["changes"] = {"ca": {"old": None, "new": created["serial"]}}
    ret["comment"] = f"Created the etcd CA ({created['subject']})."
    return ret


def _current_ca() -> str:
    # The CA's certificate as the CA minion has it now, so that a certificate from a
    # replaced CA is found; asked once per state run, not once per certificate.
    if "paas_pki.current_ca" not in __context__:
        ca_id = __salt__["paas_topology.get"]()["master"]["id"]
        replies = __salt__["publish.publish"](ca_id, "paas_pki.ca_certificate", timeout=30)
        current = replies.get(ca_id) if isinstance(replies, dict) else None
        if not current:
            raise CommandExecutionError(
                f"the CA minion {ca_id} did not give its CA certificate (is it up, and does "
                f"the master's peer config allow paas_pki.ca_certificate?): {replies!r}"
            )
        __context__["paas_pki.current_ca"] = current
    return __context__["paas_pki.current_ca"]


def certificate(name: str) -> dict:
    """
    Keep this node's certificate of profile ``name`` valid, and renew it inside the
    renewal window.

    name
        The profile: etcd-server, etcd-peer, etcd-healthcheck-client,
        kube-apiserver-etcd-client or etcd-admin-client.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        wanted = __salt__["paas_pki.profile"](name)
        problems = __salt__["paas_pki.check"](name, ca=_current_ca())
        due = not problems and __salt__["paas_pki.renewal_due"](name)
    except (CommandExecutionError, SaltInvocationError) as err:
        return {**ret, "result": False, "comment": str(err)}
    if not problems and not due:
        ret["comment"] = f"{wanted['cert']} is valid and outside its renewal window."
        return ret
    reason = (
        "; ".join(problems)
        if problems
        else (f"it expires within the renewal window of {wanted['renew_days']} days")
    )
    old = __salt__["paas_pki.certificates"]()
    old_serial = next((entry.get("serial") for entry in old if entry["profile"] == name), None)
    ret["changes"] = {"serial": {"old": old_serial, "new": "(a new certificate)"}, "reason": reason}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"{wanted['cert']} would be issued: {reason}."
        return ret
    try:
        issued = __salt__["paas_pki.request"](name)
    except (CommandExecutionError, SaltInvocationError) as err:
        return {**ret, "result": False, "changes": {}, "comment": str(err)}
    ret["changes"]["serial"]["new"] = issued["serial"]
    ret["comment"] = f"Issued {wanted['cert']} ({reason})."
    return ret
