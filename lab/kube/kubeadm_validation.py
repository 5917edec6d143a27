"""
The kubeadm double's validation of a defaulted configuration, as
cmd/kubeadm/app/apis/kubeadm/validation/validation.go refuses it: networking, certSANs,
controlPlaneEndpoint, external etcd, bootstrap tokens, node registration, the API
endpoint, the certificate key and join's discovery, each error in kubeadm's words.

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import ipaddress
import re

try:
    from lab.kube import kubeadm_api, kubeadm_constants, kubeadm_util
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kubeadm_api  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


def is_abs(path: str) -> bool:
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
        return [kubeadm_api.invalid(path, value, "couldn't parse subnet")]
    errors = []
    if len(subnets) > 2 or (len(subnets) == 2 and subnets[0].version == subnets[1].version):
        errors.append(
            kubeadm_api.invalid(
                path,
                value,
                "expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for "
                "dual-stack networking",
            )
        )
    for subnet in subnets:
        if subnet.num_addresses < minimum:
            errors.append(
                kubeadm_api.invalid(
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
    for message in kubeadm_api.dns1123_errors(cluster["networking"]["dnsDomain"]):
        errors.append(
            kubeadm_api.invalid("networking.dnsDomain", cluster["networking"]["dnsDomain"], message)
        )
    service = cluster["networking"]["serviceSubnet"]
    if service:
        service_errors = _validate_subnets(
            service,
            kubeadm_constants.MINIMUM_ADDRESSES_IN_SERVICE_SUBNET,
            "networking.serviceSubnet",
        )
        errors += service_errors
        if not service_errors:
            for subnet in (
                ipaddress.ip_network(p.strip(), strict=False) for p in service.split(",")
            ):
                bits = subnet.max_prefixlen
                maximum_bits = kubeadm_constants.MAXIMUM_BITS_FOR_SERVICE_SUBNET
                if bits - subnet.prefixlen > maximum_bits:
                    errors.append(
                        kubeadm_api.invalid(
                            "networking.serviceSubnet",
                            str(subnet),
                            f"specified service subnet is too large; for {bits}-bit addresses, "
                            f"the mask must be >= {bits - maximum_bits}",
                        )
                    )
    pod = cluster["networking"]["podSubnet"]
    if pod:
        pod_errors = _validate_subnets(
            pod, kubeadm_constants.MINIMUM_ADDRESSES_IN_POD_SUBNET, "networking.podSubnet"
        )
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
                        kubeadm_api.invalid(
                            "networking.podSubnet",
                            str(subnet),
                            f"the size of pod subnet with mask {subnet.prefixlen} is smaller than "
                            f"the size of node subnet with mask {node_mask}",
                        )
                    )
                elif node_mask - subnet.prefixlen > kubeadm_constants.POD_SUBNET_NODE_MASK_MAX_DIFF:
                    errors.append(
                        kubeadm_api.invalid(
                            "networking.podSubnet",
                            str(subnet),
                            f"pod subnet mask ({subnet.prefixlen}) and node-mask ({node_mask}) "
                            "difference is greater than "
                            f"{kubeadm_constants.POD_SUBNET_NODE_MASK_MAX_DIFF}",
                        )
                    )
    for san in cluster["apiServer"]["certSANs"]:
        errors += _validate_san(san, "apiServer.certSANs")
    for component in ("apiServer", "controllerManager", "scheduler"):
        for index, arg in enumerate(cluster[component]["extraArgs"]):
            if not arg.get("name"):
                errors.append(
                    kubeadm_api.invalid(
                        f"{component}.extraArgs", f"index {index}", "argument has no name"
                    )
                )
    if not is_abs(cluster["certificatesDir"]):
        errors.append(
            kubeadm_api.invalid(
                "certificatesDir", cluster["certificatesDir"], "path is not absolute"
            )
        )
    for gate in cluster["featureGates"]:
        if gate not in kubeadm_constants.FEATURE_GATES:
            errors.append(
                f"featureGates: Invalid value: map[string]bool{{{gate}:"
                f"{str(cluster['featureGates'][gate]).lower()}}}: "
                f"{gate} is not a valid feature name."
            )
    endpoint = cluster["controlPlaneEndpoint"]
    if endpoint:
        try:
            kubeadm_util.parse_host_port(endpoint)
        except ValueError:
            errors.append(
                kubeadm_api.invalid("controlPlaneEndpoint", endpoint, "endpoint is not valid")
            )
    if not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9._:/-]*$", cluster["imageRepository"]):
        errors.append(
            kubeadm_api.invalid(
                "imageRepository", cluster["imageRepository"], "invalid image repository format"
            )
        )
    errors += _validate_etcd(cluster["etcd"])
    algorithms = ["ECDSA-P256", "RSA-2048", "RSA-3072", "RSA-4096"]
    if cluster["encryptionAlgorithm"] not in algorithms:
        errors.append(
            kubeadm_api.invalid(
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
    if not kubeadm_api.dns1123_errors(san):
        return []
    if san.startswith("*.") and not kubeadm_api.dns1123_errors(san[2:]):
        return []
    wildcard = (
        "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
        "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
        "alphanumeric character (e.g. '*.example.com', regex used for validation is "
        "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )
    detail = (
        "altname is not a valid IP address, DNS label or a DNS label with subdomain wildcards: "
        f"{'; '.join(kubeadm_api.dns1123_errors(san))}; {wildcard}"
    )
    return [kubeadm_api.invalid(path, san, detail)]


def _validate_etcd(etcd: dict) -> list[str]:
    """ValidateEtcd."""
    local, external = etcd.get("local"), etcd.get("external")
    if local is None and external is None:
        return [kubeadm_api.invalid("etcd", "", "either .Etcd.Local or .Etcd.External is required")]
    if local is not None and external is not None:
        return [
            kubeadm_api.invalid("etcd", "", ".Etcd.Local and .Etcd.External are mutually exclusive")
        ]
    errors = []
    if local is not None:
        if not is_abs(local.get("dataDir", "")):
            errors.append(
                kubeadm_api.invalid(
                    "etcd.local.dataDir", local.get("dataDir", ""), "path is not absolute"
                )
            )
        return errors
    ca, cert, key = (external.get(name) or "" for name in ("caFile", "certFile", "keyFile"))
    require_https = bool(ca or cert or key)
    if bool(cert) != bool(key):
        errors.append(
            kubeadm_api.invalid(
                "etcd.external",
                "",
                "either both or none of .Etcd.External.CertFile and .Etcd.External.KeyFile "
                "must be set",
            )
        )
    if cert and key and not ca:
        errors.append(
            kubeadm_api.invalid(
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
                kubeadm_api.invalid(
                    "etcd.external.endpoints", url, "the URL must be using the HTTPS scheme"
                )
            )
        if not scheme:
            errors.append(
                kubeadm_api.invalid(
                    "etcd.external.endpoints", url, "the URL without scheme is not allowed"
                )
            )
    for name, value in (("caFile", ca), ("certFile", cert), ("keyFile", key)):
        if value and not is_abs(value):
            errors.append(
                kubeadm_api.invalid(f"etcd.external.{name}", value, "path is not absolute")
            )
    return errors


def _validate_token(token: str, path: str) -> list[str]:
    if not kubeadm_api.TOKEN_PATTERN.match(token or ""):
        return [kubeadm_api.invalid(path, token or "", "the bootstrap token is invalid")]
    return []


def validate_node_registration(registration: dict, path: str) -> list[str]:
    errors = []
    name = registration["name"]
    if not name:
        errors.append(
            kubeadm_api.required(
                path,
                "--node-name or .nodeRegistration.name in the config file is a required value. "
                "It seems like this value couldn't be automatically detected in your "
                "environment, please specify the desired value using the CLI or config file.",
            )
        )
    else:
        errors += [
            kubeadm_api.invalid(f"{path}.name", name, m) for m in kubeadm_api.dns1123_errors(name)
        ]
    socket_url = registration["criSocket"]
    if not socket_url.startswith("unix://"):
        scheme = socket_url.split("://", 1)[0]
        errors.append(
            kubeadm_api.invalid(
                f"{path}.criSocket",
                socket_url,
                f'only URL scheme "unix" is supported, got "{scheme}"',
            )
        )
    for index, arg in enumerate(registration["kubeletExtraArgs"]):
        if not arg.get("name"):
            errors.append(
                kubeadm_api.invalid(
                    f"{path}.kubeletExtraArgs", f"index {index}", "argument has no name"
                )
            )
    if registration["imagePullPolicy"] not in ("Always", "IfNotPresent", "Never"):
        errors.append(
            kubeadm_api.invalid(
                f"{path}.imagePullPolicy", registration["imagePullPolicy"], "invalid pull policy"
            )
        )
    return errors


def validate_api_endpoint(endpoint: dict, path: str) -> list[str]:
    errors = []
    try:
        ipaddress.ip_address(endpoint["advertiseAddress"])
    except ValueError:
        errors.append(
            kubeadm_api.invalid(
                f"{path}.advertiseAddress", endpoint["advertiseAddress"], "ip address is not valid"
            )
        )
    if not 0 < int(endpoint["bindPort"]) < 65536:
        errors.append(
            kubeadm_api.invalid(
                f"{path}.bindPort", endpoint["bindPort"], "port number is not valid"
            )
        )
    return errors


def validate_certificate_key(key: str, path: str) -> list[str]:
    if not key:
        return []
    try:
        decoded = bytes.fromhex(key)
    except ValueError:
        return [
            kubeadm_api.invalid(
                path, key, "certificate key decoding error: encoding/hex: invalid byte"
            )
        ]
    if len(decoded) != 32:
        return [
            kubeadm_api.invalid(
                path,
                key,
                f"invalid certificate key size {len(decoded)}, the key must be an AES key "
                "of size 32",
            )
        ]
    return []


BOOTSTRAP_USAGES = {"signing", "authentication"}


def validate_bootstrap_tokens(tokens: list[dict]) -> list[str]:
    errors = []
    for index, token in enumerate(tokens):
        path = f"bootstrapTokens[{index}]"
        errors += _validate_token(token["token"], f"{path}.token")
        unknown = [usage for usage in token["usages"] if usage not in BOOTSTRAP_USAGES]
        if unknown:
            errors.append(
                kubeadm_api.invalid(
                    f"{path}.usages",
                    token["usages"],
                    f"invalid bootstrap token usage string: {','.join(unknown)}, valid usage "
                    "options: signing,authentication",
                )
            )
        if token["groups"] and "authentication" not in token["usages"]:
            errors.append(
                kubeadm_api.invalid(
                    f"{path}.groups",
                    token["groups"],
                    'token groups cannot be specified unless --usages includes "authentication"',
                )
            )
        for group in token["groups"]:
            if not re.match(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$", group):
                errors.append(
                    kubeadm_api.invalid(
                        f"{path}.groups",
                        token["groups"],
                        f'bootstrap group "{group}" is invalid (must match '
                        "\\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\\z)",
                    )
                )
        if token.get("expires") and token.get("ttl"):
            errors.append(
                kubeadm_api.invalid(
                    path, "", "the BootstrapToken .TTL and .Expires fields are mutually exclusive"
                )
            )
    return errors


def validate_discovery(discovery: dict) -> list[str]:
    errors = []
    token, file = discovery.get("bootstrapToken"), discovery.get("file")
    if token is None and file is None:
        errors.append(kubeadm_api.invalid("discovery", "", "bootstrapToken or file must be set"))
    if token is not None and file is not None:
        errors.append(
            kubeadm_api.invalid("discovery", "", "bootstrapToken and file cannot both be set")
        )
    if token is not None:
        path = "discovery.bootstrapToken"
        if not token["apiServerEndpoint"]:
            errors.append(kubeadm_api.required(path, "APIServerEndpoint is not set"))
        if not token["caCertHashes"] and not token["unsafeSkipCAVerification"]:
            errors.append(
                kubeadm_api.invalid(
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
                kubeadm_api.invalid(
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
            kubeadm_api.invalid(
                "discovery.file.kubeConfigPath", "", "not a valid HTTPS URL or a file on disk"
            )
        )
    return errors
