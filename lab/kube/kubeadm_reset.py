"""
`kubeadm reset` in the double (cmd/kubeadm/app/cmd/reset.go, phases/reset/*): the
kubelet stopped, kubeadm's folders emptied and its kubeconfig files deleted; external
etcd is never touched.

Part of the lab's kubeadm double (kubeadm.py); never imported by product code.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

try:
    from lab.kube import kubeadm_constants, kubeadm_kubelet, kubeadm_util
except ImportError:  # installed in /usr/lib/paas-lab-kube/<package>/, beside this file
    import kubeadm_constants  # type: ignore[no-redef]
    import kubeadm_kubelet  # type: ignore[no-redef]
    import kubeadm_util  # type: ignore[no-redef]


def run_reset(options) -> None:
    if not options.force:
        sys.stdout.write("[reset] Reading configuration from the cluster...\n")
        sys.stdout.write(
            "[reset] WARNING: Changes made to this host by 'kubeadm init' or "
            "'kubeadm join' will be reverted.\n[reset] Are you sure you want to "
            "proceed? [y/N]: "
        )
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise kubeadm_util.KubeadmError("aborted reset operation")
    certificates_dir = "/etc/kubernetes/pki"
    kubeadm_util.say("[preflight] Running pre-flight checks")
    if not kubeadm_util.host(f"{kubeadm_constants.MANIFESTS_DIR}/etcd.yaml").exists():
        kubeadm_util.say("[reset] No etcd config found. Assuming external etcd")
        kubeadm_util.say("[reset] Please, manually reset etcd to prevent further issues")
    kubeadm_util.say("[reset] Stopping the kubelet service")
    kubeadm_kubelet.stop_kubelet()
    kubeadm_util.say(f'[reset] Unmounting mounted directories in "{kubeadm_constants.KUBELET_DIR}"')
    cleaned = [kubeadm_constants.MANIFESTS_DIR, kubeadm_constants.KUBELET_DIR, certificates_dir]
    for folder in cleaned:
        _delete_contents(kubeadm_util.host(folder))
    kubeadm_util.say(f"[reset] Deleting contents of directories: [{' '.join(cleaned)}]")
    files = [
        kubeadm_constants.ADMIN_CONF,
        kubeadm_constants.SUPER_ADMIN_CONF,
        kubeadm_constants.KUBELET_CONF,
        kubeadm_constants.BOOTSTRAP_KUBELET_CONF,
        kubeadm_constants.CONTROLLER_MANAGER_CONF,
        kubeadm_constants.SCHEDULER_CONF,
    ]
    for path in files:
        kubeadm_util.host(path).unlink(missing_ok=True)
    kubeadm_util.say(f"[reset] Deleting files: [{' '.join(files)}]")
    kubeadm_util.say(RESET_DONE)


RESET_DONE = """
The reset process does not perform cleanup of CNI plugin configuration,
network filtering rules and kubeconfig files.

For information on how to perform this cleanup manually, please see:
    https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/
"""


def _delete_contents(folder: Path) -> None:
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
