"""
The apiserver double's HTTP side: TLS per connection, the routing of a path to a
resource (k8s.io/apiserver's RequestInfoFactory), discovery (``/api``, ``/apis``), the
health endpoints, ``/version``, and the handler that authenticates, authorizes and runs
a verb on the registry, answering a Status object when it fails.

Part of the lab's kube-apiserver double (kube_apiserver.py); never imported by product code.
"""

from __future__ import annotations

import json
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

try:
    from lab.kube import apiserver_api, apiserver_auth, apiserver_etcd, kube_common
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import apiserver_api  # type: ignore[no-redef]
    import apiserver_auth  # type: ignore[no-redef]
    import apiserver_etcd  # type: ignore[no-redef]
    import kube_common  # type: ignore[no-redef]


def route(path: str) -> tuple[apiserver_api.Resource, str | None, str | None, str | None] | None:
    """(resource, namespace, name, subresource) for a resource path, or None."""
    parts = [part for part in path.split("/") if part]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if (
        len(rest) >= 3
        and rest[0] == "namespaces"
        and (group, version, rest[2]) in apiserver_api.BY_PATH
        and apiserver_api.BY_PATH[(group, version, rest[2])].namespaced
    ):
        namespace, rest = rest[1], rest[2:]
    if not rest or (group, version, rest[0]) not in apiserver_api.BY_PATH or len(rest) > 3:
        return None
    resource = apiserver_api.BY_PATH[(group, version, rest[0])]
    if resource.namespaced and namespace is None and len(rest) > 1:
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if subresource not in (None, "status") or (subresource and not resource.has_status):
        return None
    return resource, namespace, name, subresource


def discovery(path: str) -> dict | None:
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    groups = sorted({(r.group, r.version) for r in apiserver_api.RESOURCES if r.group})
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{version}", "version": version}],
                    "preferredVersion": {"groupVersion": f"{group}/{version}", "version": version},
                }
                for group, version in groups
            ],
        }
    for group, version in [("", "v1"), *groups]:
        prefix = f"/apis/{group}/{version}" if group else "/api/v1"
        if path == prefix:
            verbs = ["create", "delete", "get", "list", "patch", "update"]
            resources = []
            for r in apiserver_api.RESOURCES:
                if (r.group, r.version) != (group, version):
                    continue
                resources.append(
                    {
                        "name": r.plural,
                        "singularName": r.kind.lower(),
                        "namespaced": r.namespaced,
                        "kind": r.kind,
                        "verbs": verbs,
                    }
                )
                if r.has_status:
                    resources.append(
                        {
                            "name": f"{r.plural}/status",
                            "singularName": "",
                            "namespaced": r.namespaced,
                            "kind": r.kind,
                            "verbs": ["get", "patch", "update"],
                        }
                    )
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else "v1",
                "resources": resources,
            }
    return None


VERSION = kube_common.version_info("0000000000000000000000000000000000000000")
HEALTH_PATHS = {"/livez": "livez", "/readyz": "readyz", "/healthz": "healthz"}
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


class TLSServer(ThreadingHTTPServer):
    """TLS per connection, in the connection's own thread (as lab/files/standin.py); its
    ``api`` is the process's kube_apiserver.ApiServer."""

    daemon_threads = True
    context: ssl.SSLContext

    def finish_request(self, request, client_address):
        request.settimeout(10)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            return
        tls.settimeout(None)
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TLSServer

    def do_GET(self):
        self.serve("GET")

    def do_POST(self):
        self.serve("POST")

    def do_PUT(self):
        self.serve("PUT")

    def do_PATCH(self):
        self.serve("PATCH")

    def do_DELETE(self):
        self.serve("DELETE")

    def log_message(self, *args):
        pass

    def reply(self, code: int, body, content_type: str = "application/json") -> None:
        data = (json.dumps(body) if content_type == "application/json" else body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as error:
            raise apiserver_api.bad_request(
                f"the body of the request could not be decoded: {error}"
            ) from error

    def serve(self, method: str) -> None:
        api = self.server.api
        url = urlsplit(self.path)
        path, query = url.path.rstrip("/") or "/", parse_qs(url.query, keep_blank_values=True)
        try:
            peer = self.connection.getpeercert(binary_form=True)
            user = api.authenticator.authenticate(peer, self.headers.get("Authorization"))
            if path in HEALTH_PATHS and method == "GET":
                self.health(HEALTH_PATHS[path], "verbose" in query)
                return
            if path == "/version" and method == "GET":
                self.reply(200, VERSION)
                return
            found = discovery(path) if method == "GET" else None
            if found is not None:
                if user.anonymous:
                    raise apiserver_api.ApiError(
                        403, "Forbidden", f'forbidden: User "{user.name}" cannot get path "{path}"'
                    )
                self.reply(200, found)
                return
            routed = route(path)
            if routed is None:
                self.reply(404, "404 page not found\n", "text/plain; charset=utf-8")
                return
            self.resource(api, user, method, apiserver_api.Request("", *routed), query)
        except apiserver_api.ApiError as error:
            self.reply(error.code, error.status())
        except apiserver_etcd.EtcdUnavailable as error:
            self.reply(500, apiserver_api.ApiError(500, "InternalError", f"etcd: {error}").status())

    def resource(
        self,
        api,
        user: apiserver_api.User,
        method: str,
        request: apiserver_api.Request,
        query: dict,
    ) -> None:
        if method == "GET":
            if "watch" in query and query["watch"][0] in ("1", "true"):
                raise apiserver_api.ApiError(
                    405, "MethodNotAllowed", "the lab's apiserver double has no watch"
                )
            request.verb = "get" if request.name else "list"
        else:
            request.verb = VERBS[method]
        if (request.name is None) != (request.verb in ("list", "create")):
            raise apiserver_api.ApiError(
                405, "MethodNotAllowed", f"{method} is not allowed on {self.path}"
            )
        body = self.body() if method in ("POST", "PUT", "PATCH", "DELETE") else None
        if request.verb == "create" and isinstance(body, dict):
            request.name = (body.get("metadata") or {}).get("name")
        if not apiserver_auth.allowed(user, request):
            raise apiserver_auth.forbidden(user, request)
        if request.verb == "create":
            request.name = None
            self.reply(201, api.store.create(request, body or {}, user))
        elif request.verb == "get":
            self.reply(200, api.store.get(request))
        elif request.verb == "list":
            self.reply(200, api.store.list(request, query))
        elif request.verb == "update":
            self.reply(200, api.store.update(request, body or {}))
        elif request.verb == "patch":
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            self.reply(200, api.store.patch(request, content_type, body))
        else:
            self.reply(200, api.store.delete(request, body or {}))

    def health(self, endpoint: str, verbose: bool) -> None:
        checks = self.server.api.checks(endpoint)
        healthy = all(ok for _, ok in checks)
        if healthy and not verbose:
            self.reply(200, "ok", "text/plain; charset=utf-8")
            return
        lines = [
            f"[+]{name} ok" if ok else f"[-]{name} failed: reason withheld" for name, ok in checks
        ]
        lines.append(f"{endpoint} check passed" if healthy else f"{endpoint} check failed")
        self.reply(200 if healthy else 500, "\n".join(lines) + "\n", "text/plain; charset=utf-8")
