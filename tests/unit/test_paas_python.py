"""
Salt's own Python on a minion (``_modules/paas_python.py``, ``_states/paas_python.py``):
the lock's pins read strictly, what differs found in a real Python's metadata (this
test's own, which requirements.lock installed), a requirement Salt's Python does not meet
named, and the state's whole decision: nothing to do changes nothing; a difference is
installed without dependencies from the topology's source, the .pth written and the
minion's restart handed to systemd; test mode predicts exactly that and does nothing; a
wheel missing from the wheelhouse fails naming node, package and source, with nothing
installed, written or restarted.

The lock itself is what tools/minion_lock.py makes from requirements.lock.
"""

from __future__ import annotations

import os
import sys
import time

import pytest
from salt.exceptions import CommandExecutionError, SaltClientError

from tests.conftest import REPO_ROOT as REPO

LOCK = str(REPO / "requirements-minion.lock")
PTH = str(REPO / "etc/python/paas-protobuf-python.pth")
WHEELHOUSE = "http://198.18.1.1:8081/wheels/"


@pytest.fixture(scope="module")
def module(import_repo_module):
    return import_repo_module("_modules/paas_python.py", "paas_python_module")


@pytest.fixture(scope="module")
def state_module(import_repo_module):
    return import_repo_module("_states/paas_python.py", "paas_python_state_module")


@pytest.fixture(scope="module")
def lock_tool(import_repo_module):
    return import_repo_module("tools/minion_lock.py", "minion_lock_tool")


def _lock(tmp_path, text: str) -> str:
    path = tmp_path / "minion.lock"
    path.write_text(text)
    return str(path)


class Minion:
    """What the state's calls would do on a node: pins as ``differing`` says, pip's
    answer, systemd-run's; every call that would change the node is recorded."""

    def __init__(self, module, tmp_path):
        self.module = module
        self.site = tmp_path / "site-packages"
        self.site.mkdir()
        self.cachedir = tmp_path / "cache"
        self.cachedir.mkdir()
        self.differing = {"tenacity": {"wanted": "9.2.1", "found": None}}
        self.pip_reply = {"retcode": 0, "stdout": "Successfully installed", "stderr": ""}
        self.unmet: list[str] = []
        self.calls: list[tuple] = []

    def salt(self) -> dict:
        def pip_install(**kwargs):
            self.calls.append(("pip.install", kwargs))
            if not self.pip_reply["retcode"]:
                self.differing = {}
            return self.pip_reply

        def run_all(argv, **kwargs):
            self.calls.append(("cmd.run_all", argv))
            return {"retcode": 0, "stdout": "", "stderr": ""}

        return {
            "paas_python.pins": lambda lock: {"tenacity": "9.2.1"},
            "paas_python.differing": lambda lock: dict(self.differing),
            "paas_python.unmet": lambda lock: list(self.unmet),
            "paas_python.site_packages": lambda: str(self.site),
            "paas_python.python": lambda: "/opt/salt/bin/python3",
            "paas_python.restart_marker": lambda: str(self.cachedir / "paas_python.restart"),
            "cp.get_file_str": lambda url: open(PTH).read(),
            "pip.install": pip_install,
            "cmd.run_all": run_all,
        }

    @property
    def pth(self):
        return self.site / "paas-protobuf-python.pth"


def _refused_pillar():
    raise SaltClientError("Attempt to authenticate with the salt master failed")


class Loader(dict):
    """A loader without the platform's modules, as Salt's answers for a missing one, on a
    minion the master does not let sign in yet."""

    def __init__(self, functions: dict | None = None):
        super().__init__({"pillar.items": _refused_pillar, **(functions or {})})

    def missing_fun_string(self, function: str) -> str:
        return f"'{function.split('.', maxsplit=1)[0]}' __virtual__ returned False"


@pytest.fixture
def minion(module, tmp_path) -> Minion:
    return Minion(module, tmp_path)


@pytest.fixture
def opts() -> dict:
    return {"test": False}


@pytest.fixture
def configure_loader_modules(module, state_module, minion, opts, tmp_path):
    return {
        state_module: {
            "__salt__": minion.salt(),
            "__opts__": opts,
            "__grains__": {"id": "etcd2"},
        },
        module: {
            "__salt__": Loader(),
            "__opts__": {"cachedir": str(tmp_path)},
            "__grains__": {"id": "etcd2"},
        },
    }


def _installed(state_module, find_links: str = WHEELHOUSE) -> dict:
    return state_module.installed(
        "paas-salt-python",
        lock="salt://salt_python/requirements-minion.lock",
        pth="salt://salt_python/paas-protobuf-python.pth",
        index_url="https://pypi.org/simple/",
        find_links=find_links,
    )


# The lock


def test_the_lock_is_what_the_tool_makes_from_requirements_lock(lock_tool):
    assert (REPO / "requirements-minion.lock").read_text() == lock_tool.lock()


def test_the_lock_holds_the_modules_libraries_and_nothing_salt_brings(module, lock_tool):
    pinned = module.pins(LOCK)
    assert {"etcd3", "kubernetes", "grpcio", "tenacity"} <= set(pinned)
    assert not set(pinned) & set(lock_tool.closure(["salt"]))


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("etcd3>=0.12\n", "is not pinned"),
        ("etcd3==0.12.0\nkubernetes\n", "line 2"),
        ("etcd3 == = 1\n", "line 1"),
    ],
)
def test_a_lock_line_that_pins_nothing_is_refused_naming_it(module, tmp_path, text, named):
    with pytest.raises(CommandExecutionError, match=named):
        module.pins(_lock(tmp_path, text))


# What differs, what is unmet: this test's own Python


def test_nothing_differs_where_requirements_lock_installed_the_lock(module):
    assert module.differing(LOCK) == {}
    assert module.unmet(LOCK) == []


def test_a_wrong_version_and_a_missing_library_differ(module, tmp_path):
    lock = _lock(tmp_path, "six==0.1.0\nno-such-library==1.0\n# a comment\n")
    assert module.differing(lock) == {
        "six": {"wanted": "0.1.0", "found": "1.17.0"},
        "no-such-library": {"wanted": "1.0", "found": None},
    }


def test_a_requirement_salts_python_does_not_meet_is_named(module, monkeypatch):
    real = module._version
    monkeypatch.setattr(
        module, "_version", lambda name: "1.26.0" if name == "urllib3" else real(name)
    )
    assert any(
        message.startswith("kubernetes 37.0.2 needs urllib3")
        and message.endswith("and 1.26.0 is installed")
        for message in module.unmet(LOCK)
    ), module.unmet(LOCK)


def test_a_restarted_minion_is_ready_once_it_fetched_its_pillar(module, tmp_path, monkeypatch):
    marker = tmp_path / module.RESTART_MARKER
    marker.write_text("salt-minion.service\n")
    past = time.time() - 3600
    os.utime(marker, (past, past))
    loaded = module.LOADED_BY.values()
    monkeypatch.setattr(module, "__salt__", Loader(dict.fromkeys(loaded)), raising=False)
    with pytest.raises(CommandExecutionError, match="cannot fetch its pillar from the master"):
        module.ready(LOCK)
    assert marker.exists()
    fetched = []
    monkeypatch.setattr(
        module,
        "__salt__",
        Loader({**dict.fromkeys(loaded), "pillar.items": lambda: fetched.append(1)}),
        raising=False,
    )
    assert module.ready(LOCK)["pins"] == len(module.pins(LOCK))
    assert fetched == [1] and not marker.exists()
    # Later runs ask nothing of the master.
    assert module.ready(LOCK)["pins"] == len(module.pins(LOCK)) and fetched == [1]


def test_ready_names_what_the_running_minion_lacks(module, tmp_path):
    marker = tmp_path / module.RESTART_MARKER
    marker.write_text("salt-minion.service\n")
    future = time.time() + 60
    os.utime(marker, (future, future))
    with pytest.raises(CommandExecutionError) as raised:
        module.ready(LOCK)
    said = str(raised.value)
    assert said.startswith(f"etcd2: Salt's Python ({sys.executable}) is not ready: ")
    assert "has not restarted since its libraries changed" in said
    assert "etcd_cluster.settings (needs etcd3) is not loaded: 'etcd_cluster'" in said
    assert "paas_control_plane.status (needs kubernetes) is not loaded" in said
    # Not restarted yet: the master is not asked for its pillar.
    assert "pillar" not in said


# The state


def test_a_python_with_every_pin_and_the_pth_changes_nothing(state_module, minion):
    minion.differing = {}
    minion.pth.write_text(open(PTH).read())  # noqa: SIM115
    ret = _installed(state_module)
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert minion.calls == []


def test_a_difference_is_installed_without_dependencies_and_the_minion_restarted(
    state_module, minion
):
    ret = _installed(state_module)
    assert ret["result"] is True, ret
    assert ret["changes"] == {
        "installed": {"tenacity": {"old": None, "new": "9.2.1"}},
        "pth": str(minion.pth),
        "restart": "salt-minion.service in 2 s",
    }
    (pip, kwargs), (run, argv) = minion.calls
    assert pip == "pip.install" and run == "cmd.run_all"
    assert kwargs["pkgs"] == ["tenacity==9.2.1"]
    assert kwargs["no_deps"] is True
    assert kwargs["extra_args"] == ["--no-compile"]
    assert kwargs["find_links"] == WHEELHOUSE and kwargs["no_index"] is True
    assert kwargs["index_url"] is None
    assert kwargs["trusted_host"] == "198.18.1.1"
    assert argv[0] == "systemd-run" and "--on-active=2" in argv
    assert argv[-3:] == ["systemctl", "restart", "salt-minion.service"]
    assert minion.pth.read_text() == open(PTH).read()  # noqa: SIM115
    assert (minion.cachedir / "paas_python.restart").exists()


def test_a_minion_that_started_without_the_pth_restarts_though_nothing_changed(
    state_module, minion, monkeypatch
):
    minion.differing = {}
    minion.pth.write_text(open(PTH).read())  # noqa: SIM115
    monkeypatch.delenv("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", raising=False)
    ret = _installed(state_module)
    assert ret["changes"] == {"restart": "salt-minion.service in 2 s"}, ret
    assert [call[0] for call in minion.calls] == ["cmd.run_all"]


def test_without_a_wheelhouse_the_index_is_read(state_module, minion):
    _installed(state_module, find_links="")
    kwargs = minion.calls[0][1]
    assert kwargs["index_url"] == "https://pypi.org/simple/"
    assert kwargs["find_links"] is None and kwargs["no_index"] is False
    assert kwargs["trusted_host"] is None


def test_test_mode_predicts_the_run_and_does_nothing(state_module, minion, opts):
    opts["test"] = True
    predicted = _installed(state_module)
    assert predicted["result"] is None
    assert minion.calls == [] and not minion.pth.exists()
    opts["test"] = False
    assert _installed(state_module)["changes"] == predicted["changes"]


def test_a_wheel_missing_from_the_wheelhouse_fails_naming_node_package_and_source(
    state_module, minion
):
    minion.pip_reply = {
        "retcode": 1,
        "stdout": "Looking in links: http://198.18.1.1:8081/wheels/",
        "stderr": (
            "ERROR: Could not find a version that satisfies the requirement tenacity==9.2.1 "
            "(from versions: none)\nERROR: No matching distribution found for tenacity==9.2.1"
        ),
    }
    ret = _installed(state_module)
    assert ret["result"] is False and ret["changes"] == {}
    assert ret["comment"].startswith(
        f"etcd2: tenacity==9.2.1 is not in the wheelhouse {WHEELHOUSE}"
    ), ret["comment"]
    assert [call[0] for call in minion.calls] == ["pip.install"]
    assert not minion.pth.exists()
    assert not (minion.cachedir / "paas_python.restart").exists()


def test_a_salt_too_old_for_the_libraries_fails_and_restarts_nothing(state_module, minion):
    minion.unmet = ["kubernetes 37.0.2 needs urllib3>=2.8.0, and 1.26.0 is installed"]
    ret = _installed(state_module)
    assert ret["result"] is False
    assert "kubernetes 37.0.2 needs urllib3>=2.8.0" in ret["comment"]
    assert "cmd.run_all" not in [call[0] for call in minion.calls]


# The master's wait (_utils/paas_python.py), as the runner and the orchestration's step
# run it


class Asked:
    """The master's client to the minions: each minion's replies, in turn."""

    def __init__(self, replies: dict[str, list]):
        self.replies = replies
        self.asks: list[tuple] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def run(self, minions, function, arg=(), kwarg=None, *, timeout=60, gather_job_timeout=None):
        self.asks.append((tuple(minions), function, tuple(arg), timeout, gather_job_timeout))
        return {
            minion: self.replies[minion].pop(0) if len(self.replies[minion]) > 1 else
            self.replies[minion][0]
            for minion in minions
        }  # fmt: skip


READY = {"ret": {"python": "/opt/salt/bin/python3", "pins": 10}, "retcode": 0}
NOT_RESTARTED = {
    "ret": "etcd1: Salt's Python is not ready: this minion has not restarted",
    "retcode": 1,
}


@pytest.fixture(scope="module")
def wait(import_repo_module):
    module = import_repo_module("_utils/paas_python.py", "paas_python_utils")
    module.INTERVAL = 0
    return module


def _uses(asked: Asked, master_utils_module) -> dict:
    return {
        "paas_master.minions": lambda opts: asked,
        "paas_master.answer": master_utils_module.answer,
    }


def test_the_master_asks_again_until_every_minion_is_ready(wait, master_utils_module):
    asked = Asked({"etcd1": [NOT_RESTARTED, "no reply", READY], "gw1": [READY]})
    assert set(wait.uses()) == set(_uses(asked, master_utils_module))
    assert wait.ready({}, _uses(asked, master_utils_module), "etcd1,gw1") == ["etcd1", "gw1"]
    assert [ask[0] for ask in asked.asks] == [("etcd1", "gw1"), ("etcd1",), ("etcd1",)]
    # Short timeouts: a job cut off by a restart must not hold the master for long.
    assert {ask[3:] for ask in asked.asks} == {(wait.ASK_TIMEOUT, wait.JOB_CHECK_TIMEOUT)}


def test_a_minion_never_ready_is_named_with_its_last_answer(wait, master_utils_module):
    asked = Asked({"etcd1": [NOT_RESTARTED], "gw1": [READY]})
    with pytest.raises(CommandExecutionError) as raised:
        wait.ready({}, _uses(asked, master_utils_module), ["etcd1", "gw1"], timeout=0)
    assert str(raised.value) == (
        "Salt's Python is not ready after 0 s on etcd1: " + NOT_RESTARTED["ret"]
    )


def test_the_orchestration_step_reports_the_wait_and_changes_nothing(
    state_module, wait, master_utils_module, monkeypatch
):
    for replies, result in (({"gw1": [READY]}, True), ({"gw1": [NOT_RESTARTED]}, False)):
        asked = Asked(replies)
        monkeypatch.setattr(
            state_module,
            "__utils__",
            {
                "paas_python.uses": wait.uses,
                "paas_python.ready": wait.ready,
                **_uses(asked, master_utils_module),
            },
            raising=False,
        )
        monkeypatch.setattr(state_module, "__opts__", {"test": False}, raising=False)
        ret = state_module.ready("paas-cluster-salt-python", ["gw1"], timeout=0)
        assert ret["result"] is result and ret["changes"] == {}, ret
