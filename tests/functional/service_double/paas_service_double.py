"""
A test double of Salt's ``service`` execution module, for the functional tests' minions
made with ``tests.functional.etcd_hosts.minion(..., unit_double=True)``: their ``providers``
option maps ``service`` to this module, so ``service.start``, ``stop``, ``restart`` and
``status`` act on the ``etcd_hosts.Unit`` the test made for that unit of that minion,
never on this host's systemd. Any other unit is refused.

:depends: the functional tests' ``etcd_hosts`` module (importable from the checkout)
"""

from __future__ import annotations

from salt.exceptions import CommandExecutionError

from tests.functional import etcd_hosts


def _unit(name: str):
    unit = etcd_hosts.UNITS.get((__opts__["id"], name))
    if unit is None:
        raise CommandExecutionError(
            f"{name}: {__opts__['id']} has no such unit (the service double knows only "
            f"the test's units: {sorted(etcd_hosts.UNITS)})"
        )
    return unit


def start(name: str, **kwargs) -> bool:
    return _unit(name).start()


def stop(name: str, **kwargs) -> bool:
    return _unit(name).stop()


def restart(name: str, **kwargs) -> bool:
    return _unit(name).restart()


def status(name: str, sig: str | None = None, **kwargs) -> bool:
    return _unit(name).running()
