"""
Read the platform's topology (the ``paas`` pillar key) on a minion.

States and templates read addresses, roles and peers through these functions and
never work them out by themselves. Every function but ``validate`` and ``node_ids``
refuses an invalid topology with every error in the message, so that a state that
renders from it stops before it changes anything.

:depends: the ``paas_topology`` utils module (``_utils/``), synced with the modules
:configuration: the ``paas`` pillar key, documented in ``pillar.example``
"""

from __future__ import annotations

import copy
import json

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "paas_topology"
CONTEXT_KEY = "paas_topology.get"


def __virtual__():
    if "paas_topology.validate" not in __utils__:
        return (False, "paas_topology: the paas_topology utils module is not synced")
    return __virtualname__


def validate(topology: dict | None = None) -> list[str]:
    """
    Return every error in the topology, one message each, naming node and field.

    An empty list means the topology is valid.

    topology
        The value of a ``paas`` key to check instead of this minion's pillar.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.validate
    """
    if topology is None:
        if __pillar__.get("_errors"):
            return [f"paas: the pillar did not render: {error}" for error in __pillar__["_errors"]]
        topology = __pillar__.get("paas")
    if topology is None:
        return ["paas: the pillar has no paas key (is pillar/top.sls assigning it?)"]
    return [str(error) for error in __utils__["paas_topology.validate"](topology)]


def get() -> dict:
    """
    Return the validated topology with every optional key filled in.

    It is validated once per run: a state run renders many templates and calls many
    functions that read it, and the answer is kept (in ``__context__``) for as long as
    the pillar's ``paas`` key is the same.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.get
    """
    paas = __pillar__.get("paas")
    fingerprint = json.dumps(paas, sort_keys=True, default=str)
    cached = __context__.get(CONTEXT_KEY)
    if cached is None or cached[0] != fingerprint:
        errors = validate()
        if errors:
            raise CommandExecutionError("the paas topology is invalid:\n  " + "\n  ".join(errors))
        cached = (fingerprint, __utils__["paas_topology.with_defaults"](paas))
        __context__[CONTEXT_KEY] = cached
    # A copy: callers may change what they get without changing the next caller's.
    return copy.deepcopy(cached[1])


def node(node_id: str | None = None) -> dict | None:
    """
    Return one node's entry (this minion's by default), or ``None`` if it has none.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.node
        salt-call paas_topology.node etcd1
    """
    return __utils__["paas_topology.node"](get(), node_id or __opts__["id"])


def roles(node_id: str | None = None) -> list[str]:
    """
    Return the roles of one node (this minion's by default); ``[]`` if it has none.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.roles
    """
    entry = node(node_id)
    return list(entry["roles"]) if entry else []


def nodes(role: str | None = None) -> list[dict]:
    """
    Return the nodes, in pillar order, optionally only those holding ``role``.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.nodes role=etcd
    """
    topology = get()
    if role is not None and role not in __utils__["paas_topology.roles"]():
        raise SaltInvocationError(
            f"unknown role {role!r}; roles are: {', '.join(__utils__['paas_topology.roles']())}"
        )
    return __utils__["paas_topology.nodes"](topology, role)


def node_ids(role: str | None = None) -> list[str]:
    """
    Return the node ids, tolerating a malformed topology (bad entries are skipped).

    Orchestrations use this to compute targets while they render; their first step
    validates the topology and stops the run when it is invalid.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.node_ids role=gateway
    """
    return __utils__["paas_topology.node_ids"](__pillar__.get("paas"), role)


def master_id() -> str:
    """
    Return the id of the master's own minion (it holds the CA), tolerating a malformed
    topology like ``node_ids``.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.master_id
    """
    return __utils__["paas_topology.master_id"](__pillar__.get("paas"))


def hosts() -> list[list]:
    """
    Return the ``[address, [names]]`` entries of the platform's ``/etc/hosts``.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.hosts
    """
    return [[address, names] for address, names in __utils__["paas_topology.hosts"](get())]


def common() -> dict:
    """
    Return what this node's common baseline is configured from: its name, the
    ``/etc/hosts`` entries, the NTP servers and its default route (the private VIP for a
    private node, ``None`` for a gateway).

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.common
    """
    return _view("common", get(), __opts__["id"])


def etcd() -> dict:
    """
    Return how the platform runs etcd, the same on every node: version line, source,
    binaries, unit, directories, timers, token, and every member's client and peer URLs.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.etcd
    """
    return __utils__["paas_topology.etcd"](get())


def dr() -> dict:
    """
    Return how the platform keeps etcd recoverable: snapshot interval and retention (on
    the nodes and on the master), the master's receive directory, the drill's interval,
    the beacon's timers, the reactor's debounce and lock expiry, and the etcd cluster.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.dr
    """
    return __utils__["paas_topology.dr"](get())


def etcd_member(node_id: str | None = None) -> dict:
    """
    Return what the etcd member of a node (this minion by default) runs with: the
    cluster's settings, its name, address, client, peer and metrics URLs, and the paths
    of its certificates.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.etcd_member
        salt-call paas_topology.etcd_member etcd2
    """
    return _view("etcd_member", get(), node_id or __opts__["id"])


def _view(name: str, *args):
    return _view_of(f"paas_topology.{name}", *args)


def _view_of(function: str, *args):
    try:
        return __utils__[function](*args)
    except ValueError as error:
        raise CommandExecutionError(str(error)) from error


def gateway() -> dict:
    """
    Return what this gateway's keepalived, haproxy, nftables and conntrackd are
    configured from: itself and its peer on both networks (with the name of the
    interface that holds each of its addresses), the VIPs, its VRRP priority, the
    control-plane and worker backends, and the timers.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.gateway
    """
    settings = _view("gateway", get(), __opts__["id"])
    interfaces = __grains__.get("ip4_interfaces", {})
    for name, network in settings["networks"].items():
        holders = [
            iface for iface, addresses in interfaces.items() if network["address"] in addresses
        ]
        if not holders:
            raise CommandExecutionError(
                f"{__opts__['id']}: no interface holds its {name} address {network['address']} "
                "(grains ip4_interfaces); the gateway's network is not set up"
            )
        network["interface"] = holders[0]
    return settings


def kubernetes() -> dict:
    """
    Return how the platform runs Kubernetes, the same on every node: version and line,
    package repository, control planes (the first one inits) and workers, the API
    endpoint (private VIP and port), the apiserver's extra SANs, subnets, join settings,
    kubeadm's files and the external etcd (endpoints, CA, client certificate and key).

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.kubernetes
    """
    return __utils__["paas_topology.kubernetes"](get())


def kubernetes_node(node_id: str | None = None) -> dict:
    """
    Return what a Kubernetes node (this minion by default) is: the cluster's settings
    (``paas_topology.kubernetes``), its id, private address, role (``control-plane`` or
    ``worker``) and whether it is the first control plane.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.kubernetes_node
        salt-call paas_topology.kubernetes_node cp2
    """
    return _view("kubernetes_node", get(), node_id or __opts__["id"])


def kubeadm_configuration(node_id: str | None = None) -> str:
    """
    Return the kubeadm configuration of a Kubernetes node (this minion by default) as
    kubeadm reads it (``--config``), rendered from the topology: Init and Cluster
    configurations on the first control plane, a Join configuration without its secrets
    on every other node.

    CLI Example:

    .. code-block:: bash

        salt-call paas_topology.kubeadm_configuration
        salt-call paas_topology.kubeadm_configuration worker1
    """
    if "paas_kubeadm_config.render" not in __utils__:
        raise CommandExecutionError("the paas_kubeadm_config utils module is not synced")
    node = _view("kubernetes_node", get(), node_id or __opts__["id"])
    return _view_of("paas_kubeadm_config.render", node)
