#!/usr/bin/env bash
# Build the test base images OFFLINE (busybox-static rootfs, a multi-arch index, hostile
# layers) and push them to the local registry with skopeo. Root; the registry must be up.
# Skips everything when the stamp matches and every image is already in the registry.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root

R=$REGISTRY_ADDR
W=$STATE_DIR/base-work
OCI=$W/oci                      # one OCI layout, one tag per image
HOSTILE=(dotdot abs-symlink hardlink-out abspath)
IMAGES=(base/busybox base/busybox-v2s2 base/busybox-multiarch base/busybox-multiarch-v2s2
        base/owned "${HOSTILE[@]/#/hostile/}")
PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

curl -fsS -m 2 "http://$R/v2/" >/dev/null || die "registry $R not answering; run scripts/registry.sh start"

# Everything the images depend on; a change means rebuild + re-push.
stamp_file=$STATE_DIR/base-images.stamp.$R
stamp=$({ cat "${BASH_SOURCE[0]}" "$SCRIPTS_DIR/oci.py"; dpkg-query -W busybox-static; echo "$R"; } \
    | sha256sum | cut -d' ' -f1)
all_present() {
    local img
    for img in "${IMAGES[@]}"; do
        skopeo inspect --raw --tls-verify=false "docker://$R/$img:latest" >/dev/null 2>&1 || return 1
    done
}
if [[ $(cat "$stamp_file" 2>/dev/null) == "$stamp" ]] && all_present; then
    log "base images up to date in $R"
    exit 0
fi

rm -rf "$W"
mkdir -p "$W"
umask 022

# --- busybox rootfs ----------------------------------------------------------------------
rootfs=$W/rootfs
mkdir -p "$rootfs"/{bin,dev,etc,home/app,proc,root,sys,tmp,usr/bin,usr/sbin,var}
install -m 0755 /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [[ $applet == busybox ]] || ln -sfn busybox "$rootfs/bin/$applet"
done
ln -sfn ../../bin/busybox "$rootfs/usr/bin/env"   # for `#!/usr/bin/env` scripts
[[ -L $rootfs/bin/sh ]] || die "busybox --list has no sh"
cat >"$rootfs/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000::/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat >"$rootfs/etc/group" <<'G'
root:x:0:
app:x:1000:
nogroup:x:65534:
G
# awk reads everything (head would close the pipe early: SIGPIPE fails the pipeline)
bbver=$( (/bin/busybox --help || true) | awk 'NR == 1 {print $2}')
cat >"$rootfs/etc/os-release" <<O
NAME="BusyBox"
ID=busybox
VERSION_ID="${bbver#v}"
PRETTY_NAME="BusyBox ${bbver} (slipway test base)"
O
chmod 0644 "$rootfs"/etc/*
chown -R 0:0 "$rootfs"
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
chown 1000:1000 "$rootfs/home/app"
# Deterministic tar; entries without a "./" prefix (like layers docker writes).
(cd "$rootfs" && export LC_ALL=C && tar --sort=name --mtime=@0 --numeric-owner --format=gnu \
    -cf "$W/busybox.tar" -- *)

# --- OCI images ----------------------------------------------------------------------------
oci() { python3 "$SCRIPTS_DIR/oci.py" "$@"; }
oci image "$OCI" busybox --arch amd64 --env "$PATH_ENV" --cmd /bin/sh --layer "$W/busybox.tar"
# Multi-arch: an arm64 image (one marker file) listed FIRST, then the amd64 busybox.
oci layer marker-arm64 "$W/marker-arm64.tar"
oci image "$OCI" arm64 --arch arm64 --variant v8 --env "$PATH_ENV" --cmd /bin/sh \
    --layer "$W/marker-arm64.tar"
oci index "$OCI" multiarch "$OCI:arm64" "$OCI:busybox"
# Owned: layer 1 = busybox, layer 2 = /srv owned by 1000:1000 (single-id owner tests).
oci layer owned "$W/owned.tar"
oci image "$OCI" owned --arch amd64 --env "$PATH_ENV" --cmd /bin/sh \
    --layer "$W/busybox.tar" --layer "$W/owned.tar"
# Hostile: layer 1 = busybox, layer 2 = exactly the malicious entries.
for h in "${HOSTILE[@]}"; do
    oci layer "$h" "$W/hostile-$h.tar"
    oci image "$OCI" "hostile-$h" --arch amd64 --env "$PATH_ENV" --cmd /bin/sh \
        --layer "$W/busybox.tar" --layer "$W/hostile-$h.tar"
done

# --- push ----------------------------------------------------------------------------------
push() { log "push $2"; skopeo copy -q --dest-tls-verify=false "${@:3}" "oci:$OCI:$1" "docker://$R/$2:latest"; }
push busybox base/busybox --format oci
push busybox base/busybox-v2s2 --format v2s2
push multiarch base/busybox-multiarch --all
push owned base/owned --format oci
push multiarch base/busybox-multiarch-v2s2 --all --format v2s2   # Docker manifest list
for h in "${HOSTILE[@]}"; do push "hostile-$h" "hostile/$h" --format oci; done

all_present || die "pushed images not all visible in $R"
echo "$stamp" >"$stamp_file"
log "pushed to $R: ${IMAGES[*]}"
