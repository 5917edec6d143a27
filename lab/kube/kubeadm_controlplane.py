"""
The kubeadm double's control plane: the static Pod manifests
(cmd/kubeadm/app/phases/controlplane/manifests.go), the wait for the apiserver
(cmd/kubeadm/app/util/apiclient/wait.go, WaitForControlPlaneComponents) and the marking of
the node (cmd/kubeadm/app/phases/markcontrolplane).

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

try:
    from lab.kube import kube_common, kubeadm_client, kubeadm_constants, kubeadm_pki, kubeadm_util
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kube_common  # type: ignore[no-redef]
    import kubeadm_client  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_pki  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


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
            "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": (
                kubeadm_util.join_host_port(address, endpoint["bindPort"])
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
        "authentication-kubeconfig": kubeadm_constants.CONTROLLER_MANAGER_CONF,
        "authorization-kubeconfig": kubeadm_constants.CONTROLLER_MANAGER_CONF,
        "bind-address": "127.0.0.1",
        "client-ca-file": f"{pki}/ca.crt",
        "cluster-name": cluster["clusterName"],
        "cluster-signing-cert-file": f"{pki}/ca.crt",
        "cluster-signing-key-file": f"{pki}/ca.key",
        "controllers": "*,bootstrapsigner,tokencleaner",
        "kubeconfig": kubeadm_constants.CONTROLLER_MANAGER_CONF,
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
            _host_path_volume(
                "kubeconfig", kubeadm_constants.CONTROLLER_MANAGER_CONF, "FileOrCreate"
            ),
        ],
        cpu="200m",
    )
    scheduler = _static_pod(
        "kube-scheduler",
        _command(
            "kube-scheduler",
            {
                "authentication-kubeconfig": kubeadm_constants.SCHEDULER_CONF,
                "authorization-kubeconfig": kubeadm_constants.SCHEDULER_CONF,
                "bind-address": "127.0.0.1",
                "kubeconfig": kubeadm_constants.SCHEDULER_CONF,
                "leader-elect": "true",
            },
            cluster["scheduler"]["extraArgs"],
        ),
        f"{repository}/kube-scheduler:{version}",
        probe={"host": "127.0.0.1", "port": 10259, "scheme": "HTTPS"},
        volumes=[_host_path_volume("kubeconfig", kubeadm_constants.SCHEDULER_CONF, "FileOrCreate")],
        cpu="100m",
    )
    return {
        "kube-apiserver": apiserver,
        "kube-controller-manager": manager,
        "kube-scheduler": scheduler,
    }


def phase_control_plane(init: dict, cluster: dict) -> None:
    kubeadm_util.say(f'[control-plane] Using manifest folder "{kubeadm_constants.MANIFESTS_DIR}"')
    for component, pod in static_pods(init, cluster).items():
        kubeadm_util.say(f'[control-plane] Creating static Pod manifest for "{component}"')
        text = yaml.safe_dump(pod, default_flow_style=False)
        kubeadm_pki.write_file(
            kubeadm_util.host(f"{kubeadm_constants.MANIFESTS_DIR}/{component}.yaml"),
            text.encode(),
            0o600,
        )


def wait_for_apiserver(init: dict, timeout: float) -> None:
    """KubeWaiter.WaitForControlPlaneComponents, for the one component the lab runs."""
    url = kubeadm_util.local_endpoint(init) + "/livez"
    kubeadm_util.say(
        f"[control-plane-check] Waiting for healthy control plane components. This can take up "
        f"to {kubeadm_util.format_duration(timeout)}"
    )
    kubeadm_util.say(f"[control-plane-check] Checking kube-apiserver at {url}")
    context = kube_common.client_context(insecure=True)
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as answer:
                if answer.status == 200:
                    kubeadm_util.say(
                        "[control-plane-check] kube-apiserver is healthy after "
                        + kubeadm_util.since(start)
                    )
                    return
        except urllib.error.HTTPError as err:
            last = f"kube-apiserver check failed at {url} with status: {err.code}"
        except (urllib.error.URLError, OSError) as err:
            last = (
                f'kube-apiserver check failed at {url}: Get "{url}": {getattr(err, "reason", err)}'
            )
        time.sleep(0.5)
    kubeadm_util.say(
        f"[control-plane-check] kube-apiserver is not healthy after {kubeadm_util.since(start)}"
    )
    raise kubeadm_util.KubeadmError(f"failed while waiting for the control plane to start: {last}")


def mark_control_plane(
    client: kubeadm_client.Client, name: str, taints: list[dict] | None, timeout: float
) -> None:
    """markcontrolplane.MarkControlPlane through apiclient.PatchNode (waits for the Node)."""
    labels = [kubeadm_constants.LABEL_CONTROL_PLANE, kubeadm_constants.LABEL_EXCLUDE_LB]
    kubeadm_util.say(
        f"[mark-control-plane] Marking the node {name} as control-plane by adding the labels: "
        f"[{' '.join(labels)}]"
    )
    if taints:
        rendered = " ".join(f"{t['key']}:{t['effect']}" for t in taints)
        kubeadm_util.say(
            f"[mark-control-plane] Marking the node {name} as control-plane by adding the "
            f"taints [{rendered}]"
        )
    deadline = time.monotonic() + timeout
    node = None
    while node is None:
        try:
            node = client.get(f"/api/v1/nodes/{name}")
        except kubeadm_util.ApiError as err:
            if err.code not in (0, 404, 500, 503) or time.monotonic() >= deadline:
                raise kubeadm_util.KubeadmError(f'error patching Node "{name}": {err}') from err
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
