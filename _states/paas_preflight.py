"""
The machines checked before anything changes on them, as an orchestration step on the
master: ``paas_preflight.passed`` fails, naming each node, check, what was found, what
is wanted and the fix, when a check the topology does not accept failed or a node did
not answer, so that the orchestration's ``failhard`` stops there. It changes nothing, in
test mode too. The work is the ``paas_preflight`` utils module's, which ``salt-run
paas.preflight`` runs too.

:depends: the ``paas_preflight``, ``paas_master`` and ``paas_topology`` utils modules
    (the master's ``utils_dirs``); ``paas_preflight`` on the minions
"""

from __future__ import annotations

__virtualname__ = "paas_preflight"


def __virtual__():
    if "paas_preflight.run" not in __utils__:
        return (False, "paas_preflight: the paas_preflight utils module is not loaded")
    return __virtualname__


def passed(name: str, timeout: int = 60) -> dict:
    """
    Every node of the topology passes the preflight checks it is not excused from.

    name
        A label for the step.
    timeout
        Seconds a node has to answer.

    .. code-block:: yaml

        paas-cluster-preflight:
          paas_preflight.passed:
            - failhard: True
    """
    uses = {function: __utils__[function] for function in __utils__["paas_preflight.uses"]()}
    topology = __salt__["paas_topology.get"]()
    found = __utils__["paas_preflight.run"](__opts__, uses, topology, timeout=timeout)
    lines = [
        f"{row['node']}: {row['check']}: found {row['found']}; wanted {row['wanted']}; "
        f"fix: {row['fix']}"
        for row in found["failures"]
    ]
    lines += [f"{node}: did not answer: {why}" for node, why in found["silent"].items()]
    accepted = len(found["ignored"])
    excused = f" ({accepted} failed check{'s' * (accepted != 1)} accepted by paas:preflight:ignore)"
    if lines:
        comment = "The preflight checks failed; nothing was changed:\n" + "\n".join(lines)
        return {"name": name, "result": False, "changes": {}, "comment": comment}
    return {
        "name": name,
        "result": True,
        "changes": {},
        "comment": f"Every node passed the preflight checks ({found['nodes']} nodes)"
        + (excused if accepted else ""),
    }
