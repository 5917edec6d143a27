"""
A real salt-master configured from the shipped ``etc/salt/master`` and one minion, both
on loopback, started once for the integration tests and stopped afterwards.

The minion's id is on purpose no node of the topology: even an orchestration that got
past its topology check would target gw1, etcd1 and the others, never this machine.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import yaml
from saltfactories.daemons.master import SaltMaster

from lab.master import relocate

MINION_ID = "itest-minion"


def _plain(value: Any) -> Any:
    # The loaded config holds Salt's immutable containers, which never equal a dict or list.
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(item) for item in value]
    return value


class ShippedConfigMaster(SaltMaster):
    """
    A salt-master whose configuration keys from etc/salt/master replace salt-factories'
    defaults instead of being merged into them.

    salt-factories merges lists of overrides into its own, which would add its empty
    state and pillar trees (and a ``prod`` environment) beside the shipped file_roots
    and pillar_roots, and its ``test.*`` peer rule beside ours. Its root_dir, ports,
    pki, sockets and logs are kept.
    """

    @classmethod
    def default_config(cls, root_dir, master_id, defaults=None, overrides=None, **kwargs):
        config = super().default_config(root_dir, master_id, defaults=defaults, **kwargs)
        config.update(copy.deepcopy(overrides or {}))
        return config


@pytest.fixture(scope="session")
def salt_factories_config(tmp_path_factory) -> dict:
    """Keep the daemons' root dirs under pytest's temporary directory, not in /tmp itself."""
    return {"root_dir": tmp_path_factory.mktemp("salt-factories")}


@pytest.fixture(scope="package")
def shipped_master_config(repo_root) -> dict:
    """etc/salt/master, its paths pointing at this checkout."""
    config = yaml.safe_load((repo_root / "etc/salt/master").read_text())
    return relocate(config, repo_root)


@pytest.fixture(scope="package")
def salt_master(salt_factories, shipped_master_config):
    factory = salt_factories.salt_master_daemon(
        "itest-master", overrides=shipped_master_config, factory_class=ShippedConfigMaster
    )
    for key, value in shipped_master_config.items():
        assert _plain(factory.config[key]) == value, f"the master's {key} is not the shipped one"
    with factory.started():
        yield factory


@pytest.fixture(scope="package")
def salt_minion(salt_master):
    factory = salt_master.salt_minion_daemon(MINION_ID)
    with factory.started():
        yield factory


@pytest.fixture(scope="package")
def salt_run_cli(salt_master):
    return salt_master.salt_run_cli(timeout=120)


@pytest.fixture(scope="package")
def salt_call_cli(salt_minion):
    return salt_minion.salt_call_cli(timeout=60)
