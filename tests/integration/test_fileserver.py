"""
What a minion can fetch from the shipped master config's fileserver: the state tree
(salt/, with the module folders and orch/ linked into it), never the pillar.
"""

from __future__ import annotations

import pytest

PILLAR_URLS = [
    "salt://pillar/paas.sls",
    "salt://pillar/top.sls",
    "salt://paas.sls",
    "salt://top.sls",
    "salt://../pillar/paas.sls",
    "salt://_modules/../../pillar/paas.sls",
    "salt://orch/../../pillar/paas.sls",
]


def test_minion_fetches_a_state_file_through_the_fileserver(salt_call_cli, repo_root):
    ret = salt_call_cli.run("cp.get_file_str", "salt://common/init.sls")

    assert ret.returncode == 0, ret
    assert ret.data == (repo_root / "salt/common/init.sls").read_text()


@pytest.mark.parametrize("url", PILLAR_URLS)
def test_minion_cannot_fetch_a_pillar_file(salt_call_cli, url):
    ret = salt_call_cli.run("cp.get_file_str", url)

    assert ret.returncode == 0, ret
    assert not ret.data, f"{url} was served: {ret.data!r}"


def test_master_lists_the_state_tree_and_linked_folders_but_no_pillar_file(
    salt_call_cli, repo_root
):
    ret = salt_call_cli.run("cp.list_master")

    assert ret.returncode == 0, ret
    served = set(ret.data)
    # The folders salt/ links in are served, so minions can sync the custom modules.
    assert {
        "common/init.sls",
        "orch/cluster.sls",
        "sync_modules/init.sls",
        "_modules/paas_topology.py",
        "_states/paas_topology.py",
        "_utils/paas_topology.py",
    } <= served
    pillar_files = {path.name for path in (repo_root / "pillar").iterdir()}
    assert pillar_files == {"paas.sls", "top.sls"}
    leaked = {
        path
        for path in served
        if path.startswith("pillar/") or path.rsplit("/", 1)[-1] in pillar_files
    }
    assert not leaked, f"pillar files served: {sorted(leaked)}"
