"""
The apiserver double's authentication and authorization: a client certificate
(staging/src/k8s.io/apiserver/pkg/authentication/request/x509/x509.go), a bootstrap token
(plugin/pkg/auth/authenticator/token/bootstrap/bootstrap.go), anonymous requests; then
the roles kubeadm binds and the node authorizer's rules, reduced to what the platform
does (cmd/kubeadm/app/phases/bootstraptoken/clusterinfo, phases/bootstraptoken/node,
phases/copycerts, plugin/pkg/auth/authorizer/node, plugin/pkg/admission/noderestriction).

Part of the lab's kube-apiserver double (kube_apiserver.py); never imported by product code.
"""

from __future__ import annotations

import base64
import datetime
import hmac
import json
import re

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

try:
    from lab.kube import apiserver_api, apiserver_registry
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import apiserver_api  # type: ignore[no-redef]
    import apiserver_registry  # type: ignore[no-redef]


BOOTSTRAP_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")

# Authorization: the roles kubeadm binds and the node authorizer's rules, reduced to
# what the platform does (cmd/kubeadm/app/phases/bootstraptoken/clusterinfo,
# cmd/kubeadm/app/phases/bootstraptoken/node, cmd/kubeadm/app/phases/copycerts,
# plugin/pkg/auth/authorizer/node, plugin/pkg/admission/noderestriction).
ADMIN_GROUPS = ("system:masters", "kubeadm:cluster-admins")
KUBEADM_CONFIGMAPS = ("kubeadm-config", "kubelet-config")


def allowed(user: apiserver_api.User, request: apiserver_api.Request) -> bool:
    verb, plural = request.verb, request.resource.plural
    namespace, name = request.namespace, request.name
    if any(group in user.groups for group in ADMIN_GROUPS):
        return True
    if (plural, namespace, name, verb) == ("configmaps", "kube-public", "cluster-info", "get"):
        return True
    kubeadm_configmap = (
        plural == "configmaps"
        and namespace == "kube-system"
        and name in KUBEADM_CONFIGMAPS
        and verb == "get"
    )
    csr = plural == "certificatesigningrequests" and verb in ("create", "get", "list")
    if "system:bootstrappers" in user.groups:
        kubeadm_certs = (plural, namespace, name, verb) == (
            "secrets",
            "kube-system",
            "kubeadm-certs",
            "get",
        )
        if kubeadm_configmap or kubeadm_certs or csr or (plural, verb) == ("nodes", "get"):
            return True
    if "system:nodes" in user.groups and user.name.startswith("system:node:"):
        node = user.name.removeprefix("system:node:")
        if kubeadm_configmap or csr:
            return True
        if plural == "nodes":
            return verb in ("get", "list") or (
                verb in ("create", "update", "patch") and name == node
            )
        if plural == "leases" and namespace == "kube-node-lease":
            return name == node and verb in ("get", "create", "update", "patch")
    return False


# The ClusterRoleBindings kubeadm makes for the CSR approver
# (cmd/kubeadm/app/phases/bootstraptoken/node/tlsbootstrap.go): kubeadm:node-autoapprove-
# bootstrap gives the default node token's group create on certificatesigningrequests/
# nodeclient, kubeadm:node-autoapprove-certificate-rotation gives system:nodes create on
# certificatesigningrequests/selfnodeclient; cluster-admin (system:masters,
# kubeadm:cluster-admins) may do anything.
AUTO_APPROVAL_GROUPS = {
    "nodeclient": "system:bootstrappers:kubeadm:default-node-token",
    "selfnodeclient": "system:nodes",
}


def may_auto_approve(user: apiserver_api.User, subresource: str) -> bool:
    """The SubjectAccessReview the CSR approver makes (sarapprove.go, authorize): may
    ``user`` create ``certificatesigningrequests/<subresource>`` in certificates.k8s.io?
    Answered from kubeadm's bindings above, the double having no RBAC objects."""
    if any(group in user.groups for group in ADMIN_GROUPS):
        return True
    return AUTO_APPROVAL_GROUPS.get(subresource) in user.groups


def forbidden(user: apiserver_api.User, request: apiserver_api.Request) -> apiserver_api.ApiError:
    resource = request.resource
    what = f'{resource.qualified()} "{request.name}"' if request.name else resource.qualified()
    scope = (
        f'in the namespace "{request.namespace}"' if request.namespace else "at the cluster scope"
    )
    plural = resource.plural + (f"/{request.subresource}" if request.subresource else "")
    message = (
        f'{what} is forbidden: User "{user.name}" cannot {request.verb} resource "{plural}" '
        f'in API group "{resource.group}" {scope}'
    )
    details = {"kind": resource.plural}
    if request.name:
        details["name"] = request.name
    if resource.group:
        details["group"] = resource.group
    return apiserver_api.ApiError(403, "Forbidden", message, details)


def expired(expiration: str) -> bool:
    """cluster-bootstrap's HasExpired: no expiration never expires, an unreadable one has."""
    if not expiration:
        return False
    try:
        moment = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
    except ValueError:
        apiserver_api.log("E", f"unparseable bootstrap token expiration {expiration!r}")
        return True
    if moment.tzinfo is None:
        return True
    return datetime.datetime.now(datetime.UTC) > moment


class Authenticator:
    """Who sends a request: the subject of a client certificate verified against
    --client-ca-file (staging/src/k8s.io/apiserver/pkg/authentication/request/x509/x509.go),
    the bootstrap token of an ``Authorization: Bearer`` header, checked against its Secret
    (plugin/pkg/auth/authenticator/token/bootstrap/bootstrap.go), else the anonymous user
    when --anonymous-auth allows one."""

    def __init__(
        self, store: apiserver_registry.Store, bootstrap_tokens: bool, anonymous_auth: bool
    ) -> None:
        self.store = store
        self.bootstrap_tokens, self.anonymous_auth = bootstrap_tokens, anonymous_auth

    def authenticate(self, peer_der: bytes | None, authorization: str | None) -> apiserver_api.User:
        if peer_der:
            certificate = x509.load_der_x509_certificate(peer_der)
            try:
                usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
                client_auth = ExtendedKeyUsageOID.CLIENT_AUTH in usages.value
            except x509.ExtensionNotFound:
                client_auth = True
            if not client_auth:
                raise apiserver_api.ApiError(401, "Unauthorized", "Unauthorized")
            subject = certificate.subject
            names = [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
            groups = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
            return apiserver_api.User(names[0] if names else "", [*groups, "system:authenticated"])
        if authorization:
            scheme, _, token = authorization.partition(" ")
            user = self.bootstrap_user(token.strip()) if scheme.lower() == "bearer" else None
            if user is None:
                raise apiserver_api.ApiError(401, "Unauthorized", "Unauthorized")
            return user
        if not self.anonymous_auth:
            raise apiserver_api.ApiError(401, "Unauthorized", "Unauthorized")
        return apiserver_api.ANONYMOUS

    def bootstrap_user(self, token: str) -> apiserver_api.User | None:
        match = BOOTSTRAP_TOKEN.match(token)
        if not self.bootstrap_tokens or not match:
            return None
        token_id, token_secret = match.groups()
        stored = self.store.etcd.get(
            self.store.key(
                apiserver_api.BY_PATH[("", "v1", "secrets")],
                "kube-system",
                f"bootstrap-token-{token_id}",
            )
        )
        if stored is None:
            return None
        secret = json.loads(stored[0])
        data = {
            key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()
        }
        if (
            secret.get("metadata", {}).get("deletionTimestamp")
            or secret.get("type") != "bootstrap.kubernetes.io/token"
            or not hmac.compare_digest(data.get("token-secret", ""), token_secret)
            or data.get("token-id") != token_id
            or expired(data.get("expiration", ""))
            or data.get("usage-bootstrap-authentication") != "true"
        ):
            return None
        extra = [group for group in data.get("auth-extra-groups", "").split(",") if group]
        if any(not group.startswith("system:bootstrappers:") for group in extra):
            return None
        groups = ["system:bootstrappers", *extra, "system:authenticated"]
        return apiserver_api.User(f"system:bootstrap:{token_id}", groups)
