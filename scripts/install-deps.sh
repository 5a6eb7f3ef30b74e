#!/usr/bin/env bash
# Install the Debian packages the test environment needs. Root; quick no-op when all present.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root

PKGS=(uidmap busybox-static fuse-overlayfs runc crun attr docker-registry skopeo podman
      umoci buildah apache2-utils jq git python3 curl tzdata
      openssh-client)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' \
        || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    log "all ${#PKGS[@]} packages already installed"
    exit 0
fi
log "installing: ${missing[*]}"

export DEBIAN_FRONTEND=noninteractive
# docker-registry ships an init script; keep package postinsts from starting services
# (a registry on *:5000) by installing a deny-all policy-rc.d for the duration.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

apt_install() { apt-get install -y -q -o Dpkg::Use-Pty=0 "${missing[@]}"; }
# Only refresh package lists when there are none or the install cannot find something.
if ! compgen -G '/var/lib/apt/lists/*Packages*' >/dev/null || ! apt_install; then
    apt-get update -q
    apt_install
fi
log "done"
