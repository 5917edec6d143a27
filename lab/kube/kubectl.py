"""
The lab's kubectl double, deliberately minimal: what an operator or a test types on a
lab machine to look at the cluster, not kubectl.

    kubectl [--kubeconfig F] get nodes [-o json]
    kubectl [--kubeconfig F] get --raw /readyz
    kubectl [--kubeconfig F] [-n NAMESPACE] delete secret NAME [--ignore-not-found]
    kubectl version [--client] -o json

The kubeconfig is --kubeconfig, else $KUBECONFIG, else ~/.kube/config (kubectl's order).
Anything else is refused with kubectl's "unknown command" error and exit 1.
Test double of the lab (never imported by product code): python3 and python3-yaml only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml

try:
    from lab.kube import kube_common
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kube_common  # type: ignore[no-redef]

# Not a real build: the double says so where a build would name its commit.
VERSION = kube_common.version_info("paas-lab-kubectl-double")


class KubectlError(Exception):
    pass


def _kubeconfig_path(flag: str) -> Path:
    if flag:
        return Path(flag)
    if os.environ.get("KUBECONFIG"):
        return Path(os.environ["KUBECONFIG"].split(":")[0])
    return Path.home() / ".kube" / "config"


def _connection(path: Path) -> tuple[str, ssl.SSLContext, dict]:
    """The current context's server, a TLS context with its CA and client certificate."""
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as err:
        raise KubectlError(
            f"stat {path}: {(err.strerror or '').lower()}" if not path.exists() else str(err)
        ) from None
    cluster, user = kube_common.current_cluster_and_user(config)
    tls = kube_common.client_context(
        kube_common.kubeconfig_pem(cluster, "certificate-authority-data", "certificate-authority"),
        kube_common.kubeconfig_pem(user, "client-certificate-data", "client-certificate"),
        kube_common.kubeconfig_pem(user, "client-key-data", "client-key"),
    )
    headers = {"Accept": "application/json"}
    if user.get("token"):
        headers["Authorization"] = f"Bearer {user['token']}"
    return cluster.get("server", "").rstrip("/"), tls, headers


def _get(kubeconfig: str, path: str, method: str = "GET") -> bytes:
    server, tls, headers = _connection(_kubeconfig_path(kubeconfig))
    request = urllib.request.Request(server + path, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, context=tls, timeout=30) as answer:
            return answer.read()
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            message = json.loads(body).get("message", "")
        except ValueError:
            message = body.decode(errors="replace").strip()
        raise KubectlError(
            f"Error from server ({err.reason.replace(' ', '')}): {message}"
        ) from None
    except (urllib.error.URLError, OSError) as err:
        host = server.removeprefix("https://")
        raise KubectlError(
            f"The connection to the server {host} was refused - did you specify the right "
            f"host or port? ({getattr(err, 'reason', err)})"
        ) from None


def _age(timestamp: str) -> str:
    if not timestamp:
        return "<unknown>"
    created = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC
    )
    seconds = int((datetime.datetime.now(datetime.UTC) - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _node_row(node: dict) -> list[str]:
    metadata, status = node.get("metadata", {}), node.get("status", {})
    ready = "Unknown"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            ready = "Ready" if condition.get("status") == "True" else "NotReady"
    roles = sorted(
        label.split("/", 1)[1]
        for label in metadata.get("labels") or {}
        if label.startswith("node-role.kubernetes.io/")
    )
    version = (status.get("nodeInfo") or {}).get("kubeletVersion", "")
    return [
        metadata.get("name", ""),
        ready,
        ",".join(roles) or "<none>",
        _age(metadata.get("creationTimestamp", "")),
        version,
    ]


def get(options) -> None:
    if options.raw:
        sys.stdout.write(_get(options.kubeconfig, options.raw).decode())
        return
    if options.resource not in ("nodes", "node", "no"):
        raise KubectlError(
            f"the server doesn't have a resource type \"{options.resource}\" (the lab's "
            "kubectl double knows only nodes)"
        )
    listing = json.loads(_get(options.kubeconfig, "/api/v1/nodes"))
    if options.output == "json":
        print(json.dumps(listing, indent=4))
        return
    rows = [["NAME", "STATUS", "ROLES", "AGE", "VERSION"]]
    rows += [_node_row(node) for node in listing.get("items") or []]
    if len(rows) == 1:
        sys.stderr.write("No resources found\n")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def delete(options) -> None:
    """kubectl delete secret: what the platform runs to remove the kubeadm-certs Secret."""
    if options.resource not in ("secret", "secrets") or not options.name:
        raise KubectlError("the lab's kubectl double deletes only a secret by name")
    path = f"/api/v1/namespaces/{options.namespace}/secrets/{options.name}"
    try:
        _get(options.kubeconfig, path, method="DELETE")
    except KubectlError as err:
        if options.ignore_not_found and "(NotFound)" in str(err):
            return
        raise
    print(f'secret "{options.name}" deleted')


def version(options) -> None:
    if options.output == "json":
        print(json.dumps({"clientVersion": VERSION, "kustomizeVersion": "v5.7.1"}, indent=2))
    else:
        print(f"Client Version: {VERSION['gitVersion']}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise KubectlError(message)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="kubectl", allow_abbrev=False)
    parser.add_argument("--kubeconfig", default="")
    parser.add_argument("-n", "--namespace", default="default")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    get_command = commands.add_parser("get", allow_abbrev=False)
    get_command.add_argument("resource", nargs="?", default="")
    get_command.add_argument("--raw", default="")
    get_command.add_argument("-o", "--output", default="")
    get_command.add_argument("--kubeconfig", default=argparse.SUPPRESS)
    delete_command = commands.add_parser("delete", allow_abbrev=False)
    delete_command.add_argument("resource")
    delete_command.add_argument("name", nargs="?", default="")
    delete_command.add_argument("--ignore-not-found", action="store_true")
    delete_command.add_argument("--kubeconfig", default=argparse.SUPPRESS)
    delete_command.add_argument("-n", "--namespace", default=argparse.SUPPRESS)
    version_command = commands.add_parser("version", allow_abbrev=False)
    version_command.add_argument("--client", action="store_true")
    version_command.add_argument("-o", "--output", default="")
    try:
        options = parser.parse_args(argv)
        if options.command == "get":
            get(options)
        elif options.command == "delete":
            delete(options)
        elif options.command == "version":
            version(options)
        else:
            raise KubectlError(
                f'unknown command "{options.command}" for "kubectl" (the lab\'s kubectl double '
                "knows get nodes, get --raw, delete secret and version)"
            )
    except KubectlError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
