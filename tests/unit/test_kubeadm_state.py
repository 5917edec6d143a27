"""
The ``kubeadm`` state module (``_states/kubeadm.py``) under Salt's loader dunders, with the
``paas_kubeadm`` functions it calls replaced by a recording stand-in: a joined node is
never joined again (not even asked for credentials), test mode predicts the changes a
real run records without credentials and without changing anything, a failed step
keeps what happened before it, and no secret reaches a comment, changes or a log record.
And kubeadm's certificates renewed (``certificates_renewed``) only when one that kubeadm
can renew is inside the renewal window or expired, and checked after.

The module's own behaviour (kubeadm's calls, the temporary configuration) is in
test_kubeadm_module.py; the runner that passes the credentials in
test_kubernetes_runner.py.
"""

from __future__ import annotations

import base64
import json
import logging

import pytest
import salt.crypt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from salt.exceptions import CommandExecutionError

from tests.conftest import utils_of

TOKEN = "abcdef.0123456789abcdef"
CERTIFICATE_KEY = "0123456789abcdef" * 4
CA_HASH = "sha256:" + "ab" * 32


def _key_pair() -> tuple[bytes, str]:
    """A minion's Salt key pair: its minion.pem, and the public key the master holds."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


OWN_KEY, OWN_PUBLIC = _key_pair()
_OTHER_KEY, OTHER_PUBLIC = _key_pair()


def _seal(public: str, secret: str) -> str:
    # The one sealed format (paas_transfer.seal): its version, then RSA-OAEP as Salt's.
    encrypted = salt.crypt.PublicKey.from_str(public).encrypt(secret)
    return "paas-sealed/1:" + base64.b64encode(encrypted).decode()


def credentials(node: str, public: str = OWN_PUBLIC) -> dict:
    """The pillar salt-run paas_kubernetes.join passes: the CA hash, and the token and
    certificate key sealed to the joining node's key."""
    sealed = {"token": _seal(public, TOKEN), "certificate_key": _seal(public, CERTIFICATE_KEY)}
    return {"ca_hash": CA_HASH, "sealed": {node: sealed}}


KUBEADM_CERTIFICATES = ("admin.conf", "apiserver", "front-proxy-client", "ca", "front-proxy-ca")


def kubeadm_certificate(name: str, days_left: int = 364, serial: str = "01") -> dict:
    """One row of paas_control_plane.certificates on cp1, 30 days its renewal window."""
    ca = name in ("ca", "front-proxy-ca")
    return {
        "node": "cp1",
        "profile": name,
        "source": "kubeadm",
        "signed_by": None if ca else ("front-proxy-ca" if name.startswith("front") else "ca"),
        # The CAs are kubeadm's ten years; kubeadm certs renew all leaves them as they are.
        "serial": f"{name}-ca" if ca else f"{name}-{serial}",
        "days_left": days_left,
        "renewal_due": days_left <= 30,
        "problems": [],
    }


def _due(rows: list[dict], name: str, days_left: int) -> None:
    """Row ``name`` of ``rows`` with ``days_left``, due as paas_control_plane decides it."""
    (row,) = [row for row in rows if row["profile"] == name]
    row.update(days_left=days_left, renewal_due=days_left <= 30)


class Kubeadm:
    """What paas_kubeadm would answer on a node, and every call that would change it."""

    def __init__(self):
        self.joined = False
        self.initialized = False
        self.refusal: str | None = None
        self.calls: list[tuple] = []
        self.failures: dict[str, str] = {}
        self.etcd = {"checked": True, "versions": {"https://e1:2379": "3.5.24"}, "unreachable": []}
        self.etcd_refusal: str | None = None
        # kubeadm's certificates (paas_control_plane.certificates), before and after
        # kubeadm certs renew all.
        self.certificates = [kubeadm_certificate(name) for name in KUBEADM_CERTIFICATES]
        self.renewed = [kubeadm_certificate(name, serial="02") for name in KUBEADM_CERTIFICATES]

    def view(self, node: str) -> dict:
        return {
            "id": node,
            "role": "worker" if node.startswith("worker") else "control-plane",
            "first": node == "cp1",
            "first_control_plane": "cp1",
        }

    def salt(self, opts: dict) -> dict:
        def record(name, answer=None):
            def call(*args, **kwargs):
                self.calls.append((name, *args))
                if name in self.failures:
                    raise CommandExecutionError(self.failures[name])
                return answer(*args) if callable(answer) else answer

            return call

        def version_check(reachable=True):
            self.calls.append(("paas_kubeadm.etcd_version_check", reachable))
            if self.etcd_refusal:
                raise CommandExecutionError(self.etcd_refusal)
            return self.etcd

        return {
            "paas_topology.kubernetes_node": lambda: self.view(opts["id"]),
            "paas_kubeadm.joined": lambda: self.joined,
            "paas_kubeadm.initialized": lambda: self.initialized,
            "paas_kubeadm.init_refusal": lambda: self.refusal,
            "paas_kubeadm.etcd_version_check": version_check,
            "paas_kubeadm.init": record("paas_kubeadm.init", {"node": "cp1", "etcd": self.etcd}),
            "paas_kubeadm.tokens": record(
                "paas_kubeadm.tokens", [{"id": "zyxwvu", "description": "kubeadm init"}]
            ),
            "paas_kubeadm.revoke": record(
                "paas_kubeadm.revoke",
                lambda *ids: {"tokens": list(ids), "kubeadm_certs_secret": "deleted"},
            ),
            "paas_kubeadm.join": record(
                "paas_kubeadm.join", lambda *args: {"node": opts["id"], "role": "worker"}
            ),
            "paas_control_plane.certificates": lambda: [dict(row) for row in self.certificates],
            "paas_kubeadm.renew_certificates": record(
                "paas_kubeadm.renew_certificates", self.renew
            ),
        }

    def renew(self) -> dict:
        """kubeadm certs renew all: every certificate but the CAs signed again."""
        before = {row["profile"]: row["serial"] for row in self.certificates}
        self.certificates = self.renewed
        return {
            row["profile"]: {"old": before.get(row["profile"]), "new": row["serial"]}
            for row in self.renewed
            if row["serial"] != before.get(row["profile"])
        }

    def changes(self) -> list[str]:
        return [call[0] for call in self.calls if call[0] != "paas_kubeadm.etcd_version_check"]


@pytest.fixture(scope="module")
def state_module(import_repo_module):
    return import_repo_module("_states/kubeadm.py", "kubeadm_state_module")


@pytest.fixture
def kubeadm() -> Kubeadm:
    return Kubeadm()


@pytest.fixture
def opts(tmp_path) -> dict:
    # This minion's own Salt key, where the minion keeps it.
    (tmp_path / "minion.pem").write_bytes(OWN_KEY)
    return {"id": "cp1", "test": False, "pki_dir": str(tmp_path)}


@pytest.fixture
def pillar() -> dict:
    return {}


@pytest.fixture
def configure_loader_modules(state_module, kubeadm, opts, pillar, transfer_utils, state_utils):
    return {
        state_module: {
            "__salt__": kubeadm.salt(opts),
            "__opts__": opts,
            "__pillar__": pillar,
            "__utils__": {**utils_of(transfer_utils, "paas_transfer"), **state_utils},
        }
    }


def _no_secret(*texts) -> None:
    said = json.dumps(texts, default=str)
    for secret in (TOKEN, TOKEN.split(".")[1], CERTIFICATE_KEY):
        assert secret not in said


# kubeadm.initialized


def test_an_initialized_control_plane_changes_nothing(state_module, kubeadm):
    kubeadm.initialized = True
    ret = state_module.initialized("cp1")
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert kubeadm.calls == []


def test_test_mode_predicts_the_init_and_its_clean_up_with_the_keys_a_run_records(
    state_module, kubeadm, opts
):
    opts["test"] = True
    predicted = state_module.initialized("cp1")
    assert predicted["result"] is None, predicted
    assert "would initialize" in predicted["comment"]
    assert kubeadm.changes() == []
    opts["test"] = False
    ret = state_module.initialized("cp1")
    assert ret["result"] is True, ret
    assert ret["changes"] == predicted["changes"]
    assert set(ret["changes"]) == {"cluster", "init_credentials"}
    assert kubeadm.changes() == [
        "paas_kubeadm.init",
        "paas_kubeadm.tokens",
        "paas_kubeadm.revoke",
    ]
    assert ("paas_kubeadm.revoke", "zyxwvu") in kubeadm.calls


def test_test_mode_refuses_an_etcd_below_the_minimum_and_tolerates_one_not_running_yet(
    state_module, kubeadm, opts
):
    opts["test"] = True
    kubeadm.etcd = {"checked": True, "versions": {}, "unreachable": ["https://e1:2379: refused"]}
    predicted = state_module.initialized("cp1")
    assert predicted["result"] is None
    assert "could not be read" in predicted["comment"]
    assert ("paas_kubeadm.etcd_version_check", False) in kubeadm.calls
    kubeadm.etcd_refusal = "cp1: https://e1:2379 runs etcd 3.5.16, and kubeadm refuses"
    refused = state_module.initialized("cp1")
    assert refused["result"] is False and "3.5.16" in refused["comment"]


def test_a_refused_init_changes_nothing_and_says_why(state_module, kubeadm):
    kubeadm.refusal = "a Kubernetes API already answers at 198.18.1.10:6443"
    ret = state_module.initialized("cp1")
    assert ret["result"] is False
    assert "already answers" in ret["comment"]
    assert kubeadm.changes() == []


def test_a_failed_init_is_reported_with_kubeadms_error(state_module, kubeadm):
    kubeadm.failures["paas_kubeadm.init"] = "cp1: kubeadm init failed (exit code 1) boom"
    ret = state_module.initialized("cp1")
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].startswith("cp1: kubeadm init failed")


def test_an_init_whose_clean_up_failed_keeps_the_init_in_its_changes(state_module, kubeadm):
    kubeadm.failures["paas_kubeadm.revoke"] = "cp1: bootstrap tokens zyxwvu remain"
    ret = state_module.initialized("cp1")
    assert ret["result"] is False
    assert set(ret["changes"]) == {"cluster"}
    assert "zyxwvu remain" in ret["comment"]


def test_only_the_node_itself_is_managed(state_module, kubeadm):
    ret = state_module.initialized("cp2")
    assert ret["result"] is False and "manages the node it runs on (cp1)" in ret["comment"]
    assert kubeadm.calls == []


# kubeadm.joined


def test_a_joined_node_is_never_joined_again_not_even_with_credentials(
    state_module, kubeadm, opts, pillar
):
    opts["id"] = "worker1"
    kubeadm.joined = True
    pillar["kubeadm_join"] = credentials("worker1")
    for test in (True, False):
        opts["test"] = test
        ret = state_module.joined("worker1")
        assert ret["result"] is True and ret["changes"] == {}, ret
        assert "never joined again" in ret["comment"]
    assert kubeadm.calls == []


def test_test_mode_predicts_a_join_without_credentials(state_module, kubeadm, opts, caplog):
    opts.update(id="worker1", test=True)
    predicted = state_module.joined("worker1")
    assert predicted["result"] is None, predicted
    assert predicted["changes"] == {"node": {"old": None, "new": "joined as a worker"}}
    assert kubeadm.calls == []


def test_a_join_passes_the_credentials_to_the_module_and_says_none_of_them(
    state_module, kubeadm, opts, pillar, caplog
):
    opts["id"] = "cp2"
    pillar["kubeadm_join"] = credentials("cp2")
    with caplog.at_level(logging.DEBUG):
        ret = state_module.joined("cp2")
    assert ret["result"] is True, ret
    assert ret["changes"] == {"node": {"old": None, "new": "joined as a control-plane"}}
    assert kubeadm.calls == [("paas_kubeadm.join", TOKEN, CA_HASH, CERTIFICATE_KEY)]
    _no_secret(ret, [record.getMessage() for record in caplog.records])


def test_a_worker_is_never_given_the_certificate_key(state_module, kubeadm, opts, pillar):
    opts["id"] = "worker1"
    pillar["kubeadm_join"] = credentials("worker1")
    assert state_module.joined("worker1")["result"] is True
    assert kubeadm.calls == [("paas_kubeadm.join", TOKEN, CA_HASH, None)]


def test_a_join_without_credentials_says_which_are_missing_and_who_passes_them(
    state_module, kubeadm, opts, pillar
):
    opts["id"] = "cp2"
    pillar["kubeadm_join"] = credentials("cp2")
    del pillar["kubeadm_join"]["sealed"]["cp2"]["certificate_key"]
    ret = state_module.joined("cp2")
    assert ret["result"] is False
    assert "lacks certificate_key for it" in ret["comment"]
    assert "salt-run paas_kubernetes.join" in ret["comment"]
    assert kubeadm.calls == []
    _no_secret(ret)


def test_credentials_sealed_to_another_node_are_not_used(state_module, kubeadm, opts, pillar):
    opts["id"] = "cp2"
    pillar["kubeadm_join"] = credentials("cp3")
    assert "lacks token, certificate_key for it" in state_module.joined("cp2")["comment"]
    pillar["kubeadm_join"] = credentials("cp2", public=OTHER_PUBLIC)
    ret = state_module.joined("cp2")
    assert ret["result"] is False
    assert ret["comment"].startswith(
        "cp2: the join credentials do not open with this minion's key: it was not sealed to "
        "the key "
    )
    assert kubeadm.calls == []


def test_credentials_of_another_format_are_refused_by_name(state_module, kubeadm, opts, pillar):
    opts["id"] = "worker1"
    pillar["kubeadm_join"] = credentials("worker1")
    sealed = pillar["kubeadm_join"]["sealed"]["worker1"]
    # As the first control plane sealed them before the format had a version.
    sealed["token"] = sealed["token"].partition(":")[2]
    ret = state_module.joined("worker1")
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"] == (
        "worker1: the join credentials do not open with this minion's key: it is not a "
        "paas-sealed/1 sealed value"
    )
    sealed["token"] = "paas-sealed/2:" + sealed["token"]
    assert state_module.joined("worker1")["comment"].endswith("(it says paas-sealed/2)")
    assert kubeadm.calls == []


def test_a_failed_join_is_reported_with_kubeadms_error_and_no_change(
    state_module, kubeadm, opts, pillar
):
    opts["id"] = "worker1"
    pillar["kubeadm_join"] = credentials("worker1")
    kubeadm.failures["paas_kubeadm.join"] = (
        "worker1: kubeadm join failed (exit code 1) token id abcdef.<redacted> is invalid\n"
        "The node was cleaned with kubeadm reset -f; a re-run tries again."
    )
    ret = state_module.joined("worker1")
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].startswith("worker1: kubeadm join failed")
    _no_secret(ret)


def test_the_first_control_plane_does_not_join(state_module, kubeadm, pillar):
    pillar["kubeadm_join"] = credentials("cp1")
    ret = state_module.joined("cp1")
    assert ret["result"] is False and "it initializes the cluster" in ret["comment"]
    assert kubeadm.calls == []


# kubeadm.certificates_renewed


def _renewals(kubeadm: Kubeadm) -> list[tuple]:
    return [call for call in kubeadm.calls if call[0] == "paas_kubeadm.renew_certificates"]


def test_kubeadms_certificates_outside_the_window_are_not_renewed(state_module, kubeadm):
    kubeadm.initialized = True

    ret = state_module.certificates_renewed("cp1")

    assert ret["result"] is True and ret["changes"] == {}, ret
    assert ret["comment"] == "kubeadm's certificates are outside the renewal window."
    assert kubeadm.calls == []


@pytest.mark.parametrize("days_left", [30, 3, 0, -2])
def test_one_certificate_inside_the_window_or_expired_renews_them_all_once(
    state_module, kubeadm, days_left
):
    kubeadm.initialized = True
    _due(kubeadm.certificates, "apiserver", days_left)

    ret = state_module.certificates_renewed("cp1")

    assert ret["result"] is True, ret
    assert _renewals(kubeadm) == [("paas_kubeadm.renew_certificates",)]
    assert ret["changes"] == {
        name: {"old": f"{name}-01", "new": f"{name}-02"}
        for name in ("admin.conf", "apiserver", "front-proxy-client")
    }
    assert ret["comment"] == "kubeadm certs renew all renewed apiserver (and the rest)."


def test_an_expired_certificate_not_flagged_for_renewal_is_renewed(state_module, kubeadm):
    kubeadm.initialized = True
    (admin,) = [row for row in kubeadm.certificates if row["profile"] == "admin.conf"]
    admin.update(days_left=-1, renewal_due=False)

    ret = state_module.certificates_renewed("cp1")

    assert ret["result"] is True and _renewals(kubeadm), ret


def test_a_certificate_still_inside_the_window_after_the_renewal_fails_the_state(
    state_module, kubeadm
):
    kubeadm.initialized = True
    _due(kubeadm.certificates, "apiserver", 12)
    _due(kubeadm.certificates, "admin.conf", 12)
    # kubeadm renewed for fewer days than the window (its certificateValidityPeriod).
    _due(kubeadm.renewed, "apiserver", 20)

    ret = state_module.certificates_renewed("cp1")

    assert ret["result"] is False
    assert ret["comment"] == "kubeadm certs renew all left apiserver inside the renewal window"
    assert "apiserver" in ret["changes"]
    assert len(_renewals(kubeadm)) == 1


@pytest.mark.parametrize("ca", ["ca", "front-proxy-ca"])
def test_kubeadms_cas_inside_the_window_are_not_renewed(state_module, kubeadm, ca):
    kubeadm.initialized = True
    _due(kubeadm.certificates, ca, -3)

    ret = state_module.certificates_renewed("cp1")

    assert ret["result"] is True and ret["changes"] == {}, ret
    assert kubeadm.calls == []


def test_a_node_without_a_control_plane_of_kubeadms_has_nothing_to_renew(state_module, kubeadm):
    _due(kubeadm.certificates, "apiserver", 3)

    ret = state_module.certificates_renewed("cp1")

    assert ret["result"] is True and ret["changes"] == {}, ret
    assert ret["comment"] == "No control plane of kubeadm's runs here: nothing to renew."
    assert kubeadm.calls == []


def test_test_mode_names_what_would_be_renewed_and_renews_nothing(state_module, kubeadm, opts):
    kubeadm.initialized = True
    _due(kubeadm.certificates, "apiserver", 3)
    _due(kubeadm.certificates, "front-proxy-client", 3)
    opts["test"] = True

    ret = state_module.certificates_renewed("cp1")

    assert ret["result"] is None, ret
    assert ret["changes"] == {"renew": ["apiserver", "front-proxy-client"]}
    assert "apiserver, front-proxy-client inside the window" in ret["comment"]
    assert kubeadm.calls == []


def test_a_failed_renewal_is_reported_with_kubeadms_error(state_module, kubeadm):
    kubeadm.initialized = True
    _due(kubeadm.certificates, "apiserver", 3)
    kubeadm.failures["paas_kubeadm.renew_certificates"] = (
        "cp1: kubeadm certs renew all failed (exit code 1) error reading the CA"
    )

    ret = state_module.certificates_renewed("cp1")

    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"] == kubeadm.failures["paas_kubeadm.renew_certificates"]


def test_certificates_renewed_manages_only_the_node_it_runs_on(state_module, kubeadm):
    kubeadm.initialized = True
    _due(kubeadm.certificates, "apiserver", 3)

    ret = state_module.certificates_renewed("cp2")

    assert ret["result"] is False
    assert ret["comment"] == (
        "kubeadm.certificates_renewed manages the node it runs on (cp1), not cp2"
    )
    assert kubeadm.calls == []
