"""
Wait, from the master, until Salt's Python on each minion runs with the platform's
libraries loaded (after the ``salt_python`` state, which restarts the minions whose
Python changed). The work is the ``paas_python`` utils module's, which the
orchestrations' ``paas_python.ready`` step calls too.

:depends: the ``paas_python`` and ``paas_master`` utils modules (``utils_dirs``);
    ``paas_python`` on the minions
"""

from __future__ import annotations

from salt.exceptions import CommandExecutionError, SaltRunnerError

__virtualname__ = "paas_python"


def __virtual__():
    if "paas_python.ready" not in __utils__:
        return (False, "paas_python: the paas_python utils module is not loaded")
    return __virtualname__


def ready(minions: list | str, timeout: int = 180) -> dict:
    """
    Return once every one of ``minions`` (a list, or ids separated by commas) runs with
    the libraries of requirements-minion.lock loaded; raise naming those that do not,
    with their last answer, after ``timeout`` seconds.

    CLI Example:

    .. code-block:: bash

        salt-run paas_python.ready minions=etcd1,etcd2
    """
    uses = {name: __utils__[name] for name in __utils__["paas_python.uses"]()}
    try:
        return {"ready": __utils__["paas_python.ready"](__opts__, uses, minions, timeout=timeout)}
    except CommandExecutionError as err:
        raise SaltRunnerError(f"paas_python.ready: {err}") from err
