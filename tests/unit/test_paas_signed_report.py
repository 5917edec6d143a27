"""
``_utils/paas_signed_report.py``: a report signed with a minion's RSA key verifies with
that minion's public key, gives back only what was signed, and every forgery, tampering
or omission is refused with a ``ValueError`` saying why; the signature survives the ways
Salt carries an event to the runner (msgpack on the bus, JSON in the reactor's SLS).
"""

from __future__ import annotations

import base64
import copy
import json

import pytest
import salt.crypt
import salt.payload
import salt.utils.json
import salt.utils.yaml
from cryptography.hazmat.primitives import hashes, serialization

REPORT = {
    "member": "etcd1",
    "state": "healthy",
    "leader": "91bc3c398fb3c146",
    "alarms": [],
    "data_dir": True,
    "service": {"active": "active", "sub": "running", "restarts": 0, "pid": 4242},
    "peers": {"etcd2": True, "etcd3": False},
    "error": "etcd3 a répondu — rien",
    "reason": "changed",
    "epoch": "0f3c9a6de5b84e8d9d7f6c1b2a3e4f50",
    "sequence": 7,
    "time": 1_765_000_000.123456,
}


@pytest.fixture(scope="module")
def signed_report(import_repo_module):
    return import_repo_module("_utils/paas_signed_report.py", "paas_signed_report_utils")


def _key_pair(directory) -> tuple:
    """A key made as Salt makes a minion's: its ``minion.pem``, and its public key as the
    master keeps it once accepted."""
    private_pem, public_pem = salt.crypt.gen_keys(2048)
    path = directory / "minion.pem"
    path.write_text(private_pem)
    key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    return key, str(path), public_pem


@pytest.fixture(scope="module")
def minion_key(tmp_path_factory):
    return _key_pair(tmp_path_factory.mktemp("minion-pki"))


@pytest.fixture(scope="module")
def other_key(tmp_path_factory):
    return _key_pair(tmp_path_factory.mktemp("other-pki"))


def _sign(signed_report, key_pair, report=REPORT) -> dict:
    return signed_report.sign(key_pair[1], copy.deepcopy(report))


def _sign_only(signed_report, key_pair, report: dict, keys: list[str]) -> dict:
    """``report`` with a valid signature over ``keys`` alone, as a forger who controls
    which keys are signed would make it."""
    signature = key_pair[0].sign(
        signed_report.payload(report, keys), signed_report._PADDING, hashes.SHA256()
    )
    return {**report, "signature": base64.b64encode(signature).decode("ascii")}


def test_a_signed_report_verifies_and_gives_back_what_was_signed(signed_report, minion_key):
    data = _sign(signed_report, minion_key)
    assert data["signed_keys"] == sorted([*REPORT, "signed_keys"])
    assert signed_report.verify(minion_key[2], data) == REPORT


def test_keys_salt_adds_on_the_way_neither_break_the_signature_nor_come_back(
    signed_report, minion_key
):
    data = {
        **_sign(signed_report, minion_key),
        "_stamp": "2026-12-06T22:04:07.123456",
        "id": "etcd1",
    }
    assert signed_report.verify(minion_key[2], data) == REPORT


def test_a_key_added_beside_the_signed_ones_is_not_given_back(signed_report, minion_key):
    data = {**_sign(signed_report, minion_key), "fence": ["etcd2"]}
    assert "fence" not in signed_report.verify(minion_key[2], data)


def test_signing_refuses_a_report_without_what_tells_it_apart(signed_report, minion_key):
    report = {key: value for key, value in REPORT.items() if key not in ("epoch", "sequence")}
    with pytest.raises(ValueError, match="a signed report needs epoch, sequence"):
        signed_report.sign(minion_key[1], report)


@pytest.mark.parametrize(
    ("change", "value"),
    [
        ("state", "down"),
        ("member", "etcd2"),
        ("sequence", 8),
        ("epoch", "0" * 32),
        ("time", REPORT["time"] + 1),
        ("peers", {"etcd2": False, "etcd3": False}),
    ],
)
def test_any_change_to_a_signed_value_is_refused(signed_report, minion_key, change, value):
    data = {**_sign(signed_report, minion_key), change: value}
    with pytest.raises(ValueError, match="the signature does not match the signer's accepted key"):
        signed_report.verify(minion_key[2], data)


def test_a_change_inside_a_signed_value_is_refused(signed_report, minion_key):
    data = _sign(signed_report, minion_key)
    data["service"]["active"] = "failed"
    with pytest.raises(ValueError, match="the signature does not match the signer's accepted key"):
        signed_report.verify(minion_key[2], data)


def test_a_report_signed_by_another_key_is_refused(signed_report, minion_key, other_key):
    data = _sign(signed_report, other_key)
    assert signed_report.verify(other_key[2], data) == REPORT
    with pytest.raises(ValueError, match="the signature does not match the signer's accepted key"):
        signed_report.verify(minion_key[2], data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(dict(REPORT), id="neither-signature-nor-signed-keys"),
        pytest.param({**REPORT, "signature": "AAAA"}, id="a-signature-without-signed-keys"),
        pytest.param({**REPORT, "signed_keys": sorted(REPORT)}, id="signed-keys-no-signature"),
        pytest.param(["etcd1", "healthy"], id="not-a-mapping"),
    ],
)
def test_an_unsigned_report_is_refused(signed_report, minion_key, data):
    with pytest.raises(ValueError, match="the report is not signed"):
        signed_report.verify(minion_key[2], data)


@pytest.mark.parametrize(
    "left_out", ["member", "state", "epoch", "sequence", "time", "signed_keys"]
)
def test_a_signature_that_leaves_out_a_required_key_is_refused(signed_report, minion_key, left_out):
    keys = sorted(key for key in [*REPORT, "signed_keys"] if key != left_out)
    data = _sign_only(signed_report, minion_key, {**REPORT, "signed_keys": keys}, keys)
    with pytest.raises(ValueError, match=f"the signature does not cover {left_out}$"):
        signed_report.verify(minion_key[2], data)


def test_a_signed_key_missing_from_the_report_is_refused(signed_report, minion_key):
    data = _sign(signed_report, minion_key)
    del data["reason"]
    with pytest.raises(ValueError, match="signed keys missing from the report: reason"):
        signed_report.verify(minion_key[2], data)


@pytest.mark.parametrize("signed_keys", ["member,state", ["member", 7]])
def test_signed_keys_that_are_not_a_list_of_keys_are_refused(
    signed_report, minion_key, signed_keys
):
    data = {**_sign(signed_report, minion_key), "signed_keys": signed_keys}
    with pytest.raises(ValueError, match="signed_keys is not a list of keys"):
        signed_report.verify(minion_key[2], data)


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda signature: "not base64!", id="garbage"),
        pytest.param(lambda signature: 12345, id="a-number"),
        # Characters outside base64's alphabet, which a lenient decoder would skip.
        pytest.param(lambda signature: f"{signature[:8]}!*{signature[8:]}", id="stray-characters"),
        pytest.param(lambda signature: f"{signature}==", id="extra-padding"),
    ],
)
def test_a_signature_that_is_not_base64_is_refused(signed_report, minion_key, spoil):
    data = _sign(signed_report, minion_key)
    data["signature"] = spoil(data["signature"])
    with pytest.raises(ValueError, match="the signature cannot be checked"):
        signed_report.verify(minion_key[2], data)


def _event_bus(data: dict) -> dict:
    # What the master's event bus does to a minion's event data.
    return salt.payload.loads(salt.payload.dumps(data))


def _reactor_json(data: dict) -> dict:
    # reactor/etcd_health.sls writes "event: {{ data | json }}", which the SLS's YAML
    # renderer reads back.
    rendered = f"event: {salt.utils.json.dumps(data, sort_keys=True)}"
    return salt.utils.yaml.safe_load(rendered)["event"]


@pytest.mark.parametrize(
    "carry",
    [
        pytest.param(_event_bus, id="msgpack"),
        pytest.param(lambda data: json.loads(json.dumps(data)), id="json"),
        pytest.param(_reactor_json, id="reactor-sls"),
        pytest.param(lambda data: _reactor_json(_event_bus(data)), id="bus-then-reactor"),
    ],
)
def test_the_signature_survives_the_way_salt_carries_the_event(signed_report, minion_key, carry):
    data = {**_sign(signed_report, minion_key), "_stamp": "2026-12-06T22:04:07", "id": "etcd1"}
    carried = carry(data)
    assert carried is not data
    assert signed_report.verify(minion_key[2], carried) == REPORT
