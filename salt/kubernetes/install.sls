{#- What kubeadm's preflight checks and the kubelet need on a node: kernel modules and
    sysctls, no swap, containerd from the distribution with the systemd cgroup driver,
    and kubeadm, kubelet and kubectl from the Kubernetes repository, pinned to the
    topology's version and held. #}
{%- from "kubernetes/map.jinja" import kubernetes, node with context %}
{%- set apt = kubernetes.apt %}

kubernetes-install-packages:
  pkg.installed:
    - pkgs: {{ kubernetes.packages | json }}

kubernetes-install-modules-file:
  file.managed:
    - name: {{ kubernetes.modules_file }}
    - user: root
    - group: root
    - mode: "0644"
    - contents: |
        # Managed by Salt (salt/kubernetes): loaded at boot by systemd-modules-load.
        {%- for module in kubernetes.modules | sort %}
        {{ module }}
        {%- endfor %}

{%- for module, loaded in kubernetes.modules | dictsort %}

# A module in the kernel already (loaded or built in) needs nothing; a container cannot
# load one, and its host's kernel is the one that counts.
kubernetes-install-module-{{ module }}:
  cmd.run:
    - name: modprobe {{ module }}
    - unless: test -d /sys/module/{{ module }} || {{ loaded }}
    - require:
      - pkg: kubernetes-install-packages
      - file: kubernetes-install-modules-file
{%- endfor %}

{%- for key, value in kubernetes.sysctls | dictsort %}

kubernetes-install-sysctl-{{ key }}:
  sysctl.present:
    - name: {{ key }}
    - value: {{ value }}
    - config: {{ kubernetes.sysctl_file }}
    - require:
      {#- net.bridge.* exist only once br_netfilter is loaded. #}
      {%- for module in kubernetes.modules %}
      - cmd: kubernetes-install-module-{{ module }}
      {%- endfor %}
{%- endfor %}

# The kubelet refuses to start on a machine with swap on (failSwapOn).
kubernetes-install-swap-off:
  cmd.run:
    - name: swapoff -a
    - onlyif: test "$(wc -l < /proc/swaps)" -gt 1

kubernetes-install-swap-fstab:
  file.replace:
    - name: /etc/fstab
    - pattern: '^(\s*[^#\s]\S*\s+\S+\s+swap\s.*)$'
    - repl: '# Swap off for the kubelet (salt/kubernetes): \1'
    - flags: ["MULTILINE"]
    - ignore_if_missing: True
    - backup: False

kubernetes-install-containerd-config:
  file.managed:
    - name: {{ kubernetes.containerd.config }}
    - source: salt://kubernetes/files/containerd-config.toml.jinja
    - template: jinja
    - makedirs: True
    - user: root
    - group: root
    - mode: "0644"
    # containerd parses the new file as it would at start.
    - check_cmd: sh -c 'exec containerd --config "$1" config dump >/dev/null' containerd-config
    - context:
        node: {{ node | json }}
    - require:
      - pkg: kubernetes-install-packages

kubernetes-install-containerd-running:
  service.running:
    - name: {{ node.services.containerd }}
    - enable: True
    - watch:
      - file: kubernetes-install-containerd-config
    - require:
      - pkg: kubernetes-install-packages

# The repository's key as it publishes it; apt trusts it for this repository only.
kubernetes-install-repository-key:
  file.managed:
    - name: {{ apt.key_file }}
    - source: {{ node.repository.key_url }}
    # Fetched over the repository's own transport: there is no digest to check it against.
    - skip_verify: True
    - makedirs: True
    - dir_mode: "0755"
    - user: root
    - group: root
    - mode: "0644"

# A key that changed is newer than its dearmored copy.
kubernetes-install-repository-keyring:
  cmd.run:
    - name: gpg --batch --yes --dearmor --output {{ apt.keyring }} {{ apt.key_file }}
    - unless: test {{ apt.keyring }} -nt {{ apt.key_file }}
    - require:
      - file: kubernetes-install-repository-key
      - pkg: kubernetes-install-packages

kubernetes-install-repository:
  file.managed:
    - name: {{ apt.sources }}
    - user: root
    - group: root
    - mode: "0644"
    - contents: |
        # Managed by Salt (salt/kubernetes) from paas:kubernetes:repository.
        deb [signed-by={{ apt.keyring }}] {{ node.repository.url }} /

kubernetes-install-pin:
  file.managed:
    - name: {{ apt.pin }}
    - user: root
    - group: root
    - mode: "0644"
    - contents: |
        # Managed by Salt (salt/kubernetes) from paas:versions:kubernetes.
        Package: {{ kubernetes.kubernetes_packages | join(" ") }}
        Pin: version {{ node.package_version }}
        Pin-Priority: 1001

# Only the Kubernetes repository's index, and only while apt does not know the version
# (first run, a new version or repository): the distribution's mirrors are not asked.
kubernetes-install-repository-index:
  cmd.run:
    - name: >-
        apt-get update -q
        -o Dir::Etc::sourcelist={{ apt.sources }}
        -o Dir::Etc::sourceparts=-
        -o APT::Get::List-Cleanup=0
    - unless: >-
        for package in {{ kubernetes.kubernetes_packages | join(" ") }}; do
        apt-cache madison "$package" | grep -qF "| {{ node.version }}-" || exit 1;
        done
    - require:
      - cmd: kubernetes-install-repository-keyring
      - file: kubernetes-install-repository

kubernetes-install-kubernetes-packages:
  pkg.installed:
    - pkgs:
      {%- for package in kubernetes.kubernetes_packages %}
      - {{ package }}: {{ node.package_version | json }}
      {%- endfor %}
    - hold: True
    # The index is kubernetes-install-repository-index's to refresh.
    - refresh: False
    - require:
      - cmd: kubernetes-install-repository-index
      - file: kubernetes-install-pin
      - service: kubernetes-install-containerd-running

# Enabled, not started: the kubelet restarts until kubeadm init or join has written its
# configuration, and starts for good then.
kubernetes-install-kubelet-enabled:
  service.enabled:
    - name: {{ node.services.kubelet }}
    - require:
      - pkg: kubernetes-install-kubernetes-packages
