"""
The kubeadm double's certificates: the certs phase of init and of a control-plane join
(cmd/kubeadm/app/phases/certs) and `kubeadm certs certificate-key` and `certs
check-expiration` (cmd/kubeadm/app/cmd/certs.go).

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import yaml

try:
    from lab.kube import (
        kubeadm_client,
        kubeadm_config,
        kubeadm_constants,
        kubeadm_pki,
        kubeadm_util,
    )
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kubeadm_client  # type: ignore[no-redef]
    import kubeadm_config  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_pki  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


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
        extra.append(kubeadm_util.parse_host_port(cluster["controlPlaneEndpoint"])[0])
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


def pki_path(cluster: dict, name: str) -> Path:
    return kubeadm_util.host(f"{cluster['certificatesDir']}/{name}")


def _write_cert_and_key(cluster: dict, base: str, cert, key) -> None:
    kubeadm_pki.write_file(pki_path(cluster, f"{base}.key"), kubeadm_pki.key_pem(key), 0o600)
    kubeadm_pki.write_file(pki_path(cluster, f"{base}.crt"), kubeadm_pki.cert_pem(cert), 0o644)


def load_ca(cluster: dict, base: str):
    cert = kubeadm_pki.load_cert(pki_path(cluster, f"{base}.crt").read_bytes())
    key = kubeadm_pki.load_key(pki_path(cluster, f"{base}.key").read_bytes())
    return cert, key


def _ensure_ca(cluster: dict, base: str, common_name: str, label: str):
    if pki_path(cluster, f"{base}.crt").exists() and pki_path(cluster, f"{base}.key").exists():
        kubeadm_util.say(f"[certs] Using existing {label} certificate authority")
        return load_ca(cluster, base)
    kubeadm_util.say(f'[certs] Generating "{base}" certificate and key')
    key = kubeadm_pki.generate_key(cluster["encryptionAlgorithm"])
    validity = datetime.timedelta(
        seconds=kubeadm_util.parse_duration(cluster["caCertificateValidityPeriod"])
    )
    cert = kubeadm_pki.new_ca(common_name, key, validity)
    _write_cert_and_key(cluster, base, cert, key)
    return cert, key


def _ensure_leaf(cluster: dict, base: str, spec, ca) -> None:
    if pki_path(cluster, f"{base}.crt").exists() and pki_path(cluster, f"{base}.key").exists():
        kubeadm_util.say(f"[certs] Using existing {base} certificate and key on disk")
        return
    kubeadm_util.say(f'[certs] Generating "{base}" certificate and key')
    key = kubeadm_pki.generate_key(cluster["encryptionAlgorithm"])
    validity = datetime.timedelta(
        seconds=kubeadm_util.parse_duration(cluster["certificateValidityPeriod"])
    )
    cert = kubeadm_pki.new_signed_cert(spec, key, ca[0], ca[1], validity)
    _write_cert_and_key(cluster, base, cert, key)
    if spec.server:
        kubeadm_util.say(
            f"[certs] {base} serving cert is signed for DNS names [{' '.join(spec.dns_names)}] "
            f"and IPs [{' '.join(spec.ips)}]"
        )


def phase_certs(init: dict, cluster: dict) -> None:
    kubeadm_util.say(f'[certs] Using certificateDir folder "{cluster["certificatesDir"]}"')
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
            kubeadm_util.say(f"[certs] External etcd mode: Skipping {what}")
    if pki_path(cluster, "sa.key").exists():
        kubeadm_util.say('[certs] Using the existing "sa" key')
    else:
        kubeadm_util.say('[certs] Generating "sa" key and public key')
        key = kubeadm_pki.generate_key(
            "RSA-2048"
            if cluster["encryptionAlgorithm"] == "ECDSA-P256"
            else cluster["encryptionAlgorithm"]
        )
        kubeadm_pki.write_file(pki_path(cluster, "sa.key"), kubeadm_pki.key_pem(key), 0o600)
        kubeadm_pki.write_file(pki_path(cluster, "sa.pub"), kubeadm_pki.public_key_pem(key), 0o644)


def run_certificate_key(_options) -> None:
    kubeadm_util.say(kubeadm_pki.new_certificate_key())


def run_check_expiration(options) -> None:
    cluster = None
    if options.config:
        cluster = kubeadm_config.init_configuration(
            kubeadm_config.read_config_file(options.config, kubeadm_util.Node.rootfs)
        )["cluster"]
    else:
        try:
            client = kubeadm_client.Client.from_kubeconfig(
                options.kubeconfig or kubeadm_constants.ADMIN_CONF
            )
            text = client.get(
                kubeadm_client.configmap_path("kube-system", kubeadm_constants.KUBEADM_CONFIG_MAP),
                retry_seconds=0,
            )["data"]["ClusterConfiguration"]
            cluster = kubeadm_config.default_cluster(yaml.safe_load(text), 6443)
            kubeadm_util.say(
                '[check-expiration] Reading configuration from the "kubeadm-config" ConfigMap '
                'in namespace "kube-system"...'
            )
        except (kubeadm_util.ApiError, kubeadm_util.KubeadmError, KeyError, OSError):
            kubeadm_util.say(
                "[check-expiration] Error reading configuration from the Cluster. Falling back "
                "to default configuration"
            )
            cluster = kubeadm_config.default_cluster(None, 6443)
    external = cluster["etcd"].get("external") is not None
    leaves = [
        ("admin.conf", kubeadm_constants.ADMIN_CONF, "ca"),
        ("apiserver", "apiserver.crt", "ca"),
    ]
    if not external:
        leaves.append(("apiserver-etcd-client", "apiserver-etcd-client.crt", "etcd-ca"))
    leaves += [
        ("apiserver-kubelet-client", "apiserver-kubelet-client.crt", "ca"),
        ("controller-manager.conf", kubeadm_constants.CONTROLLER_MANAGER_CONF, "ca"),
    ]
    if not external:
        leaves += [
            ("etcd-healthcheck-client", "etcd/healthcheck-client.crt", "etcd-ca"),
            ("etcd-peer", "etcd/peer.crt", "etcd-ca"),
            ("etcd-server", "etcd/server.crt", "etcd-ca"),
        ]
    leaves += [
        ("front-proxy-client", "front-proxy-client.crt", "front-proxy-ca"),
        ("scheduler.conf", kubeadm_constants.SCHEDULER_CONF, "ca"),
        ("super-admin.conf", kubeadm_constants.SUPER_ADMIN_CONF, "ca"),
    ]
    authorities = [("ca", "ca.crt")] + ([] if external else [("etcd-ca", "etcd/ca.crt")])
    authorities.append(("front-proxy-ca", "front-proxy-ca.crt"))
    rows = [
        ["CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"]
    ]
    for name, path, authority in leaves:
        cert = _read_any_cert(cluster, path)
        if cert is None:
            kubeadm_util.say(f"!MISSING! {name}")
            continue
        rows.append([name, *_expiry(cert), authority, "no"])
    kubeadm_util.print_table(rows)
    kubeadm_util.say("")
    rows = [["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"]]
    for name, path in authorities:
        cert = _read_any_cert(cluster, path)
        if cert is None:
            kubeadm_util.say(f"!MISSING! {name}")
            continue
        rows.append([name, *_expiry(cert), "no"])
    kubeadm_util.print_table(rows)


def _read_any_cert(cluster: dict, path: str):
    """A certificate file under the PKI folder, or the client certificate of a kubeconfig."""
    if path.startswith("/"):
        if not kubeadm_util.host(path).exists():
            return None
        user = kubeadm_client.load_kubeconfig(path)["user"]
        pem = kubeadm_client.pem_from(user, "client-certificate-data", "client-certificate")
        return kubeadm_pki.load_cert(pem) if pem else None
    full = pki_path(cluster, path)
    return kubeadm_pki.load_cert(full.read_bytes()) if full.exists() else None


def _expiry(cert) -> list[str]:
    expires = cert.not_valid_after_utc
    left = (expires - datetime.datetime.now(datetime.UTC)).total_seconds()
    return [expires.strftime("%b %d, %Y %H:%M UTC"), kubeadm_util.short_human_duration(left)]
