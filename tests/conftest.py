"""Fixtures every tier shares: where the repository is, its modules, its lab topology."""

from __future__ import annotations

import copy
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
import salt._logging
import salt.crypt
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _import_by_path(relative_path: str, module_name: str) -> ModuleType:
    # The custom modules are not a package: Salt's loader finds them by path, so do we.
    # Each gets a name of its own, since _modules/, _states/ and _utils/ all hold a
    # paas_topology.py.
    spec = importlib.util.spec_from_file_location(module_name, REPO_ROOT / relative_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The root of this checkout."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def import_repo_module() -> Callable[[str, str], ModuleType]:
    """Import a file of the repository (``_utils/paas_topology.py``) under a given name."""
    return _import_by_path


@pytest.fixture(scope="session")
def topology_utils() -> ModuleType:
    """``_utils/paas_topology.py``: the schema, defaults and validator, plain Python."""
    return _import_by_path("_utils/paas_topology.py", "paas_topology_utils")


@pytest.fixture(scope="session")
def transfer_utils() -> ModuleType:
    """``_utils/paas_transfer.py``: sealing to a minion's key and the sealed transfer."""
    return _import_by_path("_utils/paas_transfer.py", "paas_transfer_utils")


@pytest.fixture(scope="session")
def state_utils() -> dict:
    """``_utils/paas_state.py`` (the states' returns) as the loader hands it to a state."""
    return utils_of(_import_by_path("_utils/paas_state.py", "paas_state_utils"), "paas_state")


@pytest.fixture(scope="session")
def master_utils_module() -> ModuleType:
    """``_utils/paas_master.py``, plain Python."""
    return _import_by_path("_utils/paas_master.py", "paas_master_utils")


def utils_of(module: ModuleType, name: str) -> dict:
    """A utils module's public functions as Salt's loader puts them in ``__utils__``."""
    return {
        f"{name}.{function_name}": function
        for function_name, function in vars(module).items()
        if callable(function)
        and not function_name.startswith("_")
        and getattr(function, "__module__", None) == module.__name__
    }


def minion_keys(directory: Path, minions) -> dict:
    """Throwaway Salt keys for ``minions``, made as Salt makes a minion's: each private
    key in ``<directory>/<id>.pem``; ``{id: {"private": its path, "public": the PEM the
    master keeps once it accepted it}}``."""
    keys = {}
    for minion in minions:
        private_pem, public_pem = salt.crypt.gen_keys(2048)
        path = directory / f"{minion}.pem"
        path.write_text(private_pem)
        keys[minion] = {"private": str(path), "public": public_pem}
    return keys


@pytest.fixture(scope="session")
def master_utils(master_utils_module) -> dict:
    """``_utils/paas_master.py`` as the master's runners see it in ``__utils__``."""
    return utils_of(master_utils_module, "paas_master")


@pytest.fixture
def master_pillar(monkeypatch, master_utils_module) -> Callable[[dict], None]:
    """Set the pillar the master's helpers compile (``paas_master.pillar``) for one test:
    a dict, or a function of the runner's opts."""

    def set_pillar(compiled) -> None:
        monkeypatch.setattr(
            master_utils_module,
            "pillar",
            compiled if callable(compiled) else (lambda _opts: compiled),
        )

    return set_pillar


@pytest.fixture(scope="session")
def runner_utils(topology_utils, master_utils) -> dict:
    """What the DR runners use of ``__utils__``: the topology's validator and DR view, and
    the master's helpers."""
    return {
        "paas_topology.validate": topology_utils.validate,
        "paas_topology.dr": topology_utils.dr,
        **master_utils,
    }


@pytest.fixture(scope="session")
def shipped_lab_topology() -> dict:
    """The lab's topology (``paas`` in ``lab/pillar/paas.sls``) as shipped, shared by the
    whole session: read it, never change it."""
    return yaml.safe_load((REPO_ROOT / "lab/pillar/paas.sls").read_text())["paas"]


@pytest.fixture
def lab_topology(shipped_lab_topology: dict) -> dict:
    """The lab's topology (``paas`` in ``lab/pillar/paas.sls``), a fresh copy for each test."""
    return copy.deepcopy(shipped_lab_topology)


@pytest.fixture(scope="session", autouse=True)
def salt_logs_to_pytest():
    """
    Log records, the daemons' among them, go to pytest's capture only.

    Importing salt into this process gives the root logger a handler of Salt's that keeps
    every record until logging is set up, which pytest never does, and writes them to
    the stderr it first saw when the process exits: by then pytest has closed that
    stream, and each record ends as a "--- Logging error ---" traceback. salt-factories
    forwards the daemons' records to this process, so there were hundreds.
    """
    salt._logging.shutdown_temp_handler()
    # As Salt's handler did, keep the root logger from falling back to printing on stderr
    # when no capture is active (records that arrive while the daemons stop).
    null = logging.NullHandler()
    logging.root.addHandler(null)
    yield
    logging.root.removeHandler(null)
