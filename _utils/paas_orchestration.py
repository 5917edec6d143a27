"""
What Salt's state runs return, read by the runner that ran them: of a
``state.orchestrate``, the steps that failed and why, how long each step took and what
each runner step returned; of a minion's ``state.apply``, why it failed. Pure functions
of the return; the ``paas_dr`` runner records them with a remediation, and the master's
joins (``paas_kubernetes``) say why a node did not join.
"""

from __future__ import annotations


def failed_steps(result) -> list[dict]:
    """The orchestration's failed steps with their comments; a render error is one."""
    if not isinstance(result, dict) or "data" not in result:
        return [{"step": "orchestration", "comment": f"unexpected return: {result!r}"}]
    failed = []
    for minion, steps in result["data"].items():
        if not isinstance(steps, dict):
            failed.extend({"step": minion, "comment": str(error)} for error in steps or [])
            continue
        for key, step in sorted(steps.items(), key=lambda item: item[1].get("__run_num__", 0)):
            if step.get("result") is False:
                failed.append({"step": step.get("__id__", key), "comment": _why(step)})
    if not failed and result.get("retcode", 0) != 0:
        failed.append({"step": "orchestration", "comment": f"retcode {result['retcode']}"})
    return failed


def _why(step: dict) -> str:
    """A failed step's comment; a runner step's says only that it failed, and the error
    (the runner's exception) is the last line of what it returned."""
    comment = str(step.get("comment", ""))
    returned = (step.get("changes") or {}).get("return")
    if isinstance(returned, str) and returned.strip():
        return f"{comment} {returned.strip().splitlines()[-1]}".strip()
    return comment


def step_seconds(result) -> dict:
    """How long each step of the orchestration took, by step id: where a remediation's
    time goes."""
    found = {}
    for steps in (result.get("data") or {}).values() if isinstance(result, dict) else []:
        if isinstance(steps, dict):
            for key, step in steps.items():
                if isinstance(step.get("duration"), int | float):
                    found[step.get("__id__", key)] = round(step["duration"] / 1000, 3)
    return found


def runner_returns(result) -> dict:
    """What each runner step of the orchestration returned (a restore's seed says
    where the data came from and what was lost), by step id."""
    found = {}
    for steps in (result.get("data") or {}).values() if isinstance(result, dict) else []:
        if not isinstance(steps, dict):
            continue
        for key, step in steps.items():
            returned = (step.get("changes") or {}).get("return")
            if key.startswith("salt_|-") and isinstance(returned, dict):
                found[step.get("__id__", key)] = returned
    return found


def state_failure(node: str, reply, sls: str) -> str | None:
    """Why ``node``'s ``state.apply <sls>`` failed, named: it did not return, it ran no
    states, its failed states' comments, or its exit code; None when it succeeded."""
    if not isinstance(reply, dict):
        return f"{node} did not return: {reply or 'no reply'}"
    states, retcode = reply.get("ret"), reply.get("retcode", 0)
    if not isinstance(states, dict) or not all(isinstance(s, dict) for s in states.values()):
        return f"{node}: state.apply {sls} did not run: {states}"
    failed = [
        comment if comment.startswith(node) else f"{node}: {comment}"
        for comment in (
            str(state.get("comment", ""))
            for state in states.values()
            if state.get("result") is False
        )
    ]
    if failed:
        return "\n".join(failed)
    if retcode:
        return f"{node}: state.apply {sls} exited {retcode}"
    return None
