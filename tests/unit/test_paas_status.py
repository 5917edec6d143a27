"""
How ``salt-run paas.status`` reads the gateways' answers (``_runners/paas.py``): the VIPs'
holder, or what is wrong, named; and the table a person reads.
"""

from __future__ import annotations

import pytest

GATEWAYS = ["gw1", "gw2"]


@pytest.fixture(scope="module")
def runner(import_repo_module):
    return import_repo_module("_runners/paas.py", "paas_runner_module")


def answer(public: bool, private: bool, state: str = "BACKUP") -> dict:
    """One gateway's paas_gateway.status."""
    return {
        "vips": {
            "public": {"address": "198.18.0.10", "interface": "eth0", "held": public},
            "private": {"address": "198.18.1.10", "interface": "eth1", "held": private},
        },
        "vrrp": {"state": state, "since": 1.0},
        "services": {"keepalived": True, "haproxy": True, "conntrackd": True, "nftables": True},
        "backends": [{"proxy": "kube-apiserver", "server": "cp1", "status": "UP", "check": "L7OK"}],
    }


def test_one_holder_of_both_vips_is_named(runner):
    replies = {"gw1": answer(True, True, "MASTER"), "gw2": answer(False, False)}

    gateways = runner._gateways(GATEWAYS, replies)

    assert gateways["holder"] == "gw1"
    assert gateways["problems"] == [] and gateways["split_brain"] is False
    table = runner._gateway_table(gateways)
    assert table.splitlines()[0] == "gateways: both VIPs on gw1"
    assert "kube-apiserver  cp1     UP   UP" in table


@pytest.mark.parametrize(
    ("replies", "split_brain", "problem"),
    [
        (
            {"gw1": answer(True, True), "gw2": answer(True, True)},
            True,
            "split brain: gw1 and gw2 each hold the public VIP",
        ),
        (
            {"gw1": answer(False, False), "gw2": answer(False, False)},
            False,
            "no gateway holds the public VIP",
        ),
        (
            {"gw1": answer(True, False), "gw2": answer(False, True)},
            False,
            "the VIPs are on different gateways: public on gw1, private on gw2",
        ),
        (
            {"gw1": answer(True, True), "gw2": "Minion did not return. [No response]"},
            False,
            "gw2 did not answer: Minion did not return. [No response]",
        ),
    ],
    ids=["split-brain", "no-holder", "vips-apart", "a-gateway-silent"],
)
def test_what_is_wrong_is_named_and_no_holder_is_claimed(runner, replies, split_brain, problem):
    gateways = runner._gateways(GATEWAYS, replies)

    assert gateways["holder"] is None
    assert gateways["split_brain"] is split_brain
    assert problem in gateways["problems"]
    assert problem.upper() in runner._gateway_table(gateways).splitlines()[0]
