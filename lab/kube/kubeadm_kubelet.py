"""
The kubeadm double's kubelet phases: the kubelet's files and its service
(cmd/kubeadm/app/phases/kubelet), the wait for its health
(cmd/kubeadm/app/util/apiclient/wait.go, WaitForKubelet) and kubelet-finalize
(cmd/kubeadm/app/phases/kubeletfinalize).

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import yaml

try:
    from lab.kube import kubeadm_config, kubeadm_constants, kubeadm_pki, kubeadm_util
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kubeadm_config  # type: ignore[no-redef]
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_pki  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


def kubelet_configuration(cluster: dict, components: dict | None = None) -> dict:
    """The KubeletConfiguration kubeadm defaults (componentconfigs/kubelet.go)."""
    service = ipaddress.ip_network(
        cluster["networking"]["serviceSubnet"].split(",")[0], strict=False
    )
    config = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"cacheTTL": "0s", "enabled": True},
            "x509": {"clientCAFile": f"{cluster['certificatesDir']}/ca.crt"},
        },
        "authorization": {
            "mode": "Webhook",
            "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"},
        },
        "cgroupDriver": "systemd",
        "clusterDNS": [str(service.network_address + 10)],
        "clusterDomain": cluster["networking"]["dnsDomain"],
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "kind": "KubeletConfiguration",
        "rotateCertificates": True,
        "staticPodPath": kubeadm_constants.MANIFESTS_DIR,
    }
    for (_, kind), document in (components or {}).items():
        if kind == "KubeletConfiguration":
            config.update({k: v for k, v in document.items() if k not in ("apiVersion", "kind")})
    return config


def kubelet_flags(registration: dict) -> str:
    """buildKubeletArgs: the env file's KUBELET_KUBEADM_ARGS."""
    flags = {"container-runtime-endpoint": registration["criSocket"]}
    if registration["name"] != kubeadm_config.hostname():
        flags["hostname-override"] = registration["name"]
    for arg in registration["kubeletExtraArgs"]:
        flags[arg["name"]] = arg.get("value", "")
    rendered = " ".join(f"--{name}={value}" for name, value in sorted(flags.items()))
    return f'KUBELET_KUBEADM_ARGS="{rendered}"\n'


def write_kubelet_files(kubelet_config_text: str, registration: dict) -> None:
    kubeadm_util.say(
        "[kubelet-start] Writing kubelet environment file with flags to file "
        f'"{kubeadm_constants.KUBELET_FLAGS_ENV}"'
    )
    kubeadm_pki.write_file(
        kubeadm_util.host(kubeadm_constants.KUBELET_FLAGS_ENV),
        kubelet_flags(registration).encode(),
        0o644,
    )
    kubeadm_util.say(
        "[kubelet-start] Writing kubelet configuration to file "
        f'"{kubeadm_constants.KUBELET_CONFIG}"'
    )
    kubeadm_pki.write_file(
        kubeadm_util.host(kubeadm_constants.KUBELET_CONFIG), kubelet_config_text.encode(), 0o644
    )


def find_systemctl() -> str | None:
    """initsystem.GetInitSystem: systemctl on the node's PATH (inside --rootfs if given)."""
    if kubeadm_util.Node.rootfs:
        for folder in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
            if kubeadm_util.host(f"{folder}/systemctl").exists():
                return f"{folder}/systemctl"
        return None
    return shutil.which("systemctl")


def try_start_kubelet() -> None:
    """kubeletphase.TryStartKubelet."""
    systemctl = find_systemctl()
    if systemctl is None:
        kubeadm_util.say(
            "[kubelet-start] No supported init system detected, won't make sure the kubelet is "
            "running properly."
        )
        return
    if kubeadm_util.Node.rootfs:
        kubeadm_util.say(
            "[kubelet-start] Couldn't detect a kubelet service, can't make sure the kubelet is "
            "running properly."
        )
        return
    kubeadm_util.say("[kubelet-start] Starting the kubelet")
    subprocess.run([systemctl, "daemon-reload"], check=False, capture_output=True)
    result = subprocess.run(
        [systemctl, "restart", "kubelet"], check=False, capture_output=True, text=True
    )
    if result.returncode != 0:
        kubeadm_util.warn(
            f"[kubelet-start] WARNING: unable to start the kubelet service: "
            f"[{result.stderr.strip()}]\n",
            "kubelet.go:61",
        )
        kubeadm_util.say("[kubelet-start] Please ensure kubelet is reloaded and running manually.")


def stop_kubelet() -> None:
    systemctl = find_systemctl()
    if systemctl and not kubeadm_util.Node.rootfs:
        subprocess.run([systemctl, "stop", "kubelet"], check=False, capture_output=True)


def wait_for_kubelet(timeout: float) -> None:
    """KubeWaiter.WaitForKubelet."""
    kubeadm_util.say(
        f"[kubelet-check] Waiting for a healthy kubelet at {kubeadm_constants.KUBELET_HEALTHZ}. "
        f"This can take up to {kubeadm_util.format_duration(timeout)}"
    )
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout:
        try:
            with urllib.request.urlopen(kubeadm_constants.KUBELET_HEALTHZ, timeout=5) as answer:
                if answer.status == 200:
                    kubeadm_util.say(
                        f"[kubelet-check] The kubelet is healthy after {kubeadm_util.since(start)}"
                    )
                    return
                last = f"status code: {answer.status}"
        except urllib.error.HTTPError as err:
            last = f"status code: {err.code}"
        except (urllib.error.URLError, OSError) as err:
            last = (
                f'error: Get "{kubeadm_constants.KUBELET_HEALTHZ}": {getattr(err, "reason", err)}'
            )
        time.sleep(0.5)
    kubeadm_util.say(
        f"[kubelet-check] The kubelet is not healthy after {kubeadm_util.since(start)}"
    )
    kubeadm_util.say(KUBELET_FAIL_MESSAGE)
    raise kubeadm_util.KubeadmError(
        f"The HTTP call equal to 'curl -sSL {kubeadm_constants.KUBELET_HEALTHZ}' returned {last}\n"
    )


KUBELET_FAIL_MESSAGE = """
Unfortunately, an error has occurred, likely caused by:
	- The kubelet is not running
	- The kubelet is unhealthy due to a misconfiguration of the node in some way (required \
cgroups disabled)

If you are on a systemd-powered system, you can try to troubleshoot the error with the \
following commands:
	- 'systemctl status kubelet'
	- 'journalctl -xeu kubelet'
"""


def kubelet_finalize() -> None:
    """phases/kubeletfinalize: point kubelet.conf at the rotated client certificate."""
    if (
        not kubeadm_util.host(kubeadm_constants.KUBELET_CLIENT_PEM).exists()
        or not kubeadm_util.host(kubeadm_constants.KUBELET_CONF).exists()
    ):
        return
    kubeadm_util.say(
        f'[kubelet-finalize] Updating "{kubeadm_constants.KUBELET_CONF}" to point to a rotatable '
        "kubelet client certificate and key"
    )
    config = yaml.safe_load(kubeadm_util.host(kubeadm_constants.KUBELET_CONF).read_text())
    for user in config.get("users") or []:
        credentials = user.get("user") or {}
        credentials.pop("client-certificate-data", None)
        credentials.pop("client-key-data", None)
        credentials["client-certificate"] = kubeadm_constants.KUBELET_CLIENT_PEM
        credentials["client-key"] = kubeadm_constants.KUBELET_CLIENT_PEM
    kubeadm_pki.write_file(
        kubeadm_util.host(kubeadm_constants.KUBELET_CONF), yaml.safe_dump(config).encode(), 0o600
    )
