"""
The kubeadm double's configuration loading (cmd/kubeadm/app/util/config/common.go,
initconfiguration.go, joinconfiguration.go): version checks, conversion from v1beta3
(v1beta4/conversion.go), defaults (v1beta4/defaults.go and the dynamic ones: host name,
advertise address, Kubernetes version, tokens), validation, and `kubeadm config
validate` (cmd/kubeadm/app/cmd/config.go).

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import copy
import ipaddress
import re
import secrets
import socket
from pathlib import Path

import yaml

try:
    from lab.kube import kubeadm_api, kubeadm_constants, kubeadm_util, kubeadm_validation
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kubeadm_api  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]
    import kubeadm_validation  # type: ignore[no-redef]


def _args_from_map(value) -> list[dict]:
    return [{"name": k, "value": str(v)} for k, v in sorted((value or {}).items())]


def _from_v1beta3(kind: str, data: dict) -> dict:
    """v1beta3 -> v1beta4 conversion (v1beta4/conversion.go) for what the double reads."""
    data = copy.deepcopy(data)
    data["apiVersion"] = kubeadm_api.V1BETA4
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
        registration["taints"] = [dict(kubeadm_constants.CONTROL_PLANE_TAINT)]
    registration.setdefault("taints", None)
    socket_path = registration.get("criSocket") or kubeadm_constants.DEFAULT_CRI_SOCKET
    if "://" not in socket_path:
        kubeadm_util.warn(
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
        kubeadm_util.warn(
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
            raise kubeadm_api.ConfigError(
                f'couldn\'t use "{address}" as "apiserver-advertise-address", must be ipv4 '
                "or ipv6 address"
            ) from err
        if not (ip.is_global or ip.is_private) or ip.is_unspecified or ip.is_multicast:
            raise kubeadm_api.ConfigError(
                f'cannot use "{address}" as the bind address for the API Server'
            )
    else:
        endpoint["advertiseAddress"] = default_address()
    return endpoint


def normalize_kubernetes_version(version: str | None) -> str:
    """NormalizeKubernetesVersion: labels resolve to this kubeadm's version (no network)."""
    version = version or "stable-1"
    if re.match(r"^(stable|latest)(-\d+(\.\d+)?)?$", version):
        return kubeadm_constants.KUBERNETES_VERSION
    match = re.match(r"^v?(\d+)\.(\d+)\.(\d+)([-+][0-9A-Za-z.+-]*)?$", version)
    if not match:
        raise kubeadm_api.ConfigError(
            f'version "{version}" doesn\'t match patterns for neither semantic version nor '
            "labels (stable, latest, ...)"
        )
    normalized = "v" + version.lstrip("v")
    if (
        tuple(int(part) for part in match.group(1, 2, 3))
        < kubeadm_constants.MINIMUM_CONTROL_PLANE_VERSION
    ):
        minimum = ".".join(str(part) for part in kubeadm_constants.MINIMUM_CONTROL_PLANE_VERSION)
        raise kubeadm_api.ConfigError(
            "this version of kubeadm only supports deploying clusters with the control plane "
            f"version >= {minimum}. Current version: {normalized}"
        )
    return normalized


def default_cluster(data: dict | None, bind_port: int) -> dict:
    """v1beta4 SetDefaults_ClusterConfiguration plus SetClusterDynamicDefaults."""
    cluster = copy.deepcopy(data or {})
    cluster["apiVersion"] = kubeadm_api.V1BETA4
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
            host, port = kubeadm_util.parse_host_port(endpoint)
        except ValueError as err:
            raise kubeadm_api.ConfigError(str(err)) from None
        if not port:
            cluster["controlPlaneEndpoint"] = kubeadm_util.join_host_port(host, bind_port)
    cluster.setdefault("controlPlaneEndpoint", "")
    return cluster


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
        token["groups"] = token.get("groups") or [kubeadm_constants.NODE_BOOTSTRAP_TOKEN_AUTH_GROUP]
        token.setdefault("description", "")
        result.append(token)
    return result


def _load_documents(text: str, strict_errors: bool, allow_deprecated: bool):
    """The loop of documentMapTo*Configuration: version checks, strict decode, conversion."""
    documents = kubeadm_api.split_documents(text)
    converted: dict[str, dict] = {}
    component: dict[tuple[str, str], dict] = {}
    for api_version, kind in sorted(documents, key=lambda gvk: kubeadm_api.gvk_string(*gvk)):
        document = documents[(api_version, kind)]
        _check_supported_version(api_version, kind, allow_deprecated)
        if not kubeadm_api.is_known(api_version, kind):
            message = f"unknown configuration {kubeadm_api.gvk_repr(api_version, kind)}"
            if strict_errors:
                raise kubeadm_api.ConfigError(message)
            kubeadm_util.warn(message)
        else:
            try:
                kubeadm_api.verify_unmarshal_strict(api_version, kind, document)
            except kubeadm_api.StrictDecodeError as err:
                if strict_errors:
                    raise
                kubeadm_util.warn(str(err))
        if (
            api_version in (kubeadm_api.V1BETA4, kubeadm_api.V1BETA3)
            and kind in kubeadm_api.SCHEMAS[kubeadm_api.V1BETA4]
        ):
            data = document.data
            converted[kind] = (
                _from_v1beta3(kind, data) if api_version == kubeadm_api.V1BETA3 else data
            )
        elif (api_version, kind) in kubeadm_api.COMPONENT_CONFIGS:
            component[(api_version, kind)] = document.data
        elif api_version.split("/")[0] not in kubeadm_api.COMPONENT_GROUPS:
            kubeadm_util.warn(
                "[config] WARNING: Ignored configuration document with GroupVersionKind "
                f"{kubeadm_api.gvk_string(api_version, kind)}\n"
            )
    return documents, converted, component


def _check_supported_version(api_version: str, kind: str, allow_deprecated: bool) -> None:
    if api_version in kubeadm_api.OLD_API_VERSIONS:
        raise kubeadm_api.ConfigError(
            f'your configuration file uses an old API spec: "{api_version}" (kind: "{kind}"). '
            f"Please use kubeadm {kubeadm_api.OLD_API_VERSIONS[api_version]} instead and run "
            "'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will "
            "write the new, similar spec using a newer API version."
        )
    if api_version in kubeadm_api.DEPRECATED_API_VERSIONS and not allow_deprecated:
        kubeadm_util.warn(
            f'your configuration file uses a deprecated API spec: "{api_version}" (kind: '
            f'"{kind}"). Please use \'kubeadm config migrate --old-config old.yaml '
            "--new-config new.yaml', which will write the new, similar spec using a newer "
            "API version.",
            "common.go:101",
        )


def _known_gvks_check(documents) -> None:
    """validateKnownGVKs: only GVKs that were never known are refused here."""
    unknown = [
        gvk
        for gvk in documents
        if gvk[0] not in kubeadm_api.OLD_API_VERSIONS and not kubeadm_api.is_known(*gvk)
    ]
    if unknown:
        listed = ", ".join(kubeadm_api.gvk_repr(*gvk) for gvk in unknown)
        raise kubeadm_api.ConfigError(
            f"unknown configuration APIs: []schema.GroupVersionKind{{{listed}}}"
        )


def init_configuration(
    text: str,
    strict_errors: bool = False,
    allow_deprecated: bool = False,
) -> dict:
    """documentMapToInitConfiguration: {"init": ..., "cluster": ..., "components": ...}."""
    _, converted, component = _load_documents(text, strict_errors, allow_deprecated)
    if "InitConfiguration" not in converted and "ClusterConfiguration" not in converted:
        raise kubeadm_api.ConfigError(
            "no InitConfiguration or ClusterConfiguration kind was found in the configuration file"
        )
    return build_init_configuration(
        converted.get("InitConfiguration") or {}, converted.get("ClusterConfiguration"), component
    )


def build_init_configuration(init_data: dict, cluster_data: dict | None, component=None) -> dict:
    init = copy.deepcopy(init_data)
    init["apiVersion"] = kubeadm_api.V1BETA4
    init["kind"] = "InitConfiguration"
    init["bootstrapTokens"] = default_bootstrap_tokens(init.get("bootstrapTokens"))
    init["nodeRegistration"] = _default_node_registration(init.get("nodeRegistration"), True)
    init["localAPIEndpoint"] = _default_api_endpoint(init.get("localAPIEndpoint"))
    init["timeouts"] = _default_timeouts(init.get("timeouts"))
    init["skipPhases"] = init.get("skipPhases") or []
    init.setdefault("certificateKey", "")
    cluster = default_cluster(cluster_data, init["localAPIEndpoint"]["bindPort"])
    errors = kubeadm_validation.validate_node_registration(
        init["nodeRegistration"], "nodeRegistration"
    )
    errors += kubeadm_validation.validate_bootstrap_tokens(init["bootstrapTokens"])
    errors += kubeadm_validation.validate_cluster(cluster)
    errors += kubeadm_validation.validate_api_endpoint(init["localAPIEndpoint"], "localAPIEndpoint")
    errors += kubeadm_validation.validate_certificate_key(init["certificateKey"], "certificateKey")
    if errors:
        raise kubeadm_api.ConfigError(kubeadm_api.aggregate(errors))
    return {"init": init, "cluster": cluster, "components": component or {}}


def join_configuration(
    text: str,
    strict_errors: bool = False,
    allow_deprecated: bool = False,
) -> dict:
    """documentMapToJoinConfiguration."""
    _, converted, _ = _load_documents(text, strict_errors, allow_deprecated)
    if "JoinConfiguration" not in converted:
        raise kubeadm_api.ConfigError("no JoinConfiguration kind was found in the YAML file")
    return build_join_configuration(converted["JoinConfiguration"])


def build_join_configuration(data: dict) -> dict:
    """Defaults (SetDefaults_JoinConfiguration, SetJoinDynamicDefaults) and validation."""
    join = copy.deepcopy(data)
    join["apiVersion"] = kubeadm_api.V1BETA4
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
    errors = kubeadm_validation.validate_discovery(discovery)
    errors += kubeadm_validation.validate_node_registration(
        join["nodeRegistration"], "nodeRegistration"
    )
    if control_plane is not None:
        errors += kubeadm_validation.validate_api_endpoint(
            control_plane["localAPIEndpoint"], "controlPlane.localAPIEndpoint"
        )
        errors += kubeadm_validation.validate_certificate_key(
            control_plane["certificateKey"], "controlPlane.certificateKey"
        )
    if not kubeadm_validation.is_abs(join["caCertPath"]) or not join["caCertPath"].endswith(".crt"):
        errors.append(
            kubeadm_api.invalid(
                "caCertPath", join["caCertPath"], "the ca certificate path must be an absolute path"
            )
        )
    if errors:
        raise kubeadm_api.ConfigError(kubeadm_api.aggregate(errors))
    return join


def validate_config(text: str) -> None:
    """configutil.ValidateConfig: what `kubeadm config validate` runs."""
    documents = kubeadm_api.split_documents(text)
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
        if not kubeadm_validation.is_abs(certificates_dir):
            errors.append(
                kubeadm_api.invalid("certificatesDir", certificates_dir, "path is not absolute")
            )
        if errors:
            raise kubeadm_api.ConfigError(kubeadm_api.aggregate(errors))


def read_config_file(path: str, rootfs: str = "") -> str:
    """os.ReadFile with kubeadm's wrapping of the error."""
    full = Path(rootfs + path) if rootfs else Path(path)
    try:
        return full.read_text()
    except OSError as err:
        raise kubeadm_api.ConfigError(
            f'unable to read config from "{path}" : open {path}: '
            f"{(err.strerror or str(err)).lower()}"
        ) from err


def dump_cluster_configuration(cluster: dict) -> str:
    """The ClusterConfiguration as kubeadm uploads it to the kubeadm-config ConfigMap."""
    document = {key: cluster[key] for key in sorted(cluster)}
    return yaml.safe_dump(document, default_flow_style=False)


def run_config_validate(options) -> None:
    if not options.config:
        raise kubeadm_util.KubeadmError("the --config flag is mandatory")
    try:
        text = kubeadm_util.host(options.config).read_text()
    except OSError as err:
        raise kubeadm_util.KubeadmError(
            f"open {options.config}: {(err.strerror or '').lower()}"
        ) from None
    validate_config(text)
    kubeadm_util.say("ok")
