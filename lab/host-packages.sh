#!/usr/bin/env bash
# `make host-packages`: install the Debian packages this host lacks, without running
# their daemons. The project needs the daemons' binaries (the functional tests run
# etcd, keepalived and haproxy in namespaces of their own, the lab's machines have
# their own), not their services: nothing this installs is started (a policy-rc.d that
# refuses every start while apt runs), and the units of the daemon packages it
# installed are disabled and stopped. A package that was installed before keeps its
# units as they were.
#
#   HOST_PACKAGES="..." DAEMON_PACKAGES="..." lab/host-packages.sh
set -euo pipefail

missing=()
for package in ${HOST_PACKAGES:?}; do
	dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed' ||
		missing+=("$package")
done
[ ${#missing[@]} -gt 0 ] || exit 0
echo "installing host packages: ${missing[*]}"

policy=/usr/sbin/policy-rc.d
saved=$policy.paas-saved
restore_policy() {
	rm -f "$policy"
	if [ -e "$saved" ]; then mv "$saved" "$policy"; fi
}
# A policy-rc.d the host had is put back afterwards; when a previous run died before
# putting it back, the one saved then is the host's.
if [ -e "$policy" ] && [ ! -e "$saved" ]; then mv "$policy" "$saved"; fi
trap restore_policy EXIT
printf '#!/bin/sh\n# Written by make host-packages while apt runs: start nothing.\nexit 101\n' >"$policy"
chmod 0755 "$policy"

apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"

for package in "${missing[@]}"; do
	case " ${DAEMON_PACKAGES:-} " in *" $package "*) ;; *) continue ;; esac
	for unit in $(dpkg-query -L "$package" | sed -n 's|^/\(usr/\)\{0,1\}lib/systemd/system/\([^/@]*\.service\)$|\2|p'); do
		systemctl disable --quiet "$unit"
		# Only a host booted with systemd has a running unit to stop.
		if [ -d /run/systemd/system ]; then systemctl stop "$unit"; fi
		echo "$package: $unit disabled and stopped (its binaries are what the project uses)"
	done
done
