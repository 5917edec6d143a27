"""
Kubernetes on the platform's external etcd, in the lab: kubeadm init on the first control
plane and the joins through the private VIP, as orch.cluster's Kubernetes layers run
them. kubeadm, the kubelet and the kube-apiserver are the lab's doubles (lab/kube/),
installed through apt from the lab's signed package repository; containerd, runc, apt's
pin and hold, the sysctls, TLS to the real etcd with the PKI's certificate, haproxy's
checks and the kubernetes client are real.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import etcd3
import kubernetes
import pytest
import salt.payload
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lab.apt_repo import SERVER as REPOSITORY_SERVER
from tests.e2e.lab_helpers import (
    CONTROL_PLANES,
    GATEWAYS,
    LAB_STATE,
    PRIVATE_VIP,
    PUBLIC_VIP,
    REPO,
    api_served_by,
    failures,
    holder,
    lab_command,
    on,
    orchestrate,
    other,
    paas_report,
    salt_json,
    salt_text,
    step_of,
    wait_until,
)

pytestmark = pytest.mark.e2e

VERSION = "1.34.2"
WORKERS = ["worker1"]
NODES = [*CONTROL_PLANES, *WORKERS]
ETCD = {"etcd1": "198.18.1.21", "etcd2": "198.18.1.22", "etcd3": "198.18.1.23"}
# The master's own minion holds the etcd admin client certificate, on this host.
PKI = Path("/etc/paas/pki")
MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
ADMIN_KUBECONFIG = LAB_STATE / "nodes/cp1/root/etc/kubernetes/admin.conf"
JOB_CACHE = LAB_STATE / "master/var/cache/salt/master/jobs"
MASTER_LOGS = [LAB_STATE / "master/var/log/salt/master", LAB_STATE / "converge.log"]
PILLAR_FILES = [*(REPO / "lab/pillar").glob("*.sls"), *(LAB_STATE / "pillar").glob("*.sls")]
# kubeadm's words for a join whose token's secret is not the one that signed cluster-info.
BROKEN_TOKEN = "failed to verify JWS signature of received cluster info object"


def _etcd():
    return etcd3.client(
        host=ETCD["etcd1"],
        port=2379,
        ca_cert=str(PKI / "etcd-ca.crt"),
        cert_cert=str(PKI / "etcd-admin-client.crt"),
        cert_key=str(PKI / "etcd-admin-client.key"),
        timeout=5,
    )


def _api(address: str = PRIVATE_VIP) -> kubernetes.client.CoreV1Api:
    """The API through ``address`` as kubectl has it with the first control plane's
    admin kubeconfig (TLS checked against the cluster's CA)."""
    client = kubernetes.config.new_client_from_config(config_file=str(ADMIN_KUBECONFIG))
    client.configuration.host = f"https://{address}:6443"
    return kubernetes.client.CoreV1Api(client)


def _kubernetes_status() -> tuple[int, dict]:
    code, report = paas_report("status")
    return code, report["kubernetes"]


def _nodes(report: dict) -> dict:
    return {node["name"]: node for node in report["nodes"]}


def test_orch_cluster_made_three_control_planes_and_the_worker_ready_nodes(lab):
    code, report = _kubernetes_status()
    assert code == 0, report["problems"]
    assert report["initialized"] is True
    nodes = _nodes(report)
    assert sorted(nodes) == sorted(NODES)
    for name, node in nodes.items():
        assert node["ready"] is True, node
        assert node["kubelet"] == f"v{VERSION}", node
        assert ("control-plane" in node["roles"]) is (name in CONTROL_PLANES), node
        assert node["lease_age_s"] is not None and node["lease_age_s"] <= 50, node
    for control_plane, apiserver in report["apiservers"].items():
        for check in ("direct", "private_vip", "public_vip"):
            assert apiserver[check]["ready"] is True, (control_plane, check, apiserver)
    table = salt_text("salt-run", "paas.status")
    for name in NODES:
        assert name in table


def test_nodes_run_the_repositorys_packages_pinned_held_and_containerd(lab):
    node = "cp2"
    assert on(node, "dpkg-query -W -f '${Version}' kubeadm kubelet kubectl") == (
        f"{VERSION}-1.1" * 3
    )
    assert sorted(on(node, "apt-mark showhold").split()) == ["kubeadm", "kubectl", "kubelet"]
    # What the real kubeadm and kubelet depend on came with them, resolved by apt from the
    # same repository: the CNI plugins where the kubelet looks for them, and they run.
    assert on(node, "dpkg-query -W -f '${Version} ' cri-tools kubernetes-cni").split() == [
        "1.34.0-1.1",
        "1.7.1-1.1",
    ]
    assert on(node, "apt-mark showauto cri-tools kubernetes-cni").split() == [
        "cri-tools",
        "kubernetes-cni",
    ]
    assert '"cniVersion"' in on(node, "CNI_COMMAND=VERSION /opt/cni/bin/bridge")
    policy = on(node, "apt-cache policy kubelet")
    assert "http://198.18.1.1:8081/core:/stable:/v1.34/deb" in policy, policy
    assert re.search(rf"\*\*\* {re.escape(VERSION)}-1\.1 1001", policy), policy
    # The repository is signed by the lab's key, and apt checked it.
    assert "InRelease" in REPOSITORY_SERVER.console.read_text()
    assert on(node, "systemctl is-active containerd kubelet").split() == ["active", "active"]
    assert "SystemdCgroup = true" in on(node, "cat /etc/containerd/config.toml")
    assert on(node, "ctr version >/dev/null && echo answers").strip() == "answers"
    for sysctl in (
        "net.ipv4.ip_forward",
        "net.bridge.bridge-nf-call-iptables",
        "net.bridge.bridge-nf-call-ip6tables",
    ):
        assert on(node, f"sysctl -n {sysctl}").strip() == "1", sysctl


def _renewed(node: str) -> str:
    with _etcd() as client:
        value, _meta = client.get(f"/registry/leases/kube-node-lease/{node}")
    return json.loads(value)["spec"]["renewTime"]


def _public_der(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_each_control_plane_gives_etcd_its_own_client_certificate_and_none_is_uploaded(lab):
    # The client certificate and key each apiserver hands etcd (its manifest's flags):
    # three certificates, three key pairs, each pair matching, none of them cp1's.
    given = {}
    for node in CONTROL_PLANES:
        manifest = on(node, f"cat {MANIFEST}")
        files = dict(re.findall(r"--etcd-(certfile|keyfile)=(\S+)", manifest))
        certificate = x509.load_pem_x509_certificate(on(node, f"cat {files['certfile']}").encode())
        key = serialization.load_pem_private_key(on(node, f"cat {files['keyfile']}").encode(), None)
        assert _public_der(key.public_key()) == _public_der(certificate.public_key()), node
        given[node] = certificate
    assert len({certificate.serial_number for certificate in given.values()}) == 3
    assert len({_public_der(certificate.public_key()) for certificate in given.values()}) == 3
    # A run of control-plane joins uploads the certificates again: the kubeadm-certs
    # Secret holds the etcd CA and no client certificate or key (not cp1's).
    public = (LAB_STATE / "master/etc/salt/pki/master/minions/cp2").read_text()
    made = salt_json(
        "salt",
        "cp1",
        "paas_kubeadm.credentials",
        "15",
        "control_plane=True",
        f"recipients={json.dumps({'cp2': public})}",
    )["cp1"]
    assert isinstance(made, dict), made
    try:
        data = _api().read_namespaced_secret("kubeadm-certs", "kube-system").data
    finally:
        salt_json("salt", "cp1", "paas_kubeadm.revoke", made["token_id"])
    assert data["external-etcd-ca.crt"]
    assert (data["external-etcd.crt"], data["external-etcd.key"]) == ("", "")


def test_kubelet_leases_renew_and_the_objects_are_in_etcd_under_registry(lab):
    with _etcd() as client:
        registered = {
            meta.key.decode().rsplit("/", 1)[1]
            for _value, meta in client.get_prefix("/registry/minions/")
        }
        namespace, _meta = client.get("/registry/namespaces/kube-system")
    assert registered == set(NODES)
    assert json.loads(namespace)["metadata"]["name"] == "kube-system"
    renewed = {node: _renewed(node) for node in NODES}
    # The kubelet renews its Lease every 10 s.
    assert wait_until(
        lambda: all(_renewed(node) > renewed[node] for node in NODES), timeout=30, interval=1
    ), renewed
    # What the API serves is what etcd holds.
    served = {node.metadata.name for node in _api().list_node().items}
    assert served == registered


def _node_creations() -> dict:
    return {
        node.metadata.name: node.metadata.creation_timestamp for node in _api().list_node().items
    }


def _tokens() -> list:
    return salt_json("salt", "cp1", "paas_kubeadm.tokens")["cp1"]


def test_a_rerun_changes_nothing_and_joins_nobody_and_test_mode_says_so(lab):
    created, tokens = _node_creations(), _tokens()
    steps = orchestrate("orch.kubernetes")
    for name, step in steps.items():
        assert step["result"] is True, (name, failures(step))
        assert step["changes"] == {}, (name, step["changes"])
    for role in ("control-plane", "worker"):
        step = step_of(steps, f"paas-kubernetes-{role}s")
        assert step["comment"] == f"Every {role} has joined.", step
    assert _node_creations() == created
    # No credentials were made for a run that had nobody to join.
    assert _tokens() == tokens
    # Test mode predicts exactly that: every step passes and would change nothing.
    for name, step in orchestrate("orch.kubernetes", "test=True").items():
        assert (step["result"], step["changes"]) == (True, {}), (name, step["comment"])
    assert _tokens() == tokens


def _backend(gateway: str, server: str) -> str:
    rows = salt_json("salt", gateway, "paas_gateway.backends")[gateway]
    (row,) = [row for row in rows if (row["proxy"], row["server"]) == ("kube-apiserver", server)]
    return row["status"]


def _haproxy_says(server: str, status: str) -> None:
    for gateway in GATEWAYS:
        assert wait_until(
            lambda g=gateway: _backend(g, server) == status, timeout=60, interval=1
        ), (gateway, server, status)


@pytest.fixture
def cp2_manifest_kept(lab):
    """cp2's kube-apiserver manifest as kubeadm wrote it, put back afterwards."""
    kept = "/root/kube-apiserver.yaml.e2e"
    on("cp2", f"cp -p {MANIFEST} {kept}")
    try:
        yield
    finally:
        on("cp2", f"cp -p {kept} {MANIFEST} && rm {kept}")
        _haproxy_says("cp2", "UP")


def test_an_apiserver_whose_etcd_client_certificate_is_wrong_is_not_ready_and_leaves_haproxy(
    cp2_manifest_kept,
):
    # A client certificate of kubeadm's CA, not of the etcd CA: etcd refuses it.
    on(
        "cp2",
        "sed -i -e 's|--etcd-certfile=.*|--etcd-certfile=/etc/kubernetes/pki/"
        "apiserver-kubelet-client.crt|' -e 's|--etcd-keyfile=.*|--etcd-keyfile=/etc/"
        f"kubernetes/pki/apiserver-kubelet-client.key|' {MANIFEST}",
    )
    _haproxy_says("cp2", "DOWN")
    assert {api_served_by() for _ in range(9)} == {"cp1", "cp3"}
    code, report = _kubernetes_status()
    assert code == 1, report["problems"]
    assert report["apiservers"]["cp2"]["direct"]["ready"] is False, report["apiservers"]["cp2"]
    assert any(problem.startswith("cp2: its apiserver is not ready") for problem in
               report["problems"]), report["problems"]  # fmt: skip
    # The others still serve the API, through both VIPs.
    assert {node.metadata.name for node in _api(PUBLIC_VIP).list_node().items} == set(NODES)


class ApiLoop(threading.Thread):
    """Lists the Nodes through the public VIP again and again, as a client that retries
    at once when a request fails; the time of each answer and of each failure."""

    def __init__(self):
        super().__init__(daemon=True)
        self.answers: list[float] = []
        self.failed: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        api = _api(PUBLIC_VIP)
        while not self.stopping.is_set():
            try:
                api.list_node(_request_timeout=1)
                self.answers.append(time.monotonic())
            except Exception as err:
                self.failed.append(type(err).__name__)


def test_the_api_through_the_vip_answers_again_after_a_hard_gateway_failover(lab):
    old = wait_until(holder, timeout=30)
    assert old, "no gateway holds both VIPs"
    loop = ApiLoop()
    loop.start()
    try:
        assert wait_until(lambda: len(loop.answers) > 5, timeout=15), loop.failed
        killed = time.monotonic()
        on(old, "systemctl kill --signal=SIGKILL keepalived")
        assert wait_until(lambda: holder() == other(old), timeout=15)
        assert wait_until(lambda: loop.answers[-1] > killed + 2, timeout=30), loop.failed[-5:]
    finally:
        loop.stopping.set()
        loop.join(timeout=10)
    assert wait_until(
        lambda: on(old, "systemctl is-active keepalived", check=False).strip() == "active",
        timeout=30,
        interval=0.5,
    )
    after = [moment for moment in loop.answers if moment > killed]
    assert after, "the API never answered after the failover"
    print(
        f"API through the public VIP: {len(loop.answers)} answers, {len(loop.failed)} failed "
        f"attempts retried ({sorted(set(loop.failed))}), the longest wait "
        f"{max(b - a for a, b in zip(loop.answers, loop.answers[1:], strict=False)):.2f} s"
    )


def _run_credentials(transfer) -> list[dict]:
    """The join credentials that the runs so far passed to the joining nodes, oldest
    first, as the master's job cache keeps them (a state.apply job's inline pillar), and
    opened with each node's own Salt key, as only that node can."""
    found = []
    for load in sorted(JOB_CACHE.glob("*/*/.load.p"), key=lambda path: path.stat().st_mtime):
        job = salt.payload.loads(load.read_bytes())
        for argument in job.get("arg") or []:
            pillar = argument.get("pillar") if isinstance(argument, dict) else None
            if isinstance(pillar, dict) and "kubeadm_join" in pillar:
                for node, sealed in pillar["kubeadm_join"]["sealed"].items():
                    pem = str(LAB_STATE / f"nodes/{node}/root/etc/salt/pki/minion/minion.pem")
                    found.append(
                        {
                            name: value and transfer.unseal(pem, value).decode()
                            for name, value in sealed.items()
                        }
                    )
    return found


def _seal(transfer, node: str, secret: str) -> str:
    """``secret`` sealed to ``node``'s Salt key as the master accepted it, as the first
    control plane seals a run's credentials."""
    public = (LAB_STATE / f"master/etc/salt/pki/master/minions/{node}").read_text()
    return transfer.seal(public, secret.encode(), node)


def _secrets(credentials: list[dict]) -> set[str]:
    """Every secret of ``credentials``: tokens, their secret halves, certificate keys."""
    found = set()
    for given in credentials:
        found.update({given["token"], given["token"].partition(".")[2]})
        if given.get("certificate_key"):
            found.add(given["certificate_key"])
    return found


def _minion_logs() -> list[Path]:
    return [
        LAB_STATE / "master-minion/var/log/salt/minion",
        *(LAB_STATE / f"nodes/{node}/root/var/log/salt/minion" for node in NODES),
    ]


@pytest.fixture
def worker2(lab):
    """The lab with worker2 (lab/variants/worker2.yaml) for a test; afterwards the lab's
    own topology again (`lab up` retires the machine) and worker2's Node and Lease
    deleted, as the runbook removes a worker."""
    try:
        yield
    finally:
        back = lab_command("up")
        for delete in (
            lambda: _api().delete_node("worker2"),
            lambda: kubernetes.client.CoordinationV1Api(_api().api_client).delete_namespaced_lease(
                "worker2", "kube-node-lease"
            ),
        ):
            try:
                delete()
            except kubernetes.client.ApiException as err:
                assert err.status == 404, err
        assert back.returncode == 0, "lab up (back to the lab's topology) failed; see above"
        code, report = _kubernetes_status()
        assert code == 0, report["problems"]


def _status_with_bearer(token: str) -> int:
    """The HTTP status of a request to the API through the private VIP that presents
    ``token`` as its bearer token, as a joining kubelet's TLS bootstrap does."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(
        f"https://{PRIVATE_VIP}:6443/api/v1/namespaces/default",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code


def test_the_runs_join_credentials_are_in_no_pillar_file_or_log_and_dead_after_it(
    lab, transfer_utils
):
    # What the lab's converge passed to the joining nodes: Salt keeps it in the master's
    # job cache (the jobs' arguments), nowhere else, and it is dead.
    credentials = _run_credentials(transfer_utils)
    assert credentials, "no join was given credentials: the test proves nothing"
    assert any(given.get("certificate_key") for given in credentials), credentials
    secrets = _secrets(credentials)
    # The master's job cache and event bus saw them only sealed: not one in the clear.
    job_files = [path for path in JOB_CACHE.rglob("*") if path.is_file()]
    for path in [*PILLAR_FILES, *MASTER_LOGS, *_minion_logs(), *job_files]:
        text = path.read_text(errors="replace")
        assert not [secret for secret in secrets if secret in text], path
    token_ids = {given["token"].partition(".")[0] for given in credentials}
    assert not token_ids & {token["id"] for token in _tokens()}
    # The tokens' Secrets and the uploaded certificates are gone...
    for secret in ["kubeadm-certs", *(f"bootstrap-token-{token}" for token in token_ids)]:
        with pytest.raises(kubernetes.client.ApiException) as gone:
            _api().read_namespaced_secret(secret, "kube-system")
        assert gone.value.status == 404, secret
    # ...so kubeadm join's discovery finds no signature of theirs in cluster-info (it waits
    # for one until its timeout, then fails), and the API refuses them.
    cluster_info = _api().read_namespaced_config_map("cluster-info", "kube-public").data
    assert not [key for key in cluster_info if key.rpartition("-")[2] in token_ids], cluster_info
    for given in credentials:
        assert _status_with_bearer(given["token"]) == 401


def test_a_worker_added_to_the_topology_joins_alone_once_a_broken_tokens_join_failed(
    worker2, transfer_utils
):
    boot = lab_command("up", "--variant", "worker2", "--no-converge")
    assert boot.returncode == 0, "lab up --variant worker2 --no-converge failed; see above"
    # What orch.cluster's layers before the joins give a node: the modules, their
    # libraries in Salt's Python (the minion restarts on them), the baseline, the
    # kubernetes role.
    salt_json("salt", "worker2", "saltutil.sync_all")
    salt_json("salt", "worker2", "state.apply", "salt_python")
    assert salt_json("salt-run", "paas_python.ready", "minions=worker2") == {"ready": ["worker2"]}
    prepared = salt_json("salt", "worker2", "state.apply", "common,kubernetes")["worker2"]
    assert isinstance(prepared, dict), prepared
    assert all(state["result"] is True for state in prepared.values()), [
        state["comment"] for state in prepared.values() if state["result"] is not True
    ]
    # A live token of the cluster with its secret half broken: kubeadm refuses it at
    # once (the cluster-info signature does not verify), and the node is reset.
    token = salt_json(
        "salt", "cp1", "cmd.run", "kubeadm token create --ttl 10m --description e2e-broken"
    )["cp1"].strip()
    token_id = token.partition(".")[0]
    try:
        ca_hash = salt_json("salt", "cp1", "paas_kubeadm.ca_hash")["cp1"]
        broken = {
            "token": _seal(transfer_utils, "worker2", f"{token_id}.{'0' * 16}"),
            "certificate_key": None,
        }
        pillar = json.dumps({"kubeadm_join": {"ca_hash": ca_hash, "sealed": {"worker2": broken}}})
        reply = salt_json(
            "salt", "-t", "300", "worker2", "state.apply", "kubernetes.join", f"pillar={pillar}"
        )
    finally:
        salt_json("salt", "cp1", "cmd.run", f"kubeadm token delete {token_id}")
    (refused,) = reply["worker2"].values()
    assert refused["result"] is False, refused
    assert "worker2" in refused["comment"] and BROKEN_TOKEN in refused["comment"], refused
    assert "0" * 16 not in json.dumps(refused)
    assert on("worker2", "test -e /etc/kubernetes/kubelet.conf || echo reset").strip() == "reset"

    up = lab_command("up", "--variant", "worker2", capture_output=True)
    assert up.returncode == 0, up.stdout + up.stderr
    (steps,) = json.loads((LAB_STATE / "converge.json").read_text())["data"].values()
    workers = step_of(steps, "paas-kubernetes-workers")
    control_planes = step_of(steps, "paas-kubernetes-control-planes")
    assert workers["changes"]["joined"]["new"] == ["worker2"], workers
    assert control_planes["changes"] == {}, control_planes
    code, report = _kubernetes_status()
    assert code == 0, report["problems"]
    assert _nodes(report)["worker2"]["ready"] is True


def _etcdctl(*argv: str) -> str:
    """etcdctl on this host with the master's admin client certificate, as the runbook
    has it."""
    return subprocess.run(
        [
            "etcdctl", f"--endpoints={','.join(f'https://{a}:2379' for a in ETCD.values())}",
            f"--cacert={PKI / 'etcd-ca.crt'}", f"--cert={PKI / 'etcd-admin-client.crt'}",
            f"--key={PKI / 'etcd-admin-client.key'}", *argv,
        ],
        check=True,
        capture_output=True,
        text=True,
        env={"ETCDCTL_API": "3"},
    ).stdout  # fmt: skip


def test_reset_keeps_etcds_data_and_an_etcd_below_kubeadms_minimum_is_refused_before_init(lab):
    # kubeadm reset -f on every node: the cluster's files and its kubelets go...
    reset = salt_json("salt", "-L", ",".join(NODES), "cmd.retcode", "kubeadm reset -f")
    assert reset == dict.fromkeys(NODES, 0), reset
    for node in NODES:
        assert on(node, f"test -e {MANIFEST} -o -e /etc/kubernetes/kubelet.conf || echo gone")
    # ...but the external etcd keeps Kubernetes' objects: reset never touches it.
    assert f"/registry/minions/{WORKERS[0]}" in _etcdctl("get", "--prefix", "--keys-only",
                                                      "/registry/minions/")  # fmt: skip
    # What an operator runs for a fresh cluster (docs/operations.md).
    _etcdctl("del", "--prefix", "/registry/")
    assert _etcdctl("get", "--prefix", "--keys-only", "/registry/").strip() == ""

    # Debian 13's etcd is 3.5.16; kubeadm 1.34 wants 3.5.24. Without the topology's
    # explicit ExternalEtcdVersion, the validator refuses Debian's etcd before anything
    # renders; a topology that claims a release kubeadm accepts while the members still
    # run the older one passes it, and init is refused before kubeadm runs, with the fix.
    strict = {"kubernetes": {"ignore_preflight_errors": []}}
    reply = salt_json(
        "salt", "cp1", "state.apply", "kubernetes.init_cluster",
        f"pillar={json.dumps({'paas': strict})}",
    )["cp1"]  # fmt: skip
    assert isinstance(reply, list), reply
    assert any("paas:etcd:source" in error and "3.5.24" in error for error in reply), reply
    shipped = yaml.safe_load((REPO / "pillar/paas.sls").read_text())["paas"]["etcd"]
    strict["etcd"] = {"source": "archive", "archive": shipped["archive"]}
    reply = salt_json(
        "salt", "cp1", "state.apply", "kubernetes.init_cluster",
        f"pillar={json.dumps({'paas': strict})}",
    )  # fmt: skip
    (refused,) = reply["cp1"].values()
    assert refused["result"] is False and refused["changes"] == {}, refused
    for words in ("runs etcd 3.5.16", "older than 3.5.24", "paas:etcd:source: archive"):
        assert words in refused["comment"], (words, refused["comment"])
    assert on("cp1", f"test -e {MANIFEST} || echo none").strip() == "none"

    # The topology as it is: the orchestration makes the cluster again from nothing.
    steps = orchestrate("orch.kubernetes")
    for name, step in steps.items():
        assert step["result"] is True, (name, failures(step))
    joined = {
        role: step_of(steps, f"paas-kubernetes-{role}")["changes"]["joined"]["new"]
        for role in ("control-planes", "workers")
    }
    assert joined == {"control-planes": ["cp2", "cp3"], "workers": WORKERS}, joined
    code, report = _kubernetes_status()
    assert code == 0, report["problems"]
    assert sorted(_nodes(report)) == sorted(NODES)
