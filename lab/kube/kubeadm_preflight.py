"""
The kubeadm double's preflight checks (cmd/kubeadm/app/preflight/checks.go): their
names, what each refuses or warns about, and RunChecks' output.

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

try:
    from lab.kube import kubeadm_api, kubeadm_constants, kubeadm_kubelet, kubeadm_util
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kubeadm_api  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_kubelet  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


def check_file_available(path: str):
    def check():
        return ([], [f"{path} already exists"]) if kubeadm_util.host(path).exists() else ([], [])

    return f"FileAvailable-{path.replace('/', '-')}", check


def _check_file_existing(path: str, label: str):
    def check():
        return ([], []) if kubeadm_util.host(path).exists() else ([], [f"{path} doesn't exist"])

    return label, check


def _check_port(port: int):
    def check():
        # net.Listen("tcp", ":port") listens on both families where IPv6 exists.
        try:
            probe = socket.socket(socket.AF_INET6)
        except OSError:
            probe = socket.socket(socket.AF_INET)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("", port))
        except OSError:
            return [], [f"Port {port} is in use"]
        finally:
            probe.close()
        return [], []

    return f"Port-{port}", check


def check_privileged():
    def check():
        return ([], []) if os.geteuid() == 0 else ([], ["user is not running as root"])

    return "IsPrivilegedUser", check


def _check_cri(socket_url: str):
    def check():
        path = socket_url.removeprefix("unix://")
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.settimeout(2)
            probe.connect(str(kubeadm_util.host(path)))
        except OSError as err:
            return [], [
                f"container runtime is not running: output: , error: validate service "
                f'connection: validate CRI v1 runtime API for endpoint "{socket_url}": '
                f"rpc error: code = Unavailable desc = connection error: desc = "
                f'"transport: Error while dialing: dial unix {path}: connect: '
                f'{(err.strerror or str(err)).lower()}"'
            ]
        finally:
            probe.close()
        return [], []

    return "CRI", check


def _check_swap():
    def check():
        try:
            lines = Path("/proc/swaps").read_text().splitlines()
        except OSError:
            return [], []
        if len(lines) > 1:
            return [
                "swap is supported for cgroup v2 only. The kubelet must be properly "
                "configured to use swap. Please refer to https://kubernetes.io/docs/concepts/"
                "architecture/nodes/#swap-memory, or disable swap on the node"
            ], []
        return [], []

    return "Swap", check


def _check_kubelet_service():
    def check():
        systemctl = kubeadm_kubelet.find_systemctl()
        if systemctl is None or kubeadm_util.Node.rootfs:
            return [], []
        enabled = subprocess.run(
            [systemctl, "is-enabled", "kubelet"], check=False, capture_output=True, text=True
        )
        if enabled.stdout.strip() != "enabled":
            return [
                "kubelet service is not enabled, please run 'systemctl enable kubelet.service'"
            ], []
        return [], []

    return "Service-Kubelet", check


def _check_num_cpu():
    def check():
        count = len(os.sched_getaffinity(0))
        if count < kubeadm_constants.CONTROL_PLANE_NUM_CPU:
            return [], [
                f"the number of available CPUs {count} is less than the required "
                f"{kubeadm_constants.CONTROL_PLANE_NUM_CPU}"
            ]
        return [], []

    return "NumCPU", check


def _check_mem():
    def check():
        total_kb = 0
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                total_kb = int(line.split()[1])
        megabytes = total_kb // 1024
        if megabytes < kubeadm_constants.CONTROL_PLANE_MEM_MB:
            return [], [
                f"the system RAM ({megabytes} MB) is less than the minimum "
                f"{kubeadm_constants.CONTROL_PLANE_MEM_MB} MB"
            ]
        return [], []

    return "Mem", check


def _check_kubernetes_version(version: str):
    def check():
        major, minor = (int(part) for part in version.lstrip("v").split(".")[:2])
        if (major, minor) > (1, 34):
            return [
                f"Kubernetes version is greater than kubeadm version. Please consider to "
                f"upgrade kubeadm. Kubernetes version: {version.lstrip('v')}. Kubeadm "
                "version: 1.34.x"
            ], []
        return [], []

    return "KubernetesVersion", check


def _semver(text: str) -> tuple:
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?", text)
    if not match:
        raise ValueError(text)
    pre = match.group(4)
    # A pre-release sorts before the release it names (semver 11).
    return (int(match.group(1)), int(match.group(2)), int(match.group(3)), pre is None, pre or "")


def _check_external_etcd_version(external: dict):
    """ExternalEtcdVersionCheck: GET <endpoint>/version with the configured client files."""

    def check():
        errors = []
        context = ssl.create_default_context()
        if external.get("caFile"):
            try:
                context = ssl.create_default_context(
                    cafile=str(kubeadm_util.host(external["caFile"]))
                )
            except (OSError, ssl.SSLError) as err:
                return [], [
                    f"couldn't load external etcd's server certificate {external['caFile']}: {err}"
                ]
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if external.get("certFile") and external.get("keyFile"):
            try:
                context.load_cert_chain(
                    str(kubeadm_util.host(external["certFile"])),
                    str(kubeadm_util.host(external["keyFile"])),
                )
            except (OSError, ssl.SSLError) as err:
                return [], [
                    f"couldn't load external etcd's certificate and key pair "
                    f"{external['certFile']}, {external['keyFile']}: {err}"
                ]
        minimum = _semver(kubeadm_constants.MIN_EXTERNAL_ETCD_VERSION)
        for endpoint in external.get("endpoints") or []:
            url = re.sub(r"(?<!:)//", "/", f"{endpoint}/version")
            try:
                body = _etcd_version_response(url, context)
                server_version = body.get("etcdserver", "")
            except (OSError, ValueError, urllib.error.URLError) as err:
                errors.append(f'Get "{url}": {getattr(err, "reason", err)}')
                continue
            try:
                parsed = _semver(server_version)
            except ValueError:
                errors.append(
                    f'couldn\'t parse external etcd version "{server_version}": '
                    f'could not parse "{server_version}" as version'
                )
                continue
            if parsed < minimum:
                errors.append(
                    "this version of kubeadm only supports external etcd version >= "
                    f"{kubeadm_constants.MIN_EXTERNAL_ETCD_VERSION}. "
                    f"Current version: {server_version}"
                )
        return [], errors

    return "ExternalEtcdVersion", check


def _etcd_version_response(url: str, context) -> dict:
    """getEtcdVersionResponse: up to 3 retries 5 s apart on connection errors and 5xx."""
    last = None
    for attempt in range(4):
        if attempt:
            time.sleep(5)
        try:
            with urllib.request.urlopen(url, context=context, timeout=10) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as err:
            if 500 <= err.code <= 599:
                last = OSError(
                    f"server responded with non-successful status: {err.code} {err.reason}"
                )
                continue
            return json.loads(err.read() or b"{}")
        except (urllib.error.URLError, OSError) as err:
            last = err
    raise last


def run_checks(checks: list[tuple], ignore: set[str]) -> None:
    """preflight.RunChecks: warnings as they come, errors together at the end."""
    errors = []
    for name, check in checks:
        warnings, failures = check()
        if "all" in ignore or name.lower() in ignore:
            warnings, failures = warnings + failures, []
        for warning in warnings:
            sys.stderr.write(f"\t[WARNING {name}]: {warning}\n")
        errors += [f"\t[ERROR {name}]: {failure}\n" for failure in failures]
    if errors:
        sys.stderr.write(
            "[preflight] Some fatal errors occurred:\n"
            + "".join(errors)
            + "[preflight] If you know what you are doing, you can make a check "
            "non-fatal with `--ignore-preflight-errors=...`\n"
        )
        sys.stderr.flush()
        raise kubeadm_util.phase_error("preflight", "preflight checks failed")


def ignored_checks(from_cli: list[str], from_config: list[str]) -> set[str]:
    """validation.ValidateIgnorePreflightErrors."""
    ignore = {item.lower() for item in from_config + from_cli if item}
    if "all" in ignore and len(ignore) > 1:
        raise kubeadm_util.KubeadmError(
            kubeadm_api.invalid(
                "ignore-preflight-errors",
                ",".join(sorted(ignore)),
                "don't specify individual checks if 'all' is used",
            )
        )
    return ignore


def init_node_checks(init: dict, cluster: dict, secondary: bool, download_certs: bool) -> list:
    """InitNodeChecks."""
    checks = [
        _check_num_cpu(),
        _check_mem(),
        _check_kubernetes_version(cluster["kubernetesVersion"]),
        _check_port(int(init["localAPIEndpoint"]["bindPort"])),
        _check_port(10259),
        _check_port(10257),
    ]
    checks += [
        check_file_available(f"{kubeadm_constants.MANIFESTS_DIR}/{component}.yaml")
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
    ]
    external = cluster["etcd"].get("external")
    if not secondary:
        checks += common_checks(init["nodeRegistration"])
        if external is not None:
            checks.append(_check_external_etcd_version(external))
    if external is not None and not (secondary and download_certs):
        for key in ("caFile", "certFile", "keyFile"):
            if external.get(key):
                checks.append(_check_file_existing(external[key], "ExternalEtcdClientCertificates"))
    return checks


def common_checks(registration: dict) -> list:
    """addCommonChecks, the part that means something on the lab's machines."""
    return [
        _check_cri(registration["criSocket"]),
        _check_swap(),
        _check_kubelet_service(),
        _check_port(10250),
    ]
