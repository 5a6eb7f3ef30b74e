#!/usr/bin/env bash
# Create the unprivileged test user with its own, non-overlapping subordinate id range,
# an XDG_RUNTIME_DIR and a git identity. Root; idempotent.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root

if ! id -u "$TEST_USER" >/dev/null 2>&1; then
    log "creating user $TEST_USER"
    useradd -m -s /bin/bash "$TEST_USER"
fi
uid=$(id -u "$TEST_USER")
gid=$(id -g "$TEST_USER")
touch /etc/subuid /etc/subgid

# Does [start, start+COUNT) overlap a range of any *other* user in /etc/subuid or /etc/subgid?
# (Entries may name the user or its numeric uid.)
overlaps() {
    awk -F: -v u="$TEST_USER" -v id="$uid" -v s="$1" -v e="$(($1 + SUBID_COUNT))" '
        NF >= 3 && $1 != u && $1 != id && ($2 + 0) < e && s < ($2 + $3) { hit = 1 }
        END { exit !hit }' /etc/subuid /etc/subgid
}
# Start of the user's range in file $1 if it has exactly one entry of COUNT ids, else "".
current_start() {
    awk -F: -v u="$TEST_USER" -v id="$uid" -v c="$SUBID_COUNT" '
        $1 == u || $1 == id { n++; s = $2; cnt = $3 }
        END { if (n == 1 && cnt == c) print s }' "$1"
}

cur_u=$(current_start /etc/subuid)
cur_g=$(current_start /etc/subgid)
# Keep an existing entry only if it is ours (>= SUBID_START, not useradd's shared default area).
if [[ -n $cur_u && $cur_u == "$cur_g" && $cur_u -ge $SUBID_START ]] && ! overlaps "$cur_u"; then
    start=$cur_u
else
    # useradd may have added 100000:65536 (shared by every new user): replace it.
    start=$SUBID_START
    while overlaps "$start"; do start=$((start + SUBID_COUNT)); done
    log "setting subuid/subgid range $TEST_USER:$start:$SUBID_COUNT"
    sed -i -e "/^$TEST_USER:/d" -e "/^$uid:/d" /etc/subuid /etc/subgid
    echo "$TEST_USER:$start:$SUBID_COUNT" >>/etc/subuid
    echo "$TEST_USER:$start:$SUBID_COUNT" >>/etc/subgid
fi

# No logind here, so nobody creates the runtime dir (runc wants its state under it).
install -d -m 0755 /run/user
install -d -m 0700 -o "$uid" -g "$gid" "/run/user/$uid"

# Tests commit to git repos they create.
(
    cd /
    run_as_user git config --global user.name "Slipway Test"
    run_as_user git config --global user.email "slipway-test@localhost"
    run_as_user git config --global init.defaultBranch main
)

# The single-id user: no subordinate ids at all (useradd gives every new user
# 100000:65536; take it away), so slipway maps only the user itself.
if ! id -u "$SINGLE_USER" >/dev/null 2>&1; then
    log "creating user $SINGLE_USER (no subordinate ids)"
    useradd -m -s /bin/bash "$SINGLE_USER"
fi
single_uid=$(id -u "$SINGLE_USER")
sed -i -e "/^$SINGLE_USER:/d" -e "/^$single_uid:/d" /etc/subuid /etc/subgid
install -d -m 0700 -o "$single_uid" -g "$(id -g "$SINGLE_USER")" "/run/user/$single_uid"
(
    cd /
    run_as "$SINGLE_USER" git config --global user.name "Slipway Single"
    run_as "$SINGLE_USER" git config --global user.email "slipway-single@localhost"
    run_as "$SINGLE_USER" git config --global init.defaultBranch main
)

# Debian's default mode 0666 for /dev/fuse; on a fresh machine here it is 0600, which makes
# fuse-overlayfs unusable for users (tests/matrix.rs and host check mount it as the test user).
if [[ -c /dev/fuse ]]; then chmod 0666 /dev/fuse; fi

if [[ $(sysctl -n user.max_user_namespaces 2>/dev/null || echo 1) -eq 0 ]]; then
    log "WARNING: user.max_user_namespaces is 0; rootless tests will fail"
fi
log "user $TEST_USER uid=$uid subids=$start:$SUBID_COUNT runtime dir=/run/user/$uid"
log "user $SINGLE_USER uid=$single_uid without subordinate ids"
