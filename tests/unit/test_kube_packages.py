"""
The lab's Kubernetes packages (lab/kube/packages.py): kubeadm, kubelet and kubectl, and
the cri-tools and kubernetes-cni they depend on, named and versioned as pkgs.k8s.io's,
holding the doubles, the real kubelet unit and links to Debian's real CNI plugins, with
the real packages' dependency fields (what they need from the distribution being in the
lab's image), and byte-identical from one build to the next.
"""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from lab import image
from lab.kube import packages


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return packages.build("1.34.2", tmp_path_factory.mktemp("debs"))


def field(deb, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "--field", str(deb), name], check=True, capture_output=True, text=True
    ).stdout.strip()


def contents(deb) -> dict[str, str]:
    listing = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], check=True, capture_output=True, text=True
    ).stdout
    entries = {}
    for line in listing.splitlines():
        mode, owner, *_, path = line.split()
        if not path.endswith("/"):
            entries[path.removeprefix(".")] = f"{mode} {owner}"
    return entries


def test_the_packages_are_named_and_versioned_as_pkgs_k8s_io(built):
    assert [deb.name for deb in built] == [
        "kubeadm_1.34.2-1.1_amd64.deb",
        "kubelet_1.34.2-1.1_amd64.deb",
        "kubectl_1.34.2-1.1_amd64.deb",
        "cri-tools_1.34.0-1.1_amd64.deb",
        "kubernetes-cni_1.7.1-1.1_amd64.deb",
    ]
    for deb in built:
        assert field(deb, "Architecture") == "amd64"


def test_each_package_depends_on_what_the_real_one_does_then_what_its_double_runs_on(built):
    kubeadm, kubelet, kubectl, cri_tools, cni = (field(deb, "Depends") for deb in built)
    assert kubeadm == "cri-tools (>= 1.30.0), python3, python3-cryptography, python3-yaml"
    assert kubelet == (
        "iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), iproute2, mount, socat, util-linux, "
        "ethtool, ebtables, conntrack, python3, python3-cryptography, python3-yaml"
    )
    assert kubectl == "python3, python3-yaml"
    assert cri_tools == ""
    assert cni == "containernetworking-plugins"


def test_what_they_need_from_the_distribution_is_in_the_labs_image():
    # The machines have no mirror: apt finds the rest only in the image.
    needed = set(packages.distribution_depends())
    assert {"containernetworking-plugins", "socat", "ebtables", "iptables"} <= needed
    assert needed <= set(image.packages())


def test_kubernetes_cni_links_debians_reference_plugins_where_the_real_one_puts_them(built):
    listing = subprocess.run(
        ["dpkg-deb", "--contents", str(built[4])], check=True, capture_output=True, text=True
    ).stdout
    links = {
        line.split()[-3].removeprefix("."): line.split()[-1]
        for line in listing.splitlines()
        if line.startswith("l")
    }
    assert links["/opt/cni/bin/bridge"] == "/usr/lib/cni/bridge"
    assert links["/opt/cni/bin/host-local"] == "/usr/lib/cni/host-local"
    assert len(links) == len(packages.CNI_PLUGINS)
    assert contents(built[3]) == {
        "/usr/share/doc/cri-tools/README.paas-lab": "-rw-r--r-- root/root"
    }


def test_each_package_ships_its_program_and_wrapper_root_owned(built):
    kubeadm, kubelet, kubectl = (contents(deb) for deb in built[:3])
    kubeadm_modules = [
        "kubeadm",
        "kubeadm_api",
        "kubeadm_certs",
        "kubeadm_client",
        "kubeadm_config",
        "kubeadm_constants",
        "kubeadm_controlplane",
        "kubeadm_copycerts",
        "kubeadm_discovery",
        "kubeadm_init",
        "kubeadm_join",
        "kubeadm_kubeconfig",
        "kubeadm_kubelet",
        "kubeadm_pki",
        "kubeadm_preflight",
        "kubeadm_reset",
        "kubeadm_token",
        "kubeadm_util",
        "kubeadm_validation",
        "kube_common",
    ]
    assert kubeadm == {
        "/usr/bin/kubeadm": "-rwxr-xr-x root/root",
        **{
            f"/usr/lib/paas-lab-kube/kubeadm/{name}.py": "-rw-r--r-- root/root"
            for name in kubeadm_modules
        },
    }
    kubelet_modules = [
        "kubelet",
        "kube_apiserver",
        "apiserver_api",
        "apiserver_auth",
        "apiserver_etcd",
        "apiserver_handlers",
        "apiserver_patch",
        "apiserver_registry",
        "apiserver_signer",
        "kube_common",
    ]
    assert kubelet == {
        "/usr/bin/kubelet": "-rwxr-xr-x root/root",
        **{
            f"/usr/lib/paas-lab-kube/kubelet/{name}.py": "-rw-r--r-- root/root"
            for name in kubelet_modules
        },
        "/usr/lib/systemd/system/kubelet.service": "-rw-r--r-- root/root",
        "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": "-rw-r--r-- root/root",
    }
    assert kubectl == {
        "/usr/bin/kubectl": "-rwxr-xr-x root/root",
        "/usr/lib/paas-lab-kube/kubectl/kubectl.py": "-rw-r--r-- root/root",
        "/usr/lib/paas-lab-kube/kubectl/kube_common.py": "-rw-r--r-- root/root",
    }


def test_no_two_packages_ship_one_path(built):
    # dpkg refuses to install a package that would overwrite another's file.
    shipped = [set(contents(deb)) for deb in built]
    for index, paths in enumerate(shipped):
        for other in shipped[index + 1 :]:
            assert not paths & other, sorted(paths & other)


@pytest.mark.parametrize(
    ("index", "program", "arguments", "says"),
    [
        (0, "kubeadm/kubeadm.py", ["version", "-o", "short"], "v1.34.2"),
        (1, "kubelet/kubelet.py", ["--config=/x/config.yaml"], "failed to load kubelet config"),
        (1, "kubelet/kube_apiserver.py", [], "--etcd-servers must be specified"),
        (2, "kubectl/kubectl.py", ["version"], "Client Version: v1.34.2"),
    ],
)
def test_each_program_runs_from_what_its_package_ships(
    built, tmp_path, index, program, arguments, says
):
    # Run where the package puts it, apart from the checkout: a module it imports and the
    # package leaves out fails here.
    subprocess.run(["dpkg-deb", "-x", str(built[index]), str(tmp_path)], check=True)
    result = subprocess.run(
        ["python3", "-B", str(tmp_path / "usr/lib/paas-lab-kube" / program), *arguments],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert says in result.stdout + result.stderr, result.stderr


def test_the_kubelet_unit_is_the_real_debs(built, tmp_path):
    subprocess.run(["dpkg-deb", "-x", str(built[1]), str(tmp_path)], check=True)
    unit = (tmp_path / "usr/lib/systemd/system/kubelet.service").read_text()
    assert "Restart=always" in unit
    assert "RestartSec=10" in unit
    dropin = (tmp_path / "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf").read_text()
    assert "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env" in dropin
    assert "EnvironmentFile=-/etc/default/kubelet" in dropin
    assert (
        "ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS "
        "$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS"
    ) in dropin
    wrapper = (tmp_path / "usr/bin/kubelet").read_text()
    assert 'exec /usr/bin/python3 -B /usr/lib/paas-lab-kube/kubelet/kubelet.py "$@"' in wrapper


def test_builds_are_byte_identical(built, tmp_path):
    again = packages.build("1.34.2", tmp_path)
    digests = [hashlib.sha256(deb.read_bytes()).hexdigest() for deb in built]
    assert digests == [hashlib.sha256(deb.read_bytes()).hexdigest() for deb in again]


def test_another_kubernetes_version_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"the lab.s Kubernetes doubles copy 1\.34\.2"):
        packages.build("1.35.0", tmp_path)
    assert list(tmp_path.iterdir()) == []
