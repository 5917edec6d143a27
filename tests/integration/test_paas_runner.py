"""
``salt-run paas.validate``, ``paas.status`` and ``paas.certs`` on a master configured
from the shipped etc/salt/master, whose topology's nodes do not run here: their exit
codes, reports and tables, and what happens when the runner lacks its utils module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.topologies import two_mistakes

SHIPPED_NODE_COUNT = 9
SALT_RUN = Path(sys.executable).parent / "salt-run"
# No node of the topology is a minion of the test master.
NOT_ACCEPTED = "its key is not accepted on this master"


def test_validate_passes_the_shipped_pillar_and_counts_its_nodes(salt_run_cli):
    ret = salt_run_cli.run("paas.validate")

    assert ret.returncode == 0, ret
    assert ret.data == {
        "valid": True,
        "source": "pillar",
        "nodes": SHIPPED_NODE_COUNT,
        "retcode": 0,
    }


def test_validate_passes_the_documented_example(salt_run_cli, repo_root):
    example = repo_root / "pillar.example"

    ret = salt_run_cli.run("paas.validate", f"topology={example}")

    assert ret.returncode == 0, ret
    assert ret.data == {"valid": True, "source": str(example), "nodes": 9, "retcode": 0}


def test_validate_of_a_bad_topology_file_fails_naming_node_and_field_of_each_error(
    salt_run_cli, lab_topology, tmp_path
):
    expected = two_mistakes(lab_topology)
    path = tmp_path / "bad.sls"
    path.write_text(yaml.safe_dump({"paas": lab_topology}))

    ret = salt_run_cli.run("paas.validate", f"topology={path}")

    assert ret.returncode != 0, ret
    assert ret.data == {"valid": False, "source": str(path), "errors": expected, "retcode": 1}
    for error in expected:
        assert error in ret.stdout


def test_validate_of_a_missing_file_fails_saying_it_cannot_read_it(salt_run_cli, tmp_path):
    path = tmp_path / "absent.sls"

    ret = salt_run_cli.run("paas.validate", f"topology={path}")

    assert ret.returncode != 0, ret
    assert f"cannot read topology file {path}: No such file or directory" in ret.stdout


def test_validate_of_a_file_without_paas_key_fails_saying_so(salt_run_cli, lab_topology, tmp_path):
    path = tmp_path / "nopaas.sls"
    path.write_text(yaml.safe_dump({"topology": lab_topology}))

    ret = salt_run_cli.run("paas.validate", f"topology={path}")

    assert ret.returncode != 0, ret
    assert f"topology file {path} has no top-level paas key" in ret.stdout


def test_validate_of_a_file_that_is_not_yaml_fails_saying_so(salt_run_cli, tmp_path):
    path = tmp_path / "broken.sls"
    path.write_text("paas:\n  cluster: {name: [\n")

    ret = salt_run_cli.run("paas.validate", f"topology={path}")

    assert ret.returncode != 0, ret
    assert f"topology file {path} is not valid YAML" in ret.stdout


@pytest.fixture(scope="module")
def master_topology(repo_root) -> dict:
    """The topology in the shipped master's pillar (pillar/paas.sls)."""
    return yaml.safe_load((repo_root / "pillar/paas.sls").read_text())["paas"]


def _salt_run(config_dir: Path, *argv: str) -> subprocess.CompletedProcess:
    """salt-run as a person or a cron job runs it: its default output and exit code."""
    return subprocess.run(
        [str(SALT_RUN), f"--config-dir={config_dir}", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def master_config_with(salt_master, tmp_path):
    """A config dir for salt-run: the running master's configuration with some keys
    changed (the same root, sockets and pillar, so its minions and jobs are the same)."""

    def make(**changes) -> Path:
        config = yaml.safe_load(Path(salt_master.config_file).read_text())
        config.update(changes)
        (tmp_path / "master").write_text(yaml.safe_dump(config))
        return tmp_path

    return make


def _silent_platform(topology: dict) -> list[str]:
    """What paas.status names when no node of the topology is a minion of the master."""
    gateways = [node["id"] for node in topology["nodes"] if "gateway" in node["roles"]]
    etcd = [node["id"] for node in topology["nodes"] if "etcd" in node["roles"]]
    control_planes = [node["id"] for node in topology["nodes"] if "control-plane" in node["roles"]]
    return [
        "no gateway holds the public VIP",
        "no gateway holds the private VIP",
        *(f"{node} did not answer: {NOT_ACCEPTED}" for node in gateways),
        "no etcd node answered: " + "; ".join(f"{node}: {NOT_ACCEPTED}" for node in etcd),
        "no control plane answered: "
        + "; ".join(f"{node}: {NOT_ACCEPTED}" for node in control_planes),
        # The gateways' certificates are unseen too: named once, above.
        *(
            f"{minion} did not answer: {NOT_ACCEPTED}"
            for minion in [*(node["id"] for node in topology["nodes"]), topology["master"]["id"]]
            if minion not in gateways
        ),
    ]


def test_status_of_a_platform_without_its_minions_is_down_and_names_each_node(
    salt_run_cli, master_topology
):
    ret = salt_run_cli.run("paas.status", "timeout=5")

    assert ret.returncode == 2, ret
    assert ret.data["severity"] == "down"
    assert ret.data["problems"] == _silent_platform(master_topology)
    assert ret.data["retcode"] == 2


def test_status_prints_its_table_by_default_and_nothing_else(salt_master, master_topology):
    result = _salt_run(Path(salt_master.config_dir), "paas.status", "timeout=5")

    assert result.returncode == 2, result
    problems = _silent_platform(master_topology)
    assert result.stdout.splitlines()[: 1 + len(problems)] == [
        f"paas: DOWN ({len(problems)} problems)",
        *(f"  - {problem}" for problem in problems),
    ]
    # salt-run's own "unclosed Runner/MasterMinion/SyncWrapper" warnings are not printed.
    assert result.stderr == ""


def test_status_is_the_same_report_in_json_and_yaml(salt_master):
    config_dir = Path(salt_master.config_dir)

    as_json = _salt_run(config_dir, "--out=json", "paas.status", "timeout=5")
    as_yaml = _salt_run(config_dir, "--out=yaml", "paas.status", "timeout=5")

    assert as_json.returncode == as_yaml.returncode == 2, (as_json, as_yaml)
    assert json.loads(as_json.stdout) == yaml.safe_load(as_yaml.stdout)


def test_certs_without_the_minions_is_degraded_with_a_row_for_each(salt_master, master_topology):
    config_dir = Path(salt_master.config_dir)

    report = _salt_run(config_dir, "--out=json", "paas.certs", "timeout=5")
    table = _salt_run(config_dir, "paas.certs", "timeout=5")

    assert report.returncode == table.returncode == 1, report
    rows = json.loads(report.stdout)["certificates"]
    nodes = [node["id"] for node in master_topology["nodes"]]
    assert [row["node"] for row in rows] == [*nodes, master_topology["master"]["id"]]
    assert all(row["problems"] == [f"did not answer: {NOT_ACCEPTED}"] for row in rows)
    assert table.stdout.splitlines()[0] == f"certificates: DEGRADED ({len(rows)} problems)"
    assert table.stdout.splitlines()[len(rows) + 2].split() == [
        "NODE", "PROFILE", "SERIAL", "NOT", "AFTER", "DAYS", "RENEWS", "PROBLEMS"
    ]  # fmt: skip
    assert table.stderr == ""


@pytest.mark.parametrize(
    "argv",
    [("paas.validate", "topology=pillar.example"), ("paas.status",), ("paas.certs",)],
    ids=["validate", "status", "certs"],
)
def test_without_its_utils_module_every_paas_runner_exits_3_saying_why(
    master_config_with, tmp_path, argv
):
    missing = tmp_path / "no-utils"
    config_dir = master_config_with(utils_dirs=[str(missing)])

    result = _salt_run(config_dir, *argv)

    assert result.returncode == 3, result
    assert "the paas_topology utils module is not loaded" in result.stdout
    assert str(missing) in result.stdout


def test_salt_itself_exits_0_for_a_runner_it_cannot_find(master_config_with, tmp_path):
    # What Salt 3008 does when the runner is not on runner_dirs at all: the project's
    # code never runs, so only the message says that nothing happened.
    config_dir = master_config_with(runner_dirs=[str(tmp_path / "no-runners")])

    result = _salt_run(config_dir, "paas.validate", "topology=pillar.example")

    assert result.returncode == 0
    assert result.stdout.strip() == "'paas.validate' is not available."


@pytest.fixture
def gw2_key(salt_master, salt_minion):
    """An accepted key for gw2, which does not run: the master publishes to it."""
    accepted = Path(salt_master.config["pki_dir"]) / "minions"
    target = accepted / "gw2"
    assert not target.exists()
    shutil.copyfile(accepted / salt_minion.id, target)
    try:
        yield "gw2"
    finally:
        target.unlink()


def test_a_minion_that_does_not_answer_is_named_and_stderr_stays_clean(salt_master, gw2_key):
    result = _salt_run(Path(salt_master.config_dir), "--out=json", "paas.status", "timeout=3")

    assert result.returncode == 2, result
    problems = json.loads(result.stdout)["problems"]
    assert problems.count(f"{gw2_key} did not answer: Minion did not return. [No response]") == 1
    assert f"gw1 did not answer: {NOT_ACCEPTED}" in problems
    assert result.stderr == ""
