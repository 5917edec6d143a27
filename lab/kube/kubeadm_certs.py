"""
The kubeadm double's certificates: the certs phase of init and of a control-plane join
(cmd/kubeadm/app/phases/certs), and `kubeadm certs certificate-key`, `certs
check-expiration` and `certs renew <name>|all` (cmd/kubeadm/app/cmd/certs.go) over
renewal's manager (cmd/kubeadm/app/phases/certs/renewal: manager.go, readwriter.go,
filerenewer.go; the certificates' names from phases/certs/certlist.go).

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass
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


# `kubeadm certs check-expiration` and `kubeadm certs renew` (cmd/kubeadm/app/cmd/certs.go)
# over renewal.Manager's certificates (cmd/kubeadm/app/phases/certs/renewal/manager.go):
# the PKI's leaves of certlist.go (GetDefaultCertList, or GetCertsWithoutEtcd with an
# external etcd) and the client certificates embedded in four kubeconfig files (never
# kubelet.conf: the kubelet rotates its own), sorted by name as Manager.Certificates() is.


@dataclass(frozen=True)
class Certificate:
    """renewal.CertificateRenewHandler: the name `certs renew` takes, its long name (what
    the commands print), its file (a base name under certificatesDir, or a kubeconfig
    path), the CA's name and base name; etcd's are only there with a local etcd."""

    name: str
    long_name: str
    file: str
    ca_name: str
    ca_base: str
    etcd: bool = False

    @property
    def kubeconfig(self) -> bool:
        return self.file.startswith("/")


CERTIFICATES = (
    Certificate(
        "admin.conf",
        "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
        kubeadm_constants.ADMIN_CONF,
        "ca",
        "ca",
    ),
    Certificate("apiserver", "certificate for serving the Kubernetes API", "apiserver", "ca", "ca"),
    Certificate(
        "apiserver-etcd-client",
        "certificate the apiserver uses to access etcd",
        "apiserver-etcd-client",
        "etcd-ca",
        "etcd/ca",
        etcd=True,
    ),
    Certificate(
        "apiserver-kubelet-client",
        "certificate for the API server to connect to kubelet",
        "apiserver-kubelet-client",
        "ca",
        "ca",
    ),
    Certificate(
        "controller-manager.conf",
        "certificate embedded in the kubeconfig file for the controller manager to use",
        kubeadm_constants.CONTROLLER_MANAGER_CONF,
        "ca",
        "ca",
    ),
    Certificate(
        "etcd-healthcheck-client",
        "certificate for liveness probes to healthcheck etcd",
        "etcd/healthcheck-client",
        "etcd-ca",
        "etcd/ca",
        etcd=True,
    ),
    Certificate(
        "etcd-peer",
        "certificate for etcd nodes to communicate with each other",
        "etcd/peer",
        "etcd-ca",
        "etcd/ca",
        etcd=True,
    ),
    Certificate(
        "etcd-server",
        "certificate for serving etcd",
        "etcd/server",
        "etcd-ca",
        "etcd/ca",
        etcd=True,
    ),
    Certificate(
        "front-proxy-client",
        "certificate for the front proxy client",
        "front-proxy-client",
        "front-proxy-ca",
        "front-proxy-ca",
    ),
    Certificate(
        "scheduler.conf",
        "certificate embedded in the kubeconfig file for the scheduler manager to use",
        kubeadm_constants.SCHEDULER_CONF,
        "ca",
        "ca",
    ),
    Certificate(
        "super-admin.conf",
        "certificate embedded in the kubeconfig file for the super-admin",
        kubeadm_constants.SUPER_ADMIN_CONF,
        "ca",
        "ca",
    ),
)
RENEWABLE = tuple(certificate.name for certificate in CERTIFICATES)
# manager.go's CAExpirationHandlers, and the "uxName" certs.go's UsingExternal*CA checks use.
AUTHORITIES = (("ca", "ca", "CA"), ("etcd-ca", "etcd/ca", "etcd CA"),
               ("front-proxy-ca", "front-proxy-ca", "front-proxy CA"))  # fmt: skip
DEFAULT_CERTIFICATES_DIR = "/etc/kubernetes/pki"


def manager_certificates(cluster: dict) -> list[Certificate]:
    """renewal.NewManager(cfg).Certificates(): without etcd's when etcd is external."""
    external = cluster["etcd"].get("external") is not None
    return [c for c in CERTIFICATES if not (external and c.etcd)]


def cluster_configuration(options, prefix: str) -> dict:
    """certs.go's getInternalCfg: --config when given; else the kubeadm-config ConfigMap
    through --kubeconfig (admin.conf), whose certificatesDir the --cert-dir flag (default
    /etc/kubernetes/pki) overrides; else, when the cluster cannot be read, kubeadm's
    defaults (a local etcd). kubeadm also reads this node's registration from the cluster
    and falls back when it cannot; the double reads only the ClusterConfiguration."""
    if options.config:
        return kubeadm_config.init_configuration(
            kubeadm_config.read_config_file(options.config, kubeadm_util.Node.rootfs)
        )["cluster"]
    try:
        client = kubeadm_client.Client.from_kubeconfig(
            options.kubeconfig or kubeadm_constants.ADMIN_CONF
        )
    except (kubeadm_util.KubeadmError, OSError, ValueError, KeyError, yaml.YAMLError):
        # kubeconfigutil.ClientSetFromFile failed: kubeadm goes to its defaults silently.
        client = None
    cluster = None
    if client is not None:
        kubeadm_util.say(
            f'[{prefix}] Reading configuration from the "kubeadm-config" ConfigMap in namespace '
            '"kube-system"...'
        )
        kubeadm_util.say(
            f"[{prefix}] Use 'kubeadm init phase upload-config kubeadm --config "
            "your-config-file' to re-upload it."
        )
        try:
            text = client.get(
                kubeadm_client.configmap_path("kube-system", kubeadm_constants.KUBEADM_CONFIG_MAP),
                retry_seconds=0,
            )["data"]["ClusterConfiguration"]
            cluster = kubeadm_config.default_cluster(yaml.safe_load(text), 6443)
            kubeadm_util.say()
        except (kubeadm_util.ApiError, kubeadm_util.KubeadmError, KeyError, TypeError, OSError):
            kubeadm_util.say(
                f"[{prefix}] Error reading configuration from the Cluster. Falling back to "
                "default configuration"
            )
            kubeadm_util.say()
    if cluster is None:
        cluster = kubeadm_config.default_cluster(None, 6443)
    cluster["certificatesDir"] = options.cert_dir or DEFAULT_CERTIFICATES_DIR
    return cluster


def run_check_expiration(options) -> None:
    cluster = cluster_configuration(options, "check-expiration")
    certificates = manager_certificates(cluster)
    rows = [
        ["CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"]
    ]
    for certificate in certificates:
        cert = _read_any_cert(cluster, certificate.file)
        if cert is None:
            rows.append([f"!MISSING! {certificate.name}", "", "", "", ""])
            continue
        external = "yes" if _externally_managed(cluster, certificate.ca_base) else "no"
        rows.append([certificate.name, *_expiry(cert), certificate.ca_name, external])
    kubeadm_util.print_table(rows)
    kubeadm_util.say("")
    rows = [["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", "EXTERNALLY MANAGED"]]
    used = {certificate.ca_name for certificate in certificates}
    for name, base, _ in AUTHORITIES:
        if name not in used:
            continue
        cert = _read_any_cert(cluster, f"{base}.crt")
        if cert is None:
            rows.append([f"!MISSING! {name}", "", "", ""])
            continue
        rows.append([name, *_expiry(cert), "yes" if _externally_managed(cluster, base) else "no"])
    kubeadm_util.print_table(rows)


def _read_any_cert(cluster: dict, path: str):
    """A certificate file under the PKI folder, or the client certificate of a kubeconfig."""
    if path.startswith("/"):
        if not kubeadm_util.host(path).is_file():
            return None
        user = kubeadm_client.load_kubeconfig(path)["user"]
        pem = kubeadm_client.pem_from(user, "client-certificate-data", "client-certificate")
        return kubeadm_pki.load_cert(pem) if pem else None
    full = pki_path(cluster, path if path.endswith(".crt") else f"{path}.crt")
    return kubeadm_pki.load_cert(full.read_bytes()) if full.is_file() else None


def _expiry(cert) -> list[str]:
    expires = cert.not_valid_after_utc
    left = (expires - datetime.datetime.now(datetime.UTC)).total_seconds()
    return [expires.strftime("%b %d, %Y %H:%M UTC"), kubeadm_util.short_human_duration(left)]


def _externally_managed(cluster: dict, ca_base: str) -> bool:
    """The CA's certificate without its key (manager.go IsExternallyManaged; certs.go
    UsingExternalCA, UsingExternalFrontProxyCA, UsingExternalEtcdCA), the CA's own
    certificate being there. kubeadm then also validates the certificates that CA signed;
    the double does not."""
    return (
        pki_path(cluster, f"{ca_base}.crt").is_file()
        and not pki_path(cluster, f"{ca_base}.key").exists()
    )


def run_renew(options) -> None:
    """`kubeadm certs renew <name>` and `renew all` (certs.go, getRenewSubCommands and
    renewCert): unconditionally, with the local CAs, a missing certificate reported and
    skipped."""
    name = options.renew_name
    if not name:
        raise kubeadm_util.KubeadmError(
            'missing subcommand; "renew" is not meant to be run on its own'
        )
    if name != "all" and name not in RENEWABLE:
        raise kubeadm_util.KubeadmError(f'unknown command "{name}" for "kubeadm certs renew"')
    cluster = cluster_configuration(options, "renew")
    # kubeadmutil.StartTimeUTC(): one start time for every certificate of the run.
    start = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    if name != "all":
        _renew(cluster, next(c for c in CERTIFICATES if c.name == name), start)
        return
    for certificate in manager_certificates(cluster):
        _renew(cluster, certificate, start)
    kubeadm_util.say(
        "\nDone renewing certificates. You must restart the kube-apiserver, "
        "kube-controller-manager, kube-scheduler and etcd, so that they can use the new "
        "certificates."
    )


def _renew(cluster: dict, certificate: Certificate, start: datetime.datetime) -> None:
    """renewCert: MISSING! when the manager does not know it (etcd's with an external etcd)
    or its file is not there; nothing renewed under an external CA; else
    Manager.RenewUsingLocalCA and "<long name> renewed"."""
    known = certificate in manager_certificates(cluster)
    if not known or not _exists(cluster, certificate):
        kubeadm_util.say(f"MISSING! {certificate.long_name}")
        return
    if _renew_using_local_ca(cluster, certificate, start):
        kubeadm_util.say(f"{certificate.long_name} renewed")
    else:
        kubeadm_util.say(
            f"Detected external {certificate.ca_base}, {certificate.long_name} can't be renewed"
        )


def _exists(cluster: dict, certificate: Certificate) -> bool:
    """readwriter.go's Exists: the kubeconfig file, or the PKI's .crt (the key may lack)."""
    if certificate.kubeconfig:
        return kubeadm_util.host(certificate.file).is_file()
    return pki_path(cluster, f"{certificate.file}.crt").is_file()


def _renew_using_local_ca(
    cluster: dict, certificate: Certificate, start: datetime.datetime
) -> bool:
    """Manager.RenewUsingLocalCA: the current certificate's config (certToConfig) signed
    again by its CA for a new key of the cluster's encryptionAlgorithm (FileRenewer.Renew
    is pkiutil.NewCertAndKey), valid from the start time less kubeadm's 5 min backdate to
    the start time plus certificateValidityPeriod, written back where it was read. The
    manager.go kubeadm 1.34 has sets NotBefore and NotAfter so (its manager_test.go,
    TestRenewUsingLocalCA); older ones kept the CA's NotBefore and one year."""
    ux_name = next(ux for _, base, ux in AUTHORITIES if base == certificate.ca_base)
    ca_path = pki_path(cluster, f"{certificate.ca_base}.crt")
    try:
        ca_cert = kubeadm_pki.load_cert(ca_path.read_bytes())
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise kubeadm_util.KubeadmError(
            f"Error checking external CA condition for {certificate.ca_base} certificate "
            f"authority: failure loading certificate for {ux_name}: couldn't load the "
            f"certificate file {ca_path.as_posix().removeprefix(kubeadm_util.Node.rootfs)}: "
            f"{reason.lower()}"
        ) from None
    if _externally_managed(cluster, certificate.ca_base):
        return False
    if certificate.kubeconfig:
        document, cert = _read_kubeconfig(certificate.file)
    else:
        cert = kubeadm_pki.load_cert(pki_path(cluster, f"{certificate.file}.crt").read_bytes())
    ca_key = kubeadm_pki.load_key(pki_path(cluster, f"{certificate.ca_base}.key").read_bytes())
    validity = datetime.timedelta(
        seconds=kubeadm_util.parse_duration(cluster["certificateValidityPeriod"])
    )
    config = kubeadm_pki.cert_config_of(
        cert, start - kubeadm_pki.CERTIFICATE_BACKDATE, start + validity
    )
    try:
        new_cert, new_key = kubeadm_pki.new_cert_and_key(
            config, cluster["encryptionAlgorithm"], ca_cert, ca_key
        )
    except kubeadm_pki.PKIError as err:
        raise kubeadm_util.KubeadmError(
            f"failed to renew certificate {certificate.name}: {err}"
        ) from None
    if certificate.kubeconfig:
        _write_kubeconfig(certificate.file, document, ca_cert, new_cert, new_key)
    else:
        _write_cert_and_key(cluster, certificate.file, new_cert, new_key)
    return True


def _read_kubeconfig(path: str) -> tuple[dict, object]:
    """kubeConfigReadWriter.Read: the current context's cluster with an embedded CA and its
    user with an embedded client certificate, with readwriter.go's errors."""
    try:
        document = yaml.safe_load(kubeadm_util.host(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise kubeadm_util.KubeadmError(f"failed to load kubeConfig file {path}: {err}") from None
    current = document.get("current-context", "")
    contexts = {c["name"]: c.get("context") or {} for c in document.get("contexts") or []}
    if current not in contexts:
        raise kubeadm_util.KubeadmError(
            f"invalid kubeConfig file {path}: missing context {current}"
        )
    clusters = {c["name"]: c.get("cluster") or {} for c in document.get("clusters") or []}
    cluster_name = contexts[current].get("cluster", "")
    if cluster_name not in clusters:
        raise kubeadm_util.KubeadmError(
            f"invalid kubeConfig file {path}: missing cluster {cluster_name}"
        )
    if not clusters[cluster_name].get("certificate-authority-data"):
        raise kubeadm_util.KubeadmError(
            f"kubeConfig file {path} does not have an embedded server certificate"
        )
    users = {u["name"]: u.get("user") or {} for u in document.get("users") or []}
    user_name = contexts[current].get("user", "")
    if user_name not in users:
        raise kubeadm_util.KubeadmError(
            f"invalid kubeConfig file {path}: missing authInfo {user_name}"
        )
    data = users[user_name].get("client-certificate-data")
    if not data:
        raise kubeadm_util.KubeadmError(
            f"kubeConfig file {path} does not have an embedded client certificate"
        )
    try:
        cert = kubeadm_pki.load_cert(base64.b64decode(data))
    except ValueError as err:
        raise kubeadm_util.KubeadmError(
            f"kubeConfig file {path} does not contain a valid client certificate: {err}"
        ) from None
    return document, cert


def _write_kubeconfig(path: str, document: dict, ca_cert, cert, key) -> None:
    """kubeConfigReadWriter.Write: the current context's user gets the new certificate and
    key, its cluster the CA read from disk again; everything else is kept (clientcmd
    writes the file 0600)."""
    context = next(
        c["context"] for c in document["contexts"] if c["name"] == document["current-context"]
    )
    for entry in document["clusters"]:
        if entry["name"] == context["cluster"]:
            entry["cluster"]["certificate-authority-data"] = base64.b64encode(
                kubeadm_pki.cert_pem(ca_cert)
            ).decode()
    for entry in document["users"]:
        if entry["name"] == context["user"]:
            entry["user"]["client-certificate-data"] = base64.b64encode(
                kubeadm_pki.cert_pem(cert)
            ).decode()
            entry["user"]["client-key-data"] = base64.b64encode(kubeadm_pki.key_pem(key)).decode()
    kubeadm_pki.write_file(
        kubeadm_util.host(path),
        yaml.safe_dump(document, default_flow_style=False, sort_keys=False).encode(),
        0o600,
    )
