"""
The lab's kubeadm double: `kubeadm` 1.34.2 for what the platform runs, on the lab's
apiserver and kubelet doubles, installed as /usr/bin/kubeadm by the lab's kubeadm package.

Test double of the lab (never imported by product code). It copies kubeadm's command
line, files, exit codes and error words from the Kubernetes source, named where each
behaviour is copied:
- cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go, defaults.go; validation/validation.go;
  util/config/common.go, initconfiguration.go, joinconfiguration.go, strict/strict.go
  (the configuration API, strict decoding, defaults, validation);
- cmd/kubeadm/app/preflight/checks.go (checks, their names, RunChecks' output);
- cmd/kubeadm/app/phases/{certs,kubeconfig,controlplane,kubelet,uploadconfig,copycerts,
  bootstraptoken,markcontrolplane}/ (what init and join write and upload);
- cmd/kubeadm/app/discovery/token/token.go, util/pubkeypin/pubkeypin.go (join's discovery);
- cmd/kubeadm/app/cmd/{init,join,reset,token,config,version}.go and util/errors/errors.go
  (commands, output, "error: ..." and exit 1).

What it does not do: pull images or run containers (the kubelet double runs the apiserver
double from the manifest), local etcd, addons (CoreDNS, kube-proxy), RBAC objects (the
apiserver double has none), upgrades, kubeadm's other commands; component configs
(KubeletConfiguration, KubeProxyConfiguration) are taken as given, not checked. Where the
lab has no controller-manager, the double plays its bootstrapsigner, tokencleaner and
garbage collector (for kubeadm-certs) each time it talks to the cluster as admin.

--rootfs (a real kubeadm flag: it chroots there) prefixes every path the double touches;
the double's tests use it to write a node's files into a temporary folder.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime
import ipaddress
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

try:
    from lab.kube import kubeadm_pki
except ImportError:  # installed flat in /usr/lib/paas-lab-kube, beside kubeadm_pki.py
    import kubeadm_pki  # type: ignore[no-redef]

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

KUBERNETES_VERSION = "v1.34.2"
# constants.go: MinimumControlPlaneVersion is one minor below kubeadm's.
MINIMUM_CONTROL_PLANE_VERSION = (1, 33, 0)
MINIMUM_ADDRESSES_IN_SERVICE_SUBNET = 10
MINIMUM_ADDRESSES_IN_POD_SUBNET = 4
MAXIMUM_BITS_FOR_SERVICE_SUBNET = 20
POD_SUBNET_NODE_MASK_MAX_DIFF = 16
DEFAULT_CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"
NODE_BOOTSTRAP_TOKEN_AUTH_GROUP = "system:bootstrappers:kubeadm:default-node-token"
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
# features/features.go: InitFeatureGates in kubeadm 1.34.
FEATURE_GATES = {
    "ControlPlaneKubeletLocalMode",
    "NodeLocalCRISocket",
    "PublicKeysECDSA",
    "RootlessControlPlane",
    "WaitForAllControlPlaneComponents",
}
TOKEN_PATTERN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
TOKEN_ID_PATTERN = re.compile(r"^[a-z0-9]{6}$")
DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = re.compile(rf"^{DNS1123_LABEL}(\.{DNS1123_LABEL})*$")
DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")


class ConfigError(Exception):
    """A configuration kubeadm refuses; str() is kubeadm's message."""


def warn(message: str, source: str = "initconfiguration.go:321") -> None:
    """A klog warning line on stderr, as kubeadm prints its non-fatal findings."""
    now = datetime.datetime.now()
    stamp = now.strftime("%m%d %H:%M:%S.%f")
    sys.stderr.write(f"W{stamp} {os.getpid():>7} {source}] {message}\n")


# ---------------------------------------------------------------------------------------
# apimachinery's error formatting: field.Error and errors.Aggregate.


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


# ---------------------------------------------------------------------------------------
# The versioned types (v1beta4/types.go, v1beta3/types.go) as schemas the strict decoder
# walks. A type is one of the scalar names, ("list", T), ("map", T) or a Struct.


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


# ---------------------------------------------------------------------------------------
# YAML documents: sigs.k8s.io/yaml turns each into JSON; duplicate keys are a strict error.


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


# ---------------------------------------------------------------------------------------
# Conversion to the internal shape (v1beta4's, defaulted), then validation.


def _args_from_map(value) -> list[dict]:
    return [{"name": k, "value": str(v)} for k, v in sorted((value or {}).items())]


def _from_v1beta3(kind: str, data: dict) -> dict:
    """v1beta3 -> v1beta4 conversion (v1beta4/conversion.go) for what the double reads."""
    data = copy.deepcopy(data)
    data["apiVersion"] = V1BETA4
    registration = data.get("nodeRegistration")
    if isinstance(registration, dict) and "kubeletExtraArgs" in registration:
        registration["kubeletExtraArgs"] = _args_from_map(registration["kubeletExtraArgs"])
    if kind == "ClusterConfiguration":
        for component in ("apiServer", "controllerManager", "scheduler"):
            section = data.get(component) or {}
            if "extraArgs" in section:
                section["extraArgs"] = _args_from_map(section["extraArgs"])
        api_server = data.get("apiServer") or {}
        api_server.pop("timeoutForControlPlane", None)
        local = (data.get("etcd") or {}).get("local") or {}
        if "extraArgs" in local:
            local["extraArgs"] = _args_from_map(local["extraArgs"])
    if kind == "JoinConfiguration":
        discovery = data.get("discovery") or {}
        timeout = discovery.pop("timeout", None)
        if timeout:
            data.setdefault("timeouts", {})["discovery"] = timeout
    return data


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


def _default_timeouts(timeouts: dict | None) -> dict:
    """v1beta4 defaults.go: SetDefaults_Timeouts."""
    defaults = {
        "controlPlaneComponentHealthCheck": "4m0s",
        "kubeletHealthCheck": "4m0s",
        "kubernetesAPICall": "1m0s",
        "etcdAPICall": "2m0s",
        "tlsBootstrap": "5m0s",
        "discovery": "5m0s",
        "upgradeManifests": "5m0s",
    }
    defaults.update({k: v for k, v in (timeouts or {}).items() if v is not None})
    return defaults


def _default_node_registration(registration: dict | None, control_plane: bool) -> dict:
    registration = copy.deepcopy(registration or {})
    registration["name"] = (registration.get("name") or hostname()).strip().lower()
    if control_plane and registration.get("taints") is None:
        registration["taints"] = [dict(CONTROL_PLANE_TAINT)]
    registration.setdefault("taints", None)
    socket_path = registration.get("criSocket") or DEFAULT_CRI_SOCKET
    if "://" not in socket_path:
        warn(
            "Usage of CRI endpoints without URL scheme is deprecated and can cause kubelet "
            'errors in the future. Automatically prepending scheme "unix" to the '
            f'"criSocket" with value "{socket_path}". Please update your configuration!'
        )
        socket_path = "unix://" + socket_path
    registration["criSocket"] = socket_path
    registration["imagePullPolicy"] = registration.get("imagePullPolicy") or "IfNotPresent"
    registration.setdefault("imagePullSerial", True)
    registration["kubeletExtraArgs"] = registration.get("kubeletExtraArgs") or []
    registration["ignorePreflightErrors"] = registration.get("ignorePreflightErrors") or []
    return registration


def hostname() -> str:
    """nodeutil.GetHostname: the kernel's host name, lowercased."""
    return socket.gethostname().strip().lower()


def default_address() -> str:
    """ChooseAPIServerBindAddress: the address of the interface holding the default route."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("198.51.100.1", 9))
        return probe.getsockname()[0]
    except OSError as err:
        warn(
            f"WARNING: could not obtain a bind address for the API Server: {err}; using: 0.0.0.0",
            "common.go:190",
        )
        return "0.0.0.0"
    finally:
        probe.close()


def _default_api_endpoint(endpoint: dict | None) -> dict:
    endpoint = dict(endpoint or {})
    endpoint["bindPort"] = endpoint.get("bindPort") or 6443
    address = endpoint.get("advertiseAddress") or ""
    if address:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError as err:
            raise ConfigError(
                f'couldn\'t use "{address}" as "apiserver-advertise-address", must be ipv4 '
                "or ipv6 address"
            ) from err
        if not (ip.is_global or ip.is_private) or ip.is_unspecified or ip.is_multicast:
            raise ConfigError(f'cannot use "{address}" as the bind address for the API Server')
    else:
        endpoint["advertiseAddress"] = default_address()
    return endpoint


def normalize_kubernetes_version(version: str | None) -> str:
    """NormalizeKubernetesVersion: labels resolve to this kubeadm's version (no network)."""
    version = version or "stable-1"
    if re.match(r"^(stable|latest)(-\d+(\.\d+)?)?$", version):
        return KUBERNETES_VERSION
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)([-+][0-9A-Za-z.+-]*)?$", version)
    if not match:
        raise ConfigError(
            f'version "{version}" doesn\'t match patterns for neither semantic version nor '
            "labels (stable, latest, ...)"
        )
    normalized = "v" + version.lstrip("v")
    if tuple(int(part) for part in match.group(1, 2, 3)) < MINIMUM_CONTROL_PLANE_VERSION:
        minimum = ".".join(str(part) for part in MINIMUM_CONTROL_PLANE_VERSION)
        raise ConfigError(
            "this version of kubeadm only supports deploying clusters with the control plane "
            f"version >= {minimum}. Current version: {normalized}"
        )
    return normalized


def default_cluster(data: dict | None, bind_port: int) -> dict:
    """v1beta4 SetDefaults_ClusterConfiguration plus SetClusterDynamicDefaults."""
    cluster = copy.deepcopy(data or {})
    cluster["apiVersion"] = V1BETA4
    cluster["kind"] = "ClusterConfiguration"
    etcd = cluster.get("etcd") or {}
    if not etcd.get("external") and not etcd.get("local"):
        etcd["local"] = {}
    if etcd.get("local") is not None:
        etcd["local"]["dataDir"] = etcd["local"].get("dataDir") or "/var/lib/etcd"
    cluster["etcd"] = etcd
    networking = cluster.get("networking") or {}
    networking["serviceSubnet"] = networking.get("serviceSubnet") or "10.96.0.0/12"
    networking["dnsDomain"] = networking.get("dnsDomain") or "cluster.local"
    networking.setdefault("podSubnet", "")
    cluster["networking"] = networking
    cluster["kubernetesVersion"] = normalize_kubernetes_version(cluster.get("kubernetesVersion"))
    cluster["certificatesDir"] = cluster.get("certificatesDir") or "/etc/kubernetes/pki"
    cluster["imageRepository"] = cluster.get("imageRepository") or "registry.k8s.io"
    cluster["clusterName"] = cluster.get("clusterName") or "kubernetes"
    cluster["encryptionAlgorithm"] = cluster.get("encryptionAlgorithm") or "RSA-2048"
    cluster["certificateValidityPeriod"] = cluster.get("certificateValidityPeriod") or "8760h0m0s"
    cluster["caCertificateValidityPeriod"] = (
        cluster.get("caCertificateValidityPeriod") or "87600h0m0s"
    )
    for component in ("apiServer", "controllerManager", "scheduler", "dns", "proxy"):
        cluster[component] = cluster.get(component) or {}
    for component in ("apiServer", "controllerManager", "scheduler"):
        cluster[component]["extraArgs"] = cluster[component].get("extraArgs") or []
    cluster["apiServer"]["certSANs"] = [
        san.lower() for san in cluster["apiServer"].get("certSANs") or []
    ]
    cluster["featureGates"] = cluster.get("featureGates") or {}
    endpoint = cluster.get("controlPlaneEndpoint") or ""
    if endpoint:
        try:
            host, port = parse_host_port(endpoint)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        if not port:
            cluster["controlPlaneEndpoint"] = join_host_port(host, bind_port)
    cluster.setdefault("controlPlaneEndpoint", "")
    return cluster


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
        if _dns1123_errors(host):
            raise ValueError(
                f"hostport {endpoint}: host '{host}' must be a valid IP address or a valid "
                "RFC-1123 DNS subdomain"
            ) from None
    return host, port


def join_host_port(host: str, port) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dns1123_errors(value: str) -> list[str]:
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


def _is_abs(path: str) -> bool:
    return path.startswith("/")


def _validate_subnets(value: str, minimum: int, path: str) -> list[str]:
    """ValidateIPNetFromString."""
    try:
        subnets = [ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",")]
        for part in value.split(","):
            ipaddress.ip_interface(part.strip())
            if "/" not in part:
                raise ValueError(part)
    except ValueError:
        return [invalid(path, value, "couldn't parse subnet")]
    errors = []
    if len(subnets) > 2 or (len(subnets) == 2 and subnets[0].version == subnets[1].version):
        errors.append(
            invalid(
                path,
                value,
                "expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for "
                "dual-stack networking",
            )
        )
    for subnet in subnets:
        if subnet.num_addresses < minimum:
            errors.append(
                invalid(
                    path,
                    str(subnet),
                    f"subnet with {subnet.num_addresses} address(es) is too small, the "
                    f"minimum is {minimum}",
                )
            )
    return errors


def _arg_value(args: list[dict], name: str) -> str | None:
    value = None
    for arg in args or []:
        if arg.get("name") == name:
            value = arg.get("value")
    return value


def validate_cluster(cluster: dict) -> list[str]:
    """ValidateClusterConfiguration."""
    errors = []
    for message in _dns1123_errors(cluster["networking"]["dnsDomain"]):
        errors.append(invalid("networking.dnsDomain", cluster["networking"]["dnsDomain"], message))
    service = cluster["networking"]["serviceSubnet"]
    if service:
        service_errors = _validate_subnets(
            service, MINIMUM_ADDRESSES_IN_SERVICE_SUBNET, "networking.serviceSubnet"
        )
        errors += service_errors
        if not service_errors:
            for subnet in (
                ipaddress.ip_network(p.strip(), strict=False) for p in service.split(",")
            ):
                bits = subnet.max_prefixlen
                if bits - subnet.prefixlen > MAXIMUM_BITS_FOR_SERVICE_SUBNET:
                    errors.append(
                        invalid(
                            "networking.serviceSubnet",
                            str(subnet),
                            f"specified service subnet is too large; for {bits}-bit addresses, "
                            f"the mask must be >= {bits - MAXIMUM_BITS_FOR_SERVICE_SUBNET}",
                        )
                    )
    pod = cluster["networking"]["podSubnet"]
    if pod:
        pod_errors = _validate_subnets(pod, MINIMUM_ADDRESSES_IN_POD_SUBNET, "networking.podSubnet")
        errors += pod_errors
        manager_args = cluster["controllerManager"]["extraArgs"]
        if not pod_errors and _arg_value(manager_args, "allocate-node-cidrs") != "false":
            for subnet in (ipaddress.ip_network(p.strip(), strict=False) for p in pod.split(",")):
                flag = (
                    "node-cidr-mask-size-ipv6"
                    if subnet.version == 6
                    else "node-cidr-mask-size-ipv4"
                )
                node_mask = _arg_value(manager_args, flag)
                node_mask = int(node_mask) if node_mask else (64 if subnet.version == 6 else 24)
                if subnet.prefixlen > node_mask:
                    errors.append(
                        invalid(
                            "networking.podSubnet",
                            str(subnet),
                            f"the size of pod subnet with mask {subnet.prefixlen} is smaller than "
                            f"the size of node subnet with mask {node_mask}",
                        )
                    )
                elif node_mask - subnet.prefixlen > POD_SUBNET_NODE_MASK_MAX_DIFF:
                    errors.append(
                        invalid(
                            "networking.podSubnet",
                            str(subnet),
                            f"pod subnet mask ({subnet.prefixlen}) and node-mask ({node_mask}) "
                            f"difference is greater than {POD_SUBNET_NODE_MASK_MAX_DIFF}",
                        )
                    )
    for san in cluster["apiServer"]["certSANs"]:
        errors += _validate_san(san, "apiServer.certSANs")
    for component in ("apiServer", "controllerManager", "scheduler"):
        for index, arg in enumerate(cluster[component]["extraArgs"]):
            if not arg.get("name"):
                errors.append(
                    invalid(f"{component}.extraArgs", f"index {index}", "argument has no name")
                )
    if not _is_abs(cluster["certificatesDir"]):
        errors.append(
            invalid("certificatesDir", cluster["certificatesDir"], "path is not absolute")
        )
    for gate in cluster["featureGates"]:
        if gate not in FEATURE_GATES:
            errors.append(
                f"featureGates: Invalid value: map[string]bool{{{gate}:"
                f"{str(cluster['featureGates'][gate]).lower()}}}: "
                f"{gate} is not a valid feature name."
            )
    endpoint = cluster["controlPlaneEndpoint"]
    if endpoint:
        try:
            parse_host_port(endpoint)
        except ValueError:
            errors.append(invalid("controlPlaneEndpoint", endpoint, "endpoint is not valid"))
    if not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9._:/-]*$", cluster["imageRepository"]):
        errors.append(
            invalid(
                "imageRepository", cluster["imageRepository"], "invalid image repository format"
            )
        )
    errors += _validate_etcd(cluster["etcd"])
    algorithms = ["ECDSA-P256", "RSA-2048", "RSA-3072", "RSA-4096"]
    if cluster["encryptionAlgorithm"] not in algorithms:
        errors.append(
            invalid(
                "encryptionAlgorithm",
                cluster["encryptionAlgorithm"],
                f'Invalid encryption algorithm "{cluster["encryptionAlgorithm"]}". Must be one '
                f"of [{' '.join(algorithms)}]",
            )
        )
    return errors


def _validate_san(san: str, path: str) -> list[str]:
    """ValidateCertSANs: an IP, a DNS-1123 subdomain or one with a leading wildcard."""
    try:
        ipaddress.ip_address(san)
        return []
    except ValueError:
        pass
    if not _dns1123_errors(san):
        return []
    if san.startswith("*.") and not _dns1123_errors(san[2:]):
        return []
    wildcard = (
        "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
        "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
        "alphanumeric character (e.g. '*.example.com', regex used for validation is "
        "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )
    detail = (
        "altname is not a valid IP address, DNS label or a DNS label with subdomain wildcards: "
        f"{'; '.join(_dns1123_errors(san))}; {wildcard}"
    )
    return [invalid(path, san, detail)]


def _validate_etcd(etcd: dict) -> list[str]:
    """ValidateEtcd."""
    local, external = etcd.get("local"), etcd.get("external")
    if local is None and external is None:
        return [invalid("etcd", "", "either .Etcd.Local or .Etcd.External is required")]
    if local is not None and external is not None:
        return [invalid("etcd", "", ".Etcd.Local and .Etcd.External are mutually exclusive")]
    errors = []
    if local is not None:
        if not _is_abs(local.get("dataDir", "")):
            errors.append(
                invalid("etcd.local.dataDir", local.get("dataDir", ""), "path is not absolute")
            )
        return errors
    ca, cert, key = (external.get(name) or "" for name in ("caFile", "certFile", "keyFile"))
    require_https = bool(ca or cert or key)
    if bool(cert) != bool(key):
        errors.append(
            invalid(
                "etcd.external",
                "",
                "either both or none of .Etcd.External.CertFile and .Etcd.External.KeyFile "
                "must be set",
            )
        )
    if cert and key and not ca:
        errors.append(
            invalid(
                "etcd.external",
                "",
                "setting .Etcd.External.CertFile and .Etcd.External.KeyFile requires "
                ".Etcd.External.CAFile",
            )
        )
    for url in external.get("endpoints") or []:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if require_https and scheme != "https":
            errors.append(
                invalid("etcd.external.endpoints", url, "the URL must be using the HTTPS scheme")
            )
        if not scheme:
            errors.append(
                invalid("etcd.external.endpoints", url, "the URL without scheme is not allowed")
            )
    for name, value in (("caFile", ca), ("certFile", cert), ("keyFile", key)):
        if value and not _is_abs(value):
            errors.append(invalid(f"etcd.external.{name}", value, "path is not absolute"))
    return errors


def _validate_token(token: str, path: str) -> list[str]:
    if not TOKEN_PATTERN.match(token or ""):
        return [invalid(path, token or "", "the bootstrap token is invalid")]
    return []


def _validate_node_registration(registration: dict, path: str) -> list[str]:
    errors = []
    name = registration["name"]
    if not name:
        errors.append(
            required(
                path,
                "--node-name or .nodeRegistration.name in the config file is a required value. "
                "It seems like this value couldn't be automatically detected in your "
                "environment, please specify the desired value using the CLI or config file.",
            )
        )
    else:
        errors += [invalid(f"{path}.name", name, m) for m in _dns1123_errors(name)]
    socket_url = registration["criSocket"]
    if not socket_url.startswith("unix://"):
        scheme = socket_url.split("://", 1)[0]
        errors.append(
            invalid(
                f"{path}.criSocket",
                socket_url,
                f'only URL scheme "unix" is supported, got "{scheme}"',
            )
        )
    for index, arg in enumerate(registration["kubeletExtraArgs"]):
        if not arg.get("name"):
            errors.append(
                invalid(f"{path}.kubeletExtraArgs", f"index {index}", "argument has no name")
            )
    if registration["imagePullPolicy"] not in ("Always", "IfNotPresent", "Never"):
        errors.append(
            invalid(
                f"{path}.imagePullPolicy", registration["imagePullPolicy"], "invalid pull policy"
            )
        )
    return errors


def _validate_api_endpoint(endpoint: dict, path: str) -> list[str]:
    errors = []
    try:
        ipaddress.ip_address(endpoint["advertiseAddress"])
    except ValueError:
        errors.append(
            invalid(
                f"{path}.advertiseAddress", endpoint["advertiseAddress"], "ip address is not valid"
            )
        )
    if not 0 < int(endpoint["bindPort"]) < 65536:
        errors.append(invalid(f"{path}.bindPort", endpoint["bindPort"], "port number is not valid"))
    return errors


def _validate_certificate_key(key: str, path: str) -> list[str]:
    if not key:
        return []
    try:
        decoded = bytes.fromhex(key)
    except ValueError:
        return [invalid(path, key, "certificate key decoding error: encoding/hex: invalid byte")]
    if len(decoded) != 32:
        return [
            invalid(
                path,
                key,
                f"invalid certificate key size {len(decoded)}, the key must be an AES key "
                "of size 32",
            )
        ]
    return []


BOOTSTRAP_USAGES = {"signing", "authentication"}


def _validate_bootstrap_tokens(tokens: list[dict]) -> list[str]:
    errors = []
    for index, token in enumerate(tokens):
        path = f"bootstrapTokens[{index}]"
        errors += _validate_token(token["token"], f"{path}.token")
        unknown = [usage for usage in token["usages"] if usage not in BOOTSTRAP_USAGES]
        if unknown:
            errors.append(
                invalid(
                    f"{path}.usages",
                    token["usages"],
                    f"invalid bootstrap token usage string: {','.join(unknown)}, valid usage "
                    "options: signing,authentication",
                )
            )
        if token["groups"] and "authentication" not in token["usages"]:
            errors.append(
                invalid(
                    f"{path}.groups",
                    token["groups"],
                    'token groups cannot be specified unless --usages includes "authentication"',
                )
            )
        for group in token["groups"]:
            if not re.match(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$", group):
                errors.append(
                    invalid(
                        f"{path}.groups",
                        token["groups"],
                        f'bootstrap group "{group}" is invalid (must match '
                        "\\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\\z)",
                    )
                )
        if token.get("expires") and token.get("ttl"):
            errors.append(
                invalid(
                    path, "", "the BootstrapToken .TTL and .Expires fields are mutually exclusive"
                )
            )
    return errors


def default_bootstrap_tokens(tokens: list[dict] | None) -> list[dict]:
    """SetDefaults_BootstrapToken and SetBootstrapTokensDynamicDefaults (random token)."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    result = []
    for given in tokens if tokens is not None else [{}]:
        token = dict(given)
        if not token.get("token"):
            token["token"] = (
                "".join(secrets.choice(alphabet) for _ in range(6))
                + "."
                + "".join(secrets.choice(alphabet) for _ in range(16))
            )
        if not token.get("ttl") and not token.get("expires"):
            token["ttl"] = "24h0m0s"
        token["usages"] = token.get("usages") or ["signing", "authentication"]
        token["groups"] = token.get("groups") or [NODE_BOOTSTRAP_TOKEN_AUTH_GROUP]
        token.setdefault("description", "")
        result.append(token)
    return result


def _load_documents(text: str, strict_errors: bool, allow_deprecated: bool):
    """The loop of documentMapTo*Configuration: version checks, strict decode, conversion."""
    documents = split_documents(text)
    converted: dict[str, dict] = {}
    component: dict[tuple[str, str], dict] = {}
    for api_version, kind in sorted(documents, key=lambda gvk: gvk_string(*gvk)):
        document = documents[(api_version, kind)]
        _check_supported_version(api_version, kind, allow_deprecated)
        if not is_known(api_version, kind):
            message = f"unknown configuration {gvk_repr(api_version, kind)}"
            if strict_errors:
                raise ConfigError(message)
            warn(message)
        else:
            try:
                verify_unmarshal_strict(api_version, kind, document)
            except StrictDecodeError as err:
                if strict_errors:
                    raise
                warn(str(err))
        if api_version in (V1BETA4, V1BETA3) and kind in SCHEMAS[V1BETA4]:
            data = document.data
            converted[kind] = _from_v1beta3(kind, data) if api_version == V1BETA3 else data
        elif (api_version, kind) in COMPONENT_CONFIGS:
            component[(api_version, kind)] = document.data
        elif api_version.split("/")[0] not in COMPONENT_GROUPS:
            warn(
                "[config] WARNING: Ignored configuration document with GroupVersionKind "
                f"{gvk_string(api_version, kind)}\n"
            )
    return documents, converted, component


def _check_supported_version(api_version: str, kind: str, allow_deprecated: bool) -> None:
    if api_version in OLD_API_VERSIONS:
        raise ConfigError(
            f'your configuration file uses an old API spec: "{api_version}" (kind: "{kind}"). '
            f"Please use kubeadm {OLD_API_VERSIONS[api_version]} instead and run 'kubeadm "
            "config migrate --old-config old.yaml --new-config new.yaml', which will write "
            "the new, similar spec using a newer API version."
        )
    if api_version in DEPRECATED_API_VERSIONS and not allow_deprecated:
        warn(
            f'your configuration file uses a deprecated API spec: "{api_version}" (kind: '
            f'"{kind}"). Please use \'kubeadm config migrate --old-config old.yaml '
            "--new-config new.yaml', which will write the new, similar spec using a newer "
            "API version.",
            "common.go:101",
        )


def _known_gvks_check(documents) -> None:
    """validateKnownGVKs: only GVKs that were never known are refused here."""
    unknown = [gvk for gvk in documents if gvk[0] not in OLD_API_VERSIONS and not is_known(*gvk)]
    if unknown:
        listed = ", ".join(gvk_repr(*gvk) for gvk in unknown)
        raise ConfigError(f"unknown configuration APIs: []schema.GroupVersionKind{{{listed}}}")


def init_configuration(
    text: str,
    strict_errors: bool = False,
    allow_deprecated: bool = False,
) -> dict:
    """documentMapToInitConfiguration: {"init": ..., "cluster": ..., "components": ...}."""
    _, converted, component = _load_documents(text, strict_errors, allow_deprecated)
    if "InitConfiguration" not in converted and "ClusterConfiguration" not in converted:
        raise ConfigError(
            "no InitConfiguration or ClusterConfiguration kind was found in the configuration file"
        )
    return build_init_configuration(
        converted.get("InitConfiguration") or {}, converted.get("ClusterConfiguration"), component
    )


def build_init_configuration(init_data: dict, cluster_data: dict | None, component=None) -> dict:
    init = copy.deepcopy(init_data)
    init["apiVersion"] = V1BETA4
    init["kind"] = "InitConfiguration"
    init["bootstrapTokens"] = default_bootstrap_tokens(init.get("bootstrapTokens"))
    init["nodeRegistration"] = _default_node_registration(init.get("nodeRegistration"), True)
    init["localAPIEndpoint"] = _default_api_endpoint(init.get("localAPIEndpoint"))
    init["timeouts"] = _default_timeouts(init.get("timeouts"))
    init["skipPhases"] = init.get("skipPhases") or []
    init.setdefault("certificateKey", "")
    cluster = default_cluster(cluster_data, init["localAPIEndpoint"]["bindPort"])
    errors = _validate_node_registration(init["nodeRegistration"], "nodeRegistration")
    errors += _validate_bootstrap_tokens(init["bootstrapTokens"])
    errors += validate_cluster(cluster)
    errors += _validate_api_endpoint(init["localAPIEndpoint"], "localAPIEndpoint")
    errors += _validate_certificate_key(init["certificateKey"], "certificateKey")
    if errors:
        raise ConfigError(aggregate(errors))
    return {"init": init, "cluster": cluster, "components": component or {}}


def join_configuration(
    text: str,
    strict_errors: bool = False,
    allow_deprecated: bool = False,
) -> dict:
    """documentMapToJoinConfiguration."""
    _, converted, _ = _load_documents(text, strict_errors, allow_deprecated)
    if "JoinConfiguration" not in converted:
        raise ConfigError("no JoinConfiguration kind was found in the YAML file")
    return build_join_configuration(converted["JoinConfiguration"])


def build_join_configuration(data: dict) -> dict:
    """Defaults (SetDefaults_JoinConfiguration, SetJoinDynamicDefaults) and validation."""
    join = copy.deepcopy(data)
    join["apiVersion"] = V1BETA4
    join["kind"] = "JoinConfiguration"
    control_plane = join.get("controlPlane")
    join["nodeRegistration"] = _default_node_registration(
        join.get("nodeRegistration"), control_plane is not None
    )
    join["caCertPath"] = join.get("caCertPath") or "/etc/kubernetes/pki/ca.crt"
    join["timeouts"] = _default_timeouts(join.get("timeouts"))
    join["skipPhases"] = join.get("skipPhases") or []
    discovery = join.get("discovery") or {}
    join["discovery"] = discovery
    if discovery.get("bootstrapToken") is not None:
        token = discovery["bootstrapToken"]
        token["caCertHashes"] = token.get("caCertHashes") or []
        token.setdefault("unsafeSkipCAVerification", False)
        token.setdefault("token", "")
        token.setdefault("apiServerEndpoint", "")
        if not discovery.get("tlsBootstrapToken"):
            discovery["tlsBootstrapToken"] = token["token"]
    if control_plane is not None:
        control_plane["localAPIEndpoint"] = _default_api_endpoint(
            control_plane.get("localAPIEndpoint")
        )
        control_plane.setdefault("certificateKey", "")
    errors = _validate_discovery(discovery)
    errors += _validate_node_registration(join["nodeRegistration"], "nodeRegistration")
    if control_plane is not None:
        errors += _validate_api_endpoint(
            control_plane["localAPIEndpoint"], "controlPlane.localAPIEndpoint"
        )
        errors += _validate_certificate_key(
            control_plane["certificateKey"], "controlPlane.certificateKey"
        )
    if not _is_abs(join["caCertPath"]) or not join["caCertPath"].endswith(".crt"):
        errors.append(
            invalid(
                "caCertPath", join["caCertPath"], "the ca certificate path must be an absolute path"
            )
        )
    if errors:
        raise ConfigError(aggregate(errors))
    return join


def _validate_discovery(discovery: dict) -> list[str]:
    errors = []
    token, file = discovery.get("bootstrapToken"), discovery.get("file")
    if token is None and file is None:
        errors.append(invalid("discovery", "", "bootstrapToken or file must be set"))
    if token is not None and file is not None:
        errors.append(invalid("discovery", "", "bootstrapToken and file cannot both be set"))
    if token is not None:
        path = "discovery.bootstrapToken"
        if not token["apiServerEndpoint"]:
            errors.append(required(path, "APIServerEndpoint is not set"))
        if not token["caCertHashes"] and not token["unsafeSkipCAVerification"]:
            errors.append(
                invalid(
                    f"{path}.caCertHashes",
                    "",
                    "using token-based discovery without caCertHashes can be unsafe. Set "
                    "unsafeSkipCAVerification as true in your kubeadm config file or pass "
                    "--discovery-token-unsafe-skip-ca-verification flag to continue",
                )
            )
        errors += _validate_token(token["token"], f"{path}.token")
        endpoint = token["apiServerEndpoint"]
        if endpoint and not re.match(r"^(\[[^\]]+\]|[^:\[\]]+):\d+$", endpoint):
            errors.append(
                invalid(
                    f"{path}.apiServerEndpoint",
                    endpoint,
                    f"address {endpoint}: missing port in address",
                )
            )
        errors += _validate_token(
            discovery.get("tlsBootstrapToken", ""), "discovery.tlsBootstrapToken"
        )
    if file is not None and not file.get("kubeConfigPath"):
        errors.append(
            invalid("discovery.file.kubeConfigPath", "", "not a valid HTTPS URL or a file on disk")
        )
    return errors


def validate_config(text: str) -> None:
    """configutil.ValidateConfig: what `kubeadm config validate` runs."""
    documents = split_documents(text)
    _known_gvks_check(documents)
    kinds = {kind for _, kind in documents}
    if kinds & {"InitConfiguration", "ClusterConfiguration"}:
        init_configuration(text, strict_errors=True, allow_deprecated=True)
    if "JoinConfiguration" in kinds:
        join_configuration(text, strict_errors=True, allow_deprecated=True)
    if "ResetConfiguration" in kinds:
        _, converted, _ = _load_documents(text, True, True)
        reset = converted["ResetConfiguration"]
        errors = []
        certificates_dir = reset.get("certificatesDir") or "/etc/kubernetes/pki"
        if not _is_abs(certificates_dir):
            errors.append(invalid("certificatesDir", certificates_dir, "path is not absolute"))
        if errors:
            raise ConfigError(aggregate(errors))


def read_config_file(path: str, rootfs: str = "") -> str:
    """os.ReadFile with kubeadm's wrapping of the error."""
    full = Path(rootfs + path) if rootfs else Path(path)
    try:
        return full.read_text()
    except OSError as err:
        raise ConfigError(
            f'unable to read config from "{path}" : open {path}: '
            f"{(err.strerror or str(err)).lower()}"
        ) from err


def dump_cluster_configuration(cluster: dict) -> str:
    """The ClusterConfiguration as kubeadm uploads it to the kubeadm-config ConfigMap."""
    document = {key: cluster[key] for key in sorted(cluster)}
    return yaml.safe_dump(document, default_flow_style=False)


def token_expiration(token: dict, now: float | None = None) -> str | None:
    """The RFC 3339 expiration a bootstrap token Secret gets (BootstrapTokenToSecret)."""
    if token.get("expires"):
        return token["expires"]
    ttl = parse_duration(token.get("ttl") or "0")
    if ttl <= 0:
        return None
    moment = (now or time.time()) + ttl
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------
# Where kubeadm writes (cmd/kubeadm/app/constants/constants.go). --rootfs prefixes every
# path, as kubeadm's chroot into it would.

KUBERNETES_DIR = "/etc/kubernetes"
MANIFESTS_DIR = "/etc/kubernetes/manifests"
KUBELET_DIR = "/var/lib/kubelet"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBELET_FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
KUBELET_CLIENT_PEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
SUPER_ADMIN_CONF = "/etc/kubernetes/super-admin.conf"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
BOOTSTRAP_KUBELET_CONF = "/etc/kubernetes/bootstrap-kubelet.conf"
CONTROLLER_MANAGER_CONF = "/etc/kubernetes/controller-manager.conf"
SCHEDULER_CONF = "/etc/kubernetes/scheduler.conf"
KUBEADM_CONFIG_MAP = "kubeadm-config"
KUBELET_CONFIG_MAP = "kubelet-config"
KUBEADM_CERTS_SECRET = "kubeadm-certs"
CLUSTER_INFO = "cluster-info"
BOOTSTRAP_TOKEN_SECRET_TYPE = "bootstrap.kubernetes.io/token"
JWS_PREFIX = "jws-kubeconfig-"
DEFAULT_CERT_TOKEN_TTL = "2h0m0s"
LABEL_CONTROL_PLANE = "node-role.kubernetes.io/control-plane"
LABEL_EXCLUDE_LB = "node.kubernetes.io/exclude-from-external-load-balancers"
KUBELET_HEALTHZ = "http://127.0.0.1:10248/healthz"
# constants.go: MinExternalEtcdVersion in kubeadm 1.34.
MIN_EXTERNAL_ETCD_VERSION = "3.5.24-0"
CONTROL_PLANE_NUM_CPU = 2
CONTROL_PLANE_MEM_MB = 1700
STACK_HINT = "To see the stack trace of this error execute with --v=5 or higher"


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


# ---------------------------------------------------------------------------------------
# A small REST client (client-go's part kubeadm uses), over urllib with the kubeconfig's
# client certificate or bearer token.


class ApiError(Exception):
    """A non-2xx answer; str() is the Status message, as client-go's errors read."""

    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code = code
        self.reason = reason


def load_kubeconfig(path: str) -> dict:
    """clientcmd.LoadFromFile for the current context: server, CA and credentials."""
    try:
        config = yaml.safe_load(host(path).read_text())
    except OSError as err:
        raise KubeadmError(
            f"failed to load admin kubeconfig: open {path}: {(err.strerror or '').lower()}"
        ) from err
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    context = contexts.get(config.get("current-context"), {})
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    users = {u["name"]: u["user"] for u in config.get("users") or []}
    cluster = clusters.get(context.get("cluster")) or next(iter(clusters.values()), {})
    user = users.get(context.get("user"), {})
    return {"cluster": cluster, "user": user}


def _pem_from(entry: dict, data_key: str, file_key: str) -> bytes | None:
    if entry.get(data_key):
        return base64.b64decode(entry[data_key])
    if entry.get(file_key):
        return host(entry[file_key]).read_bytes()
    return None


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
        context = ssl.create_default_context()
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif ca_pem:
            context = ssl.create_default_context(cadata=ca_pem.decode())
        if cert_pem and key_pem:
            with tempfile.TemporaryDirectory(prefix="kubeadm-client-") as directory:
                cert_file, key_file = Path(directory, "client.crt"), Path(directory, "client.key")
                kubeadm_pki.write_file(cert_file, cert_pem, 0o600)
                kubeadm_pki.write_file(key_file, key_pem, 0o600)
                context.load_cert_chain(cert_file, key_file)
        self.context = context

    @classmethod
    def from_kubeconfig(cls, path: str) -> Client:
        config = load_kubeconfig(path)
        cluster, user = config["cluster"], config["user"]
        return cls(
            cluster["server"],
            ca_pem=_pem_from(cluster, "certificate-authority-data", "certificate-authority"),
            cert_pem=_pem_from(user, "client-certificate-data", "client-certificate"),
            key_pem=_pem_from(user, "client-key-data", "client-key"),
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
                    raise ApiError(
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
        except ApiError as err:
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
        except ApiError as err:
            if err.code != 409:
                raise

    def patch(self, path: str, patch: dict):
        return self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    def delete(self, path: str):
        return self.request("DELETE", path)


def _api_error(err: urllib.error.HTTPError) -> ApiError:
    raw = err.read()
    try:
        status = json.loads(raw)
        return ApiError(err.code, status.get("reason", ""), status.get("message") or err.reason)
    except ValueError:
        text = raw.decode(errors="replace").strip()
        if err.code == 401:
            text = "Unauthorized"
        return ApiError(err.code, str(err.reason), text or str(err.reason))


def secret_path(namespace: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{base}/{name}" if name else base


def configmap_path(namespace: str, name: str = "") -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return f"{base}/{name}" if name else base


def _b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


# ---------------------------------------------------------------------------------------
# Bootstrap tokens (cmd/kubeadm/app/apis/bootstraptoken/v1/utils.go) and the parts of the
# controller-manager kubeadm relies on (bootstrapsigner, tokencleaner, the garbage
# collector for kubeadm-certs), which the lab has no controller-manager to run: the double
# plays them each time it talks to the cluster with admin credentials.


def token_secret(token: dict) -> dict:
    """BootstrapTokenToSecret."""
    token_id, token_secret_value = token["token"].split(".")
    data = {"token-id": _b64(token_id), "token-secret": _b64(token_secret_value)}
    if token.get("description"):
        data["description"] = _b64(token["description"])
    expiration = token_expiration(token)
    if expiration:
        data["expiration"] = _b64(expiration)
    for usage in token.get("usages") or []:
        data[f"usage-bootstrap-{usage}"] = _b64("true")
    if token.get("groups"):
        data["auth-extra-groups"] = _b64(",".join(token["groups"]))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "type": BOOTSTRAP_TOKEN_SECRET_TYPE,
        "data": data,
    }


def token_from_secret(secret: dict) -> dict | None:
    """BootstrapTokenFromSecret, None for a Secret that is not a valid token."""
    data = {key: _unb64(value) for key, value in (secret.get("data") or {}).items()}
    token_id, token_secret_value = data.get("token-id", ""), data.get("token-secret", "")
    if not TOKEN_PATTERN.match(f"{token_id}.{token_secret_value}"):
        return None
    return {
        "token": f"{token_id}.{token_secret_value}",
        "description": data.get("description", ""),
        "expires": data.get("expiration"),
        "usages": sorted(
            key.removeprefix("usage-bootstrap-")
            for key, value in data.items()
            if key.startswith("usage-bootstrap-") and value == "true"
        ),
        "groups": [g for g in data.get("auth-extra-groups", "").split(",") if g],
    }


def _expired(token: dict) -> bool:
    if not token.get("expires"):
        return False
    expires = datetime.datetime.strptime(token["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC
    )
    return expires <= datetime.datetime.now(datetime.UTC)


def list_token_secrets(client: Client) -> list[dict]:
    listing = client.get(
        secret_path("kube-system") + "?fieldSelector=type%3Dbootstrap.kubernetes.io%2Ftoken"
    )
    return [s for s in listing.get("items") or [] if s.get("type") == BOOTSTRAP_TOKEN_SECRET_TYPE]


def play_controller_manager(client: Client) -> None:
    """tokencleaner, the garbage collector (kubeadm-certs) and bootstrapsigner, once."""
    secrets_listing = client.get(secret_path("kube-system")).get("items") or []
    live_uids = set()
    signing = {}
    for secret in secrets_listing:
        if secret.get("type") != BOOTSTRAP_TOKEN_SECRET_TYPE:
            live_uids.add(secret["metadata"].get("uid"))
            continue
        token = token_from_secret(secret)
        if token is not None and _expired(token):
            _delete_quietly(client, secret_path("kube-system", secret["metadata"]["name"]))
            continue
        live_uids.add(secret["metadata"].get("uid"))
        if token is not None and "signing" in token["usages"]:
            token_id, token_secret_value = token["token"].split(".")
            signing[token_id] = token_secret_value
    for secret in secrets_listing:
        owners = secret["metadata"].get("ownerReferences") or []
        if owners and not any(owner.get("uid") in live_uids for owner in owners):
            _delete_quietly(client, secret_path("kube-system", secret["metadata"]["name"]))
    try:
        cluster_info = client.get(configmap_path("kube-public", CLUSTER_INFO))
    except ApiError as err:
        if err.code == 404:
            return
        raise
    data = dict(cluster_info.get("data") or {})
    content = data.get("kubeconfig", "")
    wanted = {
        JWS_PREFIX + token_id: kubeadm_pki.detached_jws(content, token_id, secret_value)
        for token_id, secret_value in signing.items()
    }
    current = {key: value for key, value in data.items() if key.startswith(JWS_PREFIX)}
    if current == wanted:
        return
    data = {key: value for key, value in data.items() if not key.startswith(JWS_PREFIX)}
    data.update(wanted)
    cluster_info["data"] = data
    client.request("PUT", configmap_path("kube-public", CLUSTER_INFO), cluster_info)


def _delete_quietly(client: Client, path: str) -> None:
    try:
        client.delete(path)
    except ApiError as err:
        if err.code != 404:
            raise


def create_tokens(client: Client, tokens: list[dict]) -> None:
    """tokenphase.CreateNewTokens (UpdateOrCreateTokens without failIfExists)."""
    for token in tokens:
        client.create_or_update(secret_path("kube-system"), token_secret(token))


# ---------------------------------------------------------------------------------------
# Certificates and kubeconfig files (phases/certs, phases/kubeconfig).


def _service_ip(cluster: dict) -> str:
    """The first address of the service subnet: the kubernetes Service's ClusterIP."""
    subnet = ipaddress.ip_network(
        cluster["networking"]["serviceSubnet"].split(",")[0], strict=False
    )
    return str(subnet.network_address + 1)


def apiserver_alt_names(init: dict, cluster: dict) -> tuple[list[str], list[str]]:
    """certs.GetAPIServerAltNames."""
    domain = cluster["networking"]["dnsDomain"]
    dns = [
        init["nodeRegistration"]["name"],
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{domain}",
    ]
    ips = [_service_ip(cluster), init["localAPIEndpoint"]["advertiseAddress"]]
    extra = []
    if cluster["controlPlaneEndpoint"]:
        extra.append(parse_host_port(cluster["controlPlaneEndpoint"])[0])
    extra += cluster["apiServer"]["certSANs"]
    for name in extra:
        try:
            ipaddress.ip_address(name)
            if name not in ips:
                ips.append(name)
        except ValueError:
            if name not in dns:
                dns.append(name)
    return dns, ips


def _pki(cluster: dict, name: str) -> Path:
    return host(f"{cluster['certificatesDir']}/{name}")


def _write_cert_and_key(cluster: dict, base: str, cert, key) -> None:
    kubeadm_pki.write_file(_pki(cluster, f"{base}.key"), kubeadm_pki.key_pem(key), 0o600)
    kubeadm_pki.write_file(_pki(cluster, f"{base}.crt"), kubeadm_pki.cert_pem(cert), 0o644)


def _load_ca(cluster: dict, base: str):
    cert = kubeadm_pki.load_cert(_pki(cluster, f"{base}.crt").read_bytes())
    key = kubeadm_pki.load_key(_pki(cluster, f"{base}.key").read_bytes())
    return cert, key


def _ensure_ca(cluster: dict, base: str, common_name: str, label: str):
    if _pki(cluster, f"{base}.crt").exists() and _pki(cluster, f"{base}.key").exists():
        say(f"[certs] Using existing {label} certificate authority")
        return _load_ca(cluster, base)
    say(f'[certs] Generating "{base}" certificate and key')
    key = kubeadm_pki.generate_key(cluster["encryptionAlgorithm"])
    validity = datetime.timedelta(seconds=parse_duration(cluster["caCertificateValidityPeriod"]))
    cert = kubeadm_pki.new_ca(common_name, key, validity)
    _write_cert_and_key(cluster, base, cert, key)
    return cert, key


def _ensure_leaf(cluster: dict, base: str, spec, ca) -> None:
    if _pki(cluster, f"{base}.crt").exists() and _pki(cluster, f"{base}.key").exists():
        say(f"[certs] Using existing {base} certificate and key on disk")
        return
    say(f'[certs] Generating "{base}" certificate and key')
    key = kubeadm_pki.generate_key(cluster["encryptionAlgorithm"])
    validity = datetime.timedelta(seconds=parse_duration(cluster["certificateValidityPeriod"]))
    cert = kubeadm_pki.new_signed_cert(spec, key, ca[0], ca[1], validity)
    _write_cert_and_key(cluster, base, cert, key)
    if spec.server:
        say(
            f"[certs] {base} serving cert is signed for DNS names [{' '.join(spec.dns_names)}] "
            f"and IPs [{' '.join(spec.ips)}]"
        )


def phase_certs(init: dict, cluster: dict) -> None:
    say(f'[certs] Using certificateDir folder "{cluster["certificatesDir"]}"')
    ca = _ensure_ca(cluster, "ca", "kubernetes", "ca")
    dns, ips = apiserver_alt_names(init, cluster)
    _ensure_leaf(
        cluster,
        "apiserver",
        kubeadm_pki.CertSpec("kube-apiserver", server=True, dns_names=dns, ips=ips),
        ca,
    )
    _ensure_leaf(
        cluster,
        "apiserver-kubelet-client",
        kubeadm_pki.CertSpec(
            "kube-apiserver-kubelet-client", ["kubeadm:cluster-admins"], client=True
        ),
        ca,
    )
    front_proxy_ca = _ensure_ca(cluster, "front-proxy-ca", "front-proxy-ca", "front-proxy-ca")
    _ensure_leaf(
        cluster,
        "front-proxy-client",
        kubeadm_pki.CertSpec("front-proxy-client", client=True),
        front_proxy_ca,
    )
    if cluster["etcd"].get("external") is not None:
        for what in (
            "etcd/ca certificate authority generation",
            "etcd/server certificate generation",
            "etcd/peer certificate generation",
            "etcd/healthcheck-client certificate generation",
            "apiserver-etcd-client certificate generation",
        ):
            say(f"[certs] External etcd mode: Skipping {what}")
    if _pki(cluster, "sa.key").exists():
        say('[certs] Using the existing "sa" key')
    else:
        say('[certs] Generating "sa" key and public key')
        key = kubeadm_pki.generate_key(
            "RSA-2048"
            if cluster["encryptionAlgorithm"] == "ECDSA-P256"
            else cluster["encryptionAlgorithm"]
        )
        kubeadm_pki.write_file(_pki(cluster, "sa.key"), kubeadm_pki.key_pem(key), 0o600)
        kubeadm_pki.write_file(_pki(cluster, "sa.pub"), kubeadm_pki.public_key_pem(key), 0o644)


def _local_endpoint(init: dict) -> str:
    endpoint = init["localAPIEndpoint"]
    return "https://" + join_host_port(endpoint["advertiseAddress"], endpoint["bindPort"])


def _cluster_endpoint(init: dict, cluster: dict) -> str:
    if cluster["controlPlaneEndpoint"]:
        return "https://" + cluster["controlPlaneEndpoint"]
    return _local_endpoint(init)


def kubeconfig_specs(init: dict, cluster: dict, with_super_admin: bool) -> list[tuple]:
    """kubeconfig.getKubeConfigSpecsBase: file, server, user, organizations."""
    name = init["nodeRegistration"]["name"]
    shared, local = _cluster_endpoint(init, cluster), _local_endpoint(init)
    specs = [(ADMIN_CONF, shared, "kubernetes-admin", ["kubeadm:cluster-admins"])]
    if with_super_admin:
        specs.append((SUPER_ADMIN_CONF, shared, "kubernetes-super-admin", ["system:masters"]))
    specs += [
        (KUBELET_CONF, shared, f"system:node:{name}", ["system:nodes"]),
        (CONTROLLER_MANAGER_CONF, local, "system:kube-controller-manager", []),
        (SCHEDULER_CONF, local, "system:kube-scheduler", []),
    ]
    return specs


def phase_kubeconfig(init: dict, cluster: dict, specs: list[tuple]) -> None:
    say(f'[kubeconfig] Using kubeconfig folder "{KUBERNETES_DIR}"')
    ca_cert, ca_key = _load_ca(cluster, "ca")
    ca_pem = kubeadm_pki.cert_pem(ca_cert)
    validity = datetime.timedelta(seconds=parse_duration(cluster["certificateValidityPeriod"]))
    for path, server, user, organizations in specs:
        if host(path).exists():
            say(f'[kubeconfig] Using existing kubeconfig file: "{path}"')
            continue
        say(f'[kubeconfig] Writing "{Path(path).name}" kubeconfig file')
        key = kubeadm_pki.generate_key(cluster["encryptionAlgorithm"])
        cert = kubeadm_pki.new_signed_cert(
            kubeadm_pki.CertSpec(user, organizations, client=True), key, ca_cert, ca_key, validity
        )
        text = kubeadm_pki.kubeconfig(
            server,
            ca_pem,
            user,
            cluster_name=cluster["clusterName"],
            client_cert_pem=kubeadm_pki.cert_pem(cert),
            client_key_pem=kubeadm_pki.key_pem(key),
        )
        kubeadm_pki.write_file(host(path), text.encode(), 0o600)


# ---------------------------------------------------------------------------------------
# Static Pod manifests (phases/controlplane/manifests.go).


def _command(binary: str, defaults: dict, extra: list[dict]) -> list[str]:
    """kubeadmutil.ArgumentsToCommand: extra args override defaults by name, sorted."""
    overridden = {arg["name"] for arg in extra}
    args = [(name, value) for name, value in defaults.items() if name not in overridden]
    args += [(arg["name"], arg.get("value", "")) for arg in extra]
    return [binary] + [f"--{name}={value}" for name, value in sorted(args, key=lambda a: a[0])]


def apiserver_command(init: dict, cluster: dict) -> list[str]:
    pki = cluster["certificatesDir"]
    endpoint = init["localAPIEndpoint"]
    defaults = {
        "advertise-address": endpoint["advertiseAddress"],
        "allow-privileged": "true",
        "authorization-mode": "Node,RBAC",
        "client-ca-file": f"{pki}/ca.crt",
        "enable-admission-plugins": "NodeRestriction",
        "enable-bootstrap-token-auth": "true",
        "kubelet-client-certificate": f"{pki}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{pki}/apiserver-kubelet-client.key",
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "proxy-client-cert-file": f"{pki}/front-proxy-client.crt",
        "proxy-client-key-file": f"{pki}/front-proxy-client.key",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": f"{pki}/front-proxy-ca.crt",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User",
        "secure-port": str(endpoint["bindPort"]),
        "service-account-issuer": f"https://kubernetes.default.svc.{cluster['networking']['dnsDomain']}",
        "service-account-key-file": f"{pki}/sa.pub",
        "service-account-signing-key-file": f"{pki}/sa.key",
        "service-cluster-ip-range": cluster["networking"]["serviceSubnet"],
        "tls-cert-file": f"{pki}/apiserver.crt",
        "tls-private-key-file": f"{pki}/apiserver.key",
    }
    external = cluster["etcd"].get("external")
    if external is not None:
        defaults["etcd-servers"] = ",".join(external.get("endpoints") or [])
        for flag, key in (
            ("etcd-cafile", "caFile"),
            ("etcd-certfile", "certFile"),
            ("etcd-keyfile", "keyFile"),
        ):
            if external.get(key):
                defaults[flag] = external[key]
    else:
        defaults.update(
            {
                "etcd-cafile": f"{pki}/etcd/ca.crt",
                "etcd-certfile": f"{pki}/apiserver-etcd-client.crt",
                "etcd-keyfile": f"{pki}/apiserver-etcd-client.key",
                "etcd-servers": "https://127.0.0.1:2379",
            }
        )
    return _command("kube-apiserver", defaults, cluster["apiServer"]["extraArgs"])


def _host_path_volume(name: str, path: str, kind: str) -> tuple[dict, dict]:
    return (
        {"hostPath": {"path": path, "type": kind}, "name": name},
        {"mountPath": path, "name": name, "readOnly": True},
    )


def _static_pod(
    component: str,
    command: list[str],
    image: str,
    *,
    probe: dict,
    volumes: list[tuple[dict, dict]],
    cpu: str,
    annotations: dict | None = None,
) -> dict:
    def probe_for(path: str, threshold: int) -> dict:
        return {
            "failureThreshold": threshold,
            "httpGet": dict(probe, path=path),
            "initialDelaySeconds": 10,
            "periodSeconds": 10,
            "timeoutSeconds": 15,
        }

    metadata = {
        "labels": {"component": component, "tier": "control-plane"},
        "name": component,
        "namespace": "kube-system",
    }
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "containers": [
                {
                    "command": command,
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "livenessProbe": probe_for(
                        "/livez" if component != "kube-controller-manager" else "/healthz", 8
                    ),
                    "name": component,
                    "resources": {"requests": {"cpu": cpu}},
                    "startupProbe": probe_for(
                        "/livez" if component != "kube-controller-manager" else "/healthz", 24
                    ),
                    "volumeMounts": [mount for _, mount in volumes],
                }
            ],
            "hostNetwork": True,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [volume for volume, _ in volumes],
        },
        "status": {},
    }


def _common_volumes(cluster: dict) -> list[tuple[dict, dict]]:
    volumes = [
        _host_path_volume("ca-certs", "/etc/ssl/certs", "DirectoryOrCreate"),
        _host_path_volume("etc-ca-certificates", "/etc/ca-certificates", "DirectoryOrCreate"),
        _host_path_volume("k8s-certs", cluster["certificatesDir"], "DirectoryOrCreate"),
        _host_path_volume(
            "usr-local-share-ca-certificates",
            "/usr/local/share/ca-certificates",
            "DirectoryOrCreate",
        ),
        _host_path_volume(
            "usr-share-ca-certificates", "/usr/share/ca-certificates", "DirectoryOrCreate"
        ),
    ]
    return volumes


def _etcd_volumes(cluster: dict) -> list[tuple[dict, dict]]:
    """getEtcdCertVolumes: the external etcd files' folders, unless already mounted."""
    external = cluster["etcd"].get("external") or {}
    mounted = {
        "/etc/ssl/certs",
        "/etc/ca-certificates",
        cluster["certificatesDir"],
        "/usr/local/share/ca-certificates",
        "/usr/share/ca-certificates",
    }
    folders = []
    for key in ("caFile", "certFile", "keyFile"):
        if external.get(key):
            folder = str(Path(external[key]).parent)
            if folder not in folders and not any(
                folder == m or folder.startswith(m + "/") for m in mounted
            ):
                folders.append(folder)
    return [
        _host_path_volume(f"etcd-certs-{index}", folder, "DirectoryOrCreate")
        for index, folder in enumerate(folders)
    ]


def static_pods(init: dict, cluster: dict) -> dict[str, dict]:
    version = cluster["kubernetesVersion"]
    repository = cluster["imageRepository"]
    endpoint = init["localAPIEndpoint"]
    address = endpoint["advertiseAddress"]
    pki = cluster["certificatesDir"]
    apiserver = _static_pod(
        "kube-apiserver",
        apiserver_command(init, cluster),
        f"{repository}/kube-apiserver:{version}",
        probe={"host": address, "port": endpoint["bindPort"], "scheme": "HTTPS"},
        volumes=_common_volumes(cluster) + _etcd_volumes(cluster),
        cpu="250m",
        annotations={
            "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": join_host_port(
                address, endpoint["bindPort"]
            )
        },
    )
    apiserver["spec"]["containers"][0]["readinessProbe"] = {
        "failureThreshold": 3,
        "httpGet": {
            "host": address,
            "path": "/readyz",
            "port": endpoint["bindPort"],
            "scheme": "HTTPS",
        },
        "periodSeconds": 1,
        "timeoutSeconds": 15,
    }
    manager_defaults = {
        "authentication-kubeconfig": CONTROLLER_MANAGER_CONF,
        "authorization-kubeconfig": CONTROLLER_MANAGER_CONF,
        "bind-address": "127.0.0.1",
        "client-ca-file": f"{pki}/ca.crt",
        "cluster-name": cluster["clusterName"],
        "cluster-signing-cert-file": f"{pki}/ca.crt",
        "cluster-signing-key-file": f"{pki}/ca.key",
        "controllers": "*,bootstrapsigner,tokencleaner",
        "kubeconfig": CONTROLLER_MANAGER_CONF,
        "leader-elect": "true",
        "requestheader-client-ca-file": f"{pki}/front-proxy-ca.crt",
        "root-ca-file": f"{pki}/ca.crt",
        "service-account-private-key-file": f"{pki}/sa.key",
        "use-service-account-credentials": "true",
    }
    if cluster["networking"]["podSubnet"]:
        manager_defaults["allocate-node-cidrs"] = "true"
        manager_defaults["cluster-cidr"] = cluster["networking"]["podSubnet"]
        manager_defaults["service-cluster-ip-range"] = cluster["networking"]["serviceSubnet"]
    manager = _static_pod(
        "kube-controller-manager",
        _command(
            "kube-controller-manager", manager_defaults, cluster["controllerManager"]["extraArgs"]
        ),
        f"{repository}/kube-controller-manager:{version}",
        probe={"host": "127.0.0.1", "port": 10257, "scheme": "HTTPS"},
        volumes=[
            *_common_volumes(cluster),
            _host_path_volume("kubeconfig", CONTROLLER_MANAGER_CONF, "FileOrCreate"),
        ],
        cpu="200m",
    )
    scheduler = _static_pod(
        "kube-scheduler",
        _command(
            "kube-scheduler",
            {
                "authentication-kubeconfig": SCHEDULER_CONF,
                "authorization-kubeconfig": SCHEDULER_CONF,
                "bind-address": "127.0.0.1",
                "kubeconfig": SCHEDULER_CONF,
                "leader-elect": "true",
            },
            cluster["scheduler"]["extraArgs"],
        ),
        f"{repository}/kube-scheduler:{version}",
        probe={"host": "127.0.0.1", "port": 10259, "scheme": "HTTPS"},
        volumes=[_host_path_volume("kubeconfig", SCHEDULER_CONF, "FileOrCreate")],
        cpu="100m",
    )
    return {
        "kube-apiserver": apiserver,
        "kube-controller-manager": manager,
        "kube-scheduler": scheduler,
    }


def phase_control_plane(init: dict, cluster: dict) -> None:
    say(f'[control-plane] Using manifest folder "{MANIFESTS_DIR}"')
    for component, pod in static_pods(init, cluster).items():
        say(f'[control-plane] Creating static Pod manifest for "{component}"')
        text = yaml.safe_dump(pod, default_flow_style=False)
        kubeadm_pki.write_file(host(f"{MANIFESTS_DIR}/{component}.yaml"), text.encode(), 0o600)


# ---------------------------------------------------------------------------------------
# The kubelet's files (phases/kubelet) and its service.


def kubelet_configuration(cluster: dict, components: dict | None = None) -> dict:
    """The KubeletConfiguration kubeadm defaults (componentconfigs/kubelet.go)."""
    service = ipaddress.ip_network(
        cluster["networking"]["serviceSubnet"].split(",")[0], strict=False
    )
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"cacheTTL": "0s", "enabled": True},
            "x509": {"clientCAFile": f"{cluster['certificatesDir']}/ca.crt"},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"},
        },
        "cgroupDriver": "systemd",
        "clusterDNS": [str(service.network_address + 10)],
        "clusterDomain": cluster["networking"]["dnsDomain"],
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "kind": "KubeletConfiguration",
        "rotateCertificates": True,
        "staticPodPath": MANIFESTS_DIR,
    }
    for (_, kind), document in (components or {}).items():
        if kind == "KubeletConfiguration":
            config.update({k: v for k, v in document.items() if k not in ("apiVersion", "kind")})
    return config


def kubelet_flags(registration: dict) -> str:
    """buildKubeletArgs: the env file's KUBELET_KUBEADM_ARGS."""
    flags = {"container-runtime-endpoint": registration["criSocket"]}
    if registration["name"] != hostname():
        flags["hostname-override"] = registration["name"]
    for arg in registration["kubeletExtraArgs"]:
        flags[arg["name"]] = arg.get("value", "")
    rendered = " ".join(f"--{name}={value}" for name, value in sorted(flags.items()))
    return f'KUBELET_KUBEADM_ARGS="{rendered}"\n'


def write_kubelet_files(kubelet_config_text: str, registration: dict) -> None:
    say(
        f'[kubelet-start] Writing kubelet environment file with flags to file "{KUBELET_FLAGS_ENV}"'
    )
    kubeadm_pki.write_file(host(KUBELET_FLAGS_ENV), kubelet_flags(registration).encode(), 0o644)
    say(f'[kubelet-start] Writing kubelet configuration to file "{KUBELET_CONFIG}"')
    kubeadm_pki.write_file(host(KUBELET_CONFIG), kubelet_config_text.encode(), 0o644)


def _systemctl() -> str | None:
    """initsystem.GetInitSystem: systemctl on the node's PATH (inside --rootfs if given)."""
    if Node.rootfs:
        for folder in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
            if host(f"{folder}/systemctl").exists():
                return f"{folder}/systemctl"
        return None
    return shutil.which("systemctl")


def try_start_kubelet() -> None:
    """kubeletphase.TryStartKubelet."""
    systemctl = _systemctl()
    if systemctl is None:
        say(
            "[kubelet-start] No supported init system detected, won't make sure the kubelet is "
            "running properly."
        )
        return
    if Node.rootfs:
        say(
            "[kubelet-start] Couldn't detect a kubelet service, can't make sure the kubelet is "
            "running properly."
        )
        return
    say("[kubelet-start] Starting the kubelet")
    subprocess.run([systemctl, "daemon-reload"], check=False, capture_output=True)
    result = subprocess.run(
        [systemctl, "restart", "kubelet"], check=False, capture_output=True, text=True
    )
    if result.returncode != 0:
        warn(
            f"[kubelet-start] WARNING: unable to start the kubelet service: "
            f"[{result.stderr.strip()}]\n",
            "kubelet.go:61",
        )
        say("[kubelet-start] Please ensure kubelet is reloaded and running manually.")


def stop_kubelet() -> None:
    systemctl = _systemctl()
    if systemctl and not Node.rootfs:
        subprocess.run([systemctl, "stop", "kubelet"], check=False, capture_output=True)


def wait_for_kubelet(timeout: float) -> None:
    """KubeWaiter.WaitForKubelet."""
    say(
        f"[kubelet-check] Waiting for a healthy kubelet at {KUBELET_HEALTHZ}. This can take up "
        f"to {format_duration(timeout)}"
    )
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(KUBELET_HEALTHZ, timeout=5) as answer:
                if answer.status == 200:
                    say(f"[kubelet-check] The kubelet is healthy after {_since(start)}")
                    return
                last = f"status code: {answer.status}"
        except urllib.error.HTTPError as err:
            last = f"status code: {err.code}"
        except (urllib.error.URLError, OSError) as err:
            last = f'error: Get "{KUBELET_HEALTHZ}": {getattr(err, "reason", err)}'
        time.sleep(0.5)
    say(f"[kubelet-check] The kubelet is not healthy after {_since(start)}")
    say(KUBELET_FAIL_MESSAGE)
    raise KubeadmError(f"The HTTP call equal to 'curl -sSL {KUBELET_HEALTHZ}' returned {last}\n")


KUBELET_FAIL_MESSAGE = """
Unfortunately, an error has occurred, likely caused by:
	- The kubelet is not running
	- The kubelet is unhealthy due to a misconfiguration of the node in some way (required \
cgroups disabled)

If you are on a systemd-powered system, you can try to troubleshoot the error with the \
following commands:
	- 'systemctl status kubelet'
	- 'journalctl -xeu kubelet'
"""


def _since(start: float) -> str:
    elapsed = time.monotonic() - start
    return f"{elapsed * 1000:.3f}ms" if elapsed < 1 else f"{elapsed:.9f}s"


def wait_for_apiserver(init: dict, timeout: float) -> None:
    """KubeWaiter.WaitForControlPlaneComponents, for the one component the lab runs."""
    url = _local_endpoint(init) + "/livez"
    say(
        f"[control-plane-check] Waiting for healthy control plane components. This can take up "
        f"to {format_duration(timeout)}"
    )
    say(f"[control-plane-check] Checking kube-apiserver at {url}")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as answer:
                if answer.status == 200:
                    say(f"[control-plane-check] kube-apiserver is healthy after {_since(start)}")
                    return
        except urllib.error.HTTPError as err:
            last = f"kube-apiserver check failed at {url} with status: {err.code}"
        except (urllib.error.URLError, OSError) as err:
            last = (
                f'kube-apiserver check failed at {url}: Get "{url}": {getattr(err, "reason", err)}'
            )
        time.sleep(0.5)
    say(f"[control-plane-check] kube-apiserver is not healthy after {_since(start)}")
    raise KubeadmError(f"failed while waiting for the control plane to start: {last}")


def _with_retries(what, timeout: float):
    """kubeadm's apiclient helpers: retry an API call until the API call timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return what()
        except ApiError as err:
            if err.code in (400, 401, 403, 404, 409, 422) or time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def mark_control_plane(
    client: Client, name: str, taints: list[dict] | None, timeout: float
) -> None:
    """markcontrolplane.MarkControlPlane through apiclient.PatchNode (waits for the Node)."""
    labels = [LABEL_CONTROL_PLANE, LABEL_EXCLUDE_LB]
    say(
        f"[mark-control-plane] Marking the node {name} as control-plane by adding the labels: "
        f"[{' '.join(labels)}]"
    )
    if taints:
        rendered = " ".join(f"{t['key']}:{t['effect']}" for t in taints)
        say(
            f"[mark-control-plane] Marking the node {name} as control-plane by adding the "
            f"taints [{rendered}]"
        )
    deadline = time.monotonic() + timeout
    node = None
    while node is None:
        try:
            node = client.get(f"/api/v1/nodes/{name}")
        except ApiError as err:
            if err.code not in (0, 404, 500, 503) or time.monotonic() >= deadline:
                raise KubeadmError(f'error patching Node "{name}": {err}') from err
            time.sleep(0.5)
    existing = node.get("spec", {}).get("taints") or []
    keys = {(t["key"], t["effect"]) for t in existing}
    merged = existing + [t for t in taints or [] if (t["key"], t["effect"]) not in keys]
    client.patch(
        f"/api/v1/nodes/{name}",
        {
            "metadata": {"labels": {label: "" for label in labels}},
            "spec": {"taints": merged},
        },
    )


# ---------------------------------------------------------------------------------------
# Preflight (cmd/kubeadm/app/preflight/checks.go).


def _check_file_available(path: str):
    def check():
        return ([], [f"{path} already exists"]) if host(path).exists() else ([], [])

    return f"FileAvailable-{path.replace('/', '-')}", check


def _check_file_existing(path: str, label: str):
    def check():
        return ([], []) if host(path).exists() else ([], [f"{path} doesn't exist"])

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


def _check_privileged():
    def check():
        return ([], []) if os.geteuid() == 0 else ([], ["user is not running as root"])

    return "IsPrivilegedUser", check


def _check_cri(socket_url: str):
    def check():
        path = socket_url.removeprefix("unix://")
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.settimeout(2)
            probe.connect(str(host(path)))
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
        systemctl = _systemctl()
        if systemctl is None or Node.rootfs:
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
        if count < CONTROL_PLANE_NUM_CPU:
            return [], [
                f"the number of available CPUs {count} is less than the required "
                f"{CONTROL_PLANE_NUM_CPU}"
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
        if megabytes < CONTROL_PLANE_MEM_MB:
            return [], [
                f"the system RAM ({megabytes} MB) is less than the minimum "
                f"{CONTROL_PLANE_MEM_MB} MB"
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
                context = ssl.create_default_context(cafile=str(host(external["caFile"])))
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
                    str(host(external["certFile"])), str(host(external["keyFile"]))
                )
            except (OSError, ssl.SSLError) as err:
                return [], [
                    f"couldn't load external etcd's certificate and key pair "
                    f"{external['certFile']}, {external['keyFile']}: {err}"
                ]
        minimum = _semver(MIN_EXTERNAL_ETCD_VERSION)
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
                    f"this version of kubeadm only supports external etcd version >= "
                    f"{MIN_EXTERNAL_ETCD_VERSION}. Current version: {server_version}"
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
        raise phase_error("preflight", "preflight checks failed")


def ignored_checks(from_cli: list[str], from_config: list[str]) -> set[str]:
    """validation.ValidateIgnorePreflightErrors."""
    ignore = {item.lower() for item in from_config + from_cli if item}
    if "all" in ignore and len(ignore) > 1:
        raise KubeadmError(
            invalid(
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
        _check_file_available(f"{MANIFESTS_DIR}/{component}.yaml")
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


# ---------------------------------------------------------------------------------------
# kubeadm init (cmd/kubeadm/app/cmd/init.go and phases/init/*).

INIT_PHASES = [
    "preflight",
    "certs",
    "kubeconfig",
    "etcd",
    "control-plane",
    "kubelet-start",
    "wait-control-plane",
    "upload-config",
    "upload-certs",
    "mark-control-plane",
    "bootstrap-token",
    "kubelet-finalize",
    "addon",
    "show-join-command",
]


def _skipped(phase: str, skip: list[str]) -> bool:
    return any(phase == item or phase.startswith(item + "/") for item in skip)


def run_init(options) -> None:
    if not options.config:
        raise KubeadmError("the double needs --config: flags-only init is not copied")
    config = init_configuration(read_config_file(options.config, Node.rootfs))
    init, cluster = config["init"], config["cluster"]
    skip = options.skip_phases or init["skipPhases"]
    ignore = ignored_checks(
        options.ignore_preflight_errors, init["nodeRegistration"]["ignorePreflightErrors"]
    )
    certificate_key = options.certificate_key or init["certificateKey"]
    say(f"[init] Using Kubernetes version: {cluster['kubernetesVersion']}")
    if not _skipped("preflight", skip):
        say("[preflight] Running pre-flight checks")
        run_checks([_check_privileged(), *init_node_checks(init, cluster, False, False)], ignore)
        say("[preflight] Pulling images required for setting up a Kubernetes cluster")
        say(
            "[preflight] This might take a minute or two, depending on the speed of your "
            "internet connection"
        )
        say(
            "[preflight] You can also perform this action beforehand using 'kubeadm config "
            "images pull'"
        )
    if not _skipped("certs", skip):
        phase_certs(init, cluster)
    if not _skipped("kubeconfig", skip):
        phase_kubeconfig(init, cluster, kubeconfig_specs(init, cluster, with_super_admin=True))
    if not _skipped("control-plane", skip):
        phase_control_plane(init, cluster)
    kubelet_config_text = yaml.safe_dump(kubelet_configuration(cluster, config["components"]))
    if not _skipped("kubelet-start", skip):
        write_kubelet_files(kubelet_config_text, init["nodeRegistration"])
        try_start_kubelet()
    timeouts = init["timeouts"]
    if not _skipped("wait-control-plane", skip):
        say(
            "[wait-control-plane] Waiting for the kubelet to boot up the control plane as "
            f'static Pods from directory "{MANIFESTS_DIR}"'
        )
        try:
            wait_for_kubelet(parse_duration(timeouts["kubeletHealthCheck"]))
            wait_for_apiserver(init, parse_duration(timeouts["controlPlaneComponentHealthCheck"]))
        except KubeadmError as err:
            raise phase_error("wait-control-plane", err) from None
    api_timeout = parse_duration(timeouts["kubernetesAPICall"])
    client = None
    if not all(_skipped(p, skip) for p in INIT_PHASES[7:11]):
        client = Client.from_kubeconfig(ADMIN_CONF)
    if not _skipped("upload-config", skip):
        _run_phase(
            "upload-config",
            lambda: upload_config(client, cluster, kubelet_config_text, api_timeout),
        )
    if not _skipped("upload-certs", skip):
        if options.upload_certs:
            certificate_key = _run_phase(
                "upload-certs", lambda: upload_certs(client, cluster, certificate_key)
            )
        else:
            say("[upload-certs] Skipping phase. Please see --upload-certs")
    if not _skipped("mark-control-plane", skip):
        registration = init["nodeRegistration"]
        _run_phase(
            "mark-control-plane",
            lambda: mark_control_plane(
                client, registration["name"], registration["taints"], api_timeout
            ),
        )
    if not _skipped("bootstrap-token", skip):
        _run_phase("bootstrap-token", lambda: bootstrap_token_phase(client, init, cluster))
    if not _skipped("kubelet-finalize", skip):
        kubelet_finalize()
    if not _skipped("show-join-command", skip):
        show_join_command(init, cluster, certificate_key if options.upload_certs else "")


def _run_phase(phase: str, action):
    try:
        return action()
    except ApiError as err:
        raise phase_error(phase, err) from None
    except KubeadmError as err:
        raise phase_error(phase, err) from None


def upload_config(client: Client, cluster: dict, kubelet_config_text: str, timeout: float) -> None:
    """phases/uploadconfig and phases/kubelet: the two ConfigMaps joins read."""
    say(
        f'[upload-config] Storing the configuration used in ConfigMap "{KUBEADM_CONFIG_MAP}" '
        'in the "kube-system" Namespace'
    )
    _with_retries(
        lambda: client.create_or_update(
            configmap_path("kube-system"),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": KUBEADM_CONFIG_MAP, "namespace": "kube-system"},
                "data": {"ClusterConfiguration": dump_cluster_configuration(cluster)},
            },
        ),
        timeout,
    )
    say(
        f'[kubelet] Creating a ConfigMap "{KUBELET_CONFIG_MAP}" in namespace kube-system with '
        "the configuration for the kubelets in the cluster"
    )
    _with_retries(
        lambda: client.create_or_update(
            configmap_path("kube-system"),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": KUBELET_CONFIG_MAP, "namespace": "kube-system"},
                "data": {"kubelet": kubelet_config_text},
            },
        ),
        timeout,
    )


def certs_to_transfer(cluster: dict) -> dict[str, str]:
    """copycerts.certsToTransfer: Secret key -> path on disk."""
    pki = cluster["certificatesDir"]
    names = ["ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.pub", "sa.key"]
    files = {name: f"{pki}/{name}" for name in names}
    external = cluster["etcd"].get("external")
    if external is None:
        files["etcd-ca.crt"] = f"{pki}/etcd/ca.crt"
        files["etcd-ca.key"] = f"{pki}/etcd/ca.key"
    else:
        files["external-etcd-ca.crt"] = external.get("caFile", "")
        files["external-etcd.crt"] = external.get("certFile", "")
        files["external-etcd.key"] = external.get("keyFile", "")
    return files


def upload_certs(client: Client, cluster: dict, certificate_key: str) -> str:
    """copycerts.UploadCerts (and the phase printing the key), returns the key used."""
    if not certificate_key:
        certificate_key = kubeadm_pki.new_certificate_key()
    say(
        f'[upload-certs] Storing the certificates in Secret "{KUBEADM_CERTS_SECRET}" in the '
        '"kube-system" Namespace'
    )
    try:
        key = kubeadm_pki.decode_certificate_key(certificate_key)
    except kubeadm_pki.PKIError as err:
        raise KubeadmError(f"error uploading certs: {err}") from None
    short_lived = default_bootstrap_tokens(
        [
            {
                "description": "Proxy for managing TTL for the kubeadm-certs secret",
                "ttl": DEFAULT_CERT_TOKEN_TTL,
            }
        ]
    )[0]
    short_lived["usages"], short_lived["groups"] = [], []
    create_tokens(client, [short_lived])
    owner = client.get(secret_path("kube-system", f"bootstrap-token-{short_lived['token'][:6]}"))
    data = {}
    for name, path in certs_to_transfer(cluster).items():
        try:
            content = host(path).read_bytes() if path else None
        except FileNotFoundError:
            content = None
        data[name] = _b64(kubeadm_pki.encrypt_bytes(content, key)) if content is not None else ""
    client.create_or_update(
        secret_path("kube-system"),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": KUBEADM_CERTS_SECRET,
                "namespace": "kube-system",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "name": owner["metadata"]["name"],
                        "uid": owner["metadata"].get("uid", ""),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "type": "Opaque",
            "data": data,
        },
    )
    say("[upload-certs] Using certificate key:")
    say(certificate_key)
    return certificate_key


def bootstrap_token_phase(client: Client, init: dict, cluster: dict) -> None:
    """phases/bootstraptoken: the tokens, cluster-info, and the signer's JWS."""
    for token in init["bootstrapTokens"]:
        say(f"[bootstrap-token] Using token: {token['token']}")
    say("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
    create_tokens(client, init["bootstrapTokens"])
    say('[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace')
    ca_pem = _pki(cluster, "ca.crt").read_bytes()
    content = kubeadm_pki.cluster_info_kubeconfig(_cluster_endpoint(init, cluster), ca_pem)
    client.create_or_update(
        configmap_path("kube-public"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CLUSTER_INFO, "namespace": "kube-public"},
            "data": {"kubeconfig": content},
        },
    )
    play_controller_manager(client)


def kubelet_finalize() -> None:
    """phases/kubeletfinalize: point kubelet.conf at the rotated client certificate."""
    if not host(KUBELET_CLIENT_PEM).exists() or not host(KUBELET_CONF).exists():
        return
    say(
        f'[kubelet-finalize] Updating "{KUBELET_CONF}" to point to a rotatable kubelet client '
        "certificate and key"
    )
    config = yaml.safe_load(host(KUBELET_CONF).read_text())
    for user in config.get("users") or []:
        credentials = user.get("user") or {}
        credentials.pop("client-certificate-data", None)
        credentials.pop("client-key-data", None)
        credentials["client-certificate"] = KUBELET_CLIENT_PEM
        credentials["client-key"] = KUBELET_CLIENT_PEM
    kubeadm_pki.write_file(host(KUBELET_CONF), yaml.safe_dump(config).encode(), 0o600)


def join_command(
    init: dict, cluster: dict, token: str, certificate_key: str = "", control_plane: bool = False
) -> str:
    """cmdutil.GetJoinWorkerCommand / GetJoinControlPlaneCommand, flattened."""
    ca = kubeadm_pki.load_cert(_pki(cluster, "ca.crt").read_bytes())
    endpoint = _cluster_endpoint(init, cluster).removeprefix("https://")
    command = (
        f"kubeadm join {endpoint} --token {token} "
        f"--discovery-token-ca-cert-hash {kubeadm_pki.spki_hash(ca)} "
    )
    if control_plane:
        command += "--control-plane "
        if certificate_key:
            command += f"--certificate-key {certificate_key}"
    return command


def show_join_command(init: dict, cluster: dict, certificate_key: str) -> None:
    token = init["bootstrapTokens"][0]["token"]
    ca = kubeadm_pki.load_cert(_pki(cluster, "ca.crt").read_bytes())
    endpoint = _cluster_endpoint(init, cluster).removeprefix("https://")
    pin = kubeadm_pki.spki_hash(ca)
    say("\nYour Kubernetes control-plane has initialized successfully!\n")
    say("To start using your cluster, you need to run the following as a regular user:\n")
    say("  mkdir -p $HOME/.kube")
    say("  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config")
    say("  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n")
    say("Alternatively, if you are the root user, you can run:\n")
    say("  export KUBECONFIG=/etc/kubernetes/admin.conf\n")
    say("You should now deploy a pod network to the cluster.")
    say('Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:')
    say("  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n")
    if cluster["controlPlaneEndpoint"]:
        say(
            "You can now join any number of control-plane nodes running the following command "
            "on each as root:\n"
        )
        say(f"  kubeadm join {endpoint} --token {token} \\")
        say(f"\t--discovery-token-ca-cert-hash {pin} \\")
        say(f"\t--control-plane --certificate-key {certificate_key or '<value withheld>'}\n")
        say(
            "Please note that the certificate-key gives access to cluster sensitive data, keep "
            "it secret!"
        )
        say(
            "As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can "
            'use\n"kubeadm init phase upload-certs --upload-certs" to reload certs afterward.\n'
        )
    say("Then you can join any number of worker nodes by running the following on each as root:\n")
    say(f"kubeadm join {endpoint} --token {token} \\")
    say(f"\t--discovery-token-ca-cert-hash {pin} ")


# ---------------------------------------------------------------------------------------
# kubeadm join (cmd/kubeadm/app/cmd/join.go, phases/join/*, discovery/token/token.go).


def join_config_from_flags(options) -> dict:
    """The JoinConfiguration kubeadm builds from join's flags."""
    if not options.endpoint:
        raise KubeadmError(
            "[discovery] Please provide the API server endpoint as an argument or the "
            "--discovery-token-apiserver flag"
        )
    join = {
        "apiVersion": V1BETA4,
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "token": options.discovery_token or options.token or "",
                "apiServerEndpoint": options.endpoint,
                "caCertHashes": options.discovery_token_ca_cert_hash,
                "unsafeSkipCAVerification": options.discovery_token_unsafe_skip_ca_verification,
            },
            "tlsBootstrapToken": options.tls_bootstrap_token or options.token or "",
        },
        "nodeRegistration": {"name": options.node_name or ""},
    }
    if options.control_plane:
        join["controlPlane"] = {
            "localAPIEndpoint": {
                "advertiseAddress": options.apiserver_advertise_address or "",
                "bindPort": options.apiserver_bind_port,
            },
            "certificateKey": options.certificate_key or "",
        }
    return build_join_configuration(join)


def run_join(options) -> None:
    mixed = [
        name
        for name in (
            "token",
            "discovery_token_ca_cert_hash",
            "control_plane",
            "certificate_key",
            "node_name",
            "endpoint",
        )
        if getattr(options, name)
    ]
    if options.config and mixed:
        flags = " ".join(name.replace("_", "-") for name in mixed)
        raise KubeadmError(f"can not mix '--config' with arguments [{flags}]")
    if options.config:
        join = join_configuration(read_config_file(options.config, Node.rootfs))
    else:
        join = join_config_from_flags(options)
    skip = options.skip_phases or join["skipPhases"]
    ignore = ignored_checks(
        options.ignore_preflight_errors, join["nodeRegistration"]["ignorePreflightErrors"]
    )
    control_plane = join.get("controlPlane")
    certificate_key = (control_plane or {}).get("certificateKey", "")
    timeouts = join["timeouts"]
    say("[preflight] Running pre-flight checks")
    checks = [
        _check_privileged(),
        _check_file_available(KUBELET_CONF),
        _check_file_available(BOOTSTRAP_KUBELET_CONF),
        *common_checks(join["nodeRegistration"]),
    ]
    if control_plane is None:
        checks.append(_check_file_available(join["caCertPath"]))
    if not _skipped("preflight", skip):
        run_checks(checks, ignore)
    try:
        bootstrap = discover(join)
    except (KubeadmError, ApiError, kubeadm_pki.PKIError) as err:
        raise phase_error(
            "preflight", f"couldn't validate the identity of the API Server: {err}"
        ) from None
    client = Client(bootstrap["server"], ca_pem=bootstrap["ca_pem"], token=bootstrap["token"])
    say(
        '[preflight] Reading configuration from the "kubeadm-config" ConfigMap in namespace '
        '"kube-system"...'
    )
    say(
        "[preflight] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' "
        "to re-upload it."
    )
    try:
        cluster_data = yaml.safe_load(
            client.get(configmap_path("kube-system", KUBEADM_CONFIG_MAP))["data"][
                "ClusterConfiguration"
            ]
        )
        kubelet_text = client.get(configmap_path("kube-system", KUBELET_CONFIG_MAP))["data"][
            "kubelet"
        ]
    except ApiError as err:
        raise phase_error(
            "preflight", f"unable to fetch the kubeadm-config ConfigMap: {err}"
        ) from None
    init = {
        "nodeRegistration": join["nodeRegistration"],
        "localAPIEndpoint": (control_plane or {}).get("localAPIEndpoint")
        or {"advertiseAddress": "", "bindPort": 6443},
    }
    cluster = default_cluster(cluster_data, init["localAPIEndpoint"]["bindPort"])
    if control_plane is not None:
        _join_control_plane_preflight(init, cluster, certificate_key, ignore, skip)
        if certificate_key:
            _run_phase(
                "control-plane-prepare/download-certs",
                lambda: download_certs(client, cluster, certificate_key),
            )
        try:
            phase_certs(init, cluster)
        except (OSError, ValueError) as err:
            raise phase_error("control-plane-prepare/certs", err) from None
        phase_kubeconfig(
            init,
            cluster,
            [
                spec
                for spec in kubeconfig_specs(init, cluster, with_super_admin=False)
                if spec[0] != KUBELET_CONF
            ],
        )
        phase_control_plane(init, cluster)
        say("[check-etcd] Skipping etcd check in external mode")
    _run_phase(
        "kubelet-start", lambda: join_kubelet_start(join, client, bootstrap, kubelet_text, timeouts)
    )
    if control_plane is not None:
        say("[control-plane-join] Using external etcd - no local stacked instance added")
        admin = Client.from_kubeconfig(ADMIN_CONF)
        registration = join["nodeRegistration"]
        _run_phase(
            "control-plane-join/mark-control-plane",
            lambda: mark_control_plane(
                admin,
                registration["name"],
                registration["taints"],
                parse_duration(timeouts["kubernetesAPICall"]),
            ),
        )
        if not _skipped("wait-control-plane", skip):
            _run_phase(
                "wait-control-plane",
                lambda: wait_for_apiserver(
                    init, parse_duration(timeouts["controlPlaneComponentHealthCheck"])
                ),
            )
        say(JOIN_CONTROL_PLANE_DONE)
    else:
        say(JOIN_WORKER_DONE)


JOIN_WORKER_DONE = """
This node has joined the cluster:
* Certificate signing request was sent to apiserver and a response was received.
* The Kubelet was informed of the new secure connection details.

Run 'kubectl get nodes' on the control-plane to see this node join the cluster.
"""

JOIN_CONTROL_PLANE_DONE = """
This node has joined the cluster and a new control plane instance was created:

* Certificate signing request was sent to apiserver and approval was received.
* The Kubelet was informed of the new secure connection details.
* Control plane label and taint were applied to the new node.
* The Kubernetes control plane instances scaled up.


To start administering your cluster from this node, you need to run the following as a regular user:

	mkdir -p $HOME/.kube
	sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config
	sudo chown $(id -u):$(id -g) $HOME/.kube/config

Run 'kubectl get nodes' to see this node join the cluster.
"""

NOT_READY_FOR_CONTROL_PLANE = """
One or more conditions for hosting a new control plane instance is not satisfied.

{error}

Please ensure that:
* The cluster has a stable controlPlaneEndpoint address.
* The certificates that must be shared among control plane instances are provided.

"""


def _join_control_plane_preflight(init, cluster, certificate_key, ignore, skip) -> None:
    """checkIfReadyForAdditionalControlPlane, then the init checks of a secondary node."""
    error = None
    if not cluster["controlPlaneEndpoint"]:
        error = (
            "unable to add a new control plane instance to a cluster that doesn't have a "
            "stable controlPlaneEndpoint address"
        )
    elif not certificate_key:
        missing = []
        pki = cluster["certificatesDir"]
        for base, label in (
            ("ca", "CA"),
            ("sa", "service account"),
            ("front-proxy-ca", "front-proxy CA"),
        ):
            if base == "sa":
                path = f"{pki}/sa.key"
                if not host(path).exists():
                    missing.append(
                        f"failure loading key for {label}: couldn't load the private "
                        f"key file {path}: open {path}: no such file or directory"
                    )
            else:
                path = f"{pki}/{base}.crt"
                if not host(path).exists():
                    missing.append(
                        f"failure loading certificate for {label}: couldn't load the "
                        f"certificate file {path}: open {path}: no such file or "
                        "directory"
                    )
        if missing:
            error = aggregate(missing)
    if error:
        raise phase_error("preflight", NOT_READY_FOR_CONTROL_PLANE.format(error=error))
    say("[preflight] Running pre-flight checks before initializing the new control plane instance")
    if not _skipped("preflight", skip):
        run_checks(init_node_checks(init, cluster, True, bool(certificate_key)), ignore)
    say("[preflight] Pulling images required for setting up a Kubernetes cluster")
    say(
        "[preflight] This might take a minute or two, depending on the speed of your internet "
        "connection"
    )
    say(
        "[preflight] You can also perform this action beforehand using 'kubeadm config images pull'"
    )


def discover(join: dict) -> dict:
    """token.RetrieveValidatedConfigInfo, then discovery.For's TLS bootstrap kubeconfig."""
    settings = join["discovery"]["bootstrapToken"]
    if settings is None:
        raise KubeadmError("the double copies token discovery only")
    token_id, token_secret_value = settings["token"].split(".")
    endpoint = settings["apiServerEndpoint"]
    timeout = parse_duration(join["timeouts"]["discovery"])
    insecure = Client(f"https://{endpoint}", insecure=True)
    cluster_info = _get_cluster_info(insecure, token_id, timeout)
    pins = settings["caCertHashes"]
    try:
        kubeadm_pki.check_pins(pins, [])
    except kubeadm_pki.PKIError as err:
        if pins and "are pinned" not in str(err):
            raise KubeadmError(f"invalid discovery token CA certificate hash: {err}") from None
    content = (cluster_info.get("data") or {}).get("kubeconfig", "")
    if not content:
        raise KubeadmError(
            "there is no kubeconfig key in the cluster-info ConfigMap. This API "
            "Server isn't set up for token bootstrapping, can't connect"
        )
    signature = cluster_info["data"].get(JWS_PREFIX + token_id, "")
    if not signature:
        raise KubeadmError(
            f'token id "{token_id}" is invalid for this cluster or it has expired. '
            'Use "kubeadm token create" on the control-plane node to create a new '
            "valid token"
        )
    if not kubeadm_pki.detached_jws_is_valid(signature, content, token_id, token_secret_value):
        raise KubeadmError(
            "failed to verify JWS signature of received cluster info object, "
            "can't trust this API Server"
        )
    kubeconfig_data = yaml.safe_load(content)
    cluster = kubeconfig_data["clusters"][0]["cluster"]
    ca_pem = base64.b64decode(cluster["certificate-authority-data"])
    if pins:
        try:
            kubeadm_pki.check_pins(pins, kubeadm_pki.parse_pem_certs(ca_pem))
        except kubeadm_pki.PKIError as err:
            raise KubeadmError(
                f"cluster CA found in cluster-info ConfigMap is invalid: {err}"
            ) from None
        secure = Client(f"https://{endpoint}", ca_pem=ca_pem)
        again = _get_cluster_info(secure, token_id, timeout)
        if again["data"].get("kubeconfig") != content:
            raise KubeadmError(
                "the second kubeconfig from the cluster-info ConfigMap (using "
                "validated TLS) was different from the first"
            )
    return {
        "server": cluster["server"],
        "ca_pem": ca_pem,
        "token": join["discovery"]["tlsBootstrapToken"],
    }


def _get_cluster_info(client: Client, token_id: str, timeout: float) -> dict:
    """getClusterInfo: poll every 5 s until the token's JWS is there or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            info = client.get(configmap_path("kube-public", CLUSTER_INFO), retry_seconds=0)
            if JWS_PREFIX + token_id in (info.get("data") or {}):
                return info
            last = (
                f"could not find a JWS signature in the cluster-info ConfigMap for token ID "
                f'"{token_id}"'
            )
        except ApiError as err:
            last = f"failed to request the cluster-info ConfigMap: {err}"
        if time.monotonic() + 5 > deadline:
            raise KubeadmError(last)
        time.sleep(5)


def download_certs(client: Client, cluster: dict, certificate_key: str) -> None:
    """copycerts.DownloadCerts: the files go back where the cluster's configuration says."""
    say(
        f'[download-certs] Downloading the certificates in Secret "{KUBEADM_CERTS_SECRET}" in '
        'the "kube-system" Namespace'
    )
    try:
        key = kubeadm_pki.decode_certificate_key(certificate_key)
    except kubeadm_pki.PKIError as err:
        raise KubeadmError(f"error downloading certs: {err}") from None
    try:
        secret = client.get(secret_path("kube-system", KUBEADM_CERTS_SECRET))
    except ApiError as err:
        if err.code == 404:
            raise KubeadmError(
                'error downloading certs: error downloading the secret: Secret "kubeadm-certs" '
                'was not found in the "kube-system" Namespace. This Secret might have expired. '
                "Please, run `kubeadm init phase upload-certs --upload-certs` on a control "
                "plane to generate a new one"
            ) from None
        raise KubeadmError(
            f"error downloading certs: error downloading the secret: {err}"
        ) from None
    decoded = {}
    for name, value in (secret.get("data") or {}).items():
        blob = base64.b64decode(value) if value else b""
        try:
            decoded[name] = kubeadm_pki.decrypt_bytes(blob, key) if blob else b""
        except kubeadm_pki.PKIError as err:
            raise KubeadmError(
                f"error downloading certs: error decoding secret data with provided key: {err}"
            ) from None
    say(f'[download-certs] Saving the certificates to the folder: "{cluster["certificatesDir"]}"')
    for name, path in certs_to_transfer(cluster).items():
        if name not in decoded:
            raise KubeadmError(
                "error downloading certs: the Secret does not include the "
                f"required certificate or key - name: {name}, path: {path}"
            )
        if not decoded[name]:
            continue
        mode = 0o600 if b"PRIVATE KEY" in decoded[name] else 0o644
        kubeadm_pki.write_file(host(path), decoded[name], mode)


def join_kubelet_start(
    join: dict, client: Client, bootstrap: dict, kubelet_text: str, timeouts: dict
) -> None:
    """phases/join/kubelet.go: files, restart, then wait for the TLS bootstrap."""
    name = join["nodeRegistration"]["name"]
    try:
        node = client.get(f"/api/v1/nodes/{name}")
    except ApiError as err:
        if err.code != 404:
            raise KubeadmError(f'cannot get Node "{name}": {err}') from None
        node = {}
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            raise KubeadmError(
                f'a Node with name "{name}" and status "Ready" already exists in '
                "the cluster. You must delete the existing Node or change the "
                "name of this new joining Node"
            )
    kubeadm_pki.write_file(host(join["caCertPath"]), bootstrap["ca_pem"], 0o644)
    stop_kubelet()
    text = kubeadm_pki.kubeconfig(
        bootstrap["server"],
        bootstrap["ca_pem"],
        "tls-bootstrap-token-user",
        token=bootstrap["token"],
    )
    kubeadm_pki.write_file(host(BOOTSTRAP_KUBELET_CONF), text.encode(), 0o600)
    write_kubelet_files(kubelet_text, join["nodeRegistration"])
    try_start_kubelet()
    wait_for_kubelet(parse_duration(timeouts["kubeletHealthCheck"]))
    say("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
    deadline = time.monotonic() + parse_duration(timeouts["tlsBootstrap"])
    while not _usable_kubeconfig(KUBELET_CONF):
        if time.monotonic() >= deadline:
            say(KUBELET_FAIL_MESSAGE)
            raise KubeadmError(
                "failed to run kubelet: timed out waiting for the kubelet to "
                f"perform the TLS Bootstrap ({KUBELET_CONF} did not appear)"
            )
        time.sleep(1)
    host(BOOTSTRAP_KUBELET_CONF).unlink(missing_ok=True)


def _usable_kubeconfig(path: str) -> bool:
    """kubeconfigutil.ClientSetFromFile succeeds: the file and what it points to exist."""
    try:
        config = load_kubeconfig(path)
    except (KubeadmError, yaml.YAMLError, AttributeError, KeyError, TypeError):
        return False
    user = config["user"]
    for key in ("client-certificate", "client-key"):
        if user.get(key) and not host(user[key]).exists():
            return False
    return bool(config["cluster"].get("server"))


# ---------------------------------------------------------------------------------------
# kubeadm reset (cmd/kubeadm/app/cmd/reset.go, phases/reset/*).


def run_reset(options) -> None:
    if not options.force:
        sys.stdout.write("[reset] Reading configuration from the cluster...\n")
        sys.stdout.write(
            "[reset] WARNING: Changes made to this host by 'kubeadm init' or "
            "'kubeadm join' will be reverted.\n[reset] Are you sure you want to "
            "proceed? [y/N]: "
        )
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise KubeadmError("aborted reset operation")
    certificates_dir = "/etc/kubernetes/pki"
    say("[preflight] Running pre-flight checks")
    if not host(f"{MANIFESTS_DIR}/etcd.yaml").exists():
        say("[reset] No etcd config found. Assuming external etcd")
        say("[reset] Please, manually reset etcd to prevent further issues")
    say("[reset] Stopping the kubelet service")
    stop_kubelet()
    say(f'[reset] Unmounting mounted directories in "{KUBELET_DIR}"')
    cleaned = [MANIFESTS_DIR, KUBELET_DIR, certificates_dir]
    for folder in cleaned:
        _delete_contents(host(folder))
    say(f"[reset] Deleting contents of directories: [{' '.join(cleaned)}]")
    files = [
        ADMIN_CONF,
        SUPER_ADMIN_CONF,
        KUBELET_CONF,
        BOOTSTRAP_KUBELET_CONF,
        CONTROLLER_MANAGER_CONF,
        SCHEDULER_CONF,
    ]
    for path in files:
        host(path).unlink(missing_ok=True)
    say(f"[reset] Deleting files: [{' '.join(files)}]")
    say(RESET_DONE)


RESET_DONE = """
The reset process does not perform cleanup of CNI plugin configuration,
network filtering rules and kubeconfig files.

For information on how to perform this cleanup manually, please see:
    https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/
"""


def _delete_contents(folder: Path) -> None:
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


# ---------------------------------------------------------------------------------------
# kubeadm token (cmd/kubeadm/app/cmd/token.go).


def _admin_client(options) -> Client:
    return Client.from_kubeconfig(options.kubeconfig or ADMIN_CONF)


def run_token_create(options) -> None:
    mixed = [
        flag
        for flag, value in (
            ("ttl", options.ttl),
            ("description", options.description),
            ("usages", options.usages),
            ("groups", options.groups),
        )
        if value is not None
    ]
    if options.config and mixed:
        raise KubeadmError(f"can not mix '--config' with arguments [{' '.join(mixed)}]")
    if options.certificate_key and not options.print_join_command:
        raise KubeadmError("cannot use --certificate-key without --print-join-command")
    if options.config:
        config = init_configuration(read_config_file(options.config, Node.rootfs))
        token = config["init"]["bootstrapTokens"][0]
    else:
        ttl = options.ttl if options.ttl is not None else "24h0m0s"
        if not DURATION.match(ttl) and ttl != "0":
            raise KubeadmError(
                f'invalid argument "{ttl}" for "--ttl" flag: time: invalid duration "{ttl}"'
            )
        token = default_bootstrap_tokens(
            [
                {
                    "token": options.token or "",
                    "ttl": ttl if parse_duration(ttl) > 0 else None,
                    "description": options.description or "",
                    "usages": options.usages.split(",") if options.usages else None,
                    "groups": options.groups.split(",") if options.groups else None,
                }
            ]
        )[0]
        if parse_duration(ttl) <= 0:
            token.pop("ttl", None)
        errors = _validate_bootstrap_tokens([token])
        if errors:
            raise KubeadmError(aggregate(errors))
    client = _admin_client(options)
    create_tokens(client, [token])
    play_controller_manager(client)
    if options.print_join_command:
        config = load_kubeconfig(options.kubeconfig or ADMIN_CONF)
        server = config["cluster"]["server"].removeprefix("https://")
        ca_pem = _pem_from(config["cluster"], "certificate-authority-data", "certificate-authority")
        pins = " ".join(
            f"--discovery-token-ca-cert-hash {kubeadm_pki.spki_hash(cert)}"
            for cert in kubeadm_pki.parse_pem_certs(ca_pem)
        )
        command = f"kubeadm join {server} --token {token['token']} {pins} "
        if options.certificate_key:
            command += f"--control-plane --certificate-key {options.certificate_key}"
        say(command)
    else:
        say(token["token"])


def run_token_list(options) -> None:
    client = _admin_client(options)
    play_controller_manager(client)
    tokens = [t for t in (token_from_secret(s) for s in list_token_secrets(client)) if t]
    if options.output in ("json", "yaml"):
        for token in tokens:
            document = {
                "kind": "BootstrapToken",
                "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
                "token": token["token"],
            }
            if token["description"]:
                document["description"] = token["description"]
            if token["expires"]:
                document["expires"] = token["expires"]
            if token["usages"]:
                document["usages"] = token["usages"]
            if token["groups"]:
                document["groups"] = token["groups"]
            if options.output == "json":
                say(json.dumps(document, indent=4))
            else:
                say(yaml.safe_dump(document, default_flow_style=False).rstrip())
        return
    if options.output not in ("", "text"):
        raise KubeadmError(
            f"unable to match a printer suitable for the output format "
            f'"{options.output}", allowed formats are: json,jsonpath,'
            "jsonpath-as-json,jsonpath-file,text,yaml"
        )
    rows = [["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]]
    for token in tokens:
        ttl, expires = "<forever>", "<never>"
        if token["expires"]:
            expires = token["expires"]
            left = (
                datetime.datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(
                    tzinfo=datetime.UTC
                )
                - datetime.datetime.now(datetime.UTC)
            ).total_seconds()
            ttl = _short_human_duration(left)
        rows.append(
            [
                token["token"],
                ttl,
                expires,
                ",".join(token["usages"]) or "<none>",
                token["description"] or "<none>",
                ",".join(token["groups"]) or "<none>",
            ]
        )
    _print_table(rows)


def _short_human_duration(seconds: float) -> str:
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


def _print_table(rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        say("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def run_token_delete(options) -> None:
    if not options.tokens:
        raise KubeadmError(
            "missing subcommand; 'token delete' is missing token of form \"[a-z0-9]{6}\""
        )
    client = _admin_client(options)
    for value in options.tokens:
        token_id = value
        if not TOKEN_ID_PATTERN.match(value):
            match = TOKEN_PATTERN.match(value)
            if not match:
                raise KubeadmError(
                    "given token didn't match pattern \"^([a-z0-9]{6})\\."
                    '([a-z0-9]{16})$" or "^([a-z0-9]{6})$"'
                )
            token_id = match.group(1)
        try:
            client.delete(secret_path("kube-system", f"bootstrap-token-{token_id}"))
        except ApiError as err:
            raise KubeadmError(f'failed to delete bootstrap token "{token_id}": {err}') from None
        say(f'bootstrap token "{token_id}" deleted')
    play_controller_manager(client)


# ---------------------------------------------------------------------------------------
# kubeadm init phase upload-certs, kubeadm certs, kubeadm config validate, kubeadm version.


def run_upload_certs(options) -> None:
    if not options.upload_certs:
        say("[upload-certs] Skipping phase. Please see --upload-certs")
        return
    if options.config:
        config = init_configuration(read_config_file(options.config, Node.rootfs))
    else:
        # Without --config kubeadm uses its defaults, whose etcd is local: the external
        # etcd client files are then not in the Secret (kubeadm's behaviour, copied).
        config = build_init_configuration({}, None)
    certificate_key = options.certificate_key or config["init"]["certificateKey"]
    client = _admin_client(options)
    play_controller_manager(client)
    _run_phase("upload-certs", lambda: upload_certs(client, config["cluster"], certificate_key))


def run_certificate_key(_options) -> None:
    say(kubeadm_pki.new_certificate_key())


def run_check_expiration(options) -> None:
    cluster = None
    if options.config:
        cluster = init_configuration(read_config_file(options.config, Node.rootfs))["cluster"]
    else:
        try:
            client = Client.from_kubeconfig(options.kubeconfig or ADMIN_CONF)
            text = client.get(configmap_path("kube-system", KUBEADM_CONFIG_MAP), retry_seconds=0)[
                "data"
            ]["ClusterConfiguration"]
            cluster = default_cluster(yaml.safe_load(text), 6443)
            say(
                '[check-expiration] Reading configuration from the "kubeadm-config" ConfigMap '
                'in namespace "kube-system"...'
            )
        except (ApiError, KubeadmError, KeyError, OSError):
            say(
                "[check-expiration] Error reading configuration from the Cluster. Falling back "
                "to default configuration"
            )
            cluster = default_cluster(None, 6443)
    external = cluster["etcd"].get("external") is not None
    leaves = [("admin.conf", ADMIN_CONF, "ca"), ("apiserver", "apiserver.crt", "ca")]
    if not external:
        leaves.append(("apiserver-etcd-client", "apiserver-etcd-client.crt", "etcd-ca"))
    leaves += [
        ("apiserver-kubelet-client", "apiserver-kubelet-client.crt", "ca"),
        ("controller-manager.conf", CONTROLLER_MANAGER_CONF, "ca"),
    ]
    if not external:
        leaves += [
            ("etcd-healthcheck-client", "etcd/healthcheck-client.crt", "etcd-ca"),
            ("etcd-peer", "etcd/peer.crt", "etcd-ca"),
            ("etcd-server", "etcd/server.crt", "etcd-ca"),
        ]
    leaves += [
        ("front-proxy-client", "front-proxy-client.crt", "front-proxy-ca"),
        ("scheduler.conf", SCHEDULER_CONF, "ca"),
        ("super-admin.conf", SUPER_ADMIN_CONF, "ca"),
    ]
    authorities = [("ca", "ca.crt")] + ([] if external else [("etcd-ca", "etcd/ca.crt")])
    authorities.append(("front-proxy-ca", "front-proxy-ca.crt"))
    rows = [
        ["CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"]
    ]
    for name, path, authority in leaves:
        cert = _read_any_cert(cluster, path)
        if cert is None:
            say(f"!MISSING! {name}")
            continue
        rows.append([name, *_expiry(cert), authority, "no"])
    _print_table(rows)
    say("")
    rows = [["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"]]
    for name, path in authorities:
        cert = _read_any_cert(cluster, path)
        if cert is None:
            say(f"!MISSING! {name}")
            continue
        rows.append([name, *_expiry(cert), "no"])
    _print_table(rows)


def _read_any_cert(cluster: dict, path: str):
    """A certificate file under the PKI folder, or the client certificate of a kubeconfig."""
    if path.startswith("/"):
        if not host(path).exists():
            return None
        user = load_kubeconfig(path)["user"]
        pem = _pem_from(user, "client-certificate-data", "client-certificate")
        return kubeadm_pki.load_cert(pem) if pem else None
    full = _pki(cluster, path)
    return kubeadm_pki.load_cert(full.read_bytes()) if full.exists() else None


def _expiry(cert) -> list[str]:
    expires = cert.not_valid_after_utc
    left = (expires - datetime.datetime.now(datetime.UTC)).total_seconds()
    return [expires.strftime("%b %d, %Y %H:%M UTC"), _short_human_duration(left)]


def run_config_validate(options) -> None:
    if not options.config:
        raise KubeadmError("the --config flag is mandatory")
    try:
        text = host(options.config).read_text()
    except OSError as err:
        raise KubeadmError(f"open {options.config}: {(err.strerror or '').lower()}") from None
    validate_config(text)
    say("ok")


VERSION_INFO = {
    "major": "1",
    "minor": "34",
    "emulationMajor": "1",
    "emulationMinor": "34",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "33",
    "gitVersion": KUBERNETES_VERSION,
    # Not a real build: the double says so where a build would name its commit.
    "gitCommit": "paas-lab-kubeadm-double",
    "gitTreeState": "clean",
    "buildDate": "2025-11-11T00:00:00Z",
    "goVersion": "go1.24.9",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def run_version(options) -> None:
    if options.output == "json":
        say(json.dumps({"clientVersion": VERSION_INFO}, indent=2))
    elif options.output == "yaml":
        say(yaml.safe_dump({"clientVersion": VERSION_INFO}, sort_keys=False).rstrip())
    elif options.output == "short":
        say(KUBERNETES_VERSION)
    elif not options.output:
        fields = ", ".join(f'{k[0].upper()}{k[1:]}:"{v}"' for k, v in VERSION_INFO.items())
        say(f"kubeadm version: &version.Info{{{fields}}}")
    else:
        raise KubeadmError(f"invalid output format: {options.output}")


# ---------------------------------------------------------------------------------------
# The command line: cobra's flags and its errors.


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        match = re.search(r"unrecognized arguments: (\S+)", message)
        if match:
            flag = match.group(1)
            raise KubeadmError(
                f"unknown flag: {flag.split('=')[0]}"
                if flag.startswith("-")
                else f'unknown command "{flag}" for "{self.prog}"'
            )
        raise KubeadmError(message)


def _list_flag(value: str) -> list[str]:
    return [item for item in value.split(",") if item]


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="kubeadm", allow_abbrev=False, add_help=True)
    root.add_argument("--rootfs", default="")
    root.add_argument("-v", "--v", dest="verbosity", default="0")
    commands = root.add_subparsers(dest="command", parser_class=_Parser)

    def common(sub, kubeconfig=False):
        sub.add_argument("--rootfs", default=argparse.SUPPRESS)
        sub.add_argument("-v", "--v", dest="verbosity", default=argparse.SUPPRESS)
        if kubeconfig:
            sub.add_argument("--kubeconfig", default="")
        return sub

    init = common(commands.add_parser("init", allow_abbrev=False))
    init.add_argument("--config", default="")
    init.add_argument("--upload-certs", action="store_true")
    init.add_argument("--certificate-key", default="")
    init.add_argument("--ignore-preflight-errors", type=_list_flag, action="extend", default=[])
    init.add_argument("--skip-phases", type=_list_flag, action="extend", default=[])
    init.add_argument("--skip-token-print", action="store_true")
    init_phases = init.add_subparsers(dest="init_command", parser_class=_Parser)
    phase = init_phases.add_parser("phase", allow_abbrev=False)
    phase_commands = phase.add_subparsers(dest="phase_command", parser_class=_Parser)
    upload = common(phase_commands.add_parser("upload-certs", allow_abbrev=False), True)
    upload.add_argument("--config", default="")
    upload.add_argument("--upload-certs", action="store_true")
    upload.add_argument("--certificate-key", default="")
    upload.add_argument("--skip-certificate-key-print", action="store_true")

    join = common(commands.add_parser("join", allow_abbrev=False))
    join.add_argument("endpoint", nargs="?", default="")
    join.add_argument("--config", default="")
    join.add_argument("--token", default="")
    join.add_argument("--discovery-token", default="")
    join.add_argument("--tls-bootstrap-token", default="")
    join.add_argument(
        "--discovery-token-ca-cert-hash", type=_list_flag, action="extend", default=[]
    )
    join.add_argument("--discovery-token-unsafe-skip-ca-verification", action="store_true")
    join.add_argument("--control-plane", action="store_true")
    join.add_argument("--certificate-key", default="")
    join.add_argument("--node-name", default="")
    join.add_argument("--apiserver-advertise-address", default="")
    join.add_argument("--apiserver-bind-port", type=int, default=6443)
    join.add_argument("--ignore-preflight-errors", type=_list_flag, action="extend", default=[])
    join.add_argument("--skip-phases", type=_list_flag, action="extend", default=[])

    reset = common(commands.add_parser("reset", allow_abbrev=False))
    reset.add_argument("-f", "--force", action="store_true")
    reset.add_argument("--cleanup-tmp-dir", action="store_true")
    reset.add_argument("--ignore-preflight-errors", type=_list_flag, action="extend", default=[])

    token = common(commands.add_parser("token", allow_abbrev=False), True)
    tokens = token.add_subparsers(dest="token_command", parser_class=_Parser)
    create = common(tokens.add_parser("create", allow_abbrev=False), True)
    create.add_argument("token", nargs="?", default="")
    create.add_argument("--config", default="")
    create.add_argument("--ttl", default=None)
    create.add_argument("--description", default=None)
    create.add_argument("--usages", default=None)
    create.add_argument("--groups", default=None)
    create.add_argument("--print-join-command", action="store_true")
    create.add_argument("--certificate-key", default="")
    listing = common(tokens.add_parser("list", allow_abbrev=False), True)
    listing.add_argument("-o", "--output", default="text")
    delete = common(tokens.add_parser("delete", allow_abbrev=False), True)
    delete.add_argument("tokens", nargs="*")

    certs = common(commands.add_parser("certs", allow_abbrev=False))
    certs_commands = certs.add_subparsers(dest="certs_command", parser_class=_Parser)
    common(certs_commands.add_parser("certificate-key", allow_abbrev=False))
    expiration = common(certs_commands.add_parser("check-expiration", allow_abbrev=False), True)
    expiration.add_argument("--config", default="")
    expiration.add_argument("--cert-dir", default="")

    config = common(commands.add_parser("config", allow_abbrev=False), True)
    config_commands = config.add_subparsers(dest="config_command", parser_class=_Parser)
    validate = common(config_commands.add_parser("validate", allow_abbrev=False))
    validate.add_argument("--config", default="")
    validate.add_argument("--allow-experimental-api", action="store_true")

    version = common(commands.add_parser("version", allow_abbrev=False))
    version.add_argument("-o", "--output", default="")
    return root


def dispatch(options) -> None:
    command = options.command
    if command == "init":
        if getattr(options, "init_command", None) == "phase":
            if getattr(options, "phase_command", None) != "upload-certs":
                raise KubeadmError("the double copies only 'kubeadm init phase upload-certs'")
            run_upload_certs(options)
        else:
            run_init(options)
    elif command == "join":
        run_join(options)
    elif command == "reset":
        run_reset(options)
    elif command == "token":
        handlers = {"create": run_token_create, "list": run_token_list, "delete": run_token_delete}
        if options.token_command not in handlers:
            raise KubeadmError('missing subcommand; "token" is not meant to be run on its own')
        handlers[options.token_command](options)
    elif command == "certs":
        handlers = {
            "certificate-key": run_certificate_key,
            "check-expiration": run_check_expiration,
        }
        if options.certs_command not in handlers:
            raise KubeadmError('missing subcommand; "certs" is not meant to be run on its own')
        handlers[options.certs_command](options)
    elif command == "config":
        if options.config_command != "validate":
            raise KubeadmError('missing subcommand; "config" is not meant to be run on its own')
        run_config_validate(options)
    elif command == "version":
        run_version(options)
    else:
        raise KubeadmError(
            "the double copies init, join, reset, token, certs, config validate and version"
        )


def main(argv: list[str] | None = None) -> int:
    try:
        options = parser().parse_args(argv)
        Node.rootfs = (options.rootfs or "").rstrip("/")
        dispatch(options)
    except (KubeadmError, ConfigError, ApiError, kubeadm_pki.PKIError) as err:
        sys.stdout.flush()
        sys.stderr.write(f"error: {err}\n{STACK_HINT}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
