"""
The apiserver double's API shapes: the resources it serves (their group, version, kind,
scope and etcd directory, as pkg/registry lays them out), a request's resource, namespace,
name and subresource (k8s.io/apiserver's RequestInfo), the authenticated user
(user.Info), the Status errors every answer that fails carries
(k8s.io/apimachinery/pkg/api/errors) and its klog line.

Part of the lab's kube-apiserver double (kube_apiserver.py); never imported by product code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

try:
    from lab.kube import kube_common
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kube_common  # type: ignore[no-redef]


def log(level: str, message: str) -> None:
    """One klog line on stderr (journald keeps it for the kubelet's unit)."""
    kube_common.klog(level, "kube_apiserver.py", message)


@dataclass(frozen=True)
class Resource:
    plural: str
    kind: str
    group: str
    version: str
    namespaced: bool
    storage: str  # the resource's directory under --etcd-prefix
    has_status: bool = False
    # Update creates a missing object (the registry strategy's AllowCreateOnUpdate).
    create_on_update: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES = [
    Resource("namespaces", "Namespace", "", "v1", False, "namespaces", has_status=True),
    Resource("nodes", "Node", "", "v1", False, "minions", has_status=True),
    Resource("configmaps", "ConfigMap", "", "v1", True, "configmaps"),
    Resource("secrets", "Secret", "", "v1", True, "secrets"),
    Resource("leases", "Lease", "coordination.k8s.io", "v1", True, "leases", create_on_update=True),
    Resource(
        "certificatesigningrequests",
        "CertificateSigningRequest",
        "certificates.k8s.io",
        "v1",
        False,
        "certificatesigningrequests",
        has_status=True,
    ),
]
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}


class ApiError(Exception):
    """An error the API answers with a Status object."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def details(resource: Resource, name: str) -> dict:
    details = {"name": name, "kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    return details


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource.qualified()} "{name}" not found', details(resource, name)
    )


def conflict(resource: Resource, name: str) -> ApiError:
    # staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go's OptimisticLockErrorMsg
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource.qualified()} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        details(resource, name),
    )


def invalid(resource: Resource, name: str, message: str) -> ApiError:
    return ApiError(
        422,
        "Invalid",
        f'{resource.kind} "{name}" is invalid: {message}',
        details(resource, name),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


@dataclass
class User:
    name: str
    groups: list[str] = field(default_factory=list)
    uid: str = ""

    @property
    def anonymous(self) -> bool:
        return self.name == "system:anonymous"


ANONYMOUS = User("system:anonymous", ["system:unauthenticated"])


@dataclass
class Request:
    verb: str
    resource: Resource
    namespace: str | None
    name: str | None
    subresource: str | None
