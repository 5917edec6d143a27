"""
Benchmark: how long the VIPs take to reach the other gateway when the keepalived holding
them stops, hard (SIGKILL: the peer takes over once the adverts stop) or graceful (SIGTERM:
keepalived sends a priority-0 advert first), with the platform's shipped timers (VRRPv3,
advert 0.1 s) and with keepalived's defaults (VRRPv2, advert 1 s) side by side.

Each configuration gets two network namespaces standing in for the two gateways, joined by
a public and a private bridge of their own on bench-only networks (198.19.20.0/24 and
198.19.21.0/24, clear of the lab's), each running the host's keepalived with the
configuration that salt/gateway/files/keepalived.conf.jinja renders for that gateway (the
haproxy check replaced by /bin/true). A measurement is the time from the signal, sent at
a random point of the advert cycle, to both VIPs on the peer, as netlink announces them;
the stopped keepalived is then started again and stays backup (nopreempt), so the next
measurement fails over the other way. One run is one measurement of each of the four, the
configurations interleaved so that both see the same load. Prints a table of medians and
writes bench/results/gateway.json with every run. Needs root; everything it creates is
named paas-bgw-* and removed when it ends, or at the start of the next run if it crashed.

    python -m bench.gateway [--runs 5]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path

import jinja2
import yaml

from bench.common import REPO, report
from lab.config import topology_rules

PREFIX = "paas-bgw-"
KEEPALIVED = "/usr/sbin/keepalived"
TEMPLATE = REPO / "salt" / "gateway" / "files" / "keepalived.conf.jinja"
NETWORKS = {
    "public": ipaddress.IPv4Network("198.19.20.0/24"),
    "private": ipaddress.IPv4Network("198.19.21.0/24"),
}
# The gateways' interfaces inside their namespaces, and the networks' short names that
# keep the host's interface names within the kernel's 15 characters.
INTERFACES = {"public": "eth0", "private": "eth1"}
SHORT = {"public": "pub", "private": "prv"}
# The configurations compared: a tag for the host's interface names, and the gateway timers
# of the topology (none: the schema's defaults, which is what the platform ships).
CONFIGURATIONS = {
    "shipped": ("sh", {}),
    "defaults": ("df", {"vrrp_version": 2, "advert_ms": 1000}),
}
TIMERS = ("vrrp_version", "advert_ms")
SIGNALS = {"hard": signal.SIGKILL, "graceful": signal.SIGTERM}
TIMEOUT_S = 15.0
# An address on the namespace's loopback that proves its ip monitor is listening.
PROBE = "127.0.0.2"


def sh(*argv: str) -> str:
    """Run ``argv``; its output, or exit with what it said when it failed."""
    result = subprocess.run(argv, check=False, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def attempt(*argv: str) -> str:
    """Run ``argv`` whatever comes of it: for what may be gone already; its output."""
    return subprocess.run(argv, check=False, capture_output=True, text=True).stdout


def in_namespace(namespace: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *argv]


def _host(network: ipaddress.IPv4Network, number: int) -> str:
    return str(network.network_address + number)


def _moved(address: str, network: str) -> str:
    """``address`` of the lab's private ``network`` at the same host number on the bench's."""
    number = int(ipaddress.IPv4Address(address)) & int(ipaddress.IPv4Network(network).hostmask)
    return _host(NETWORKS["private"], number)


def bench_topology(timers: dict) -> dict:
    """
    The lab's topology (lab/pillar/paas.sls) moved onto the bench's networks, so that the
    bench's keepalived never answers for an address of the lab, with ``timers`` as the
    gateways' VRRP timers. Exits if the result is not a valid topology: the figures would
    not be those of a configuration the platform can have.
    """
    topology = yaml.safe_load((REPO / "lab" / "pillar" / "paas.sls").read_text())["paas"]
    lab_private = topology["networks"]["private"]["cidr"]
    for name, network in NETWORKS.items():
        topology["networks"][name].update(cidr=str(network), vip=_host(network, 10))
    topology["networks"]["public"]["gateway"] = _host(NETWORKS["public"], 1)
    topology["master"]["address"] = _moved(topology["master"]["address"], lab_private)
    gateways = topology_rules.node_ids(topology, "gateway")
    for entry in topology["nodes"]:
        if entry["id"] in gateways:
            number = 11 + gateways.index(entry["id"])
            entry["addresses"] = {name: _host(net, number) for name, net in NETWORKS.items()}
        else:
            entry["addresses"]["private"] = _moved(entry["addresses"]["private"], lab_private)
    others = {key: value for key, value in topology.get("gateway", {}).items() if key not in TIMERS}
    topology["gateway"] = {**others, **timers}
    errors = topology_rules.validate(topology)
    if errors:
        sys.exit("the bench's topology is invalid:\n  " + "\n  ".join(map(str, errors)))
    return topology


def render(topology: dict, node_id: str, notify: Path) -> str:
    """
    The keepalived.conf the gateway role writes on ``node_id``, with a check that always
    passes (the bench runs no haproxy) and a notify script that does nothing.
    """
    settings = topology_rules.gateway(topology, node_id)
    for name, interface in INTERFACES.items():
        settings["networks"][name]["interface"] = interface
    gateway = yaml.safe_load((REPO / "salt" / "gateway" / "defaults.yaml").read_text())["gateway"]
    gateway["keepalived"].update(check="/bin/true", notify=str(notify))
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = environment.from_string(TEMPLATE.read_text())
    return template.render(gateway=gateway, settings=settings)


def keepalived_pids(namespace: str) -> list[int]:
    """The keepalived processes in ``namespace``; its ip monitor is not one of them."""
    pids = []
    for pid in attempt("ip", "netns", "pids", namespace).split():
        with suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "keepalived":
                pids.append(int(pid))
    return pids


def remove_leftovers() -> None:
    """Remove what a crashed earlier run left: everything named paas-bgw-* is the bench's."""
    for entry in json.loads(attempt("ip", "-j", "netns", "list") or "[]"):
        if not entry["name"].startswith(PREFIX):
            continue
        # Its keepalived and its ip monitor: a namespace is not removed while in use.
        for pid in attempt("ip", "netns", "pids", entry["name"]).split():
            with suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        attempt("ip", "netns", "del", entry["name"])
    for link in json.loads(sh("ip", "-j", "link", "show")):
        if link["ifname"].startswith(PREFIX):
            attempt("ip", "link", "del", link["ifname"])
    for directory in Path(tempfile.gettempdir()).glob(f"{PREFIX}*"):
        shutil.rmtree(directory, ignore_errors=True)


class AddressWatch:
    """
    The IPv4 addresses of one namespace as netlink announces them, each stamped with the
    monotonic clock as it arrives: a VIP landing is seen within a millisecond, without the
    cost and the granularity of polling.
    """

    LINE = re.compile(r"^(Deleted )?\d+: \S+\s+inet ([\d.]+)/")

    def __init__(self, namespace: str):
        self.namespace = namespace
        self.present: dict[str, float] = {}
        self.changed = threading.Condition()
        self.process = subprocess.Popen(
            ["ip", "-o", "-4", "-n", namespace, "monitor", "address"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            arrived = time.monotonic()
            match = self.LINE.match(line)
            if not match:
                continue
            with self.changed:
                if match[1]:
                    self.present.pop(match[2], None)
                else:
                    self.present.setdefault(match[2], arrived)
                self.changed.notify_all()

    def wait_listening(self) -> None:
        """
        ip monitor says nothing until something changes, so change something harmless (an
        address on loopback) until it reports it: from then on it misses no change.
        """
        for _ in range(50):
            sh("ip", "-n", self.namespace, "addr", "add", f"{PROBE}/8", "dev", "lo")
            seen = self.held_since({PROBE}, 0.1)
            sh("ip", "-n", self.namespace, "addr", "del", f"{PROBE}/8", "dev", "lo")
            if seen is not None:
                return
        sys.exit(f"ip monitor in {self.namespace} reports no address change")

    def holds(self, addresses: set[str]) -> set[str]:
        """Which of ``addresses`` the namespace has now."""
        with self.changed:
            return addresses & self.present.keys()

    def held_since(self, addresses: set[str], timeout: float) -> float | None:
        """When the last of ``addresses`` arrived, once all are there; None after ``timeout``."""
        with self.changed:
            if not self.changed.wait_for(lambda: addresses <= self.present.keys(), timeout):
                return None
            return max(self.present[address] for address in addresses)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=5)


class Gateway:
    """One gateway: its namespace, its keepalived configuration and the keepalived running it."""

    def __init__(self, namespace: str, node_id: str, directory: Path):
        self.namespace = namespace
        self.node_id = node_id
        self.directory = directory
        self.config = directory / f"{namespace}.conf"
        self.log = directory / f"{namespace}.log"
        self.process: subprocess.Popen | None = None
        self.watch: AddressWatch | None = None

    def check_config(self) -> None:
        """keepalived's own verdict on the rendered file, in the namespace it will run in."""
        result = subprocess.run(
            in_namespace(self.namespace, KEEPALIVED, "--config-test", f"--use-file={self.config}"),
            check=False,
            capture_output=True,
            text=True,
        )
        said = (result.stdout + result.stderr).strip()
        if result.returncode != 0:
            sys.exit(f"keepalived rejects {self.config}:\n{said}")
        if said:
            print(f"keepalived --config-test on {self.node_id}'s configuration:\n{said}")

    def start(self) -> int:
        """Start keepalived; where its messages begin in the log, which every start appends to."""
        pid_files = {
            option: self.directory / f"{self.namespace}.{option}"
            for option in ("pid", "vrrp_pid", "checkers_pid", "bfd_pid")
        }
        # A killed keepalived leaves its pid files, and its children may linger as zombies
        # until the host's init reaps them: keepalived would take that for itself running.
        for path in pid_files.values():
            path.unlink(missing_ok=True)
        offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("a") as log:
            # Its own session and process group: the bench's signals reach it only from us.
            self.process = subprocess.Popen(
                in_namespace(
                    self.namespace,
                    KEEPALIVED,
                    "--dont-fork",
                    f"--use-file={self.config}",
                    *(f"--{option}={path}" for option, path in pid_files.items()),
                    "--log-console",
                    "--log-detail",
                    "--no-syslog",
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return offset

    def wait_logged(self, text: str, count: int, offset: int) -> None:
        """Wait for ``text`` ``count`` times in what this start logged; exit if keepalived died."""
        deadline = time.monotonic() + TIMEOUT_S
        while self.log.read_text()[offset:].count(text) < count:
            if self.process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"keepalived on {self.node_id} did not log {text!r}:\n{self.tail()}")
            time.sleep(0.01)

    def stop(self, signum: signal.Signals) -> float:
        """
        Send ``signum`` to keepalived's whole process group, as systemctl stop does to the
        unit's cgroup; the monotonic time just before. Killing only the parent would leave
        the VRRP child running, or shutting down cleanly: not the crash measured.
        """
        sent = time.monotonic()
        os.killpg(self.process.pid, signum)
        return sent

    def wait_stopped(self) -> None:
        """Wait for keepalived and its children to be gone; one left behind is killed, loudly."""
        try:
            self.process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            sys.exit(f"keepalived on {self.node_id} still runs {TIMEOUT_S:g} s after the signal")
        deadline = time.monotonic() + 2
        while (left := keepalived_pids(self.namespace)) and time.monotonic() < deadline:
            time.sleep(0.01)
        for pid in left:
            print(f"warning: keepalived {pid} outlived its parent on {self.node_id}; killed")
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def addresses(self) -> set[str]:
        """The IPv4 addresses the namespace has, asked now rather than from the watch."""
        links = json.loads(sh("ip", "-n", self.namespace, "-j", "-4", "addr", "show"))
        return {each["local"] for link in links for each in link.get("addr_info", [])}

    def drop(self, vips: dict[str, str]) -> set[str]:
        """Remove the VIPs (by network) that a stopped keepalived left; which those were."""
        present = self.addresses()
        left = set()
        for network, vip in vips.items():
            if vip in present:
                cidr = f"{vip}/{NETWORKS[network].prefixlen}"
                sh("ip", "-n", self.namespace, "addr", "del", cidr, "dev", INTERFACES[network])
                left.add(vip)
        return left

    def tail(self) -> str:
        return "\n".join(self.log.read_text().splitlines()[-20:]) if self.log.exists() else ""

    def terminate(self) -> None:
        """
        Ask keepalived to stop, so that it reaps its children itself: killed, it would leave
        them to the host's init, which here reaps them only seconds later.
        """
        if self.process is not None and self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def kill(self) -> None:
        """Give keepalived a few seconds to stop, then kill what is left of it by its pid."""
        if self.process is not None:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=TIMEOUT_S)
        for pid in keepalived_pids(self.namespace):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Pair:
    """The two gateways of one configuration, on bridges of their own."""

    def __init__(self, name: str, topology: dict, directory: Path):
        self.name = name
        self.topology = topology
        ids = topology_rules.node_ids(topology, "gateway")
        settings = topology_rules.gateway(topology, ids[0])
        self.vip_of = {network: settings["networks"][network]["vip"] for network in INTERFACES}
        self.vips = set(self.vip_of.values())
        self.advert_s = float(settings["advert_int"])
        self.label = f"{name}, VRRPv{settings['vrrp_version']} advert {settings['advert_int']} s"
        self.gateways = [Gateway(f"{PREFIX}{name}-{node}", node, directory) for node in ids]

    def peer(self, gateway: Gateway) -> Gateway:
        return self.gateways[1 - self.gateways.index(gateway)]

    def holder(self) -> Gateway | None:
        """The gateway holding both VIPs while its peer holds neither; None while not so."""
        for gateway in self.gateways:
            has = gateway.watch.holds(self.vips)
            if has == self.vips and not self.peer(gateway).watch.holds(self.vips):
                return gateway
        return None

    def settle(self, expected: Gateway | None = None) -> Gateway:
        """
        Wait for one gateway to hold the VIPs, then see it keep them for longer than a
        backup waits for a master (three adverts and its skew): after that nothing moves
        by itself, and the next measurement starts from a known state.
        """
        deadline = time.monotonic() + TIMEOUT_S
        while (holder := self.holder()) is None:
            if time.monotonic() > deadline:
                sys.exit(f"{self.name}: no gateway holds the VIPs {sorted(self.vips)} alone")
            time.sleep(0.01)
        time.sleep(4 * self.advert_s + 0.5)
        if self.holder() is not holder or expected not in (None, holder):
            sys.exit(f"{self.name}: the VIPs moved without a failover (nopreempt not kept)")
        return holder

    def failover(self, kind: str) -> tuple[float, str]:
        """
        One failover of ``kind`` from the current holder: its seconds, and whence. The
        signal waits a random part of an advert interval first: the backup's timer runs
        from the last advert it got, and a crash comes at any point of the advert cycle,
        whereas the bench's own steady rhythm would otherwise pick the point, and the figure.
        """
        holder = self.holder()
        if holder is None:
            sys.exit(f"{self.name}: the VIPs moved between measurements")
        peer = self.peer(holder)
        time.sleep(random.uniform(0, self.advert_s))
        sent = holder.stop(SIGNALS[kind])
        landed = peer.watch.held_since(self.vips, TIMEOUT_S)
        if landed is None:
            sys.exit(
                f"{self.name}: {kind} failover from {holder.node_id} not seen in {TIMEOUT_S:g} s"
            )
        holder.wait_stopped()
        left = holder.drop(self.vip_of)
        if left and kind == "graceful":
            print(f"warning: {self.name}: {holder.node_id} kept {sorted(left)} after SIGTERM")
        offset = holder.start()
        holder.wait_logged("Entering BACKUP STATE", len(INTERFACES), offset)
        self.settle(expected=peer)
        return landed - sent, holder.node_id


class Testbed:
    """Everything the bench creates, so that all of it is removed however the bench ends."""

    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix=PREFIX))
        self.notify = self.directory / "notify"
        self.notify.write_text("#!/bin/sh\nexit 0\n")
        self.notify.chmod(0o755)
        self.pairs: list[Pair] = []
        self.namespaces: list[str] = []
        self.bridges: list[str] = []

    def pair(self, name: str) -> Pair:
        """The pair of configuration ``name``, wired and configured, keepalived not started."""
        tag, timers = CONFIGURATIONS[name]
        pair = Pair(name, bench_topology(timers), self.directory)
        self.pairs.append(pair)
        bridges = {network: f"{PREFIX}{tag}-{SHORT[network]}" for network in INTERFACES}
        for bridge in bridges.values():
            self.bridges.append(bridge)
            sh("ip", "link", "add", bridge, "type", "bridge")
            sh("ip", "link", "set", bridge, "up")
        for index, gateway in enumerate(pair.gateways, start=1):
            self.namespace(gateway)
            for network, interface in INTERFACES.items():
                outside = f"{PREFIX}{tag}{index}{SHORT[network]}"
                address = topology_rules.node(pair.topology, gateway.node_id)["addresses"]
                cidr = f"{address[network]}/{NETWORKS[network].prefixlen}"
                self.link(gateway.namespace, interface, outside, bridges[network])
                sh("ip", "-n", gateway.namespace, "addr", "add", cidr, "dev", interface)
            gateway.config.write_text(render(pair.topology, gateway.node_id, self.notify))
            gateway.check_config()
        return pair

    def namespace(self, gateway: Gateway) -> None:
        self.namespaces.append(gateway.namespace)
        sh("ip", "netns", "add", gateway.namespace)
        sh("ip", "-n", gateway.namespace, "link", "set", "lo", "up")
        gateway.watch = AddressWatch(gateway.namespace)
        gateway.watch.wait_listening()

    def link(self, namespace: str, interface: str, outside: str, bridge: str) -> None:
        """A veth from ``bridge`` on the host (``outside``) to ``interface`` in ``namespace``."""
        sh("ip", "link", "add", outside, "type", "veth", "peer", interface, "netns", namespace)
        sh("ip", "link", "set", outside, "master", bridge, "up")
        sh("ip", "-n", namespace, "link", "set", interface, "up")

    def close(self) -> None:
        gateways = [gateway for pair in self.pairs for gateway in pair.gateways]
        for gateway in gateways:
            gateway.terminate()
        for gateway in gateways:
            gateway.kill()
            if gateway.watch is not None:
                gateway.watch.close()
        for namespace in self.namespaces:
            attempt("ip", "netns", "del", namespace)
        for bridge in self.bridges:
            attempt("ip", "link", "del", bridge)
        shutil.rmtree(self.directory, ignore_errors=True)


def one_run(pairs: list[Pair], index: int) -> dict:
    """
    One failover of each kind on each pair, the pairs taking turns. The kinds swap order
    every run, so that each kind fails over from either gateway in turn (their priorities,
    and so the backup's skew, differ).
    """
    kinds = list(SIGNALS) if index % 2 == 0 else list(reversed(SIGNALS))
    result = {}
    for kind in kinds:
        for pair in pairs:
            seconds, source = pair.failover(kind)
            result[f"{pair.name}_{kind}_s"] = round(seconds, 4)
            result[f"{pair.name}_{kind}_from"] = source
    return result


def _exit_on_sigterm(signum: int, frame: object) -> None:
    """A SIGTERM to the bench ends it through its cleanup, as Ctrl-C does."""
    sys.exit(f"stopped by signal {signum}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench.gateway needs root: it creates namespaces and bridges, runs keepalived")
    if not Path(KEEPALIVED).exists():
        sys.exit(f"{KEEPALIVED} is missing: apt-get install keepalived")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    remove_leftovers()
    testbed = Testbed()
    runs = []
    try:
        pairs = [testbed.pair(name) for name in CONFIGURATIONS]
        for pair in pairs:
            for gateway in pair.gateways:
                gateway.start()
            print(f"{pair.label}: {pair.settle().node_id} holds the VIPs", flush=True)
        for index in range(args.runs):
            runs.append(one_run(pairs, index))
            print(f"run {index + 1}/{args.runs}: {runs[-1]}", flush=True)
        labels = {
            f"{pair.name}_{kind}_s": f"{pair.label}: {kind} ({SIGNALS[kind].name})"
            for kind in SIGNALS
            for pair in pairs
        }
    finally:
        testbed.close()
    report("gateway", labels, runs, digits=3)


if __name__ == "__main__":
    main()
