"""``salt-run paas.validate`` on a master configured from the shipped etc/salt/master."""

from __future__ import annotations

import yaml

SHIPPED_NODE_COUNT = 9


def _bad_topology(topology: dict) -> tuple[dict, list[str]]:
    """Two independent mistakes, and the error each must produce."""
    topology["nodes"][3]["addresses"]["private"] = "198.18.2.5"  # etcd2
    topology["networks"]["private"]["vip"] = "198.18.1.41"  # worker1's address
    return topology, [
        "node etcd2: paas:nodes[3]:addresses:private: "
        "198.18.2.5 is outside the private network 198.18.1.0/24",
        "paas:networks:private:vip: VIP 198.18.1.41 is the address of node worker1; "
        "a VIP must be free",
    ]


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
    topology, expected = _bad_topology(lab_topology)
    path = tmp_path / "bad.sls"
    path.write_text(yaml.safe_dump({"paas": topology}))

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
