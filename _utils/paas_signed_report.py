"""
Reports signed with a minion's own Salt key, and checked with the key the master
accepted for that minion id.

Salt authenticates a minion's connection to the master, but it puts any event a minion
sends on the master's bus with the tag and data the minion wrote (``event.send`` and its
``events`` preload), and it passes on no proof of who sent it: a worker can send a
report that names an etcd node. A report signed with the etcd node's own RSA key
(``minion.pem``, which never leaves the node) can only come from that node.

The signature (RSA-PSS, SHA-256) covers the report's keys named in ``signed_keys``, as
canonical JSON (sorted keys, no spaces, ASCII), so that what Salt adds to the event's
data on its way (``_stamp``, ``id``) never breaks it and nothing it adds is trusted:
only the signed keys are read back. A signed report carries the signer's ``epoch`` (new
each time its beacon starts), a ``sequence`` counted in that epoch and the signer's
``time``: the master refuses a report it saw before by the first two, and keeps the
third only as information (its own receive time orders and ages reports).
"""

from __future__ import annotations

import base64
import json
import os

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

SIGNATURE = "signature"
SIGNED_KEYS = "signed_keys"
# What every signed report must carry: who it is about, what it says, and what tells it
# from every other report of that signer.
REQUIRED = ("member", "state", "epoch", "sequence", "time")
_PADDING = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
# Loaded private keys by path and modification time: a beacon signs every few seconds.
_KEYS: dict = {}


def payload(report: dict, keys) -> bytes:
    """The bytes a signature covers: ``report``'s ``keys`` as canonical JSON."""
    return json.dumps(
        {key: report[key] for key in keys},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    ).encode("ascii")


def sign(private_key_path: str, report: dict) -> dict:
    """``report`` with ``signed_keys`` (every key of it) and ``signature``, signed with
    the RSA private key in ``private_key_path`` (a minion's ``minion.pem``)."""
    missing = [key for key in REQUIRED if key not in report]
    if missing:
        raise ValueError(f"a signed report needs {', '.join(missing)}")
    keys = sorted({*report, SIGNED_KEYS} - {SIGNATURE})
    signed = {**report, SIGNED_KEYS: keys}
    signature = _private_key(private_key_path).sign(
        payload(signed, keys), _PADDING, hashes.SHA256()
    )
    return {**signed, SIGNATURE: base64.b64encode(signature).decode("ascii")}


def verify(public_key_pem: str, data: dict) -> dict:
    """
    The signed report in event ``data``, only its signed keys, when the signature was
    made with the private key of ``public_key_pem``; raises ``ValueError`` saying why
    not (unsigned, a required key not signed, a bad signature).
    """
    if not isinstance(data, dict) or SIGNATURE not in data or SIGNED_KEYS not in data:
        raise ValueError("the report is not signed")
    keys = data[SIGNED_KEYS]
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise ValueError(f"{SIGNED_KEYS} is not a list of keys")
    unsigned = [key for key in (*REQUIRED, SIGNED_KEYS) if key not in keys]
    if unsigned:
        raise ValueError(f"the signature does not cover {', '.join(unsigned)}")
    absent = [key for key in keys if key not in data]
    if absent:
        raise ValueError(f"signed keys missing from the report: {', '.join(absent)}")
    try:
        signature = base64.b64decode(str(data[SIGNATURE]), validate=True)
        public_key = serialization.load_pem_public_key(public_key_pem.encode("ascii"))
        public_key.verify(signature, payload(data, keys), _PADDING, hashes.SHA256())
    except InvalidSignature as err:
        raise ValueError("the signature does not match the signer's accepted key") from err
    except (TypeError, ValueError, UnicodeError) as err:
        raise ValueError(f"the signature cannot be checked: {err}") from err
    return {key: data[key] for key in keys if key != SIGNED_KEYS}


def _private_key(path: str):
    stamp = os.stat(path).st_mtime_ns
    cached = _KEYS.get(path)
    if cached is None or cached[0] != stamp:
        with open(path, "rb") as handle:
            cached = (stamp, serialization.load_pem_private_key(handle.read(), password=None))
        _KEYS[path] = cached
    return cached[1]
