"""
The master's Kubernetes joins and their check, one implementation for the two ways in:
the runner (``salt-run paas_kubernetes.plan|join|verify``, ``_runners/paas_kubernetes.py``)
and the orchestration's steps (``paas_kubernetes.joined`` and ``verified``,
``_states/paas_kubernetes.py``), which call it in the orchestration's own process
instead of going back through ``saltutil.runner``.

``join`` joins the nodes of a role that have not joined yet: the run's credentials are
made on the first control plane (a bootstrap token living
``paas:kubernetes:token_ttl_minutes``, the CA hash and, for control planes, a certificate
key for the control-plane certificates uploaded for the run), the token and key sealed there to
each joining node's Salt public key (so the master, its job cache and event bus, and the
other minions only ever hold ciphertext), passed inline to ``state.apply kubernetes.join``
(pillar ``kubeadm_join``), made again when half their life has passed, and revoked when
the run ends, whatever happened. ``plan`` says what ``join`` would do; ``verify`` checks
the cluster against the topology.

Each takes the caller's ``__opts__`` (the master's) and the utils functions named by
``uses``, resolved by the caller from its own ``__utils__``: Salt's loader gives a utils
module none, and a loader's dunder resolves in the loader running the code that reads
it, so a caller's ``__utils__`` handed in as it is would not resolve here. Each returns a
report without any secret, with a ``retcode``: 0 when all is well, 1 when something
failed (named in ``problems`` or ``failed``).
"""

from __future__ import annotations

import ssl
import time

from salt.exceptions import SaltClientError, SaltRunnerError

USES = (
    "paas_master.minions",
    "paas_master.public_key",
    "paas_master.topology",
    "paas_topology.validate",
    "paas_topology.kubernetes",
    "paas_apiserver.readyz",
    "paas_orchestration.state_failure",
)
ROLES = ("control-plane", "worker")
CONTROL_PLANE_LABEL = "control-plane"
JOIN_SLS = "kubernetes.join"
JOIN_PILLAR = "kubeadm_join"
ASK_TIMEOUT = 30
POLL_SECONDS = 2
HTTP_TIMEOUT = 5


def uses() -> tuple[str, ...]:
    """The utils functions ``plan``, ``join`` and ``verify`` call, which the caller hands
    in as ``{name: its __utils__[name]}``."""
    return USES


# The plan: pure functions of the topology's view and the nodes' answers.


def candidates(view: dict, role: str) -> list[str]:
    """The nodes a join of ``role`` is for, in topology order: every control plane but
    the first (which initializes the cluster), or every worker."""
    if role == "control-plane":
        return [
            node["id"]
            for node in view["control_planes"]
            if node["id"] != view["first_control_plane"]
        ]
    return [node["id"] for node in view["workers"]]


def batch_size(view: dict, role: str) -> int:
    """Control planes join one at a time; workers ``worker_batch`` at a time."""
    return 1 if role == "control-plane" else int(view["worker_batch"])


def batches(nodes: list[str], size: int) -> list[list[str]]:
    """``nodes`` in order, cut into lists of at most ``size``."""
    if size < 1:
        raise ValueError(f"a batch holds at least one node, not {size}")
    return [nodes[start : start + size] for start in range(0, len(nodes), size)]


def join_plan(nodes: list[str], answers: dict, size: int) -> dict:
    """Which of ``nodes`` have joined, which are to join (in batches of ``size``) and
    which did not say (their answer to ``paas_kubeadm.joined`` is not a boolean)."""
    to_join = [node for node in nodes if answers.get(node) is False]
    return {
        "already_joined": [node for node in nodes if answers.get(node) is True],
        "to_join": to_join,
        "batches": batches(to_join, size),
        "unanswered": {
            node: str(answers.get(node, "no reply"))
            for node in nodes
            if not isinstance(answers.get(node), bool)
        },
    }


# The runs: the runner's and the orchestration steps'.


def plan(opts: dict, utils, role: str = "worker") -> dict:
    """
    Say what ``join`` would do for ``role``, changing nothing: the nodes that have
    joined, those that would join and in which batches, those that did not answer.
    """
    report = {"role": role, "problems": []}
    try:
        view = _view(opts, utils, role)
        with utils["paas_master.minions"](opts) as minions:
            found = _plan(minions, view, role)
    except (SaltRunnerError, SaltClientError) as err:
        report["problems"].append(str(err))
        return _done(report, 1)
    report.update(found)
    report["problems"] = _unanswered(found)
    return _done(report, 1 if report["problems"] else 0)


def join(opts: dict, utils, role: str = "worker", timeout: int = 600) -> dict:
    """
    Join the nodes of ``role`` (``control-plane`` or ``worker``) that have not joined
    yet, with credentials made for this run and revoked at its end. Stops at the first
    failed join, naming the node and kubeadm's error; exit code 1 then, 0 otherwise.

    timeout
        Seconds a node's join, or a control plane's wait for Ready, may take.
    """
    report = {
        "role": role,
        "already_joined": [],
        "joined": [],
        "failed": {},
        "not_joined": [],
        "revoked": None,
        "problems": [],
    }
    try:
        view = _view(opts, utils, role)
        with utils["paas_master.minions"](opts) as minions:
            found = _plan(minions, view, role)
            report["already_joined"] = found["already_joined"]
            if found["unanswered"]:
                report["problems"] = _unanswered(found)
                report["not_joined"] = [*found["to_join"], *found["unanswered"]]
            elif found["to_join"]:
                _Joins(
                    view,
                    role,
                    timeout=int(timeout),
                    minions=minions,
                    report=report,
                    recipients=_public_keys(opts, utils, found["to_join"]),
                    state_failure=utils["paas_orchestration.state_failure"],
                ).run(found["batches"])
    except (SaltRunnerError, SaltClientError) as err:
        report["problems"].append(str(err))
    failed = bool(report["problems"] or report["failed"])
    return _done(report, 1 if failed else 0)


def verify(opts: dict, utils, timeout: int = 120) -> dict:
    """
    Every Node of the topology Ready with its role's label, and ``/readyz`` through both
    VIPs over TLS the cluster's CA vouches for, waited for up to ``timeout`` seconds (the
    Nodes as the first control plane reads them with its admin kubeconfig); retcode 1
    with every problem named when that does not happen.
    """
    report = {"nodes": {}, "unknown_nodes": [], "api": {}, "problems": []}
    try:
        view = _view(opts, utils)
        issuer = view["first_control_plane"]
        expected = {node: "control-plane" for node in candidates(view, "control-plane")}
        expected = {issuer: "control-plane", **expected}
        expected.update((node, "worker") for node in candidates(view, "worker"))
        deadline = time.monotonic() + int(timeout)
        with utils["paas_master.minions"](opts) as minions:
            ca = minions.call(issuer, "paas_kubeadm.ca_certificate", timeout=ASK_TIMEOUT)
            while True:
                seen = _nodes(minions, issuer)
                report.update(_checked(utils, view, expected, seen, ca))
                if not report["problems"] or time.monotonic() > deadline:
                    break
                time.sleep(POLL_SECONDS)
    except (SaltRunnerError, SaltClientError) as err:
        report["problems"].append(str(err))
    return _done(report, 1 if report["problems"] else 0)


# Joins, batch after batch, with the run's credentials.


class _Joins:
    def __init__(
        self,
        view: dict,
        role: str,
        *,
        timeout: int,
        minions,
        report: dict,
        recipients: dict,
        state_failure,
    ):
        self.issuer = view["first_control_plane"]
        self.ttl_minutes = int(view["token_ttl_minutes"])
        self.control_plane = role == "control-plane"
        self.timeout = timeout
        self.minions = minions
        self.report = report
        self.recipients = recipients
        self.state_failure = state_failure
        self.credentials = None
        self.made_at = 0.0
        self.live: list[str] = []

    def run(self, planned: list[list[str]]) -> None:
        try:
            for index, batch in enumerate(planned):
                self._fresh_credentials()
                if not self._join(batch):
                    self.report["not_joined"] = [
                        node
                        for rest in planned[index:]
                        for node in rest
                        if node not in self.report["joined"]
                    ]
                    return
        finally:
            self._revoke()

    def _fresh_credentials(self) -> None:
        # A token made again when half its life has passed outlives any one batch.
        if self.credentials and time.monotonic() - self.made_at < self.ttl_minutes * 30:
            return
        made = self.minions.call(
            self.issuer,
            "paas_kubeadm.credentials",
            arg=[self.ttl_minutes],
            kwarg={"control_plane": self.control_plane, "recipients": self.recipients},
            timeout=ASK_TIMEOUT,
        )
        if not isinstance(made, dict):
            raise SaltRunnerError(f"{self.issuer}: the join credentials could not be made: {made}")
        self.live.append(made["token_id"])
        previous, self.credentials, self.made_at = self.credentials, made, time.monotonic()
        if previous:
            self._revoke([previous["token_id"]])

    def _pillar(self, batch: list[str]) -> dict:
        # Each node of the batch gets only what is sealed to its own key.
        sealed = {node: self.credentials["sealed"][node] for node in batch}
        return {JOIN_PILLAR: {"ca_hash": self.credentials["ca_hash"], "sealed": sealed}}

    def _join(self, batch: list[str]) -> bool:
        replies = self.minions.run(
            batch, "state.apply", [JOIN_SLS], {"pillar": self._pillar(batch)}, timeout=self.timeout
        )
        failed = {}
        for node in batch:
            failure = self.state_failure(node, replies.get(node), JOIN_SLS)
            if failure:
                failed[node] = failure
            else:
                self.report["joined"].append(node)
        if not failed and self.control_plane:
            for node in batch:
                waited = _ready(self.minions, self.issuer, node, self.timeout)
                if waited:
                    failed[node] = f"{node} joined, but {waited}"
        self.report["failed"].update(failed)
        return not failed

    def _revoke(self, token_ids: list[str] | None = None) -> None:
        token_ids = list(self.live) if token_ids is None else token_ids
        if not token_ids:
            return
        revoked = self.minions.call(
            self.issuer, "paas_kubeadm.revoke", arg=token_ids, timeout=ASK_TIMEOUT
        )
        if isinstance(revoked, dict):
            self.live = [token for token in self.live if token not in token_ids]
            done = self.report["revoked"] or {"tokens": [], "kubeadm_certs_secret": None}
            done["tokens"] += revoked["tokens"]
            done["kubeadm_certs_secret"] = revoked["kubeadm_certs_secret"]
            self.report["revoked"] = done
            return
        self.report["problems"].append(
            f"{self.issuer}: the run's credentials could not be revoked ({revoked}); they "
            f"die with their TTL ({self.ttl_minutes} minutes), or delete them there: "
            f"kubeadm token delete {' '.join(token_ids)}, and kubectl -n kube-system "
            "delete secret kubeadm-certs"
        )


def _plan(minions, view: dict, role: str) -> dict:
    """``join_plan`` of ``role``'s nodes, each asked whether it has joined."""
    nodes = candidates(view, role)
    answers = minions.ask(nodes, "paas_kubeadm.joined", timeout=ASK_TIMEOUT)
    return join_plan(nodes, answers, batch_size(view, role))


def _nodes(minions, issuer: str):
    """The Nodes as the first control plane reads them with its admin kubeconfig
    (``paas_control_plane.status``), or why they could not be read."""
    status = minions.call(issuer, "paas_control_plane.status", timeout=ASK_TIMEOUT)
    if not isinstance(status, dict):
        return f"{issuer} did not answer: {status}"
    if "nodes" not in status:
        return status.get("nodes_error") or status.get("error") or status.get("reason")
    return status["nodes"]


def _ready(minions, issuer: str, node: str, timeout: int) -> str | None:
    """Wait until the Node ``node`` is Ready; None when it is, else what was seen last."""
    deadline = time.monotonic() + timeout
    while True:
        seen = _nodes(minions, issuer)
        if isinstance(seen, list):
            entry = next((entry for entry in seen if entry["name"] == node), None)
            if entry and entry["ready"]:
                return None
            seen = "it is not a Node" if entry is None else f"not Ready: {entry['reason']}"
        if time.monotonic() > deadline:
            return f"its Node is not Ready after {timeout} s: {seen}"
        time.sleep(POLL_SECONDS)


def _unanswered(found: dict) -> list[str]:
    return [
        f"{node} did not say whether it has joined: {reply}"
        for node, reply in found["unanswered"].items()
    ]


# The check.


def _checked(utils, view: dict, expected: dict, seen, ca) -> dict:
    problems, nodes, unknown = [], {}, []
    if isinstance(seen, list):
        listed = {entry["name"]: entry for entry in seen}
        for node, role in expected.items():
            entry = listed.get(node)
            if entry is None:
                problems.append(f"{node} is not a Node of the cluster")
                continue
            nodes[node] = {**entry, "role": role}
            if not entry["ready"]:
                problems.append(f"Node {node} is not Ready: {entry['reason']}")
            labelled = CONTROL_PLANE_LABEL in entry["roles"]
            if role == "control-plane" and not labelled:
                problems.append(
                    f"Node {node} is a control plane without the "
                    f"node-role.kubernetes.io/{CONTROL_PLANE_LABEL} label"
                )
            if role == "worker" and labelled:
                problems.append(
                    f"Node {node} is a worker with the "
                    f"node-role.kubernetes.io/{CONTROL_PLANE_LABEL} label"
                )
        unknown = sorted(name for name in listed if name not in expected)
    else:
        problems.append(f"{view['first_control_plane']} could not list the Nodes: {seen}")
    api = {}
    port = view["endpoint"]["port"]
    for network in ("private", "public"):
        address = view["vips"][network]
        api[network] = _readyz(utils, address, port, ca) if isinstance(ca, str) else f"no CA: {ca}"
        if api[network] != "ok":
            problems.append(
                f"the API does not answer through the {network} VIP {address}:{port}: "
                f"{api[network]}"
            )
    return {"nodes": nodes, "unknown_nodes": unknown, "api": api, "problems": problems}


def _readyz(utils, address: str, port: int, ca: str) -> str:
    """``ok`` when the API answers /readyz at address:port over TLS the cluster's CA
    vouches for, else what went wrong (``paas_apiserver.readyz``)."""
    context = ssl.create_default_context(cadata=ca)
    return utils["paas_apiserver.readyz"](address, port, context, HTTP_TIMEOUT)


# The master's side of Salt.


def _view(opts: dict, utils, role: str | None = None) -> dict:
    if role is not None and role not in ROLES:
        raise SaltRunnerError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    topology = utils["paas_master.topology"](opts, utils["paas_topology.validate"])
    return utils["paas_topology.kubernetes"](topology)


def _public_keys(opts: dict, utils, nodes: list[str]) -> dict:
    """Each node's Salt public key as this master accepted it: the join credentials are
    sealed to it, so only that node can read them."""
    keys = {}
    for node in nodes:
        try:
            keys[node] = utils["paas_master.public_key"](opts, node)
        except SaltRunnerError as err:
            raise SaltRunnerError(f"{err}; the join credentials are sealed to it") from err
    return keys


def _done(report: dict, retcode: int) -> dict:
    return {**report, "retcode": retcode}
