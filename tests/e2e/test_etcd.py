"""
The etcd cluster on the lab's machines (Debian 13, etcd 3.5): formed by the platform's
orchestration from nothing, left alone by a re-run, closed to anyone without a
certificate of its CA, healed when a member comes back under its old name, and scaled to
five members and back while a writer keeps writing.
"""

from __future__ import annotations

import subprocess

import etcd3
import grpc
import pytest

from lab.processes import wait_for
from tests.e2e.etcd_helpers import ADDRESSES, PKI, Writer, admin_client, client
from tests.e2e.lab_helpers import (
    failures,
    lab_command,
    orchestrate,
    paas_report,
    reactor_paused,
    salt_json,
    salt_text,
    step_of,
)

pytestmark = pytest.mark.e2e

ETCD = ["etcd1", "etcd2", "etcd3"]
DATA_DIR = "/var/lib/paas-etcd"
VERSION = "3.5.16"


def _status() -> dict:
    return salt_json("salt-run", "paas.status")["etcd"]


def _assert_whole(members: list[str], platform_healthy: bool = True) -> dict:
    """The cluster has ``members``, every one a healthy voter; with ``platform_healthy``,
    paas.status says the whole platform is (its exit code 0)."""
    code, report = paas_report("status")
    if platform_healthy:
        assert code == 0, report["problems"]
    status = report["etcd"]
    assert status["healthy"] is True, status
    assert sorted(status["members"]) == sorted(members), status
    assert all(not member["learner"] for member in status["members"].values()), status
    assert status["leader"] in members
    assert status["alarms"] == []
    return status


def _assert_no_changes(steps: dict) -> None:
    for name, step in steps.items():
        assert step["result"] is True, (name, failures(step))
        assert step["changes"] == {}, (name, step["changes"])


def _on(node: str, command: str) -> str:
    return salt_json("salt", node, "cmd.run", command, "python_shell=True")[node]


def test_orchestration_formed_three_voting_members_on_the_package(lab):
    status = _assert_whole(ETCD)
    assert {member["version"] for member in status["members"].values()} == {VERSION}
    table = salt_text("salt-run", "paas.status")
    assert "etcd: healthy, 3 of 3 voting members healthy" in table
    for node in ETCD:
        assert node in table


def test_members_run_the_platforms_unit_with_its_settings(lab):
    node = "etcd2"
    assert _on(node, f"stat -c '%a %U' {DATA_DIR}") == "700 etcd"
    assert _on(node, "systemctl is-active paas-etcd") == "active"
    assert _on(node, "systemctl is-enabled paas-etcd") == "enabled"
    # The package's own unit (plain http on localhost) never runs.
    assert _on(node, "systemctl is-active etcd || true") == "inactive"
    assert "/usr/bin/etcd" in _on(node, "systemctl show -p ExecStart paas-etcd")
    environment = _on(node, "cat /etc/paas/etcd/etcd.env")
    for setting in (
        "ETCD_LISTEN_CLIENT_URLS=https://198.18.1.22:2379",
        "ETCD_LISTEN_PEER_URLS=https://198.18.1.22:2380",
        "ETCD_CLIENT_CERT_AUTH=true",
        "ETCD_PEER_CLIENT_CERT_AUTH=true",
        "ETCD_AUTO_TLS=false",
        "ETCD_HEARTBEAT_INTERVAL=100",
        "ETCD_ELECTION_TIMEOUT=1000",
        "ETCD_LISTEN_METRICS_URLS=http://127.0.0.1:2381",
    ):
        assert setting in environment.splitlines(), setting
    # Metrics answer on the node itself, and only there.
    assert "etcd_server_has_leader 1" in _on(node, "curl -s http://127.0.0.1:2381/metrics")
    assert (
        _on(node, "curl -s -o /dev/null -w '%{http_code}' http://198.18.1.22:2381/metrics || true")
        == "000"
    )


@pytest.fixture
def other_ca_client(tmp_path):
    """A client certificate (clientAuth, CN paas-admin) from a CA that is not the cluster's."""

    def openssl(*argv: str) -> None:
        subprocess.run(["openssl", *argv], check=True, capture_output=True, cwd=tmp_path)

    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=other CA")  # fmt: skip
    openssl("req", *key, "-keyout", "client.key", "-out", "client.csr",
            "-subj", "/CN=paas-admin")  # fmt: skip
    (tmp_path / "ext").write_text("extendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "client.crt", "-days", "2", "-extfile", "ext")  # fmt: skip
    return tmp_path


def test_only_clients_with_a_certificate_of_the_cluster_ca_read_or_write(lab, other_ca_client):
    with admin_client() as admin:
        admin.put("/paas/e2e/tls", "secret")
    refused = {
        "no client certificate": {"ca": str(PKI / "etcd-ca.crt")},
        "a certificate of another CA": {
            "ca": str(PKI / "etcd-ca.crt"),
            "cert": str(other_ca_client / "client.crt"),
            "key": str(other_ca_client / "client.key"),
        },
    }
    for case, credentials in refused.items():
        for address in [ADDRESSES[node] for node in ETCD]:
            with client(address, **credentials) as refused_client:
                with pytest.raises((grpc.RpcError, etcd3.exceptions.Etcd3Exception)):
                    refused_client.get("/paas/e2e/tls")
                with pytest.raises((grpc.RpcError, etcd3.exceptions.Etcd3Exception)):
                    refused_client.put("/paas/e2e/tls", f"overwritten with {case}")
    with admin_client(ADDRESSES["etcd3"]) as admin:
        assert admin.get("/paas/e2e/tls")[0] == b"secret"


@pytest.mark.parametrize("port", [2379, 2380])
def test_plain_http_is_refused(lab, port):
    for node in ETCD:
        url = f"http://{ADDRESSES[node]}:{port}"
        reply = subprocess.run(
            ["curl", "-s", "-m", "5", "-w", "\n%{http_code}", f"{url}/health", f"{url}/version"],
            capture_output=True,
            text=True,
            check=False,
        )
        # Go's TLS server answers plain http with 400 and nothing of etcd's.
        assert "etcdserver" not in reply.stdout and '"health"' not in reply.stdout, reply.stdout
        assert set(reply.stdout.split("\n")[-1:]) <= {"400", "000"}, reply.stdout


MEMBERSHIP = "/etc/paas/etcd/membership.env"
# Beside the data directory, not in it: a joining member's data directory is wiped.
SAVED_DATA = f"{DATA_DIR}-e2e-saved"
SAVED_MEMBERSHIP = f"{DATA_DIR}-e2e-saved-membership.env"


@pytest.fixture
def etcd_set_aside(lab):
    """Every member stopped with its data and membership record set aside, as if etcd
    had never run; afterwards the members that ran then come back with their data (the
    Kubernetes objects in it among them) in place of what the test formed. The DR
    reactor is paused meanwhile: this is no failure for it to repair."""
    with reactor_paused("e2e: etcd set aside"):
        for node in ETCD:
            _on(
                node,
                f"systemctl stop paas-etcd && mv {DATA_DIR}/member {SAVED_DATA} "
                f"&& mv {MEMBERSHIP} {SAVED_MEMBERSHIP}",
            )
        try:
            yield
        finally:
            for node in ETCD:
                restored = _on(
                    node,
                    f"systemctl stop paas-etcd; rm -rf {DATA_DIR}/member && "
                    f"mv {SAVED_DATA} {DATA_DIR}/member && mv {SAVED_MEMBERSHIP} {MEMBERSHIP} "
                    "&& echo restored",
                )
                assert restored == "restored", (node, restored)
            for node in ETCD:
                _on(node, "systemctl start --no-block paas-etcd")
            assert wait_for(lambda: _status()["healthy"], timeout=60, interval=2)


def _member_comments(step: dict) -> dict:
    """What etcd_member.present said on each minion of an orchestration step."""
    return {
        minion: result["comment"]
        for minion, states in step["changes"]["ret"].items()
        for key, result in states.items()
        if key.startswith("etcd_member_|-etcd-service-member_|-")
    }


def test_orch_etcd_forms_the_cluster_from_nothing_and_a_rerun_changes_nothing(etcd_set_aside):
    steps = orchestrate("orch.etcd")
    for name, step in steps.items():
        assert step["result"] is True, (name, failures(step))
    # Each member came up once: the configuration written in the same run did not
    # restart it (etcd_member's mod_watch would have said "restarted").
    assert _member_comments(step_of(steps, "paas-etcd-first")) == {
        "etcd1": "etcd1 started a new cluster and is healthy."
    }
    assert _member_comments(step_of(steps, "paas-etcd-members")) == {
        node: f"{node} joined as a learner, caught up and was promoted." for node in ETCD[1:]
    }
    # The Kubernetes objects are in the data set aside: the platform is not whole.
    _assert_whole(ETCD, platform_healthy=False)
    _assert_no_changes(orchestrate("orch.etcd"))


def test_a_removed_member_rejoins_under_its_name_with_its_old_data_wiped(lab):
    with reactor_paused("e2e: etcd3 removed by hand"):
        _removed_member_rejoins()


def _removed_member_rejoins():
    with admin_client() as admin:
        admin.put("/paas/e2e/before-removal", "kept")
    removed = salt_json("salt", "etcd1", "etcd_cluster.member_remove", "etcd3")["etcd1"]
    assert removed["removed"] == "etcd3", removed
    # etcd3 still has the data of the member it was: joining with it would fail.
    assert _on("etcd3", f"test -d {DATA_DIR}/member && echo kept") == "kept"
    dry = _state_results(salt_json("salt", "etcd3", "state.apply", "etcd", "test=True")["etcd3"])
    assert dry["etcd-service-member"]["result"] is None, dry["etcd-service-member"]
    assert "would be added as a learner" in dry["etcd-service-member"]["comment"]
    assert sorted(_status()["members"]) == ["etcd1", "etcd2"], "test=True changed membership"
    steps = orchestrate("orch.etcd")
    joined = step_of(steps, "paas-etcd-members")
    assert joined["result"] is True, failures(joined)
    _assert_whole(ETCD)
    with admin_client(ADDRESSES["etcd3"]) as admin:
        assert admin.get("/paas/e2e/before-removal")[0] == b"kept"


def _state_results(reply: dict) -> dict:
    """A state run's results by state id."""
    return {key.split("_|-")[1]: result for key, result in reply.items()}


def test_states_under_test_say_what_they_would_do_and_change_nothing(lab):
    healthy = _state_results(
        salt_json("salt", "etcd2", "state.apply", "etcd", "test=True")["etcd2"]
    )
    assert healthy["etcd-service-member"]["result"] is True, healthy["etcd-service-member"]
    assert healthy["etcd-service-member"]["changes"] == {}
    assert all(result["result"] is True for result in healthy.values()), healthy

    would_remove = salt_json(
        "salt", "etcd1", "state.single", "etcd_member.absent", "name=etcd2", "test=True"
    )["etcd1"]
    (removal,) = would_remove.values()
    assert removal["result"] is None and "would be removed" in removal["comment"], removal
    with reactor_paused("e2e: etcd3 stopped for a refusal"):
        _on("etcd3", "systemctl stop paas-etcd")
        _refusal_when_quorum_would_be_lost()


def _refusal_when_quorum_would_be_lost():
    try:
        refused = salt_json(
            "salt", "etcd1", "state.single", "etcd_member.absent", "name=etcd2", "test=True"
        )["etcd1"]
        (refusal,) = refused.values()
        assert refusal["result"] is False, refusal
        assert "removing etcd2 would cost quorum" in refusal["comment"], refusal
        assert "unhealthy: etcd3" in refusal["comment"], refusal
        code, report = paas_report("status")
        assert code == 1, report["problems"]
        assert [problem.split(":")[0] for problem in report["problems"]] == [
            "etcd member etcd3 is unhealthy"
        ]
    finally:
        _on("etcd3", "systemctl start paas-etcd")
    _assert_whole(ETCD)


def test_snapshot_is_saved_and_checked_with_etcd_35s_tools(lab):
    with admin_client() as admin:
        admin.put("/paas/e2e/snapshot", "in it")
    path = "/var/lib/paas-etcd-snapshots/e2e.db"
    saved = salt_json("salt", "etcd1", "etcd_cluster.snapshot_save", path)["etcd1"]
    assert saved["path"] == path, saved
    assert saved["keys"] >= 1 and saved["revision"] > 0, saved
    assert _on("etcd1", f"stat -c '%a %U' {path}") == "600 root"
    checked = salt_json("salt", "etcd1", "etcd_cluster.snapshot_check", path)["etcd1"]
    assert checked["sha256"] == saved["sha256"]


def test_scaling_to_five_members_and_back_keeps_every_acknowledged_write(lab):
    # Paced as the DR tests' writer is: unpaced, it keeps a core of this 2-core host busy
    # and the two orchestrations take nearly three times as long (575 s against 215 s).
    writer = Writer(ETCD, pause=0.02)
    writer.start()
    back = False
    try:
        writer.phase = "to five"
        up = lab_command("up", "--variant", "etcd5")
        assert up.returncode == 0, "lab up --variant etcd5 failed; its output is above"
        five = [*ETCD, "etcd4", "etcd5"]
        status = _assert_whole(five)
        assert {member["version"] for member in status["members"].values()} == {VERSION}
        # Every member now runs the release archive the lab built and the master served.
        for node in five:
            assert "/opt/etcd/etcd-v3.5.16-linux-amd64/etcd" in _on(
                node, "systemctl show -p ExecStart paas-etcd"
            ), node
        writer.phase = "to three"
        down = lab_command("up")
        back = down.returncode == 0
        assert back, "lab up (back to three) failed; its output is above"
        _assert_whole(ETCD)
        writer.phase = "after"
        with admin_client() as admin:
            admin.put("/paas/e2e/after-scaling", "written")
    finally:
        writer.stopping.set()
        writer.join(timeout=30)
        if not back:
            # The tests after this one need the lab's own topology, not the variant's.
            lab_command("up")
    for phase in ("to five", "to three"):
        assert writer.by_phase.get(phase, 0) > 0, (phase, writer.by_phase, writer.failures[-5:])
    with admin_client(ADDRESSES["etcd2"]) as admin:
        stored = {meta.key.decode() for _value, meta in admin.get_prefix("/paas/e2e/writer/")}
    missing = [key for key in writer.acknowledged if key not in stored]
    assert not missing, f"{len(missing)} acknowledged writes lost, first {missing[:5]}"
    print(
        f"writer: {len(writer.acknowledged)} writes acknowledged and read back "
        f"({writer.by_phase}), {len(writer.failures)} attempts failed and were retried"
    )
