"""
The kubeadm double's configuration API: the kinds of kubeadm.k8s.io/v1beta4 and v1beta3
as schemas (cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go, v1beta3/types.go), the
documents of a configuration file (kubeadmutil.SplitConfigDocuments, sigs.k8s.io/yaml),
their strict decoding (cmd/kubeadm/app/util/config/strict/strict.go) and apimachinery's
error formatting (field.Error, errors.Aggregate, IsDNS1123Subdomain).

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import json
import re

import yaml

KUBEADM_GROUP = "kubeadm.k8s.io"
V1BETA4 = "kubeadm.k8s.io/v1beta4"
V1BETA3 = "kubeadm.k8s.io/v1beta3"
# cmd/kubeadm/app/util/config/common.go: validateSupportedVersion
OLD_API_VERSIONS = {
    "kubeadm.k8s.io/v1alpha1": "v1.11",
    "kubeadm.k8s.io/v1alpha2": "v1.12",
    "kubeadm.k8s.io/v1alpha3": "v1.14",
    "kubeadm.k8s.io/v1beta1": "v1.15",
    "kubeadm.k8s.io/v1beta2": "v1.22",
}
DEPRECATED_API_VERSIONS = {V1BETA3}
# The component config scheme (cmd/kubeadm/app/componentconfigs).
COMPONENT_CONFIGS = {
    ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"),
    ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration"),
}
COMPONENT_GROUPS = {"kubelet.config.k8s.io", "kubeproxy.config.k8s.io"}
TOKEN_PATTERN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
TOKEN_ID_PATTERN = re.compile(r"^[a-z0-9]{6}$")
DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = re.compile(rf"^{DNS1123_LABEL}(\.{DNS1123_LABEL})*$")
DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")


class ConfigError(Exception):
    """A configuration kubeadm refuses; str() is kubeadm's message."""


def _go_value(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[]string{" + ", ".join(json.dumps(str(item)) for item in value) + "}"
    return str(value)


def invalid(path: str, value, detail: str) -> str:
    return f"{path}: Invalid value: {_go_value(value)}: {detail}"


def required(path: str, detail: str) -> str:
    return f"{path}: Required value: {detail}"


def aggregate(errors: list[str]) -> str:
    unique = list(dict.fromkeys(errors))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


def gvk_repr(api_version: str, kind: str) -> str:
    """%#v of a schema.GroupVersionKind."""
    group, _, version = api_version.rpartition("/")
    return f'schema.GroupVersionKind{{Group:"{group}", Version:"{version}", Kind:"{kind}"}}'


def gvk_string(api_version: str, kind: str) -> str:
    """String() of a schema.GroupVersionKind."""
    return f"{api_version}, Kind={kind}"


class Struct:
    def __init__(self, go_name: str, fields: dict):
        self.go_name = go_name
        self.fields = fields


STR, INT, BOOL, DURATION_T, TOKEN, ANY = "string", "int32", "bool", "duration", "token", "any"
ARG = Struct("Arg", {"name": STR, "value": STR})
ENV_VAR = Struct("EnvVar", {"name": STR, "value": STR, "valueFrom": ANY})
HOST_PATH_MOUNT = Struct(
    "HostPathMount",
    {"name": STR, "hostPath": STR, "mountPath": STR, "readOnly": BOOL, "pathType": STR},
)
TAINT = Struct("Taint", {"key": STR, "value": STR, "effect": STR, "timeAdded": STR})
BOOTSTRAP_TOKEN = Struct(
    "BootstrapToken",
    {
        "token": TOKEN,
        "description": STR,
        "ttl": DURATION_T,
        "expires": STR,
        "usages": ("list", STR),
        "groups": ("list", STR),
    },
)
API_ENDPOINT = Struct("APIEndpoint", {"advertiseAddress": STR, "bindPort": INT})
PATCHES = Struct("Patches", {"directory": STR})
TIMEOUTS = Struct(
    "Timeouts",
    {
        name: DURATION_T
        for name in (
            "controlPlaneComponentHealthCheck",
            "kubeletHealthCheck",
            "kubernetesAPICall",
            "etcdAPICall",
            "tlsBootstrap",
            "discovery",
            "upgradeManifests",
        )
    },
)
EXTERNAL_ETCD = Struct(
    "ExternalEtcd",
    {"endpoints": ("list", STR), "caFile": STR, "certFile": STR, "keyFile": STR},
)


def _schemas(version: str) -> dict[str, Struct]:
    """The kinds of one API version; v1beta3 differs where v1beta4 changed the API."""
    beta4 = version == V1BETA4
    extra_args = ("list", ARG) if beta4 else ("map", STR)
    node_registration = {
        "name": STR,
        "criSocket": STR,
        "taints": ("list", TAINT),
        "kubeletExtraArgs": extra_args,
        "ignorePreflightErrors": ("list", STR),
        "imagePullPolicy": STR,
    }
    if beta4:
        node_registration["imagePullSerial"] = BOOL
    node_registration_t = Struct("NodeRegistrationOptions", node_registration)
    component = {"extraArgs": extra_args, "extraVolumes": ("list", HOST_PATH_MOUNT)}
    if beta4:
        component["extraEnvs"] = ("list", ENV_VAR)
    api_server = dict(component, certSANs=("list", STR))
    if not beta4:
        api_server["timeoutForControlPlane"] = DURATION_T
    local_etcd = {
        "imageRepository": STR,
        "imageTag": STR,
        "dataDir": STR,
        "extraArgs": extra_args,
        "serverCertSANs": ("list", STR),
        "peerCertSANs": ("list", STR),
    }
    if beta4:
        local_etcd["extraEnvs"] = ("list", ENV_VAR)
    dns = {"imageRepository": STR, "imageTag": STR}
    if beta4:
        dns["disabled"] = BOOL
    cluster = {
        "apiVersion": STR,
        "kind": STR,
        "etcd": Struct(
            "Etcd", {"local": Struct("LocalEtcd", local_etcd), "external": EXTERNAL_ETCD}
        ),
        "networking": Struct(
            "Networking", {"serviceSubnet": STR, "podSubnet": STR, "dnsDomain": STR}
        ),
        "kubernetesVersion": STR,
        "controlPlaneEndpoint": STR,
        "apiServer": Struct("APIServer", api_server),
        "controllerManager": Struct("ControlPlaneComponent", component),
        "scheduler": Struct("ControlPlaneComponent", component),
        "dns": Struct("DNS", dns),
        "certificatesDir": STR,
        "imageRepository": STR,
        "featureGates": ("map", BOOL),
        "clusterName": STR,
    }
    if beta4:
        cluster.update(
            proxy=Struct("Proxy", {"disabled": BOOL}),
            encryptionAlgorithm=STR,
            certificateValidityPeriod=DURATION_T,
            caCertificateValidityPeriod=DURATION_T,
        )
    init = {
        "apiVersion": STR,
        "kind": STR,
        "bootstrapTokens": ("list", BOOTSTRAP_TOKEN),
        "nodeRegistration": node_registration_t,
        "localAPIEndpoint": API_ENDPOINT,
        "certificateKey": STR,
        "skipPhases": ("list", STR),
        "patches": PATCHES,
    }
    if beta4:
        init.update(dryRun=BOOL, timeouts=TIMEOUTS)
    discovery = {
        "bootstrapToken": Struct(
            "BootstrapTokenDiscovery",
            {
                "token": STR,
                "apiServerEndpoint": STR,
                "caCertHashes": ("list", STR),
                "unsafeSkipCAVerification": BOOL,
            },
        ),
        "file": Struct("FileDiscovery", {"kubeConfigPath": STR}),
        "tlsBootstrapToken": STR,
    }
    if not beta4:
        discovery["timeout"] = DURATION_T
    join = {
        "apiVersion": STR,
        "kind": STR,
        "nodeRegistration": node_registration_t,
        "caCertPath": STR,
        "discovery": Struct("Discovery", discovery),
        "controlPlane": Struct(
            "JoinControlPlane", {"localAPIEndpoint": API_ENDPOINT, "certificateKey": STR}
        ),
        "skipPhases": ("list", STR),
        "patches": PATCHES,
    }
    if beta4:
        join.update(dryRun=BOOL, timeouts=TIMEOUTS)
    reset = {
        "apiVersion": STR,
        "kind": STR,
        "cleanupTmpDir": BOOL,
        "certificatesDir": STR,
        "criSocket": STR,
        "dryRun": BOOL,
        "force": BOOL,
        "ignorePreflightErrors": ("list", STR),
        "skipPhases": ("list", STR),
    }
    if beta4:
        reset.update(unmountFlags=("list", STR), timeouts=TIMEOUTS)
    kinds = {
        "InitConfiguration": Struct("InitConfiguration", init),
        "ClusterConfiguration": Struct("ClusterConfiguration", cluster),
        "JoinConfiguration": Struct("JoinConfiguration", join),
        "ResetConfiguration": Struct("ResetConfiguration", reset),
    }
    if beta4:
        kinds["UpgradeConfiguration"] = Struct("UpgradeConfiguration", {})
    return kinds


SCHEMAS = {V1BETA4: _schemas(V1BETA4), V1BETA3: _schemas(V1BETA3)}


def is_known(api_version: str, kind: str) -> bool:
    return kind in SCHEMAS.get(api_version, {}) or (api_version, kind) in COMPONENT_CONFIGS


class _Document:
    """One YAML document: its data and the duplicate keys seen while reading it."""

    def __init__(self, data, duplicates: list[str]):
        self.data = data
        self.duplicates = duplicates


def _loader(duplicates: list[str]):
    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _value in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                duplicates.append(str(key))
            seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return Loader


def split_documents(text: str) -> dict[tuple[str, str], _Document]:
    """kubeadmutil.SplitConfigDocuments: one document per GVK, apiVersion and kind required."""
    documents: dict[tuple[str, str], _Document] = {}
    errors = []
    for raw in re.split(r"^---\s*$", text, flags=re.MULTILINE):
        if not raw.strip():
            continue
        duplicates: list[str] = []
        try:
            data = yaml.load(raw, Loader=_loader(duplicates))
        except yaml.YAMLError as err:
            raise ConfigError(f"error converting YAML to JSON: yaml: {err}") from err
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ConfigError(
                "couldn't get version/kind; json parse error: json: cannot unmarshal "
                f"{_json_type(data)} into Go value of type struct {{ APIVersion string "
                '"json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
            )
        api_version = str(data.get("apiVersion") or "")
        kind = str(data.get("kind") or "")
        if "/" not in api_version or not kind:
            group, _, version = api_version.rpartition("/")
            errors.append(
                f"invalid configuration for GroupVersionKind {group}/{version}, Kind={kind}: "
                "kind and apiVersion is mandatory information that must be specified"
            )
            continue
        if any(existing_kind == kind for _, existing_kind in documents):
            errors.append(f'invalid configuration: kind "{kind}" is specified twice in YAML file')
            continue
        documents[(api_version, kind)] = _Document(data, duplicates)
    if errors:
        raise ConfigError(aggregate(errors))
    return documents


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _go_type(spec) -> str:
    if isinstance(spec, Struct):
        return f"v1beta4.{spec.go_name}"
    if isinstance(spec, tuple):
        return ("[]" if spec[0] == "list" else "map[string]") + _go_type(spec[1])
    return {STR: "string", INT: "int32", BOOL: "bool", DURATION_T: "string", TOKEN: "string"}.get(
        spec, "interface {}"
    )


class _Decoder:
    """The strict JSON decode of one document into its versioned type."""

    def __init__(self):
        self.unknown: list[str] = []
        self.type_error: str | None = None

    def decode(self, value, spec, path: str, struct: str):
        if value is None or spec == ANY:
            return
        if isinstance(spec, Struct):
            if not isinstance(value, dict):
                self._mismatch(value, spec, path, struct)
                return
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if key not in spec.fields:
                    self.unknown.append(f'unknown field "{child}"')
                    continue
                self.decode(item, spec.fields[key], child, spec.go_name)
            return
        if isinstance(spec, tuple):
            kind, element = spec
            if kind == "list":
                if not isinstance(value, list):
                    self._mismatch(value, spec, path, struct)
                    return
                for index, item in enumerate(value):
                    self.decode(item, element, f"{path}[{index}]", struct)
            else:
                if not isinstance(value, dict):
                    self._mismatch(value, spec, path, struct)
                    return
                for key, item in value.items():
                    self.decode(item, element, f"{path}[{key}]", struct)
            return
        if spec == INT:
            if isinstance(value, bool) or not isinstance(value, int):
                self._mismatch(value, spec, path, struct)
        elif spec == BOOL:
            if not isinstance(value, bool):
                self._mismatch(value, spec, path, struct)
        elif spec in (STR, TOKEN, DURATION_T):
            if not isinstance(value, str):
                self._mismatch(value, spec, path, struct)
            elif spec == DURATION_T and not DURATION.match(value) and value != "0":
                self._set_error(f'time: invalid duration "{value}"')
            elif spec == TOKEN and not TOKEN_PATTERN.match(value):
                self._set_error(
                    f'the bootstrap token "{value}" was not of the form "{TOKEN_PATTERN.pattern}"'
                )

    def _mismatch(self, value, spec, path: str, struct: str):
        self._set_error(
            f"json: cannot unmarshal {_json_type(value)} into Go struct field "
            f"{struct}.{path} of type {_go_type(spec)}"
        )

    def _set_error(self, message: str):
        if self.type_error is None:
            self.type_error = message


def verify_unmarshal_strict(api_version: str, kind: str, document: _Document) -> None:
    """strict.VerifyUnmarshalStrict, then the decode itself: raises what each would return.

    Returns normally when the document decodes; raises ConfigError(hard=...) otherwise.
    """
    if (api_version, kind) in COMPONENT_CONFIGS:
        return
    schema = SCHEMAS[api_version][kind]
    decoder = _Decoder()
    data = {key: value for key, value in document.data.items()}
    decoder.decode(data, schema, "", schema.go_name)
    prefix = f"error unmarshaling configuration {gvk_repr(api_version, kind)}: "
    if decoder.type_error:
        raise HardDecodeError(prefix + decoder.type_error)
    strict = [f'duplicate field "{name}"' for name in document.duplicates] + decoder.unknown
    if strict:
        raise StrictDecodeError(prefix + "strict decoding error: " + ", ".join(strict))


class StrictDecodeError(ConfigError):
    """Unknown or duplicate fields: an error for `config validate`, a warning elsewhere."""


class HardDecodeError(ConfigError):
    """A value of the wrong type: the decode itself fails, whatever the command."""


def dns1123_errors(value: str) -> list[str]:
    if len(value) > 253:
        return ["must be no more than 253 characters"]
    if not DNS1123_SUBDOMAIN.match(value):
        return [
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            "'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ]
    return []
