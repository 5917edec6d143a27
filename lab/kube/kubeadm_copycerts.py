"""
The kubeadm double's copycerts (cmd/kubeadm/app/phases/copycerts/copycerts.go): the
kubeadm-certs Secret uploaded by init or `init phase upload-certs`, each file AES-GCM
under the certificate key, and downloaded back by a control-plane join.

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import base64

try:
    from lab.kube import (
        kube_common,
        kubeadm_client,
        kubeadm_config,
        kubeadm_constants,
        kubeadm_pki,
        kubeadm_token,
        kubeadm_util,
    )
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kube_common  # type: ignore[no-redef]
    import kubeadm_client  # type: ignore[no-redef]
    import kubeadm_config  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_pki  # type: ignore[no-redef]
    import kubeadm_token  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


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


def upload_certs(client: kubeadm_client.Client, cluster: dict, certificate_key: str) -> str:
    """copycerts.UploadCerts (and the phase printing the key), returns the key used."""
    if not certificate_key:
        certificate_key = kubeadm_pki.new_certificate_key()
    kubeadm_util.say(
        "[upload-certs] Storing the certificates in Secret "
        f'"{kubeadm_constants.KUBEADM_CERTS_SECRET}" in the "kube-system" Namespace'
    )
    try:
        key = kubeadm_pki.decode_certificate_key(certificate_key)
    except kubeadm_pki.PKIError as err:
        raise kubeadm_util.KubeadmError(f"error uploading certs: {err}") from None
    short_lived = kubeadm_config.default_bootstrap_tokens(
        [
            {
                "description": "Proxy for managing TTL for the kubeadm-certs secret",
                "ttl": kubeadm_constants.DEFAULT_CERT_TOKEN_TTL,
            }
        ]
    )[0]
    short_lived["usages"], short_lived["groups"] = [], []
    kubeadm_token.create_tokens(client, [short_lived])
    owner = client.get(
        kubeadm_client.secret_path("kube-system", f"bootstrap-token-{short_lived['token'][:6]}")
    )
    data = {}
    for name, path in certs_to_transfer(cluster).items():
        try:
            content = kubeadm_util.host(path).read_bytes() if path else None
        except FileNotFoundError:
            content = None
        data[name] = (
            kube_common.b64(kubeadm_pki.encrypt_bytes(content, key)) if content is not None else ""
        )
    client.create_or_update(
        kubeadm_client.secret_path("kube-system"),
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": kubeadm_constants.KUBEADM_CERTS_SECRET,
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
    kubeadm_util.say("[upload-certs] Using certificate key:")
    kubeadm_util.say(certificate_key)
    return certificate_key


def download_certs(client: kubeadm_client.Client, cluster: dict, certificate_key: str) -> None:
    """copycerts.DownloadCerts: the files go back where the cluster's configuration says."""
    kubeadm_util.say(
        "[download-certs] Downloading the certificates in Secret "
        f'"{kubeadm_constants.KUBEADM_CERTS_SECRET}" in the "kube-system" Namespace'
    )
    try:
        key = kubeadm_pki.decode_certificate_key(certificate_key)
    except kubeadm_pki.PKIError as err:
        raise kubeadm_util.KubeadmError(f"error downloading certs: {err}") from None
    try:
        secret = client.get(
            kubeadm_client.secret_path("kube-system", kubeadm_constants.KUBEADM_CERTS_SECRET)
        )
    except kubeadm_util.ApiError as err:
        if err.code == 404:
            raise kubeadm_util.KubeadmError(
                'error downloading certs: error downloading the secret: Secret "kubeadm-certs" '
                'was not found in the "kube-system" Namespace. This Secret might have expired. '
                "Please, run `kubeadm init phase upload-certs --upload-certs` on a control "
                "plane to generate a new one"
            ) from None
        raise kubeadm_util.KubeadmError(
            f"error downloading certs: error downloading the secret: {err}"
        ) from None
    decoded = {}
    for name, value in (secret.get("data") or {}).items():
        blob = base64.b64decode(value) if value else b""
        try:
            decoded[name] = kubeadm_pki.decrypt_bytes(blob, key) if blob else b""
        except kubeadm_pki.PKIError as err:
            raise kubeadm_util.KubeadmError(
                f"error downloading certs: error decoding secret data with provided key: {err}"
            ) from None
    kubeadm_util.say(
        f'[download-certs] Saving the certificates to the folder: "{cluster["certificatesDir"]}"'
    )
    for name, path in certs_to_transfer(cluster).items():
        if name not in decoded:
            raise kubeadm_util.KubeadmError(
                "error downloading certs: the Secret does not include the "
                f"required certificate or key - name: {name}, path: {path}"
            )
        if not decoded[name]:
            continue
        mode = 0o600 if b"PRIVATE KEY" in decoded[name] else 0o644
        kubeadm_pki.write_file(kubeadm_util.host(path), decoded[name], mode)
