#!/usr/bin/env bash
# THE test command:  bash scripts/test.sh [--no-setup] [ARGS for the test binaries...]
#   e.g. bash scripts/test.sh --no-setup overlay --nocapture   (libtest filter + flags)
# As root: install packages, create the test user, start the registries, push base images,
# build the test binaries (the toolchain lives under /root). Then run every test binary as
# $TEST_USER. --no-setup skips packages and the user (registries are still started and
# missing base images pushed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root
ensure_cargo_path
umask 022   # build outputs must be readable by the test user
take_lock

setup=1
test_args=()
for a in "$@"; do
    if [[ $a == --no-setup ]]; then setup=0; else test_args+=("$a"); fi
done

if ((setup)); then
    bash "$SCRIPTS_DIR/install-deps.sh"
    bash "$SCRIPTS_DIR/test-user.sh"
fi
id -u "$TEST_USER" >/dev/null 2>&1 || die "no user $TEST_USER; run without --no-setup once"
# /run is a tmpfs: after a reboot only the runtime dir is gone, so --no-setup re-creates it.
[[ -d /run/user/$(test_uid) ]] || bash "$SCRIPTS_DIR/test-user.sh"
# The single-id user came later than the test user: create it on the next run.
{ id -u "$SINGLE_USER" >/dev/null 2>&1 && [[ -d /run/user/$(id -u "$SINGLE_USER") ]]; } ||
    bash "$SCRIPTS_DIR/test-user.sh"

# Start the registries unless already up; stop on exit only those this run started.
started=()
cleanup() {
    local i
    for i in "${started[@]}"; do bash "$SCRIPTS_DIR/registry.sh" "stop$i" || true; done
}
trap cleanup EXIT
for i in "" -auth; do
    if ! bash "$SCRIPTS_DIR/registry.sh" "status$i" >/dev/null; then
        bash "$SCRIPTS_DIR/registry.sh" "start$i"
        started+=("$i")
    fi
done
# Also with --no-setup: it only checks a stamp and the registry when the images are
# up to date, and pushes an image a newer checkout added.
bash "$SCRIPTS_DIR/base-images.sh"

# Build as root. Diagnostics are rendered to stderr; stdout is JSON, one message per line.
log "building test binaries"
artifacts=$STATE_DIR/test-artifacts.json
mkdir -p "$STATE_DIR"
(cd "$REPO_ROOT" && cargo test --workspace --no-run --message-format=json-render-diagnostics) \
    >"$artifacts" || die "cargo test --no-run failed (see the diagnostics above)"
# executable <TAB> package dir <TAB> target name
mapfile -t tests < <(jq -r 'select(.reason == "compiler-artifact" and .profile.test
        and .executable != null)
    | [.executable, (.manifest_path | sub("/Cargo.toml$"; "")), .target.name] | @tsv' \
    "$artifacts" | sort -u)
[[ ${#tests[@]} -gt 0 ]] || { log "WARNING: no test binaries built"; exit 0; }

# Let the user reach the binaries (and the repo, for CARGO_MANIFEST_DIR fixtures).
make_reachable "$REPO_ROOT"
profile_dir=$(dirname "$(dirname "${tests[0]%%$'\t'*}")")   # e.g. target/debug
make_reachable "$profile_dir"
chmod -R o+rX "$profile_dir"

# Fresh TMPDIR and working dir owned by the user.
user_tmp=$STATE_DIR/tmp-user
rm -rf "$user_tmp"
install -d -m 0700 -o "$TEST_USER" -g "$TEST_USER" "$user_tmp" "$user_tmp/work"
cd "$user_tmp/work"

test_env=(
    SLIPWAY_TEST_REGISTRY="$REGISTRY_ADDR"
    SLIPWAY_TEST_AUTH_REGISTRY="$AUTH_REGISTRY_ADDR"
    SLIPWAY_TEST_AUTH_USER="$AUTH_REGISTRY_USER"
    SLIPWAY_TEST_AUTH_PASSWORD="$AUTH_REGISTRY_PASS"
    SLIPWAY_REQUIRE_PRIVILEGED_TESTS=1
    RUST_BACKTRACE=1
    TMPDIR="$user_tmp"
    # A full disk must not make every test build clean its store (tests/host_cleanup.rs
    # turns it on where it tests it).
    WERF_DISABLE_AUTO_HOST_CLEANUP=1
)
# Pass through a few knobs from the caller's environment.
for v in RUST_LOG RUST_TEST_THREADS RUST_TEST_NOCAPTURE RUST_BACKTRACE SLIPWAY_CONFORMANCE_CASES \
    SLIPWAY_CONFORMANCE_PRINT SLIPWAY_MATRIX_ONLY; do
    [[ -n ${!v:-} ]] && test_env+=("$v=${!v}")
done

failed=()
# Tests never get the run lock's fd 9: a daemon a test leaks would hold the lock forever.
for t in "${tests[@]}"; do
    IFS=$'\t' read -r exe pkg_dir name <<<"$t"
    echo "=== $name: $exe ${test_args[*]}"
    # Per-binary timeout so a hung namespace test cannot stall CI forever.
    if ! run_as_user "${test_env[@]}" CARGO_MANIFEST_DIR="$pkg_dir" \
        timeout -k 30 "${SLIPWAY_TEST_TIMEOUT:-1800}" "$exe" "${test_args[@]}" 9>&-; then
        failed+=("$name ($exe)")
    fi
done

# The single-id pass: the integration tests named *single_id* again, as $SINGLE_USER
# (no subordinate ids), when no filter was given or a filter names them.
filters=()
flags=()
for a in "${test_args[@]}"; do
    if [[ $a == -* ]]; then flags+=("$a"); else filters+=("$a"); fi
done
run_single=0
if [[ ${#filters[@]} -eq 0 ]]; then run_single=1; fi
for f in "${filters[@]}"; do
    if [[ single_id == *"$f"* || $f == *single_id* ]]; then run_single=1; fi
done
if ((run_single)); then
    single_tmp=$STATE_DIR/tmp-single
    rm -rf "$single_tmp"
    install -d -m 0700 -o "$SINGLE_USER" -g "$(id -g "$SINGLE_USER")" "$single_tmp" "$single_tmp/work"
    for t in "${tests[@]}"; do
        IFS=$'\t' read -r exe pkg_dir name <<<"$t"
        [[ $name == tests ]] || continue
        echo "=== $name as $SINGLE_USER (single-id): $exe single_id ${flags[*]}"
        if ! (cd "$single_tmp/work" && run_as "$SINGLE_USER" "${test_env[@]}" TMPDIR="$single_tmp" \
            SLIPWAY_TEST_SINGLE_ID=1 CARGO_MANIFEST_DIR="$pkg_dir" \
            timeout -k 30 "${SLIPWAY_TEST_TIMEOUT:-1800}" "$exe" single_id "${flags[@]}" 9>&-); then
            failed+=("$name as $SINGLE_USER ($exe)")
        fi
    done
fi

echo "=== ${#tests[@]} test binaries, ${#failed[@]} failed"
if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'FAILED: %s\n' "${failed[@]}"
    exit 1
fi
