# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared settings and helpers for slipway's test scripts. Source it; do not run it.
# Everything here can be overridden from the environment.

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPTS_DIR/.." && pwd)

TEST_USER=${TEST_USER:-slipway-test}
# A second test user WITHOUT subordinate ids: slipway gives it a single-id user namespace.
# scripts/test.sh runs the tests named *single_id* as this user too.
SINGLE_USER=${SLIPWAY_TEST_SINGLE_USER:-slipway-single}
# First subordinate id for the test user (uid and gid); moved up if it overlaps another range.
SUBID_START=${SLIPWAY_TEST_SUBID_START:-400000}
SUBID_COUNT=65536

REGISTRY_ADDR=${SLIPWAY_TEST_REGISTRY:-127.0.0.1:5055}
# Second registry instance with htpasswd auth, for auth tests.
AUTH_REGISTRY_ADDR=${SLIPWAY_TEST_AUTH_REGISTRY:-127.0.0.1:5056}
AUTH_REGISTRY_USER=slipway
AUTH_REGISTRY_PASS=slipway-pass

# Registry storage, pid files, logs, base-image work dirs, the user's TMPDIR, the demo project.
STATE_DIR=${SLIPWAY_TEST_STATE:-/var/tmp/slipway-test}

USER_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# Under `set -e` a failing command ends a script without a word; say which one.
trap 'log "ERROR: \"$BASH_COMMAND\" failed (exit $?) at ${BASH_SOURCE[0]:-$0}:$LINENO"' ERR

require_root() { [[ $EUID -eq 0 ]] || die "run this as root (sudo bash $0)"; }

# cargo/rustc live in /root/.cargo/bin, which a non-login root shell may not have on PATH.
ensure_cargo_path() {
    if ! command -v cargo >/dev/null 2>&1 && [[ -x /root/.cargo/bin/cargo ]]; then
        export PATH="/root/.cargo/bin:$PATH"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found (expected in /root/.cargo/bin)"
}

test_uid() { id -u "$TEST_USER"; }

# run_as_user [VAR=value...] CMD [ARGS...]
# Runs CMD as $TEST_USER with a clean, sane environment (runuser keeps root's env otherwise).
# Leading VAR=value words are passed through `env`, so they add to / override the defaults.
# The working directory is inherited: cd somewhere the user can read first.
run_as_user() { run_as "$TEST_USER" "$@"; }

# run_as USER [VAR=value...] CMD [ARGS...]: run_as_user for any user.
run_as() {
    local user=$1 uid home
    shift
    uid=$(id -u "$user")
    home=$(getent passwd "$user" | cut -d: -f6)
    runuser -u "$user" -- env -i \
        HOME="$home" USER="$user" LOGNAME="$user" \
        XDG_RUNTIME_DIR="/run/user/$uid" PATH="$USER_PATH" \
        LANG=C.UTF-8 TERM="${TERM:-dumb}" \
        "$@"
}

# Give "others" search (x) on every directory from $1's parent up to /, and r+x on $1
# itself, so the test user can reach files root built (e.g. under target/).
make_reachable() {
    local p
    p=$(readlink -f "$1")
    chmod o+rx "$p"
    p=$(dirname "$p")
    while [[ $p != / ]]; do
        if [[ $(( 8#$(stat -c %a "$p") & 1 )) -eq 0 ]]; then
            log "chmod o+x $p (so $TEST_USER can reach build outputs)"
            chmod o+x "$p"
        fi
        p=$(dirname "$p")
    done
}

# Serialize test.sh/demo.sh runs: they share the registry's lifetime, TMPDIR and work dirs.
# The lock is fd 9; registry.sh closes it for the registry so a daemon never holds it.
take_lock() {
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/run.lock"
    if ! flock -n 9; then
        log "waiting for another run (lock $STATE_DIR/run.lock)"
        flock 9
    fi
}
