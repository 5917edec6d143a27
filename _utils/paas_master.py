"""
The master's side of the platform, shared by its runners: the pillar and the validated
topology the master's own minion (the one that runs orchestrations) sees, the one way
the runners publish to minions, the accepted Salt key of a minion, the runners' records
on the master's disk, and a clean stderr for ``salt-run``.

Salt's loader gives utils modules no ``__utils__``: a runner hands ``topology`` the
validator from its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile

import salt.client
import salt.pillar
import salt.utils.files
import salt.utils.minions
from salt.exceptions import SaltRunnerError

log = logging.getLogger(__name__)

# What salt-run itself leaves unclosed when it exits (saltstack/salt#70174, Salt 3008):
# its Runner, that Runner's MasterMinion and an event publisher. Logger and message.
_SALT_RUN_LEAKS = {
    "salt.runner": "unclosed Runner <salt.runner.Runner object",
    "salt.minion": "unclosed MasterMinion <salt.minion.MasterMinion object",
    "salt.utils.asynchronous": (
        "unclosed SyncWrapper for cls=<class 'salt.transport.tcp._TCPPubServerPublisher'>"
    ),
}
NOT_ACCEPTED = "its key is not accepted on this master"
NO_REPLY = "no reply"
# The runners' records: nobody but the master's user reads them (the reports name the
# cluster's members and revisions; the drills' records name snapshot files).
RECORDS_DIR_MODE = 0o700
RECORD_MODE = 0o600


def pillar(opts: dict) -> dict:
    """The compiled pillar of the master's own minion, with the runner's ``opts``."""
    compiler = salt.pillar.get_pillar(opts, {}, opts["id"], saltenv=opts.get("saltenv") or "base")
    try:
        return compiler.compile_pillar()
    finally:
        compiler.destroy()


def pillar_topology(opts: dict) -> tuple[dict | None, list[str]]:
    """The ``paas`` key of the master's pillar, not validated, and ``[]``; or None and
    why there is none (the pillar did not render: each of its errors; no ``paas`` key)."""
    compiled = pillar(opts)
    if compiled.get("_errors"):
        return None, [f"paas: the pillar did not render: {error}" for error in compiled["_errors"]]
    if "paas" not in compiled:
        return None, ["paas: the pillar has no paas key (is pillar/top.sls assigning it?)"]
    return compiled["paas"], []


def checked_topology(opts: dict, validate=None, handed=None) -> tuple[dict | None, list[str]]:
    """
    The ``paas`` topology of the master's pillar (or ``handed``, one an orchestration
    handed down from the pillar it rendered with) and what keeps it from being a valid
    one, a sentence each (``[]`` when it is valid): the validator not loaded
    (``validate`` is the caller's ``__utils__.get("paas_topology.validate")``: a loader's
    dunder resolves in the loader running the code that reads it, and a utils module has
    no ``__utils__``), the pillar not rendered, no ``paas`` key, or each of the
    validator's errors.
    """
    if validate is None:
        utils_dirs = ", ".join(opts.get("utils_dirs") or []) or "none"
        return None, [
            "paas: the paas_topology utils module is not loaded; the master's utils_dirs "
            f"({utils_dirs}) must hold the repository's _utils (etc/salt/master)"
        ]
    if handed is None:
        found, problems = pillar_topology(opts)
        if problems:
            return None, problems
    else:
        found = handed
    invalid = [f"invalid topology (salt-run paas.validate): {error}" for error in validate(found)]
    return found, invalid


def topology(opts: dict, validate=None, handed=None) -> dict:
    """The valid ``paas`` topology of the master's pillar, or ``handed`` when valid
    (``checked_topology``); raises ``SaltRunnerError`` with every problem when there is
    none."""
    found, problems = checked_topology(opts, validate, handed)
    if problems:
        raise SaltRunnerError("; ".join(problems))
    return found


def view(opts: dict, runner: str, view_function, validate=None, handed=None) -> dict:
    """``view_function`` (one of ``paas_topology``'s views, e.g. ``dr``) of the master's
    valid topology: ``handed`` when an orchestration hands down the one it rendered with
    (its master minion's pillar, compiled once for the whole run), else the master's
    pillar compiled now; validated either way. Raises ``SaltRunnerError`` naming
    ``runner`` and every problem when it is not valid."""
    try:
        return view_function(topology(opts, validate, handed))
    except SaltRunnerError as err:
        raise SaltRunnerError(f"{runner}: {err}") from err


def local_client(opts: dict):
    """
    The runners' client for publishing to minions, built from the master's configuration
    file, not from the runner's opts: run from the reactor (a runner, then an
    orchestration, then a runner), a runner's opts are the reactor's, and a publish made
    with them fails the master's publish authentication (decision 0005).
    """
    return salt.client.get_local_client(opts["conf_file"])


class _Minions:
    """One client for a run; every call asks only accepted minions, and a minion that
    gives no answer has a string saying why instead."""

    def __init__(self, opts: dict):
        self.opts = opts
        self.client = local_client(opts)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.client.destroy()

    def run(self, minions, function, arg=(), kwarg=None, *, timeout=60, gather_job_timeout=None):
        """Each minion's full return (``ret``, ``retcode``), or why there is none."""
        accepted = salt.utils.minions.CkMinions(self.opts).check_minions(list(minions), "list")
        replies = {minion: NOT_ACCEPTED for minion in minions}
        if accepted["minions"]:
            extra = {} if gather_job_timeout is None else {"gather_job_timeout": gather_job_timeout}
            found = self.client.cmd(
                accepted["minions"],
                function,
                arg=list(arg),
                kwarg=kwarg,
                tgt_type="list",
                timeout=timeout,
                full_return=True,
                **extra,
            )
            for minion in accepted["minions"]:
                # LocalClient says False, or nothing, for a minion that did not return.
                reply = found.get(minion)
                replies[minion] = reply if isinstance(reply, dict) else NO_REPLY
        return replies

    def ask(self, minions, function, arg=(), kwarg=None, *, timeout=60, gather_job_timeout=None):
        """Each minion's answer, or a string saying why there is none (its error)."""
        return {
            minion: answer(reply)
            for minion, reply in self.run(
                minions,
                function,
                arg,
                kwarg,
                timeout=timeout,
                gather_job_timeout=gather_job_timeout,
            ).items()
        }

    def call(self, minion, function, arg=(), kwarg=None, *, timeout=60):
        """One minion's answer, or a string saying why there is none (its error)."""
        return self.ask([minion], function, arg, kwarg, timeout=timeout)[minion]


def minions(opts: dict) -> _Minions:
    """A client for one run of a runner (``with minions(__opts__) as asked: ...``)."""
    return _Minions(opts)


def answer(reply):
    """A minion's answer out of its full return: the value, or a string for an error."""
    if not isinstance(reply, dict):
        return reply
    found = reply.get("ret")
    if reply.get("retcode", 0) and not isinstance(found, str):
        return f"exit code {reply['retcode']}: {found}"
    if isinstance(found, str) and found.startswith("Minion did not return."):
        return found.splitlines()[0]
    return found


def public_key(opts: dict, minion: str) -> str:
    """The Salt public key this master accepted for ``minion`` (PEM); raises
    ``SaltRunnerError`` when there is none."""
    path = os.path.join(opts["pki_dir"], "minions", minion)
    try:
        with salt.utils.files.fopen(path) as handle:
            return handle.read()
    except OSError as err:
        raise SaltRunnerError(
            f"{minion}: its Salt key is not accepted on this master ({err.strerror}: {path})"
        ) from err


# The runners' records: JSON files in a state directory of the master's, each written
# whole (a temporary file synced, then renamed over the old one), read-modify-written
# under one lock file.


@contextlib.contextmanager
def records(state_dir: str, name: str = "records", wait: bool = True):
    """Hold the lock ``state_dir/.<name>.lock`` (by default the records', held around
    every read-modify-write of them): the reactor's reactions run in threads of one
    process and an operator's salt-run is another. Yields False without waiting when
    ``wait`` is off and another holds it."""
    _directory(state_dir)
    descriptor = os.open(
        os.path.join(state_dir, f".{name}.lock"),
        os.O_WRONLY | os.O_CREAT | os.O_APPEND,
        RECORD_MODE,
    )
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def held(state_dir: str, name: str) -> bool:
    """Whether another process holds the lock ``state_dir/.<name>.lock`` now (as
    ``records`` takes it), without waiting."""
    try:
        descriptor = os.open(os.path.join(state_dir, f".{name}.lock"), os.O_RDONLY)
    except FileNotFoundError:
        return False
    with os.fdopen(descriptor, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def read(state_dir: str, name: str, default):
    """A record, or ``default`` when it is missing or unreadable (said in the log)."""
    path = os.path.join(state_dir, name)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as err:
        log.error("paas: %s is unreadable (%s); starting it anew", path, err)
        return default


def write(state_dir: str, name: str, data) -> None:
    """Write a record whole, mode 0600 in a 0700 directory."""
    _directory(state_dir)
    descriptor, partial = tempfile.mkstemp(prefix=f".{name}.", dir=state_dir)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(partial, RECORD_MODE)
        os.replace(partial, os.path.join(state_dir, name))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial)
        raise


def append(state_dir: str, name: str, entry: dict, keep: int) -> None:
    """Add ``entry`` to a list record, keeping its newest ``keep``."""
    write(state_dir, name, [*read(state_dir, name, []), entry][-keep:])


def seen_revision(state_dir: str) -> int | None:
    """The newest revision any etcd member reported to the master (the DR records'
    ``reports.json``, per member its ``last_revision``): what a restore from a snapshot
    counts its loss against."""
    reports = read(state_dir, "reports.json", {})
    return max(
        (
            entry["last_revision"]
            for entry in reports.get("members", {}).values()
            if isinstance(entry.get("last_revision"), int)
        ),
        default=None,
    )


def _directory(state_dir: str) -> None:
    os.makedirs(state_dir, mode=RECORDS_DIR_MODE, exist_ok=True)
    if os.stat(state_dir).st_mode & 0o777 != RECORDS_DIR_MODE:
        os.chmod(state_dir, RECORDS_DIR_MODE)


class _SaltRunLeakFilter(logging.Filter):
    def __init__(self, message: str):
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.message)


def quiet_salt_run_teardown(opts: dict, runner: str) -> None:
    """Drop the warnings salt-run logs about its own objects as it exits (every salt-run
    prints them, whatever it ran), so that an operator, a monitoring check or a cron job
    running one of the platform's runners gets a clean stderr. Only in salt-run running
    ``runner`` (its opts name the function), only those messages."""
    if not str(opts.get("fun", "")).startswith(f"{runner}."):
        return
    for name, message in _SALT_RUN_LEAKS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(found, _SaltRunLeakFilter) for found in logger.filters):
            logger.addFilter(_SaltRunLeakFilter(message))
