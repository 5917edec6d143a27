"""Topologies the tests of several tiers share, so that each exists once."""

from __future__ import annotations


def two_mistakes(topology: dict) -> list[str]:
    """
    Make two independent mistakes in the lab's ``topology`` (in place): etcd2's private
    address outside the private network, and the private VIP on worker1's address.
    Return the error the validator must report for each, in its order.
    """
    topology["nodes"][3]["addresses"]["private"] = "198.18.2.5"  # etcd2
    topology["networks"]["private"]["vip"] = "198.18.1.41"  # worker1's address
    return [
        "node etcd2: paas:nodes[3]:addresses:private: "
        "198.18.2.5 is outside the private network 198.18.1.0/24",
        "paas:networks:private:vip: VIP 198.18.1.41 is the address of node worker1; "
        "a VIP must be free",
    ]
