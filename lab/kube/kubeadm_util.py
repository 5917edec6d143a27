"""
What every part of the kubeadm double uses: the node it works on (--rootfs), kubeadm's
errors (cmd/kubeadm/app/util/errors, the phase runner's wrapping in
cmd/kubeadm/app/cmd/phases/workflow), client-go's API errors as kubeadm prints them, its
output (stdout lines, klog warnings, apimachinery's ShortHumanDuration, tables), Go's
durations (time.ParseDuration, Duration.String) and the endpoints
(cmd/kubeadm/app/util/endpoint.go).

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import Path

try:
    from lab.kube import kube_common, kubeadm_api
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kube_common  # type: ignore[no-redef]
    import kubeadm_api  # type: ignore[no-redef]


def warn(message: str, source: str = "initconfiguration.go:321") -> None:
    """A klog warning line on stderr, as kubeadm prints its non-fatal findings."""
    kube_common.klog("W", source, message)


def parse_duration(text: str) -> float:
    """time.ParseDuration, in seconds."""
    if text in ("0", ""):
        return 0.0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    sign = -1 if text.startswith("-") else 1
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text):
        total += float(number) * units[unit]
    return sign * total


def format_duration(seconds: float) -> str:
    """time.Duration.String() for whole seconds."""
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def parse_host_port(endpoint: str) -> tuple[str, str]:
    """kubeadmutil.ParseHostPort (util/endpoint.go), with its errors."""
    match = re.match(r"^\[([^\]]+)\]:(\d*)$", endpoint) or re.match(r"^([^:]*):([^:]*)$", endpoint)
    host, port = (match.group(1), match.group(2)) if match else (endpoint, "")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(
            f"hostport {endpoint}: port {port} must be a valid number between 1 and 65535, "
            "inclusive"
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if kubeadm_api.dns1123_errors(host):
            raise ValueError(
                f"hostport {endpoint}: host '{host}' must be a valid IP address or a valid "
                "RFC-1123 DNS subdomain"
            ) from None
    return host, port


def join_host_port(host: str, port) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Node:
    """The node the double works on: "" is this machine, --rootfs a folder standing for it."""

    rootfs = ""


def host(path: str) -> Path:
    """A path on the node, under --rootfs when given."""
    return Path(Node.rootfs + path) if Node.rootfs else Path(path)


class KubeadmError(Exception):
    """What kubeadm prints after "error: " before it exits 1."""


def phase_error(phase: str, message) -> KubeadmError:
    """workflow.Runner's wrapping of a failed phase."""
    return KubeadmError(f"error execution phase {phase}: {message}")


def say(message: str = "") -> None:
    print(message, flush=True)


class ApiError(Exception):
    """A non-2xx answer; str() is the Status message, as client-go's errors read."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code = code
        self.reason = reason


def local_endpoint(init: dict) -> str:
    endpoint = init["localAPIEndpoint"]
    return "https://" + join_host_port(endpoint["advertiseAddress"], endpoint["bindPort"])


def cluster_endpoint(init: dict, cluster: dict) -> str:
    if cluster["controlPlaneEndpoint"]:
        return "https://" + cluster["controlPlaneEndpoint"]
    return local_endpoint(init)


def since(start: float) -> str:
    elapsed = time.monotonic() - start
    return f"{elapsed * 1000:.3f}ms" if elapsed < 1 else f"{elapsed:.9f}s"


def skipped(phase: str, skip: list[str]) -> bool:
    return any(phase == item or phase.startswith(item + "/") for item in skip)


def run_phase(phase: str, action):
    try:
        return action()
    except ApiError as err:
        raise phase_error(phase, err) from None
    except KubeadmError as err:
        raise phase_error(phase, err) from None


def short_human_duration(seconds: float) -> str:
    """duration.ShortHumanDuration."""
    seconds = int(seconds)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    if seconds < 86400 * 365:
        return f"{seconds // 86400}d"
    return f"{seconds // (86400 * 365)}y"


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        say("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
