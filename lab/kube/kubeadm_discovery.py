"""
The kubeadm double's token discovery for join (cmd/kubeadm/app/discovery/token/token.go,
cmd/kubeadm/app/util/pubkeypin/pubkeypin.go): cluster-info read without TLS
verification, its JWS checked with the token secret, the CA pinned, cluster-info read
again over verified TLS.

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import base64
import time

import yaml

try:
    from lab.kube import kubeadm_client, kubeadm_constants, kubeadm_pki, kubeadm_util
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kubeadm_client  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_pki  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


def discover(join: dict) -> dict:
    """token.RetrieveValidatedConfigInfo, then discovery.For's TLS bootstrap kubeconfig."""
    settings = join["discovery"]["bootstrapToken"]
    if settings is None:
        raise kubeadm_util.KubeadmError("the double copies token discovery only")
    token_id, token_secret_value = settings["token"].split(".")
    endpoint = settings["apiServerEndpoint"]
    timeout = kubeadm_util.parse_duration(join["timeouts"]["discovery"])
    insecure = kubeadm_client.Client(f"https://{endpoint}", insecure=True)
    cluster_info = _get_cluster_info(insecure, token_id, timeout)
    pins = settings["caCertHashes"]
    try:
        kubeadm_pki.check_pins(pins, [])
    except kubeadm_pki.PKIError as err:
        if pins and "are pinned" not in str(err):
            raise kubeadm_util.KubeadmError(
                f"invalid discovery token CA certificate hash: {err}"
            ) from None
    content = (cluster_info.get("data") or {}).get("kubeconfig", "")
    if not content:
        raise kubeadm_util.KubeadmError(
            "there is no kubeconfig key in the cluster-info ConfigMap. This API "
            "Server isn't set up for token bootstrapping, can't connect"
        )
    signature = cluster_info["data"].get(kubeadm_constants.JWS_PREFIX + token_id, "")
    if not signature:
        raise kubeadm_util.KubeadmError(
            f'token id "{token_id}" is invalid for this cluster or it has expired. '
            'Use "kubeadm token create" on the control-plane node to create a new '
            "valid token"
        )
    if not kubeadm_pki.detached_jws_is_valid(signature, content, token_id, token_secret_value):
        raise kubeadm_util.KubeadmError(
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
            raise kubeadm_util.KubeadmError(
                f"cluster CA found in cluster-info ConfigMap is invalid: {err}"
            ) from None
        secure = kubeadm_client.Client(f"https://{endpoint}", ca_pem=ca_pem)
        again = _get_cluster_info(secure, token_id, timeout)
        if again["data"].get("kubeconfig") != content:
            raise kubeadm_util.KubeadmError(
                "the second kubeconfig from the cluster-info ConfigMap (using "
                "validated TLS) was different from the first"
            )
    return {
        "server": cluster["server"],
        "ca_pem": ca_pem,
        "token": join["discovery"]["tlsBootstrapToken"],
    }


def _get_cluster_info(client: kubeadm_client.Client, token_id: str, timeout: float) -> dict:
    """getClusterInfo: poll every 5 s until the token's JWS is there or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            info = client.get(
                kubeadm_client.configmap_path("kube-public", kubeadm_constants.CLUSTER_INFO),
                retry_seconds=0,
            )
            if kubeadm_constants.JWS_PREFIX + token_id in (info.get("data") or {}):
                return info
            last = (
                f"could not find a JWS signature in the cluster-info ConfigMap for token ID "
                f'"{token_id}"'
            )
        except kubeadm_util.ApiError as err:
            last = f"failed to request the cluster-info ConfigMap: {err}"
        if time.monotonic() + 5 > deadline:
            raise kubeadm_util.KubeadmError(last)
        time.sleep(5)
