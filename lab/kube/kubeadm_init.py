"""
`kubeadm init` and `kubeadm init phase upload-certs` in the double
(cmd/kubeadm/app/cmd/init.go, cmd/kubeadm/app/cmd/phases/init/*): the phases in their
order, the configuration uploads (phases/uploadconfig, phases/kubelet), the bootstrap
token phase (phases/bootstraptoken) and the join commands printed at the end.

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import yaml

try:
    from lab.kube import (
        kubeadm_certs,
        kubeadm_client,
        kubeadm_config,
        kubeadm_constants,
        kubeadm_controlplane,
        kubeadm_copycerts,
        kubeadm_kubeconfig,
        kubeadm_kubelet,
        kubeadm_pki,
        kubeadm_preflight,
        kubeadm_token,
        kubeadm_util,
    )
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kubeadm_certs  # type: ignore[no-redef]
    import kubeadm_client  # type: ignore[no-redef]
    import kubeadm_config  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_controlplane  # type: ignore[no-redef]
    import kubeadm_copycerts  # type: ignore[no-redef]
    import kubeadm_kubeconfig  # type: ignore[no-redef]
    import kubeadm_kubelet  # type: ignore[no-redef]
    import kubeadm_pki  # type: ignore[no-redef]
    import kubeadm_preflight  # type: ignore[no-redef]
    import kubeadm_token  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


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


def run_init(options) -> None:
    if not options.config:
        raise kubeadm_util.KubeadmError("the double needs --config: flags-only init is not copied")
    config = kubeadm_config.init_configuration(
        kubeadm_config.read_config_file(options.config, kubeadm_util.Node.rootfs)
    )
    init, cluster = config["init"], config["cluster"]
    skip = options.skip_phases or init["skipPhases"]
    ignore = kubeadm_preflight.ignored_checks(
        options.ignore_preflight_errors, init["nodeRegistration"]["ignorePreflightErrors"]
    )
    certificate_key = options.certificate_key or init["certificateKey"]
    kubeadm_util.say(f"[init] Using Kubernetes version: {cluster['kubernetesVersion']}")
    if not kubeadm_util.skipped("preflight", skip):
        kubeadm_util.say("[preflight] Running pre-flight checks")
        kubeadm_preflight.run_checks(
            [
                kubeadm_preflight.check_privileged(),
                *kubeadm_preflight.init_node_checks(init, cluster, False, False),
            ],
            ignore,
        )
        kubeadm_util.say("[preflight] Pulling images required for setting up a Kubernetes cluster")
        kubeadm_util.say(
            "[preflight] This might take a minute or two, depending on the speed of your "
            "internet connection"
        )
        kubeadm_util.say(
            "[preflight] You can also perform this action beforehand using 'kubeadm config "
            "images pull'"
        )
    if not kubeadm_util.skipped("certs", skip):
        kubeadm_certs.phase_certs(init, cluster)
    if not kubeadm_util.skipped("kubeconfig", skip):
        kubeadm_kubeconfig.phase_kubeconfig(
            init, cluster, kubeadm_kubeconfig.kubeconfig_specs(init, cluster, with_super_admin=True)
        )
    if not kubeadm_util.skipped("control-plane", skip):
        kubeadm_controlplane.phase_control_plane(init, cluster)
    kubelet_config_text = yaml.safe_dump(
        kubeadm_kubelet.kubelet_configuration(cluster, config["components"])
    )
    if not kubeadm_util.skipped("kubelet-start", skip):
        kubeadm_kubelet.write_kubelet_files(kubelet_config_text, init["nodeRegistration"])
        kubeadm_kubelet.try_start_kubelet()
    timeouts = init["timeouts"]
    if not kubeadm_util.skipped("wait-control-plane", skip):
        kubeadm_util.say(
            "[wait-control-plane] Waiting for the kubelet to boot up the control plane as "
            f'static Pods from directory "{kubeadm_constants.MANIFESTS_DIR}"'
        )
        try:
            kubeadm_kubelet.wait_for_kubelet(
                kubeadm_util.parse_duration(timeouts["kubeletHealthCheck"])
            )
            kubeadm_controlplane.wait_for_apiserver(
                init, kubeadm_util.parse_duration(timeouts["controlPlaneComponentHealthCheck"])
            )
        except kubeadm_util.KubeadmError as err:
            raise kubeadm_util.phase_error("wait-control-plane", err) from None
    api_timeout = kubeadm_util.parse_duration(timeouts["kubernetesAPICall"])
    client = None
    if not all(kubeadm_util.skipped(p, skip) for p in INIT_PHASES[7:11]):
        client = kubeadm_client.Client.from_kubeconfig(kubeadm_constants.ADMIN_CONF)
    if not kubeadm_util.skipped("upload-config", skip):
        kubeadm_util.run_phase(
            "upload-config",
            lambda: upload_config(client, cluster, kubelet_config_text, api_timeout),
        )
    if not kubeadm_util.skipped("upload-certs", skip):
        if options.upload_certs:
            certificate_key = kubeadm_util.run_phase(
                "upload-certs",
                lambda: kubeadm_copycerts.upload_certs(client, cluster, certificate_key),
            )
        else:
            kubeadm_util.say("[upload-certs] Skipping phase. Please see --upload-certs")
    if not kubeadm_util.skipped("mark-control-plane", skip):
        registration = init["nodeRegistration"]
        kubeadm_util.run_phase(
            "mark-control-plane",
            lambda: kubeadm_controlplane.mark_control_plane(
                client, registration["name"], registration["taints"], api_timeout
            ),
        )
    if not kubeadm_util.skipped("bootstrap-token", skip):
        kubeadm_util.run_phase(
            "bootstrap-token", lambda: bootstrap_token_phase(client, init, cluster)
        )
    if not kubeadm_util.skipped("kubelet-finalize", skip):
        kubeadm_kubelet.kubelet_finalize()
    if not kubeadm_util.skipped("show-join-command", skip):
        show_join_command(init, cluster, certificate_key if options.upload_certs else "")


def upload_config(
    client: kubeadm_client.Client, cluster: dict, kubelet_config_text: str, timeout: float
) -> None:
    """phases/uploadconfig and phases/kubelet: the two ConfigMaps joins read."""
    kubeadm_util.say(
        "[upload-config] Storing the configuration used in ConfigMap "
        f'"{kubeadm_constants.KUBEADM_CONFIG_MAP}" in the "kube-system" Namespace'
    )
    kubeadm_client.with_retries(
        lambda: client.create_or_update(
            kubeadm_client.configmap_path("kube-system"),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": kubeadm_constants.KUBEADM_CONFIG_MAP,
                    "namespace": "kube-system",
                },
                "data": {
                    "ClusterConfiguration": kubeadm_config.dump_cluster_configuration(cluster)
                },
            },
        ),
        timeout,
    )
    kubeadm_util.say(
        f'[kubelet] Creating a ConfigMap "{kubeadm_constants.KUBELET_CONFIG_MAP}" in namespace '
        "kube-system with the configuration for the kubelets in the cluster"
    )
    kubeadm_client.with_retries(
        lambda: client.create_or_update(
            kubeadm_client.configmap_path("kube-system"),
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": kubeadm_constants.KUBELET_CONFIG_MAP,
                    "namespace": "kube-system",
                },
                "data": {"kubelet": kubelet_config_text},
            },
        ),
        timeout,
    )


def bootstrap_token_phase(client: kubeadm_client.Client, init: dict, cluster: dict) -> None:
    """phases/bootstraptoken: the tokens, cluster-info, and the signer's JWS."""
    for token in init["bootstrapTokens"]:
        kubeadm_util.say(f"[bootstrap-token] Using token: {token['token']}")
    kubeadm_util.say(
        "[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles"
    )
    kubeadm_token.create_tokens(client, init["bootstrapTokens"])
    kubeadm_util.say(
        '[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace'
    )
    ca_pem = kubeadm_certs.pki_path(cluster, "ca.crt").read_bytes()
    content = kubeadm_pki.cluster_info_kubeconfig(
        kubeadm_util.cluster_endpoint(init, cluster), ca_pem
    )
    client.create_or_update(
        kubeadm_client.configmap_path("kube-public"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": kubeadm_constants.CLUSTER_INFO, "namespace": "kube-public"},
            "data": {"kubeconfig": content},
        },
    )
    kubeadm_token.play_controller_manager(client)


def show_join_command(init: dict, cluster: dict, certificate_key: str) -> None:
    token = init["bootstrapTokens"][0]["token"]
    ca = kubeadm_pki.load_cert(kubeadm_certs.pki_path(cluster, "ca.crt").read_bytes())
    endpoint = kubeadm_util.cluster_endpoint(init, cluster).removeprefix("https://")
    pin = kubeadm_pki.spki_hash(ca)
    kubeadm_util.say("\nYour Kubernetes control-plane has initialized successfully!\n")
    kubeadm_util.say(
        "To start using your cluster, you need to run the following as a regular user:\n"
    )
    kubeadm_util.say("  mkdir -p $HOME/.kube")
    kubeadm_util.say("  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config")
    kubeadm_util.say("  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n")
    kubeadm_util.say("Alternatively, if you are the root user, you can run:\n")
    kubeadm_util.say("  export KUBECONFIG=/etc/kubernetes/admin.conf\n")
    kubeadm_util.say("You should now deploy a pod network to the cluster.")
    kubeadm_util.say('Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:')
    kubeadm_util.say("  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n")
    if cluster["controlPlaneEndpoint"]:
        kubeadm_util.say(
            "You can now join any number of control-plane nodes running the following command "
            "on each as root:\n"
        )
        kubeadm_util.say(f"  kubeadm join {endpoint} --token {token} \\")
        kubeadm_util.say(f"\t--discovery-token-ca-cert-hash {pin} \\")
        kubeadm_util.say(
            f"\t--control-plane --certificate-key {certificate_key or '<value withheld>'}\n"
        )
        kubeadm_util.say(
            "Please note that the certificate-key gives access to cluster sensitive data, keep "
            "it secret!"
        )
        kubeadm_util.say(
            "As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can "
            'use\n"kubeadm init phase upload-certs --upload-certs" to reload certs afterward.\n'
        )
    kubeadm_util.say(
        "Then you can join any number of worker nodes by running the following on each as root:\n"
    )
    kubeadm_util.say(f"kubeadm join {endpoint} --token {token} \\")
    kubeadm_util.say(f"\t--discovery-token-ca-cert-hash {pin} ")


def run_upload_certs(options) -> None:
    if not options.upload_certs:
        kubeadm_util.say("[upload-certs] Skipping phase. Please see --upload-certs")
        return
    if options.config:
        config = kubeadm_config.init_configuration(
            kubeadm_config.read_config_file(options.config, kubeadm_util.Node.rootfs)
        )
    else:
        # Without --config kubeadm uses its defaults, whose etcd is local: the external
        # etcd client files are then not in the Secret (kubeadm's behaviour, copied).
        config = kubeadm_config.build_init_configuration({}, None)
    certificate_key = options.certificate_key or config["init"]["certificateKey"]
    client = kubeadm_client.admin_client(options)
    kubeadm_token.play_controller_manager(client)
    kubeadm_util.run_phase(
        "upload-certs",
        lambda: kubeadm_copycerts.upload_certs(client, config["cluster"], certificate_key),
    )
