"""
``salt-run state.orchestrate orch.cluster`` stops at a bad topology, before any node
is sent anything.

The master holds keys for every node of the topology (copies of the test minion's key;
no minion runs under those ids), so an orchestration that got past its topology check
would publish its state runs to them, and the master's event bus would show it. The
test minion itself is no node: nothing the orchestration targets can run on this host.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.topologies import two_mistakes

TOPOLOGY_STATE = "paas_topology_|-paas-cluster-topology-valid_|-paas-cluster-topology-valid_|-valid"


@pytest.fixture(scope="module")
def topology_minion_keys(salt_master, salt_minion, shipped_lab_topology):
    """Accepted keys on the master for the topology's nodes and the master's minion."""
    accepted = Path(salt_master.config["pki_dir"]) / "minions"
    ids = [entry["id"] for entry in shipped_lab_topology["nodes"]]
    ids.append(shipped_lab_topology["master"]["id"])
    created = []
    try:
        for minion_id in ids:
            assert minion_id != salt_minion.id
            target = accepted / minion_id
            assert not target.exists()
            shutil.copyfile(accepted / salt_minion.id, target)
            created.append(target)
        yield ids
    finally:
        for path in created:
            path.unlink(missing_ok=True)


def _published_functions(event_listener, master_id: str, after: float) -> list[str]:
    events = event_listener.get_events([(master_id, "salt/job/*/new")], after_time=after)
    return sorted(event.data["fun"] for event in events)


@pytest.mark.usefixtures("topology_minion_keys")
def test_orchestration_stops_at_a_bad_topology_and_publishes_nothing(
    salt_master, salt_minion, salt_run_cli, event_listener, lab_topology
):
    expected = two_mistakes(lab_topology)
    start = time.time()

    ret = salt_run_cli.run(
        "state.orchestrate", "orch.cluster", f"pillar={json.dumps({'paas': lab_topology})}"
    )

    assert ret.returncode != 0, ret
    states = ret.data["data"][salt_master.id]
    assert list(states) == [TOPOLOGY_STATE], "a step after the topology check ran"
    check = states[TOPOLOGY_STATE]
    assert check["result"] is False
    assert check["changes"] == {}
    assert check["comment"].splitlines() == [
        "The paas topology is invalid; nothing was changed:",
        *expected,
    ]

    # A job published after the orchestration reaches the event listener, so every
    # event the orchestration caused has reached it too.
    ping = salt_master.salt_cli(timeout=60).run("test.ping", minion_tgt=salt_minion.id)
    assert ping.returncode == 0 and ping.data is True, ping
    seen = event_listener.wait_for_events(
        [
            (salt_master.id, "salt/run/*/new"),
            (salt_master.id, f"salt/job/*/ret/{salt_minion.id}"),
        ],
        after_time=start,
        timeout=30,
    )
    assert seen.found_all_events, f"the event listener missed: {seen.missed}"
    published = _published_functions(event_listener, salt_master.id, start)
    assert [fun for fun in published if fun != "saltutil.find_job"] == ["test.ping"]


@pytest.mark.usefixtures("topology_minion_keys")
def test_recovering_a_member_that_is_no_etcd_node_is_refused_and_publishes_nothing(
    salt_master, salt_minion, salt_run_cli, event_listener, lab_topology
):
    start = time.time()

    ret = salt_run_cli.run(
        "state.orchestrate",
        "orch.etcd_recover",
        f"pillar={json.dumps({'paas': lab_topology, 'member': 'cp1'})}",
    )

    assert ret.returncode != 0, ret
    (check,) = ret.data["data"][salt_master.id].values()
    assert check["result"] is False
    assert check["name"] == (
        "pillar member=cp1 is not an etcd node of the topology (etcd1, etcd2, etcd3)"
    )
    ping = salt_master.salt_cli(timeout=60).run("test.ping", minion_tgt=salt_minion.id)
    assert ping.returncode == 0 and ping.data is True, ping
    seen = event_listener.wait_for_events(
        [(salt_master.id, f"salt/job/*/ret/{salt_minion.id}")], after_time=start, timeout=30
    )
    assert seen.found_all_events, f"the event listener missed: {seen.missed}"
    published = _published_functions(event_listener, salt_master.id, start)
    assert [fun for fun in published if fun != "saltutil.find_job"] == ["test.ping"]
