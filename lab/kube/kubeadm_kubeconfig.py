"""
The kubeadm double's kubeconfig phase (cmd/kubeadm/app/phases/kubeconfig): admin.conf,
super-admin.conf, kubelet.conf, controller-manager.conf and scheduler.conf, each with a
client certificate signed by the cluster CA.

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import datetime
from pathlib import Path

try:
    from lab.kube import kubeadm_certs, kubeadm_constants, kubeadm_pki, kubeadm_util
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kubeadm_certs  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_pki  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


def kubeconfig_specs(init: dict, cluster: dict, with_super_admin: bool) -> list[tuple]:
    """kubeconfig.getKubeConfigSpecsBase: file, server, user, organizations."""
    name = init["nodeRegistration"]["name"]
    shared, local = kubeadm_util.cluster_endpoint(init, cluster), kubeadm_util.local_endpoint(init)
    specs = [(kubeadm_constants.ADMIN_CONF, shared, "kubernetes-admin", ["kubeadm:cluster-admins"])]
    if with_super_admin:
        specs.append(
            (
                kubeadm_constants.SUPER_ADMIN_CONF,
                shared,
                "kubernetes-super-admin",
                ["system:masters"],
            )
        )
    specs += [
        (kubeadm_constants.KUBELET_CONF, shared, f"system:node:{name}", ["system:nodes"]),
        (kubeadm_constants.CONTROLLER_MANAGER_CONF, local, "system:kube-controller-manager", []),
        (kubeadm_constants.SCHEDULER_CONF, local, "system:kube-scheduler", []),
    ]
    return specs


def phase_kubeconfig(init: dict, cluster: dict, specs: list[tuple]) -> None:
    kubeadm_util.say(f'[kubeconfig] Using kubeconfig folder "{kubeadm_constants.KUBERNETES_DIR}"')
    ca_cert, ca_key = kubeadm_certs.load_ca(cluster, "ca")
    ca_pem = kubeadm_pki.cert_pem(ca_cert)
    validity = datetime.timedelta(
        seconds=kubeadm_util.parse_duration(cluster["certificateValidityPeriod"])
    )
    for path, server, user, organizations in specs:
        if kubeadm_util.host(path).exists():
            kubeadm_util.say(f'[kubeconfig] Using existing kubeconfig file: "{path}"')
            continue
        kubeadm_util.say(f'[kubeconfig] Writing "{Path(path).name}" kubeconfig file')
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
        kubeadm_pki.write_file(kubeadm_util.host(path), text.encode(), 0o600)
