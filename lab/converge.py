"""
``orch.cluster`` for a person: a line as each step of the orchestration starts (which
layer, on how many nodes), then a line per step (its id, result, the nodes it changed,
its duration) with what failed and where, and a summary; Salt's whole output goes to a
log file that the summary names.

The steps are followed on the master's event bus: Salt's orchestration announces each
``salt.state`` or ``salt.function`` step as it starts (``salt/run/<jid>/args``, ``jid``
being the orchestration runner's, from its ``salt/run/<jid>/new``). Salt sends no event
when a step ends (a master runs orchestrations with state events off), so the results
come from the orchestration's return.
"""

from __future__ import annotations

import json
import subprocess
import time

import salt.config
import salt.output
import salt.utils.event

from lab import master
from lab.config import MASTER_CONFIG_DIR, REPO, STATE_DIR, LabError
from lab.shell import step

LOG = STATE_DIR / "converge.log"
RESULT = STATE_DIR / "converge.json"
# At most this many failed states are shown for a failed step; the log has them all.
SHOWN_FAILURES = 10
REQUISITE_FAILED = "One or more requisite failed"
RUN_FAILED = "Run failed on minions: "


def run(sls: str = "orch.cluster", timeout: float = 1800) -> None:
    """Run the orchestration ``sls``, showing its progress; raise LabError naming what
    failed, or that the master stopped."""
    opts = salt.config.master_config(str(MASTER_CONFIG_DIR / "master"))
    argv = [
        str(master.BIN / "salt-run"), "--out=json", f"--out-file={RESULT}",
        "state.orchestrate", sls,
    ]  # fmt: skip
    step(f"converge: salt-run state.orchestrate {sls} (Salt's output: {LOG})")
    started = time.monotonic()
    RESULT.unlink(missing_ok=True)
    with (
        salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True) as events,
        LOG.open("w") as log,
    ):
        log.write(f"# {' '.join(argv)}\n")
        log.flush()
        # From the repository root, where the Saltfile points salt-run at etc/salt.
        process = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        jid = None
        try:
            while process.poll() is None:
                if master.MASTER.main() is None:
                    raise master.gone()
                if time.monotonic() - started > timeout:
                    raise LabError(f"{sls} did not finish within {timeout:.0f}s; see {LOG}")
                event = events.get_event(wait=1, tag="salt/run/", full=True) or {}
                tag, data = event.get("tag", ""), event.get("data", {})
                if jid is None and data.get("fun") == "runner.state.orchestrate":
                    jid = data.get("jid")
                elif jid is not None and tag == f"salt/run/{jid}/args":
                    step(f"converge: {_started(data)}")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if master.MASTER.main() is None:
            raise master.gone()
        result = _result(process.returncode)
        text = salt.output.string_format(result.get("data"), "highstate", {**opts, "color": False})
        log.write(text)
    _report(sls, result, time.monotonic() - started)


def _started(announced: dict) -> str:
    """What a step that starts does: ``<id>: state <sls> on <n> nodes``."""
    args = announced.get("args") or {}
    what = " ".join(str(arg) for arg in args.get("arg") or [])
    target = announced.get("tgt") or ""
    if args.get("tgt_type") == "list":
        nodes = target if isinstance(target, list) else target.split(",")
        target = f"{len(nodes)} nodes" if len(nodes) > 1 else ", ".join(nodes)
    batch = f", {args['batch']} at a time" if args.get("batch") else ""
    return f"{announced.get('name')}: {announced.get('type')} {what} on {target}{batch}"


def _result(returncode: int) -> dict:
    try:
        return json.loads(RESULT.read_text())
    except (OSError, ValueError) as err:
        raise LabError(
            f"salt-run exited {returncode} and returned no result ({err}); see {LOG}"
        ) from err


def _report(sls: str, result: dict, seconds: float) -> None:
    """A line per step, what failed and where, the summary; LabError when the run failed."""
    (steps,) = (result.get("data") or {"?": ["salt-run returned no data"]}).values()
    if not isinstance(steps, dict):
        # The orchestration did not render: Salt returns its errors instead of steps.
        errors = "\n  ".join(str(error) for error in steps)
        raise LabError(f"{sls} did not run:\n  {errors}\nSalt's output: {LOG}")
    ordered = sorted(steps.values(), key=lambda ret: ret.get("__run_num__", 0))
    rows = [("STEP", "RESULT", "CHANGED", "DURATION")]
    failures = []
    for ret in ordered:
        state = {True: "ok", False: "FAILED", None: "not run"}.get(ret.get("result"), "?")
        rows.append(
            (
                ret.get("__id__", "?"),
                state,
                _changed(ret.get("changes") or {}),
                f"{(ret.get('duration') or 0) / 1000:.1f}s",
            )
        )
        if ret.get("result") is False:
            failures.append((ret.get("__id__", "?"), _failures(ret)))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        print("  " + "  ".join(cells).rstrip())
    failed = [step_id for step_id, _ in failures]
    summary = (
        f"{sls}: {len(ordered)} steps, {len(ordered) - len(failed)} ok, {len(failed)} failed, "
        f"{sum(1 for row in rows[1:] if row[2] != '-')} changed something, {seconds:.1f}s; "
        f"Salt's output: {LOG}"
    )
    if failures or result.get("retcode"):
        lines = [f"  {step_id}: {line}" for step_id, found in failures for line in found]
        raise LabError("\n".join([summary, f"{sls} did not converge:", *lines]))
    step(f"converge: {summary}")


def _changed(changes: dict) -> str:
    """The nodes on which a step changed something (a state run's changes per minion),
    or whether a step of another kind changed anything."""
    returns = changes.get("ret")
    if not isinstance(returns, dict):
        return "yes" if changes else "-"
    changed = [
        minion
        for minion, states in returns.items()
        if not isinstance(states, dict)
        or any(isinstance(state, dict) and state.get("changes") for state in states.values())
    ]
    if not changed:
        return "-"
    return ", ".join(changed) if len(changed) <= 3 else f"{len(changed)} nodes"


def _failures(ret: dict) -> list[str]:
    """What failed in a step: each failed state as ``minion: state id: comment`` (those
    that failed only because another did are left to the log), or the step's comment."""
    found, skipped = [], []
    returns = (ret.get("changes") or {}).get("ret")
    for minion, states in (returns if isinstance(returns, dict) else {}).items():
        if not isinstance(states, dict):
            found.append(f"{minion}: {states}")
            continue
        for key, state in states.items():
            if not isinstance(state, dict) or state.get("result") is not False:
                continue
            comment = _short(state.get("comment"))
            line = f"{minion}: {state.get('__id__') or key.split('_|-')[1]}: {comment}"
            (skipped if comment.startswith(REQUISITE_FAILED) else found).append(line)
    found = found or skipped
    # A minion Salt gave up on (a batch's job check unanswered) has no return at all.
    comment = _short(ret.get("comment"))
    if comment.startswith(RUN_FAILED):
        listed = comment.removeprefix(RUN_FAILED).split(" / ")[0].split(", ")
        found += [
            f"{minion}: no return (Salt counted it as not responding; see its minion log)"
            for minion in listed
            if minion and minion not in (returns if isinstance(returns, dict) else {})
        ]
    if len(found) > SHOWN_FAILURES:
        found = [*found[:SHOWN_FAILURES], f"... {len(found) - SHOWN_FAILURES} more in {LOG}"]
    return found or [_short(ret.get("comment"))]


def _short(comment) -> str:
    """A comment on one line: its first three non-empty lines."""
    text = "\n".join(comment) if isinstance(comment, list) else str(comment or "")
    return " / ".join([line.strip() for line in text.splitlines() if line.strip()][:3])
