"""
What the lab's Kubernetes doubles share, as the real programs share k8s.io/component-base
and client-go: pflag's command-line forms, klog's line, the version.Info each binary
reports, base64 and RFC 3339 stamps as the API writes them, and a kubeconfig's current
cluster and user with the TLS client context they make (client-go's clientcmd and
transport).

Test double of the lab (never imported by product code). Each package installs it beside
its programs in /usr/lib/paas-lab-kube/<package>/. Standard library only.
"""

from __future__ import annotations

import base64
import ctypes
import datetime
import os
import ssl
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

KUBERNETES_VERSION = "v1.34.2"


# linux/prctl.h
PR_SET_NAME = 15


def parse_flags(argv: list[str]) -> dict[str, str]:
    """pflag's forms: ``--name=value``, ``--name value`` and a bare boolean ``--name``."""
    flags: dict[str, str] = {}
    index = 0
    while index < len(argv):
        argument = argv[index]
        index += 1
        if not argument.startswith("-"):
            continue
        name = argument.lstrip("-")
        if "=" in name:
            name, value = name.split("=", 1)
        elif index < len(argv) and not argv[index].startswith("-"):
            value = argv[index]
            index += 1
        else:
            value = "true"
        flags[name] = value
    return flags


def klog(severity: str, source: str, message: str) -> None:
    """One klog line on stderr (``I``, ``W`` or ``E``, the time, the pid, the source)."""
    stamp = datetime.datetime.now().strftime("%m%d %H:%M:%S.%f")
    sys.stderr.write(f"{severity}{stamp} {os.getpid():>7} {source}] {message}\n")
    sys.stderr.flush()


def run(main: Callable[[list[str]], None], source: str, name: str | None = None) -> None:
    """Run a component's ``main`` on the command line, under the real component's process
    ``name`` when given (its /proc/<pid>/comm, which ps, ss and the platform's preflight
    read; the real binary's name is its own): a SystemExit with a message is logged as
    the real components log a failed command, then exits 1."""
    if name:
        set_process_name(name)
    try:
        main(sys.argv[1:])
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            klog("E", source, f'"command failed" err="{exit_.code}"')
            sys.exit(1)
        raise


def set_process_name(name: str) -> None:
    """This process's name (prctl PR_SET_NAME: /proc/self/comm, 15 bytes at most)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl(PR_SET_NAME, {name!r})")


def version_info(git_commit: str) -> dict[str, str]:
    """k8s.io/apimachinery's version.Info for 1.34.2, built where ``git_commit`` says."""
    return {
        "major": "1",
        "minor": "34",
        "emulationMajor": "1",
        "emulationMinor": "34",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "33",
        "gitVersion": KUBERNETES_VERSION,
        "gitCommit": git_commit,
        "gitTreeState": "clean",
        "buildDate": "2025-11-11T00:00:00Z",
        "goVersion": "go1.24.9",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def b64(data: str | bytes) -> str:
    """The base64 text of a Secret's or a kubeconfig's data."""
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def now_rfc3339(micro: bool = False) -> str:
    """The time now as metav1.Time (seconds) or metav1.MicroTime writes it."""
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def current_cluster_and_user(kubeconfig: dict) -> tuple[dict, dict]:
    """The cluster and user of a kubeconfig's current context; without one, its first."""
    contexts = {c["name"]: c["context"] for c in kubeconfig.get("contexts") or []}
    context = contexts.get(kubeconfig.get("current-context"), {})
    clusters = {c["name"]: c["cluster"] for c in kubeconfig.get("clusters") or []}
    users = {u["name"]: u.get("user") or {} for u in kubeconfig.get("users") or []}
    cluster = clusters.get(context.get("cluster")) or next(iter(clusters.values()), {})
    user = users.get(context.get("user")) or next(iter(users.values()), {})
    return cluster, user


def kubeconfig_pem(
    entry: dict, data_key: str, file_key: str, path: Callable[[str], Path] = Path
) -> bytes | None:
    """A PEM a kubeconfig's cluster or user holds inline (``data_key``, base64) or names as
    a file (``file_key``, found through ``path``); None when it has neither."""
    if entry.get(data_key):
        return base64.b64decode(entry[data_key])
    if entry.get(file_key):
        return path(entry[file_key]).read_bytes()
    return None


def client_context(
    ca_pem: bytes | None = None,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    *,
    insecure: bool = False,
) -> ssl.SSLContext:
    """A TLS client context: the server checked against ``ca_pem`` (the system's CAs
    without it, nothing when ``insecure``), the client certificate and key presented."""
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_pem:
        context = ssl.create_default_context(cadata=ca_pem.decode())
    if cert_pem and key_pem:
        # ssl loads a certificate and key from files only; these live as long as the load.
        with tempfile.TemporaryDirectory(prefix="kube-client-") as directory:
            cert_file, key_file = Path(directory, "client.crt"), Path(directory, "client.key")
            for file, data in ((cert_file, cert_pem), (key_file, key_pem)):
                descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as output:
                    output.write(data)
            context.load_cert_chain(cert_file, key_file)
    return context
