"""
What the platform's states return, written once: Salt's state return (``name``,
``result``, ``changes``, ``comment``), each change recorded as the step that makes it
commits, a failure that keeps the changes made before it (they happened), and test
mode's prediction (``result: None``) under the same change keys a run records.

Plain Python for the state modules, through ``__utils__["paas_state.<function>"]``
(synced with ``saltutil.sync_utils`` or ``sync_all``).
"""

from __future__ import annotations


def ret(name: str) -> dict:
    """A state's return before it has done anything: nothing changed, no failure."""
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def elsewhere(state_ret: dict, state: str, minion: str) -> dict | None:
    """For a state that manages only the node it runs on (``minion``): its failure when
    it is named for another node, else None."""
    if state_ret["name"] == minion:
        return None
    return failed(
        state_ret, f"{state} manages the node it runs on ({minion}), not {state_ret['name']}"
    )


def record(state_ret: dict, key: str, old, new) -> None:
    """``key`` changed from ``old`` to ``new`` (or would, in test mode)."""
    state_ret["changes"][key] = {"old": old, "new": new}


def failed(state_ret: dict, comment: str) -> dict:
    """The state failed with ``comment``; the changes recorded so far stay."""
    return {**state_ret, "result": False, "comment": comment}


def predicted(state_ret: dict, comment: str) -> dict:
    """Test mode's answer: the changes recorded would be made, as ``comment`` says."""
    return {**state_ret, "result": None, "comment": comment}
