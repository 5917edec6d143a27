"""
`kubeadm join` in the double (cmd/kubeadm/app/cmd/join.go, cmd/kubeadm/app/cmd/phases/join/*):
preflight, discovery, the control-plane preparation (download-certs, certs, kubeconfig,
control-plane), kubelet-start with the TLS bootstrap, and the control-plane join.

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import time

import yaml

try:
    from lab.kube import (
        kubeadm_api,
        kubeadm_certs,
        kubeadm_client,
        kubeadm_config,
        kubeadm_constants,
        kubeadm_controlplane,
        kubeadm_copycerts,
        kubeadm_discovery,
        kubeadm_kubeconfig,
        kubeadm_kubelet,
        kubeadm_pki,
        kubeadm_preflight,
        kubeadm_util,
    )
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kubeadm_api  # type: ignore[no-redef]
    import kubeadm_certs  # type: ignore[no-redef]
    import kubeadm_client  # type: ignore[no-redef]
    import kubeadm_config  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_controlplane  # type: ignore[no-redef]
    import kubeadm_copycerts  # type: ignore[no-redef]
    import kubeadm_discovery  # type: ignore[no-redef]
    import kubeadm_kubeconfig  # type: ignore[no-redef]
    import kubeadm_kubelet  # type: ignore[no-redef]
    import kubeadm_pki  # type: ignore[no-redef]
    import kubeadm_preflight  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


def join_config_from_flags(options) -> dict:
    """The JoinConfiguration kubeadm builds from join's flags."""
    if not options.endpoint:
        raise kubeadm_util.KubeadmError(
            "[discovery] Please provide the API server endpoint as an argument or the "
            "--discovery-token-apiserver flag"
        )
    join = {
        "apiVersion": kubeadm_api.V1BETA4,
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
    return kubeadm_config.build_join_configuration(join)


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
        raise kubeadm_util.KubeadmError(f"can not mix '--config' with arguments [{flags}]")
    if options.config:
        join = kubeadm_config.join_configuration(
            kubeadm_config.read_config_file(options.config, kubeadm_util.Node.rootfs)
        )
    else:
        join = join_config_from_flags(options)
    skip = options.skip_phases or join["skipPhases"]
    ignore = kubeadm_preflight.ignored_checks(
        options.ignore_preflight_errors, join["nodeRegistration"]["ignorePreflightErrors"]
    )
    control_plane = join.get("controlPlane")
    certificate_key = (control_plane or {}).get("certificateKey", "")
    timeouts = join["timeouts"]
    kubeadm_util.say("[preflight] Running pre-flight checks")
    checks = [
        kubeadm_preflight.check_privileged(),
        kubeadm_preflight.check_file_available(kubeadm_constants.KUBELET_CONF),
        kubeadm_preflight.check_file_available(kubeadm_constants.BOOTSTRAP_KUBELET_CONF),
        *kubeadm_preflight.common_checks(join["nodeRegistration"]),
    ]
    if control_plane is None:
        checks.append(kubeadm_preflight.check_file_available(join["caCertPath"]))
    if not kubeadm_util.skipped("preflight", skip):
        kubeadm_preflight.run_checks(checks, ignore)
    try:
        bootstrap = kubeadm_discovery.discover(join)
    except (kubeadm_util.KubeadmError, kubeadm_util.ApiError, kubeadm_pki.PKIError) as err:
        raise kubeadm_util.phase_error(
            "preflight", f"couldn't validate the identity of the API Server: {err}"
        ) from None
    client = kubeadm_client.Client(
        bootstrap["server"], ca_pem=bootstrap["ca_pem"], token=bootstrap["token"]
    )
    kubeadm_util.say(
        '[preflight] Reading configuration from the "kubeadm-config" ConfigMap in namespace '
        '"kube-system"...'
    )
    kubeadm_util.say(
        "[preflight] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' "
        "to re-upload it."
    )
    try:
        cluster_data = yaml.safe_load(
            client.get(
                kubeadm_client.configmap_path("kube-system", kubeadm_constants.KUBEADM_CONFIG_MAP)
            )["data"]["ClusterConfiguration"]
        )
        kubelet_text = client.get(
            kubeadm_client.configmap_path("kube-system", kubeadm_constants.KUBELET_CONFIG_MAP)
        )["data"]["kubelet"]
    except kubeadm_util.ApiError as err:
        raise kubeadm_util.phase_error(
            "preflight", f"unable to fetch the kubeadm-config ConfigMap: {err}"
        ) from None
    init = {
        "nodeRegistration": join["nodeRegistration"],
        "localAPIEndpoint": (control_plane or {}).get("localAPIEndpoint")
        or {"advertiseAddress": "", "bindPort": 6443},
    }
    cluster = kubeadm_config.default_cluster(cluster_data, init["localAPIEndpoint"]["bindPort"])
    if control_plane is not None:
        _join_control_plane_preflight(init, cluster, certificate_key, ignore, skip)
        if certificate_key:
            kubeadm_util.run_phase(
                "control-plane-prepare/download-certs",
                lambda: kubeadm_copycerts.download_certs(client, cluster, certificate_key),
            )
        try:
            kubeadm_certs.phase_certs(init, cluster)
        except (OSError, ValueError) as err:
            raise kubeadm_util.phase_error("control-plane-prepare/certs", err) from None
        kubeadm_kubeconfig.phase_kubeconfig(
            init,
            cluster,
            [
                spec
                for spec in kubeadm_kubeconfig.kubeconfig_specs(
                    init, cluster, with_super_admin=False
                )
                if spec[0] != kubeadm_constants.KUBELET_CONF
            ],
        )
        kubeadm_controlplane.phase_control_plane(init, cluster)
        kubeadm_util.say("[check-etcd] Skipping etcd check in external mode")
    kubeadm_util.run_phase(
        "kubelet-start", lambda: join_kubelet_start(join, client, bootstrap, kubelet_text, timeouts)
    )
    if control_plane is not None:
        kubeadm_util.say(
            "[control-plane-join] Using external etcd - no local stacked instance added"
        )
        admin = kubeadm_client.Client.from_kubeconfig(kubeadm_constants.ADMIN_CONF)
        registration = join["nodeRegistration"]
        kubeadm_util.run_phase(
            "control-plane-join/mark-control-plane",
            lambda: kubeadm_controlplane.mark_control_plane(
                admin,
                registration["name"],
                registration["taints"],
                kubeadm_util.parse_duration(timeouts["kubernetesAPICall"]),
            ),
        )
        if not kubeadm_util.skipped("wait-control-plane", skip):
            kubeadm_util.run_phase(
                "wait-control-plane",
                lambda: kubeadm_controlplane.wait_for_apiserver(
                    init, kubeadm_util.parse_duration(timeouts["controlPlaneComponentHealthCheck"])
                ),
            )
        kubeadm_util.say(JOIN_CONTROL_PLANE_DONE)
    else:
        kubeadm_util.say(JOIN_WORKER_DONE)


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
                if not kubeadm_util.host(path).exists():
                    missing.append(
                        f"failure loading key for {label}: couldn't load the private "
                        f"key file {path}: open {path}: no such file or directory"
                    )
            else:
                path = f"{pki}/{base}.crt"
                if not kubeadm_util.host(path).exists():
                    missing.append(
                        f"failure loading certificate for {label}: couldn't load the "
                        f"certificate file {path}: open {path}: no such file or "
                        "directory"
                    )
        if missing:
            error = kubeadm_api.aggregate(missing)
    if error:
        raise kubeadm_util.phase_error("preflight", NOT_READY_FOR_CONTROL_PLANE.format(error=error))
    kubeadm_util.say(
        "[preflight] Running pre-flight checks before initializing the new control plane instance"
    )
    if not kubeadm_util.skipped("preflight", skip):
        kubeadm_preflight.run_checks(
            kubeadm_preflight.init_node_checks(init, cluster, True, bool(certificate_key)), ignore
        )
    kubeadm_util.say("[preflight] Pulling images required for setting up a Kubernetes cluster")
    kubeadm_util.say(
        "[preflight] This might take a minute or two, depending on the speed of your internet "
        "connection"
    )
    kubeadm_util.say(
        "[preflight] You can also perform this action beforehand using 'kubeadm config images pull'"
    )


def join_kubelet_start(
    join: dict, client: kubeadm_client.Client, bootstrap: dict, kubelet_text: str, timeouts: dict
) -> None:
    """phases/join/kubelet.go: files, restart, then wait for the TLS bootstrap."""
    name = join["nodeRegistration"]["name"]
    try:
        node = client.get(f"/api/v1/nodes/{name}")
    except kubeadm_util.ApiError as err:
        if err.code != 404:
            raise kubeadm_util.KubeadmError(f'cannot get Node "{name}": {err}') from None
        node = {}
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            raise kubeadm_util.KubeadmError(
                f'a Node with name "{name}" and status "Ready" already exists in '
                "the cluster. You must delete the existing Node or change the "
                "name of this new joining Node"
            )
    kubeadm_pki.write_file(kubeadm_util.host(join["caCertPath"]), bootstrap["ca_pem"], 0o644)
    kubeadm_kubelet.stop_kubelet()
    text = kubeadm_pki.kubeconfig(
        bootstrap["server"],
        bootstrap["ca_pem"],
        "tls-bootstrap-token-user",
        token=bootstrap["token"],
    )
    kubeadm_pki.write_file(
        kubeadm_util.host(kubeadm_constants.BOOTSTRAP_KUBELET_CONF), text.encode(), 0o600
    )
    kubeadm_kubelet.write_kubelet_files(kubelet_text, join["nodeRegistration"])
    kubeadm_kubelet.try_start_kubelet()
    kubeadm_kubelet.wait_for_kubelet(kubeadm_util.parse_duration(timeouts["kubeletHealthCheck"]))
    kubeadm_util.say("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
    deadline = time.monotonic() + kubeadm_util.parse_duration(timeouts["tlsBootstrap"])
    while not _usable_kubeconfig(kubeadm_constants.KUBELET_CONF):
        if time.monotonic() >= deadline:
            kubeadm_util.say(kubeadm_kubelet.KUBELET_FAIL_MESSAGE)
            raise kubeadm_util.KubeadmError(
                "failed to run kubelet: timed out waiting for the kubelet to "
                f"perform the TLS Bootstrap ({kubeadm_constants.KUBELET_CONF} did not appear)"
            )
        time.sleep(1)
    kubeadm_util.host(kubeadm_constants.BOOTSTRAP_KUBELET_CONF).unlink(missing_ok=True)


def _usable_kubeconfig(path: str) -> bool:
    """kubeconfigutil.ClientSetFromFile succeeds: the file and what it points to exist."""
    try:
        config = kubeadm_client.load_kubeconfig(path)
    except (kubeadm_util.KubeadmError, yaml.YAMLError, AttributeError, KeyError, TypeError):
        return False
    user = config["user"]
    for key in ("client-certificate", "client-key"):
        if user.get(key) and not kubeadm_util.host(user[key]).exists():
            return False
    return bool(config["cluster"].get("server"))
