"""
The apiserver double's registry: the generic store's verbs over etcd
(staging/src/k8s.io/apiserver/pkg/registry/generic/registry/store.go: create, get, list,
GuaranteedUpdate, delete with preconditions), what each resource's strategy adds (names,
defaults, a Node's status kept apart, pkg/registry/core/node/strategy.go; a CSR's
requester, pkg/registry/certificates), and label and field selectors
(k8s.io/apimachinery/pkg/labels, fields).

Part of the lab's kube-apiserver double (kube_apiserver.py); never imported by product code.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import uuid
from collections.abc import Callable

from cryptography import x509

try:
    from lab.kube import (
        apiserver_api,
        apiserver_etcd,
        apiserver_patch,
        apiserver_signer,
        kube_common,
    )
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import apiserver_api  # type: ignore[no-redef]
    import apiserver_etcd  # type: ignore[no-redef]
    import apiserver_patch  # type: ignore[no-redef]
    import apiserver_signer  # type: ignore[no-redef]
    import kube_common  # type: ignore[no-redef]


UNDELETABLE_NAMESPACES = ("default", "kube-system", "kube-public")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# apimachinery's names generator (staging/src/k8s.io/apiserver/pkg/storage/names).
GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class Store:
    """The generic store over etcd, for every resource the double serves, with what each
    resource's strategy adds; a CSR is approved and signed as it is created, the approver's
    SubjectAccessReview answered by ``subject_access_review(user, subresource)``."""

    def __init__(
        self,
        etcd: apiserver_etcd.Etcd,
        prefix: str,
        signer: apiserver_signer.Signer,
        subject_access_review: Callable[[apiserver_api.User, str], bool],
    ) -> None:
        self.etcd, self.prefix, self.signer = etcd, prefix, signer
        self.subject_access_review = subject_access_review

    def key(self, resource: apiserver_api.Resource, namespace: str | None, name: str) -> str:
        if resource.namespaced:
            return f"{self.prefix}/{resource.storage}/{namespace}/{name}"
        return f"{self.prefix}/{resource.storage}/{name}"

    def read(
        self, resource: apiserver_api.Resource, namespace: str | None, name: str
    ) -> tuple[dict, int]:
        stored = self.etcd.get(self.key(resource, namespace, name))
        if stored is None:
            raise apiserver_api.not_found(resource, name)
        return self.decode(stored[0], stored[1]), stored[1]

    @staticmethod
    def decode(value: bytes, revision: int) -> dict:
        obj = json.loads(value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
        return obj

    @staticmethod
    def encode(obj: dict) -> bytes:
        stored = copy.deepcopy(obj)
        stored.get("metadata", {}).pop("resourceVersion", None)
        return json.dumps(stored, separators=(",", ":")).encode()

    def get(self, request: apiserver_api.Request) -> dict:
        return self.read(request.resource, request.namespace, request.name)[0]

    def list(self, request: apiserver_api.Request, query: dict[str, list[str]]) -> dict:
        resource = request.resource
        prefix = f"{self.prefix}/{resource.storage}/"
        if resource.namespaced and request.namespace:
            prefix += f"{request.namespace}/"
        selector = label_selector(query.get("labelSelector", [""])[0])
        fields = field_selector(query.get("fieldSelector", [""])[0])
        kvs, revision = self.etcd.list(prefix)
        items = []
        for _, value, mod_revision in kvs:
            item = self.decode(value, mod_revision)
            if selector(item["metadata"].get("labels") or {}) and fields(item):
                item.pop("apiVersion", None)
                item.pop("kind", None)
                items.append(item)
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(revision)},
            "items": items,
        }

    def create(self, request: apiserver_api.Request, body: dict, user: apiserver_api.User) -> dict:
        resource = request.resource
        obj = self.admit_new(resource, request.namespace, body)
        name = obj["metadata"]["name"]
        if resource.plural == "certificatesigningrequests":
            self.prepare_csr(obj, user)
        if resource.namespaced:
            self.require_namespace(request.namespace)
        revision = self.etcd.create(self.key(resource, request.namespace, name), self.encode(obj))
        if revision is None:
            raise apiserver_api.ApiError(
                409,
                "AlreadyExists",
                f'{resource.qualified()} "{name}" already exists',
                apiserver_api.details(resource, name),
            )
        obj["metadata"]["resourceVersion"] = str(revision)
        return obj

    def admit_new(
        self, resource: apiserver_api.Resource, namespace: str | None, body: dict
    ) -> dict:
        obj = copy.deepcopy(body)
        self.check_type(resource, obj)
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):
            suffix = "".join(secrets.choice(GENERATE_ALPHABET) for _ in range(5))
            metadata["name"] = metadata["generateName"] + suffix
        name = metadata.get("name", "")
        self.validate_name(resource, name)
        if resource.namespaced:
            if metadata.get("namespace", namespace) != namespace:
                raise apiserver_api.bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        for server_set in ("resourceVersion", "deletionTimestamp", "selfLink"):
            metadata.pop(server_set, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = kube_common.now_rfc3339()
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        self.default(resource, obj)
        return obj

    @staticmethod
    def check_type(resource: apiserver_api.Resource, obj: dict) -> None:
        if not isinstance(obj, dict):
            raise apiserver_api.bad_request("the body of the request was not a JSON object")
        if obj.get("apiVersion") not in (None, resource.api_version):
            raise apiserver_api.bad_request(
                f"the API version in the data ({obj['apiVersion']}) does not match the expected "
                f"API version ({resource.api_version})"
            )
        if obj.get("kind") not in (None, resource.kind):
            raise apiserver_api.bad_request(
                f"the kind in the data ({obj['kind']}) does not match the expected kind "
                f"({resource.kind})"
            )

    @staticmethod
    def validate_name(resource: apiserver_api.Resource, name: str) -> None:
        if not name:
            raise apiserver_api.invalid(
                resource, name, "metadata.name: Required value: name or generateName is required"
            )
        label = resource.plural == "namespaces"
        pattern, limit = (DNS_LABEL, 63) if label else (DNS_SUBDOMAIN, 253)
        if len(name) > limit or not pattern.match(name):
            kind = "RFC 1123 label" if label else "RFC 1123 subdomain"
            raise apiserver_api.invalid(
                resource,
                name,
                f'metadata.name: Invalid value: "{name}": a lowercase '
                f"{kind} must consist of lower case alphanumeric "
                "characters, '-' or '.'",
            )

    @staticmethod
    def default(resource: apiserver_api.Resource, obj: dict) -> None:
        if resource.plural == "secrets":
            # The v1 conversion folds stringData into data (pkg/apis/core/v1/conversion.go).
            data = obj.get("data") or {}
            for key, value in (obj.pop("stringData", None) or {}).items():
                data[key] = kube_common.b64(value)
            if data:
                obj["data"] = data
            obj.setdefault("type", "Opaque")
        elif resource.plural == "namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            labels = obj["metadata"].setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]

    def require_namespace(self, namespace: str) -> None:
        if (
            self.etcd.get(
                self.key(apiserver_api.BY_PATH[("", "v1", "namespaces")], None, namespace)
            )
            is None
        ):
            raise apiserver_api.not_found(
                apiserver_api.BY_PATH[("", "v1", "namespaces")], namespace
            )

    def prepare_csr(self, obj: dict, user: apiserver_api.User) -> None:
        """The CSR strategy records the requester; the approver and the signer act at once."""
        spec = obj.setdefault("spec", {})
        spec.update(username=user.name, groups=user.groups)
        obj["status"] = {}
        name = obj["metadata"]["name"]
        resource = apiserver_api.BY_PATH[
            ("certificates.k8s.io", "v1", "certificatesigningrequests")
        ]
        try:
            csr = x509.load_pem_x509_csr(base64.b64decode(spec.get("request", "")))
        except ValueError as error:
            raise apiserver_api.invalid(
                resource, name, f"spec.request: Invalid value: {error}"
            ) from error
        if not spec.get("signerName"):
            raise apiserver_api.invalid(resource, name, "spec.signerName: Required value")
        message = apiserver_signer.approval(
            csr, spec, lambda subresource: self.subject_access_review(user, subresource)
        )
        if message is None:
            return
        stamp = kube_common.now_rfc3339()
        obj["status"]["conditions"] = [
            {
                "type": "Approved",
                "status": "True",
                "reason": "AutoApproved",
                "message": message,
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
            }
        ]
        try:
            obj["status"]["certificate"] = kube_common.b64(self.signer.sign(csr, spec))
        except (OSError, ValueError) as error:
            apiserver_api.log("E", f"cannot sign CertificateSigningRequest {name}: {error}")

    def update(self, request: apiserver_api.Request, body: dict) -> dict:
        resource, name = request.resource, request.name
        self.check_type(resource, body)
        metadata = body.get("metadata") or {}
        if metadata.get("name", name) != name:
            raise apiserver_api.bad_request(
                f"the name of the object ({metadata['name']}) does not match the name on the URL "
                f"({name})"
            )
        try:
            return self.guaranteed_update(request, lambda _old: body, body)
        except apiserver_api.ApiError as error:
            if error.code != 404 or not resource.create_on_update:
                raise
        created = self.create(
            request, {**body, "metadata": {**metadata, "name": name}}, apiserver_api.ANONYMOUS
        )
        return created

    def patch(self, request: apiserver_api.Request, content_type: str, patch) -> dict:
        if content_type == "application/merge-patch+json":
            apply = apiserver_patch.merge_patch
        elif content_type == "application/strategic-merge-patch+json":
            apply = apiserver_patch.strategic_merge_patch
        elif content_type == "application/json-patch+json":
            apply = apiserver_patch.json_patch
        else:
            raise apiserver_api.ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: application/json-patch+json, application/merge-patch+json, "
                f"application/strategic-merge-patch+json (not {content_type})",
            )
        return self.guaranteed_update(request, lambda old: apply(old, patch), patch)

    def guaranteed_update(self, request: apiserver_api.Request, change, given) -> dict:
        """Read, change, write if unchanged since the read, as the registry's
        GuaranteedUpdate does: a resourceVersion the caller gave is a precondition (409 when
        stale); without one, a write that lost a race is retried."""
        resource, namespace, name = request.resource, request.namespace, request.name
        precondition = None
        if isinstance(given, dict):
            precondition = (given.get("metadata") or {}).get("resourceVersion")
        for _ in range(5):
            old, revision = self.read(resource, namespace, name)
            if precondition and precondition != str(revision):
                raise apiserver_api.conflict(resource, name)
            new = change(copy.deepcopy(old))
            if not isinstance(new, dict):
                raise apiserver_api.bad_request("the patched object is not a JSON object")
            self.check_type(resource, new)
            new = self.keep_immutable(request, old, new)
            written = self.etcd.update(
                self.key(resource, namespace, name), self.encode(new), revision
            )
            if written is not None:
                new["metadata"]["resourceVersion"] = str(written)
                return new
            if precondition:
                raise apiserver_api.conflict(resource, name)
        raise apiserver_api.conflict(resource, name)

    @staticmethod
    def keep_immutable(request: apiserver_api.Request, old: dict, new: dict) -> dict:
        resource = request.resource
        metadata = new.setdefault("metadata", {})
        for key in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp"):
            if key in old["metadata"]:
                metadata[key] = old["metadata"][key]
            else:
                metadata.pop(key, None)
        new["apiVersion"], new["kind"] = resource.api_version, resource.kind
        # The main resource leaves status alone and the status subresource leaves the spec
        # alone (pkg/registry/core/node/strategy.go, PrepareForUpdate).
        if resource.has_status:
            kept = "spec" if request.subresource == "status" else "status"
            if kept in old:
                new[kept] = old[kept]
            else:
                new.pop(kept, None)
        if resource.plural == "secrets":
            Store.default(resource, new)
        return new

    def delete(self, request: apiserver_api.Request, options: dict) -> dict:
        resource, namespace, name = request.resource, request.namespace, request.name
        if resource.plural == "namespaces" and name in UNDELETABLE_NAMESPACES:
            raise apiserver_api.ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                apiserver_api.details(resource, name),
            )
        preconditions = (options or {}).get("preconditions") or {}
        old, revision = self.read(resource, namespace, name)
        if preconditions.get("resourceVersion") not in (None, str(revision)):
            raise apiserver_api.conflict(resource, name)
        if preconditions.get("uid") not in (None, old["metadata"].get("uid")):
            raise apiserver_api.conflict(resource, name)
        if resource.plural == "namespaces":
            # What the namespace controller finishes later, done at once.
            for each in apiserver_api.RESOURCES:
                if each.namespaced:
                    self.etcd.delete_prefix(f"{self.prefix}/{each.storage}/{name}/")
        if not self.etcd.delete(self.key(resource, namespace, name), revision):
            raise apiserver_api.conflict(resource, name)
        if resource.plural == "namespaces":
            old["metadata"]["deletionTimestamp"] = kube_common.now_rfc3339()
            old["status"] = {"phase": "Terminating"}
            return old
        details = {**apiserver_api.details(resource, name), "uid": old["metadata"].get("uid", "")}
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }


def label_selector(text: str):
    """Equality-based selectors (``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``) and set-based
    ``a in (b,c)``, ``a notin (b,c)``."""
    requirements = []
    for found in re.findall(r"[^,(]+(?:\([^)]*\))?", text):
        part = found.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)", part)
        if match:
            key, operator, values = match.groups()
            requirements.append((key, operator, {v.strip() for v in values.split(",")}))
        elif "!=" in part:
            key, value = part.split("!=", 1)
            requirements.append((key.strip(), "notin", {value.strip()}))
        elif "=" in part:
            key, value = re.split(r"==?", part, maxsplit=1)
            requirements.append((key.strip(), "in", {value.strip()}))
        elif part.startswith("!"):
            requirements.append((part[1:].strip(), "!", set()))
        elif re.fullmatch(r"[\w./-]+", part):
            requirements.append((part, "exists", set()))
        else:
            raise apiserver_api.bad_request(f"unable to parse requirement: {part!r}")

    def matches(labels: dict) -> bool:
        for key, operator, values in requirements:
            if operator == "in" and labels.get(key) not in values:
                return False
            if operator == "notin" and key in labels and labels[key] in values:
                return False
            if operator == "exists" and key not in labels:
                return False
            if operator == "!" and key in labels:
                return False
        return True

    return matches


def field_selector(text: str):
    """``metadata.name``, ``metadata.namespace`` and (a Secret's) ``type`` with ``=``,
    ``==`` or ``!=``: kubeadm lists the bootstrap tokens with ``type=``."""
    requirements = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(metadata\.name|metadata\.namespace|type)\s*(!=|==|=)\s*(.*)", part)
        if not match:
            raise apiserver_api.bad_request(
                f'field label not supported: "{part.split("=")[0].rstrip("!")}"'
            )
        requirements.append(match.groups())

    def matches(obj: dict) -> bool:
        for path, operator, value in requirements:
            if path == "type":
                actual = obj.get("type", "")
            else:
                actual = obj["metadata"].get(path.split(".")[1], "")
            if (actual == value) != (operator != "!="):
                return False
        return True

    return matches
