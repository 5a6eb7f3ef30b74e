#!/usr/bin/env bash
# The README's main job:  bash scripts/demo.sh
# Sets up the environment (packages, test user, registry, base images), builds slipway
# (release) as root, creates a small werf project as $TEST_USER in $STATE_DIR/demo, then,
# as that user, builds it with slipway and runs the image.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root
ensure_cargo_path
umask 022
take_lock

bash "$SCRIPTS_DIR/install-deps.sh"
bash "$SCRIPTS_DIR/test-user.sh"
if ! bash "$SCRIPTS_DIR/registry.sh" status >/dev/null; then
    bash "$SCRIPTS_DIR/registry.sh" start
    trap 'bash "$SCRIPTS_DIR/registry.sh" stop || true' EXIT
fi
bash "$SCRIPTS_DIR/base-images.sh"

log "cargo build --release"
(cd "$REPO_ROOT" && cargo build --release)
slipway=$REPO_ROOT/target/release/slipway
[[ -x $slipway ]] || die "$slipway was not built"
make_reachable "$slipway"

# --- sample project, owned by the user ------------------------------------------------------
demo=$STATE_DIR/demo
rm -rf "$demo"
mkdir -p "$demo"
cat >"$demo/werf.yaml" <<'EOF'
project: demo
configVersion: 1
---
image: app
dockerfile: Dockerfile
EOF
cat >"$demo/Dockerfile" <<EOF
FROM $REGISTRY_ADDR/base/busybox:latest
RUN echo "written by a RUN step" > /built.txt
COPY hello.txt /app/hello.txt
CMD ["/bin/sh", "-c", "cat /built.txt /app/hello.txt; echo 'demo app ran under slipway'"]
EOF
echo "hello from a committed file" >"$demo/hello.txt"
chown -R "$TEST_USER:" "$demo"
cd "$demo"
run_as_user git init -q
run_as_user git add -A
run_as_user git commit -q -m "demo project"

# --- build and run as the user --------------------------------------------------------------
extra_env=()
[[ -n ${RUST_LOG:-} ]] && extra_env+=("RUST_LOG=$RUST_LOG")
log "slipway build (as $TEST_USER)"
run_as_user "${extra_env[@]}" "$slipway" build --dir "$demo" --insecure-registry
log "slipway run app (as $TEST_USER)"
run_as_user "${extra_env[@]}" "$slipway" run app --dir "$demo"
log "demo OK (project in $demo)"
