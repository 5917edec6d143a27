"""
Gate a run on the platform's topology.

``paas_topology.valid`` is the first step of every orchestration: it fails, listing
every error with its node and field, when the ``paas`` pillar is invalid, so that the
steps that require it never run and no node changes.

:depends: the ``paas_topology`` execution module
"""

from __future__ import annotations

__virtualname__ = "paas_topology"


def __virtual__():
    if "paas_topology.validate" not in __salt__:
        return (False, "paas_topology: the paas_topology execution module is not loaded")
    return __virtualname__


def valid(name: str) -> dict:
    """
    Succeed when the topology in the pillar is valid; fail with every error otherwise.

    It changes nothing, so test mode gives the same result.

    name
        A label for the step.

    .. code-block:: yaml

        paas-cluster-topology-valid:
          paas_topology.valid:
            - failhard: True
    """
    errors = __salt__["paas_topology.validate"]()
    if errors:
        comment = "The paas topology is invalid; nothing was changed:\n" + "\n".join(errors)
        return {"name": name, "result": False, "changes": {}, "comment": comment}
    nodes = len(__salt__["paas_topology.node_ids"]())
    return {
        "name": name,
        "result": True,
        "changes": {},
        "comment": f"The paas topology is valid ({nodes} nodes).",
    }
