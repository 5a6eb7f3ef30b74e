#!/usr/bin/env bash
# Benchmark slipway against rootless buildah:  sudo bash scripts/bench.sh [--no-setup] [--runs N]
# As root: set up packages/user/registry/base images (unless --no-setup; the registry is
# started either way), `cargo build --release`, write two benchmark projects. Then, as
# $TEST_USER, time cold builds, fully cached rebuilds and a 500 MiB layer with both tools
# (median of N runs, fresh stores as needed) and print a table, also written to
# target/bench-results.txt. A failing slipway is reported in the table; buildah still runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root
ensure_cargo_path
umask 022
take_lock

setup=1 runs=3
while [[ $# -gt 0 ]]; do
    case $1 in
        --no-setup) setup=0 ;;
        --runs) runs=${2:?--runs needs a number}; shift ;;
        *) die "usage: $0 [--no-setup] [--runs N]" ;;
    esac
    shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"

# --- environment -----------------------------------------------------------------------------
if ((setup)); then
    bash "$SCRIPTS_DIR/install-deps.sh"
    bash "$SCRIPTS_DIR/test-user.sh"
fi
id -u "$TEST_USER" >/dev/null 2>&1 || die "no user $TEST_USER; run without --no-setup once"
[[ -d /run/user/$(test_uid) ]] || bash "$SCRIPTS_DIR/test-user.sh"
command -v buildah >/dev/null || die "buildah not installed (scripts/install-deps.sh installs it)"
# GNU time measures peak RSS (the shell keyword cannot).
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time
if ! bash "$SCRIPTS_DIR/registry.sh" status >/dev/null; then
    bash "$SCRIPTS_DIR/registry.sh" start
    trap 'bash "$SCRIPTS_DIR/registry.sh" stop || true' EXIT
fi
if ((setup)); then bash "$SCRIPTS_DIR/base-images.sh"; fi

# slipway: a failed build is recorded, not fatal, so buildah's numbers still appear.
slipway=$REPO_ROOT/target/release/slipway
slipway_ok=1
log "cargo build --release"
if ! (cd "$REPO_ROOT" && cargo build --release) || [[ ! -x $slipway ]]; then
    log "WARNING: cargo build --release failed; slipway rows will say so"
    slipway_ok=0
else
    make_reachable "$slipway"
fi

# --- benchmark projects and tool configuration, owned by the user ------------------------------
B=$STATE_DIR/bench
rm -rf "$B"
mkdir -p "$B"/{app,big,stores,logs,tmp}
base=$REGISTRY_ADDR/base/busybox:latest

# "app": a small but realistic Dockerfile (~21 MB text layer, 200-file COPY, metadata).
cat >"$B/app/Dockerfile" <<EOF
FROM $base
ENV APP_HOME=/app LANG=C.UTF-8
RUN mkdir -p /data /app && echo bench >/data/version.txt \\
    && for i in \$(seq 1 50); do echo "generated \$i" >/data/gen-\$i.txt; done
RUN seq 1 3000000 >/data/seq.txt
COPY files/ /app/files/
WORKDIR /app
RUN find /app/files -type f | wc -l >/app/count.txt
USER app
CMD ["/bin/sh", "-c", "cat /app/count.txt"]
EOF
for i in $(seq 1 200); do
    d=$B/app/files/dir$((i % 10))
    mkdir -p "$d"
    printf 'file %d\n%s\n' "$i" "$(seq -s ' ' "$i" $((i + 40)))" >"$d/file$i.txt"
done
# "big": one RUN writing 500 MiB of incompressible data (busybox head has no size suffixes).
cat >"$B/big/Dockerfile" <<EOF
FROM $base
RUN head -c $((500 * 1024 * 1024)) /dev/urandom >/big
EOF
for p in app big; do
    printf 'project: bench-%s\nconfigVersion: 1\n---\nimage: %s\ndockerfile: Dockerfile\n' \
        "$p" "$p" >"$B/$p/werf.yaml"
done

# buildah: accept any signature, plain HTTP to the local registry, no user/system storage.conf.
cat >"$B/policy.json" <<'EOF'
{"default": [{"type": "insecureAcceptAnything"}]}
EOF
cat >"$B/registries.conf" <<EOF
[[registry]]
location = "$REGISTRY_ADDR"
insecure = true
EOF
printf '[storage]\ndriver = "overlay"\n' >"$B/storage.conf"

chown -R "$TEST_USER:" "$B"
for p in app big; do
    (cd "$B/$p" && run_as_user git init -q && run_as_user git add -A \
        && run_as_user git commit -q -m "bench project $p")
done
cd "$B"

# --- timing ------------------------------------------------------------------------------------
user_env=(TMPDIR="$B/tmp" CONTAINERS_REGISTRIES_CONF="$B/registries.conf"
    CONTAINERS_STORAGE_CONF="$B/storage.conf")

# timed LOG CMD...: run CMD as the user; prints "<exit code> <wall ms> <peak RSS KiB>".
# The clock runs inside the user's shell, so runuser's start-up is not counted. GNU time's
# RSS is the maximum over the process tree it waits for (children included).
# shellcheck disable=SC2016  # the inner script expands its own variables
timed() {
    local log=$1
    shift
    run_as_user "${user_env[@]}" bash -c '
        log=$1; shift
        s=$(date +%s%N)
        /usr/bin/time -f %M -o "$log.rss" "$@" >"$log" 2>&1; rc=$?
        e=$(date +%s%N)
        echo "$rc $(((e - s) / 1000000)) $(tail -n1 "$log.rss")"' _ "$log" "$@"
}

# Fresh, empty store directories (root removes the old ones: they hold subordinate-id files).
fresh() {
    local d
    for d in "$@"; do
        rm -rf "$d"
        install -d -o "$TEST_USER" -g "$TEST_USER" "$d"
    done
}

slipway_build() { # LOG STORE PROJECT
    timed "$1" env XDG_DATA_HOME="$2" \
        "$slipway" build --dir "$B/$3" --insecure-registry "$REGISTRY_ADDR"
}
buildah_build() { # LOG STORE PROJECT
    timed "$1" buildah --root "$2/root" --runroot "$2/runroot" \
        --storage-driver overlay bud --isolation chroot --layers --tls-verify=false \
        --signature-policy "$B/policy.json" -f "$B/$3/Dockerfile" "$B/$3"
}

# Per row key (e.g. cold.slipway): wall ms and peak RSS KiB of each run, or why it failed.
declare -A ms rss fail

# measure KEY TOOL PROJECT MODE RUN: one run; MODE cold = fresh store first, cached = reuse it.
measure() {
    local key=$1 tool=$2 proj=$3 mode=$4 store=$B/stores/$2-$3 log=$B/logs/$1.$5.log rc t m
    [[ -n ${fail[$key]:-} ]] && return 0        # once failed, stop retrying this row
    [[ $mode == cold ]] && fresh "$store"
    read -r rc t m < <("${tool}_build" "$log" "$store" "$proj")
    if [[ $rc != 0 ]]; then
        fail[$key]="exit $rc, see $log"
        log "$key FAILED (exit $rc): $(tail -n 3 "$log" | tr '\n' ' ')"
        return 0
    fi
    ms[$key]+="$t " rss[$key]+="$m "
    log "$key: $(secs "$t") s, peak RSS $((m / 1024)) MiB"
}
secs() { [[ -n $1 ]] && awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }' || echo FAILED; }

tools=(slipway buildah)
if ((!slipway_ok)); then
    tools=(buildah)
    for k in cold cached big; do fail[$k.slipway]="cargo build --release failed"; done
fi

# Runs alternate between the tools so that machine noise hits both alike.
for ((i = 1; i <= runs; i++)); do
    log "run $i/$runs: cold builds of the app project"
    for t in "${tools[@]}"; do measure "cold.$t" "$t" app cold "$i"; done
done
# Cached rebuilds reuse the store of the last cold run, so need a successful cold build.
for t in "${tools[@]}"; do
    [[ -z ${fail[cold.$t]:-} ]] || fail[cached.$t]="cold build failed"
done
for ((i = 1; i <= runs; i++)); do
    log "run $i/$runs: fully cached rebuilds"
    for t in "${tools[@]}"; do measure "cached.$t" "$t" app cached "$i"; done
done
for ((i = 1; i <= runs; i++)); do
    log "run $i/$runs: 500 MiB layer (fresh stores)"
    for t in "${tools[@]}"; do measure "big.$t" "$t" big cold "$i"; done
done
rm -rf "$B/stores"   # several GiB of layers

# --- TODO: registry push rows (later issue; skipped, no numbers are made up) -------------------
# Time `slipway build --repo $REGISTRY_ADDR/bench/...` (push included) against `buildah push`
# to the same registry, for the app project and the 500 MiB layer, once slipway pushes.

# --- report ------------------------------------------------------------------------------------
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1}
    END { if (NR) printf "%d", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
maximum() { tr ' ' '\n' | grep . | sort -n | tail -n1; }

results=$REPO_ROOT/target/bench-results.txt
mkdir -p "$(dirname "$results")"
{
    echo "slipway vs rootless buildah $(buildah --version | awk '{print $3}'), median of $runs runs," \
        "$(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), slipway $(cd "$REPO_ROOT" && git rev-parse --short HEAD)$(cd "$REPO_ROOT" && git diff --quiet HEAD || echo +dirty)"
    printf '%-22s | %11s | %11s | %15s | %s\n' scenario "slipway (s)" "buildah (s)" \
        "slipway/buildah" "target (ratio)"
    for row in "cold:cold build (app):<= 0.5" "cached:cached rebuild (app):<= 0.2" \
        "big:500 MiB layer:-"; do
        IFS=: read -r k label target <<<"$row"
        s=$(median <<<"${ms[$k.slipway]:-}") b=$(median <<<"${ms[$k.buildah]:-}")
        ratio=-
        [[ -n $s && -n $b ]] && ratio=$(awk -v s="$s" -v b="$b" 'BEGIN { printf "%.2f", s / b }')
        printf '%-22s | %11s | %11s | %15s | %s\n' "$label" "$(secs "$s")" "$(secs "$b")" \
            "$ratio" "$target"
    done
    s=$(maximum <<<"${rss[big.slipway]:-}") b=$(maximum <<<"${rss[big.buildah]:-}")
    echo "peak RSS, 500 MiB layer (max of runs): slipway $([[ -n $s ]] && echo "$((s / 1024)) MiB" \
        || echo FAILED) (target <= 64 MiB), buildah $([[ -n $b ]] && echo "$((b / 1024)) MiB" || echo FAILED)"
    for k in "${!fail[@]}"; do echo "FAILED $k: ${fail[$k]}"; done | sort
    echo "registry push rows: TODO, not measured yet (slipway does not push yet)"
} | tee "$results"
log "logs in $B/logs; results in $results"
