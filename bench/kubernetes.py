"""
Benchmark: the platform with Kubernetes on the lab: orch.cluster from nothing and its
no-op re-run (and, of each, the time its Kubernetes steps took), and the longest stall
an API client sees across a hard gateway failover.

A run starts from nothing (`lab down`, then `lab up --no-converge`: the nine machines
booted, nothing converged; the image cached), times `salt-run state.orchestrate
orch.cluster` and its re-run, then fails the gateway holding the VIPs over ``--failovers``
times: SIGKILL to its keepalived (the peer takes the VIPs when the adverts stop; the
killed one's unit starts it again, as backup). Two clients on this host loop on
``GET /api/v1/nodes`` with the admin kubeconfig's client certificate, one through the
public VIP, one through the private VIP; each attempt has a ``--timeout`` and a failed
one is retried at once, on a new connection. The stall of a failover is the longest time
between two answers of a client from a second before the kill until the VIPs have moved
and every client has answered again. Prints a table of medians and writes
bench/results/kubernetes.json with every run.

With ``--workers 10 20``, then, how the cold converge grows with the worker count: for each
count N the lab's workersN variant (lab/variants/: N workers, batches of
paas:kubernetes:worker_batch) from nothing, orch.cluster timed as above, and the time each
worker beyond the first adds against the one-worker medians (those of the runs before it,
or with ``--runs 0`` of bench/results/kubernetes.json); written to
bench/results/kubernetes_workers.json.

    python -m bench.kubernetes [--runs 3] [--failovers 5] [--timeout 0.25] [--workers 10 20]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import itertools
import json
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from bench.common import REPO, SALT_RUN, lab, report
from lab.config import load_lab
from lab.machines import leader_pid

GATEWAYS = ("gw1", "gw2")
RESULTS = REPO / "bench" / "results" / "kubernetes.json"
ADMIN_KUBECONFIG = "etc/kubernetes/admin.conf"
# An API call that goes through the apiserver to etcd, as a controller's would.
PATH = "/api/v1/nodes?limit=1"


def orchestrate() -> tuple[float, float]:
    """Run orch.cluster; its wall time and the time its Kubernetes steps took."""
    started = time.monotonic()
    result = subprocess.run(
        [str(SALT_RUN), "--out=json", "state.orchestrate", "orch.cluster"],
        cwd=REPO,
        check=False,
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"orch.cluster failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
    (steps,) = json.loads(result.stdout)["data"].values()
    kubernetes_ms = sum(
        step.get("duration") or 0
        for step in steps.values()
        if "kubernetes" in step.get("__id__", "")
    )
    return elapsed, kubernetes_ms / 1000


def machine(node_id: str):
    (found,) = [m for m in load_lab().machines if m.id == node_id]
    return found


def on(node_id: str, command: str) -> str:
    return subprocess.run(
        ["nsenter", "-t", str(leader_pid(machine(node_id))), "-a", "sh", "-c", command],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def vips_of(gateway: str, vips: set[str]) -> set[str]:
    listing = subprocess.run(
        ["ip", "-n", f"paas-lab-{gateway}", "-j", "-4", "addr", "show"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    held = {
        info["local"]
        for link in json.loads(listing)
        if link.get("operstate") == "UP"
        for info in link["addr_info"]
    }
    return held & vips


def holder(vips: set[str]) -> str | None:
    held = {gateway: vips_of(gateway, vips) for gateway in GATEWAYS}
    (first, second) = GATEWAYS
    if held[first] == vips and not held[second]:
        return first
    if held[second] == vips and not held[first]:
        return second
    return None


def wait(predicate, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    sys.exit(f"bench.kubernetes: {what} within {timeout:.0f}s")


def client_context(directory: Path) -> ssl.SSLContext:
    """TLS as kubectl has it with the admin kubeconfig of the first control plane."""
    config = yaml.safe_load((machine("cp1").root / ADMIN_KUBECONFIG).read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    files = {
        "ca.crt": cluster["certificate-authority-data"],
        "admin.crt": user["client-certificate-data"],
        "admin.key": user["client-key-data"],
    }
    for name, data in files.items():
        (directory / name).write_bytes(base64.b64decode(data))
    (directory / "admin.key").chmod(0o600)
    context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    context.load_cert_chain(str(directory / "admin.crt"), str(directory / "admin.key"))
    return context


class Client(threading.Thread):
    """GET PATH in a loop on one keep-alive connection, a failed attempt retried at
    once on a new one; the time of every answer."""

    def __init__(self, address: str, port: int, context: ssl.SSLContext, timeout: float):
        super().__init__(daemon=True)
        self.address, self.port, self.context, self.timeout = address, port, context, timeout
        self.answers: list[float] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        connection = None
        while not self.stopping.is_set():
            try:
                if connection is None:
                    connection = http.client.HTTPSConnection(
                        self.address, self.port, context=self.context, timeout=self.timeout
                    )
                connection.request("GET", PATH)
                reply = connection.getresponse()
                reply.read()
                if reply.status != 200:
                    raise OSError(f"HTTP {reply.status}")
                self.answers.append(time.monotonic())
            except (OSError, http.client.HTTPException):
                self.failures += 1
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()

    def stall(self, since: float) -> float:
        """The longest time between two answers, from ``since``."""
        times = [moment for moment in self.answers if moment >= since]
        return max((later - earlier for earlier, later in itertools.pairwise(times)), default=0.0)


def failover(clients: list[Client], vips: set[str]) -> tuple[str, float, float]:
    """Kill the holder's keepalived; who held the VIPs, and each client's stall."""
    old = wait(lambda: holder(vips), 30, "no gateway holds both VIPs")
    new = next(gateway for gateway in GATEWAYS if gateway != old)
    since = time.monotonic()
    time.sleep(1)
    killed = time.monotonic()
    on(old, "systemctl kill --signal=SIGKILL keepalived")
    wait(lambda: holder(vips) == new, 15, f"the VIPs did not reach {new}")
    wait(
        lambda: all(client.answers and client.answers[-1] > killed + 1 for client in clients),
        30,
        "a client did not answer again after the failover",
    )
    # The killed keepalived is back, as backup, before the next failover.
    wait(
        lambda: on(old, "systemctl is-active keepalived || true").strip() == "active",
        30,
        f"keepalived on {old} did not start again",
        interval=0.5,
    )
    time.sleep(2)
    public, private = (client.stall(since) for client in clients)
    return old, public, private


def one_run(failovers: int, timeout: float) -> dict:
    lab("down")
    lab("up", "--no-converge")
    converge_s, converge_kubernetes_s = orchestrate()
    noop_s, noop_kubernetes_s = orchestrate()
    topology = load_lab().topology
    vips = {topology["networks"][net]["vip"] for net in ("public", "private")}
    port = topology["gateway"]["api_port"]
    stalls = {"public": [], "private": []}
    with tempfile.TemporaryDirectory() as scratch:
        context = client_context(Path(scratch))
        clients = [
            Client(topology["networks"][net]["vip"], port, context, timeout)
            for net in ("public", "private")
        ]
        for client in clients:
            client.start()
        try:
            for index in range(failovers):
                old, public, private = failover(clients, vips)
                stalls["public"].append(public)
                stalls["private"].append(private)
                print(
                    f"  failover {index + 1}/{failovers} from {old}: API stall "
                    f"{public:.3f} s (public VIP), {private:.3f} s (private VIP)",
                    flush=True,
                )
        finally:
            for client in clients:
                client.stopping.set()
            for client in clients:
                client.join(timeout=10)
    return {
        "converge_s": converge_s,
        "converge_kubernetes_s": converge_kubernetes_s,
        "noop_s": noop_s,
        "noop_kubernetes_s": noop_kubernetes_s,
        "stall_public_s": statistics.median(stalls["public"]),
        "stall_private_s": statistics.median(stalls["private"]),
        "stalls_public_s": stalls["public"],
        "stalls_private_s": stalls["private"],
    }


def scaled(workers: int, one_worker: dict) -> dict:
    """orch.cluster from nothing on the workers<N> variant, against one worker's figures."""
    lab("down")
    lab("up", "--variant", f"workers{workers}", "--no-converge")
    converge_s, kubernetes_s = orchestrate()
    extra = workers - 1
    return {
        f"converge_{workers}_s": converge_s,
        f"converge_kubernetes_{workers}_s": kubernetes_s,
        f"per_extra_worker_{workers}_s": (converge_s - one_worker["converge_s"]) / extra,
        f"per_extra_worker_kubernetes_{workers}_s": (
            kubernetes_s - one_worker["converge_kubernetes_s"]
        )
        / extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--failovers", type=int, default=5)
    parser.add_argument(
        "--timeout", type=float, default=0.25, help="each API request's timeout, in seconds"
    )
    parser.add_argument(
        "--workers", type=int, nargs="*", default=[], help="worker counts (workers<N> variants)"
    )
    args = parser.parse_args()
    lab("up", "--no-converge")  # builds the image if its recipe changed: not measured
    if args.runs:
        runs = []
        try:
            for index in range(args.runs):
                runs.append(one_run(args.failovers, args.timeout))
                print(f"run {index + 1}/{args.runs}: {runs[-1]}", flush=True)
        finally:
            lab("down")
        report("kubernetes", labels(args.timeout), runs, digits=2)
    if args.workers:
        # One worker's figures: the runs above, or the last bench.kubernetes's.
        one_worker = json.loads(RESULTS.read_text())["median"]
        scaling = {}
        try:
            for workers in args.workers:
                scaling.update(scaled(workers, one_worker))
                print(f"{workers} workers: {scaling}", flush=True)
        finally:
            lab("down")
        report("kubernetes_workers", worker_labels(args.workers), [scaling], digits=2)


def labels(timeout: float) -> dict:
    return {
        "converge_s": "orch.cluster from nothing, with Kubernetes",
        "converge_kubernetes_s": "  of which its Kubernetes steps",
        "noop_s": "orch.cluster no-op re-run",
        "noop_kubernetes_s": "  of which its Kubernetes steps",
        "stall_public_s": f"API stall, hard failover, public VIP ({timeout} s tries)",
        "stall_private_s": f"API stall, hard failover, private VIP ({timeout} s tries)",
    }


def worker_labels(counts: list[int]) -> dict:
    found = {}
    for workers in counts:
        found.update(
            {
                f"converge_{workers}_s": f"orch.cluster from nothing, {workers} workers",
                f"converge_kubernetes_{workers}_s": "  of which its Kubernetes steps",
                f"per_extra_worker_{workers}_s": "  each worker beyond the first",
                f"per_extra_worker_kubernetes_{workers}_s": "  of that, Kubernetes steps",
            }
        )
    return found


if __name__ == "__main__":
    main()
