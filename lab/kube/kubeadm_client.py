"""
The kubeadm double's API client: the part of client-go kubeadm uses (a kubeconfig's
credentials, JSON requests, Status errors, retries on connection errors) and kubeadm's
apiclient helpers (CreateOrUpdate, retries until the API call timeout), over urllib.

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.request

import yaml

try:
    from lab.kube import kube_common, kubeadm_constants, kubeadm_util
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kube_common  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


def load_kubeconfig(path: str) -> dict:
    """clientcmd.LoadFromFile for the current context: server, CA and credentials."""
    try:
        config = yaml.safe_load(kubeadm_util.host(path).read_text())
    except OSError as err:
        raise kubeadm_util.KubeadmError(
            f"failed to load admin kubeconfig: open {path}: {(err.strerror or '').lower()}"
        ) from err
    cluster, user = kube_common.current_cluster_and_user(config)
    return {"cluster": cluster, "user": user}


def pem_from(entry: dict, data_key: str, file_key: str) -> bytes | None:
    """A kubeconfig entry's PEM; a file it names is on the node (under --rootfs)."""
    return kube_common.kubeconfig_pem(entry, data_key, file_key, kubeadm_util.host)


class Client:
    """Just enough of client-go: JSON requests, Status errors, retries on connection errors."""

    def __init__(
        self,
        server: str,
        *,
        ca_pem: bytes | None = None,
        cert_pem: bytes | None = None,
        key_pem: bytes | None = None,
        token: str | None = None,
        insecure: bool = False,
    ):
        self.server = server.rstrip("/")
        self.token = token
        self.context = kube_common.client_context(ca_pem, cert_pem, key_pem, insecure=insecure)

    @classmethod
    def from_kubeconfig(cls, path: str) -> Client:
        config = load_kubeconfig(path)
        cluster, user = config["cluster"], config["user"]
        return cls(
            cluster["server"],
            ca_pem=pem_from(cluster, "certificate-authority-data", "certificate-authority"),
            cert_pem=pem_from(user, "client-certificate-data", "client-certificate"),
            key_pem=pem_from(user, "client-key-data", "client-key"),
            token=user.get("token"),
        )

    def request(
        self,
        method: str,
        path: str,
        body=None,
        *,
        content_type="application/json",
        retry_seconds: float = 10.0,
        timeout: float = 10.0,
    ):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "User-Agent": "kubeadm/v1.34.2 (linux/amd64)"}
        if data is not None:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        deadline = time.monotonic() + retry_seconds
        while True:
            request = urllib.request.Request(
                self.server + path, data=data, method=method, headers=headers
            )
            try:
                with urllib.request.urlopen(
                    request, context=self.context, timeout=timeout
                ) as answer:
                    raw = answer.read()
                    return json.loads(raw) if raw.strip().startswith(b"{") else raw.decode()
            except urllib.error.HTTPError as err:
                raise _api_error(err) from None
            except (urllib.error.URLError, OSError) as err:
                if time.monotonic() >= deadline:
                    reason = getattr(err, "reason", err)
                    raise kubeadm_util.ApiError(
                        0, "ConnectionError", f'{method} "{self.server}{path}": {reason}'
                    ) from err
                time.sleep(0.5)

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def create(self, collection: str, obj: dict):
        return self.request("POST", collection, obj)

    def create_or_update(self, collection: str, obj: dict):
        """apiclient.CreateOrUpdate*: create, and on AlreadyExists update over the current one."""
        name = obj["metadata"]["name"]
        try:
            return self.request("POST", collection, obj)
        except kubeadm_util.ApiError as err:
            if err.code == 404 and "namespaces" in str(err):
                self._ensure_namespace(collection)
                return self.request("POST", collection, obj)
            if err.code != 409:
                raise
        current = self.get(f"{collection}/{name}")
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion", "")
        return self.request("PUT", f"{collection}/{name}", obj)

    def _ensure_namespace(self, collection: str) -> None:
        # The real apiserver makes kube-system and kube-public itself; a double may not.
        namespace = collection.split("/namespaces/")[1].split("/", maxsplit=1)[0]
        try:
            self.create(
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            )
        except kubeadm_util.ApiError as err:
            if err.code != 409:
                raise

    def patch(self, path: str, patch: dict):
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(self, path: str):
        return self.request("DELETE", path)


def _api_error(err: urllib.error.HTTPError) -> kubeadm_util.ApiError:
    raw = err.read()
    try:
        status = json.loads(raw)
        return kubeadm_util.ApiError(
            err.code, status.get("reason", ""), status.get("message") or err.reason
        )
    except ValueError:
        text = raw.decode(errors="replace").strip()
        if err.code == 401:
            text = "Unauthorized"
        return kubeadm_util.ApiError(err.code, str(err.reason), text or str(err.reason))


def secret_path(namespace: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{base}/{name}" if name else base


def configmap_path(namespace: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base


def with_retries(what, timeout: float):
    """kubeadm's apiclient helpers: retry an API call until the API call timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return what()
        except kubeadm_util.ApiError as err:
            if err.code in (400, 401, 403, 404, 409, 422) or time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def admin_client(options) -> Client:
    return Client.from_kubeconfig(options.kubeconfig or kubeadm_constants.ADMIN_CONF)
