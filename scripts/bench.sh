#!/usr/bin/env bash
# Benchmark slipway against rootless buildah:
#   bash scripts/bench.sh [--no-setup] [--runs N] [--only SECTION[,SECTION...]]
# As root: set up packages/user/registry/base images (unless --no-setup; the registry is
# started either way), `cargo build --release`, write two benchmark projects. Then, as
# $TEST_USER, time cold builds, fully cached rebuilds and a 500 MiB layer with both tools
# (median of N runs, fresh stores as needed), then the registry rows: pushing the 500 MiB
# layer, and a fully cached `--repo` rebuild on an empty store against `buildah pull`. Prints
# a table, also written to target/bench-results.txt. A failing slipway is reported in the
# table; buildah still runs. At exit the registry's bench/ repositories (this run's and any
# left by an interrupted run) are deleted and the registry garbage-collected (it is stopped
# for that, then restarted if it was running before).
# Sections (all by default; --only runs and reports the ones named):
#   app               cold and cached builds of the app project, its --repo rebuild rows
#   stapel            the Stapel 5,000-file repository (slipway only)
#   driver-isolation  one cold build per storage driver x isolation x id mapping (18 rows)
#   single-id         only the single-id ($SINGLE_USER) half of driver-isolation
#   big               the 500 MiB layer, its push and export
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root
ensure_cargo_path
umask 022

setup=1 runs=3 only=""
sections=(app stapel driver-isolation single-id big)
while [[ $# -gt 0 ]]; do
    case $1 in
        --no-setup) setup=0 ;;
        --runs) runs=${2:?--runs needs a number}; shift ;;
        --only) only=${2:?--only needs a section list}; shift ;;
        *) die "usage: $0 [--no-setup] [--runs N] [--only SECTION[,SECTION...]] (sections: ${sections[*]})" ;;
    esac
    shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
for sec in ${only//,/ }; do
    [[ " ${sections[*]} " == *" $sec "* ]] || die "--only: unknown section '$sec' (sections: ${sections[*]})"
done
take_lock

# want SECTION: whether to run (and report) SECTION. single-id is part of driver-isolation.
want() {
    [[ -z $only || ",$only," == *",$1,"* ]] ||
        { [[ $1 == single-id ]] && [[ ",$only," == *",driver-isolation,"* ]]; }
}

# --- environment -----------------------------------------------------------------------------
if ((setup)); then
    bash "$SCRIPTS_DIR/install-deps.sh"
    bash "$SCRIPTS_DIR/test-user.sh"
fi
id -u "$TEST_USER" >/dev/null 2>&1 || die "no user $TEST_USER; run without --no-setup once"
[[ -d /run/user/$(test_uid) ]] || bash "$SCRIPTS_DIR/test-user.sh"
# The single-id user came later than the test user: create it on the next run.
if want single-id; then
    { id -u "$SINGLE_USER" >/dev/null 2>&1 && [[ -d /run/user/$(id -u "$SINGLE_USER") ]]; } ||
        bash "$SCRIPTS_DIR/test-user.sh"
fi
command -v buildah >/dev/null || die "buildah not installed (scripts/install-deps.sh installs it)"
# GNU time measures peak RSS (the shell keyword cannot).
[[ -x /usr/bin/time ]] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time
own_registry=0
if ! bash "$SCRIPTS_DIR/registry.sh" status >/dev/null; then
    bash "$SCRIPTS_DIR/registry.sh" start
    own_registry=1
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
# bench_as USER DIR: the user that the timed commands run as, and its work directory W (the
# projects, tool configuration, TMPDIR; $B for $TEST_USER).
bench_as() {
    bench_user=$1 W=$2
    user_env=(TMPDIR="$W/tmp" CONTAINERS_REGISTRIES_CONF="$W/registries.conf"
        CONTAINERS_STORAGE_CONF="$W/storage.conf")
}
bench_as "$TEST_USER" "$B"

# timed LOG CMD...: run CMD as $bench_user; prints "<exit code> <wall ms> <peak RSS KiB>".
# The clock runs inside the user's shell, so runuser's start-up is not counted. GNU time's
# RSS is the maximum over the process tree it waits for (children included).
# shellcheck disable=SC2016  # the inner script expands its own variables
timed() {
    local log=$1
    shift
    run_as "$bench_user" "${user_env[@]}" bash -c '
        log=$1; shift
        s=$(date +%s%N)
        /usr/bin/time -f %M -o "$log.rss" "$@" >"$log" 2>&1; rc=$?
        e=$(date +%s%N)
        echo "$rc $(((e - s) / 1000000)) $(tail -n1 "$log.rss")"' _ "$log" "$@"
}

# Fresh, empty store directories of $bench_user (root removes the old ones: they hold
# subordinate-id files).
fresh() {
    local d
    for d in "$@"; do
        rm -rf "$d"
        install -d -o "$bench_user" -g "$(id -g "$bench_user")" "$d"
    done
}

slipway_build() { # LOG STORE PROJECT
    timed "$1" env XDG_DATA_HOME="$2" \
        "$slipway" build --dir "$B/$3" --insecure-registry
}
# The same with stages in REPO; GRACE sets SLIPWAY_PUBLISH_GRACE_MS ("" = slipway's default).
slipway_repo_build() { # LOG STORE PROJECT REPO GRACE
    timed "$1" env XDG_DATA_HOME="$2" ${5:+SLIPWAY_PUBLISH_GRACE_MS=$5} \
        "$slipway" build --dir "$B/$3" --insecure-registry --repo "$4"
}
# Export the final image of PROJECT, whose stages are in REPO, to DEST from an empty store.
slipway_export() { # LOG STORE PROJECT REPO DEST
    timed "$1" env XDG_DATA_HOME="$2" "$slipway" export --require-built-images --dir "$B/$3" \
        --insecure-registry --repo "$4" --tag "$5:%image_content_based_tag%" --add-label bench=1
}
skopeo_copy() { # LOG SRC DEST
    timed "$1" skopeo copy --src-tls-verify=false --dest-tls-verify=false "docker://$2" "docker://$3"
}
buildah_on() { # STORE: the buildah command line with its storage in STORE, in ${bah[@]}
    bah=(buildah --root "$1/root" --runroot "$1/runroot" --storage-driver overlay)
}
buildah_build() { # LOG STORE PROJECT
    buildah_on "$2"
    timed "$1" "${bah[@]}" bud --isolation chroot --layers --tls-verify=false \
        --signature-policy "$B/policy.json" -f "$B/$3/Dockerfile" "$B/$3"
}
buildah_push() { # LOG STORE IMAGE REPO
    buildah_on "$2"
    timed "$1" "${bah[@]}" push --tls-verify=false --signature-policy "$B/policy.json" \
        "$3" "docker://$4"
}
buildah_pull() { # LOG STORE REPO
    buildah_on "$2"
    timed "$1" "${bah[@]}" pull --tls-verify=false --signature-policy "$B/policy.json" \
        "docker://$3"
}

# reason LOG: the first error line of a failed run's log, shortened (logrus' prefix and
# bracketed command lines dropped, at most 160 characters; buildah's chroot error runs into
# "subprocess exited" without a newline).
reason() {
    local line
    line=$(grep -i error "$1" 2>/dev/null | grep -v 'level=warn' | head -n1)
    [[ -n $line ]] || line=$(grep . "$1" 2>/dev/null | tail -n1)
    line=$(sed -e 's/^time="[^"]*" level=[a-z]* msg="//' -e 's/"$//' -e 's/\[[^]]*\]/[…]/g' \
        -e 's/\([a-z]\)subprocess exited/\1; subprocess exited/' <<<"$line" | tr -s ' \t' ' ')
    [[ ${#line} -le 160 ]] || line="${line:0:157}..."
    echo "${line:-no output}"
}

# Per row key (e.g. cold.slipway): wall ms and peak RSS KiB of each run, or why it failed.
declare -A ms rss fail
last_ms=""   # wall ms of the latest `record`, empty if it failed

# record KEY LOG FUNCTION ARGS...: time one run of a *_build/_push/_pull function (which
# writes LOG) and keep it under KEY. Returns 1 (and remembers why) if it fails.
record() {
    local key=$1 log=$2 fn=$3 rc t m
    shift 3
    last_ms=""
    [[ -z ${fail[$key]:-} ]] || return 1        # once failed, stop retrying this row
    sync   # so the previous step's writeback (e.g. 500 MiB into the registry) is not timed here
    read -r rc t m < <("$fn" "$log" "$@")
    if [[ ${rc:-x} != 0 ]]; then
        fail[$key]="exit ${rc:-?}: $(reason "$log"), see $log"
        log "$key FAILED (exit ${rc:-?}): $(tail -n 3 "$log" 2>/dev/null | tr '\n' ' ')"
        return 1
    fi
    ms[$key]+="$t " rss[$key]+="$m " last_ms=$t
    log "$key: $(secs "$t") s, peak RSS $((m / 1024)) MiB"
}

# measure KEY TOOL PROJECT MODE RUN: one run; MODE cold = fresh store first, cached = reuse it.
measure() {
    local key=$1 tool=$2 proj=$3 mode=$4 store=$B/stores/$2-$3
    last_ms=""
    [[ -n ${fail[$key]:-} ]] && return 0
    [[ $mode == cold ]] && fresh "$store"
    record "$key" "$B/logs/$1.$5.log" "${tool}_build" "$store" "$proj" || true
}
secs() { [[ -n $1 ]] && awk -v m="$1" 'BEGIN { printf "%.3f", m / 1000 }' || echo FAILED; }

tools=(slipway buildah)
if ((!slipway_ok)); then
    tools=(buildah)
    for k in cold cached big push push0 rebuild rebuild0; do
        fail[$k.slipway]="cargo build --release failed"
    done
fi

# Runs of the sections not chosen by --only: none.
app_runs=0 big_runs=0
if want app; then app_runs=$runs; fi
if want big; then big_runs=$runs; fi
# Runs alternate between the tools so that machine noise hits both alike.
for ((i = 1; i <= app_runs; i++)); do
    log "run $i/$runs: cold builds of the app project"
    for t in "${tools[@]}"; do measure "cold.$t" "$t" app cold "$i"; done
done
# Cached rebuilds reuse the store of the last cold run, so need a successful cold build.
for t in "${tools[@]}"; do
    [[ -z ${fail[cold.$t]:-} ]] || fail[cached.$t]="cold build failed"
done
for ((i = 1; i <= app_runs; i++)); do
    log "run $i/$runs: fully cached rebuilds"
    for t in "${tools[@]}"; do measure "cached.$t" "$t" app cached "$i"; done
done
# --- Stapel: a 5,000-file git repository (slipway only: buildah has no Stapel) -----------------
# Cold build (fresh store), then per run a one-file commit and a rebuild: only gitLatestPatch
# is built (the file is outside install's stageDependencies). Target: rebuild <= 0.1 x cold.
want stapel && run_as_user bash -c '
    set -e
    p=$1/stapel; mkdir -p "$p/src"; cd "$p"
    for d in $(seq 1 50); do mkdir -p src/d$d
        for f in $(seq 1 100); do echo "file $d $f $RANDOM$RANDOM" >src/d$d/f$f.txt; done; done
    printf "%s\n" "project: bench-stapel" "configVersion: 1" "---" "image: app" "from: $2" "git:" \
        "- add: /" "  to: /app" "  stageDependencies:" "    install: [\"src/d1/**\"]" "shell:" \
        "  install: [\"ls /app/src | wc -l > /installed\"]" "  setup: [\"echo setup > /setup\"]" >werf.yaml
    git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm init' _ "$B" "$base"
stapel_build() { # LOG STORE
    timed "$1" env XDG_DATA_HOME="$2" "$slipway" build --dir "$B/stapel" --insecure-registry
}
stapel_commit() { # RUN
    run_as_user bash -c 'cd "$1/stapel" && echo "change $2" >>src/d20/f5.txt &&
        git -c user.name=b -c user.email=b@b commit -qam "change $2"' _ "$B" "$1"
}
if ((slipway_ok)) && want stapel; then
    for ((i = 1; i <= runs; i++)); do
        log "run $i/$runs: Stapel 5,000 files, cold build and one-file rebuild"
        fresh "$B/stores/stapel"
        record stapelcold.slipway "$B/logs/stapelcold.$i.log" stapel_build "$B/stores/stapel" || continue
        stapel_commit "$i"
        record stapelpatch.slipway "$B/logs/stapelpatch.$i.log" stapel_build "$B/stores/stapel" || true
    done
fi

# --- driver x isolation x id mapping: one cold build of the app project per combination ---------
# slipway: native overlayfs / fuse-overlayfs (storage.conf mount_program, as buildah users
# force it) / vfs, x built-in sandbox / runc / crun. buildah: the same storage driver or
# mount_program, x --isolation chroot / oci with --runtime runc / crun. Each as $TEST_USER
# (subordinate ids) and as $SINGLE_USER (no /etc/subuid ranges: both tools map one id).
printf '[storage]\ndriver = "overlay"\n[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n' \
    >"$B/storage-fuse.conf"
chown "$TEST_USER:" "$B/storage-fuse.conf"
combo_slipway() { # LOG STORE DRIVER ISOLATION
    local envs=()
    case $3 in
        fuse) envs+=(CONTAINERS_STORAGE_CONF="$W/storage-fuse.conf") ;;
        vfs) envs+=(WERF_BUILDAH_STORAGE_DRIVER=vfs) ;;
    esac
    case $4 in
        chroot) envs+=(WERF_BUILDAH_MODE=native-chroot) ;;
        *) envs+=(WERF_BUILDAH_MODE=native-rootless BUILDAH_RUNTIME="$4") ;;
    esac
    # --log-verbose: the log names the id mapping, storage driver and step isolation used.
    timed "$1" env XDG_DATA_HOME="$2" "${envs[@]}" "$slipway" build --log-verbose --dir "$W/app" \
        --insecure-registry
}
combo_buildah() { # LOG STORE DRIVER ISOLATION
    local opts=(--root "$2/root" --runroot "$2/runroot") iso=(--isolation chroot)
    case $3 in
        native) opts+=(--storage-driver overlay) ;;
        fuse) opts+=(--storage-driver overlay --storage-opt overlay.mount_program=/usr/bin/fuse-overlayfs) ;;
        vfs) opts+=(--storage-driver vfs) ;;
    esac
    # With one id mapped, buildah cannot unpack the base image (busybox's /home/app is
    # 1000:1000: "lchown /home/app: invalid argument") unless chown errors are ignored, which
    # makes every file root's: the same combination, not the same image.
    if [[ $bench_user == "$SINGLE_USER" ]]; then
        opts+=(--storage-opt "$([[ $3 == vfs ]] && echo vfs || echo overlay).ignore_chown_errors=true")
    fi
    # The host's network, as slipway's steps have it (rootless netavark cannot setns here).
    [[ $4 == chroot ]] || iso=(--isolation oci --runtime "$4" --network host)
    timed "$1" buildah "${opts[@]}" bud "${iso[@]}" --layers --tls-verify=false \
        --signature-policy "$W/policy.json" -f "$W/app/Dockerfile" "$W/app"
}
# ran_as KEY LOG MAPPING DRIVER: fail slipway's row unless its log says it used the id
# MAPPING (single or subordinate; a full range can fall back to one id) and the storage
# DRIVER asked for (native, fuse, vfs).
ran_as() {
    local got=subordinate drv
    grep -q 'user namespace: single-id mapping' "$2" && got=single
    case $4 in
        native) drv="storage driver: native overlayfs" ;;
        fuse) drv="storage driver: fuse-overlayfs" ;;
        vfs) drv="storage driver: vfs" ;;
    esac
    if [[ $got != "$3" ]]; then
        fail[$1]="ran with a $got-id mapping, not $3, see $2"
    elif ! grep -q "$drv" "$2"; then
        fail[$1]="its log has no \"$drv\", see $2"
    else
        return 0
    fi
    unset "ms[$1]"
    log "$1 FAILED: ${fail[$1]}"
}
combos=()
for d in native fuse vfs; do for i in chroot runc crun; do combos+=("$d:$i"); done; done
mappings=()
if want driver-isolation; then mappings+=(subids); fi
if want single-id; then
    mappings+=(single)
    # The single-id user's own copy of the app project (same commit, so the same stages) and
    # of the tool configuration; it cannot write to $B.
    S=$B/single
    mkdir -p "$S"/{stores,logs,tmp}
    cp -a "$B/app" "$S/app"
    cp "$B"/{policy.json,registries.conf,storage.conf,storage-fuse.conf} "$S/"
    chown -R "$SINGLE_USER:$(id -g "$SINGLE_USER")" "$S"
    chmod 0700 "$S/tmp"
fi
for m in "${mappings[@]}"; do
    if [[ $m == single ]]; then bench_as "$SINGLE_USER" "$S"; else bench_as "$TEST_USER" "$B"; fi
    log "driver x isolation, $m ids ($bench_user): one cold build per combination and tool"
    for c in "${combos[@]}"; do
        for t in slipway buildah; do
            [[ $t == slipway ]] && ((!slipway_ok)) && continue
            k=combo-$m-$c.$t l=$W/logs/combo-$m-$c.$t.log
            fresh "$W/stores/combo-$t"
            if record "$k" "$l" "combo_$t" "$W/stores/combo-$t" "${c%:*}" "${c#*:}" &&
                [[ $t == slipway ]]; then
                ran_as "$k" "$l" "$([[ $m == single ]] && echo single || echo subordinate)" "${c%:*}" || true
            fi
        done
    done
done
bench_as "$TEST_USER" "$B"
rm -rf "$B/stores"/combo-*
[[ -z ${S:-} ]] || rm -rf "$S/stores"

# --- registry rows ---------------------------------------------------------------------------
# This run's repositories live under bench/<run id>/. At exit, all of bench/ (which only this
# script writes, under the run lock) is deleted and its blobs garbage-collected, which needs
# the registry stopped; it is restarted unless this script started it.
run_id=$(date -u +%Y%m%d-%H%M%S)-$$
rpath=bench/$run_id R=$REGISTRY_ADDR/bench/$run_id
regdir=$STATE_DIR/registry reglog=$STATE_DIR/registry/registry.log
cleanup_registry() {
    local repos=$regdir/storage/docker/registry/v2/repositories/bench
    if [[ -d $repos && -f $regdir/config.yml ]]; then
        rm -rf "$repos"
        if bash "$SCRIPTS_DIR/registry.sh" stop &&
            docker-registry garbage-collect "$regdir/config.yml" >"$regdir/gc.log" 2>&1; then
            log "registry: deleted bench/ and garbage-collected ($(du -sh "$regdir/storage" | cut -f1) left)"
        else
            log "WARNING: registry clean-up failed, see $regdir/gc.log"
        fi
        ((own_registry)) || bash "$SCRIPTS_DIR/registry.sh" start || true
    fi
    if ((own_registry)); then bash "$SCRIPTS_DIR/registry.sh" stop || true; fi
}
trap cleanup_registry EXIT
log_size() { stat -c %s "$reglog" 2>/dev/null || echo 0; }
# blobs_got OFFSET REPO: "<count> <bytes>" of blob downloads (GET, 2xx) from REPO in the
# registry's access log after byte OFFSET.
blobs_got() {
    tail -c +"$(($1 + 1))" "$reglog" 2>/dev/null | awk -v p="\"GET /v2/$2/blobs/" '
        index($0, p) && match($0, /HTTP\/[0-9.]+" 2[0-9][0-9] [0-9]+/) {
            split(substr($0, RSTART, RLENGTH), f, " "); n++; b += f[3] }
        END { printf "%d %d\n", n, b }'
}
buildah_image() { # LOG: the image ID that a successful `buildah bud` printed last
    local id
    id=$(tail -n1 "$1" 2>/dev/null) || return 1
    [[ $id =~ ^[0-9a-f]{64}$ ]] && echo "$id"
}
now_ms() { date +%s%3N; }
# busy_ms OFFSET REPO: ms during which at least one request other than GET to REPO was in
# flight, from the registry's log after byte OFFSET ("response completed" lines: end time
# and duration of each request). The push as the registry sees it, without build noise.
busy_ms() {
    tail -c +"$(($1 + 1))" "$reglog" 2>/dev/null | awk -v p="/v2/$2/" '
        function dur_ms(d,   t, n) {
            gsub(/"/, "", d); t = 0
            while (match(d, /^[0-9.]+/)) {
                n = substr(d, 1, RLENGTH) + 0; d = substr(d, RLENGTH + 1)
                if (d ~ /^ms/) { t += n; d = substr(d, 3) }
                else if (d ~ /^ns/) { t += n / 1e6; d = substr(d, 3) }
                else if (d ~ /^us/) { t += n / 1e3; d = substr(d, 3) }
                else if (d ~ /^µs/) { t += n / 1e3; d = substr(d, length("µs") + 1) }
                else if (d ~ /^h/) { t += n * 3600000; d = substr(d, 2) }
                else if (d ~ /^m/) { t += n * 60000; d = substr(d, 2) }
                else if (d ~ /^s/) { t += n * 1000; d = substr(d, 2) }
                else break
            }
            return t
        }
        /msg="response completed"/ && index($0, p) && !/http\.request\.method=GET/ &&
            match($0, /^time="[0-9-]+T[0-9:.]+/) && match($0, /http\.response\.duration=[^ ]+/) {
            d = substr($0, RSTART + 23, RLENGTH - 23)
            match($0, /^time="[0-9-]+T[0-9:.]+/); ts = substr($0, 7, RLENGTH - 6)
            split(ts, a, "T"); split(a[2], h, ":")
            if (day == "") day = a[1]
            end = ((h[1] * 60 + h[2]) * 60 + h[3]) * 1000 + (a[1] != day ? 86400000 : 0)
            printf "%.3f %.3f\n", end - dur_ms(d), end
        }' | sort -n | awk '
        { if (NR == 1 || $1 > e) { if (NR > 1) t += e - s; s = $1; e = $2 } else if ($2 > e) e = $2 }
        END { if (NR) t += e - s; printf "%d\n", t }'
}
# settle_ms LOG: what slipway's own report of a build says besides its stages: the build's
# total minus the sum of the stages' "built in" times, in ms (for the push rows, the settle
# delay after storing the final stage).
settle_ms() {
    awk '/ built in [0-9.]+s$/ { v = $NF; sub(/s$/, "", v); s += v }
        /Building image .*\([0-9.]+s\)/ && match($0, /\([0-9.]+s\)/) {
            t = substr($0, RSTART + 1, RLENGTH - 3) }
        END { if (t != "") printf "%d\n", (t - s) * 1000 }' "$1"
}
declare -A settle   # d (default grace) / d0 (grace 0) -> settle_ms of each --repo 500 MiB build
declare -A disk  # export -> KiB the export's store took, per run
declare -A got   # TOOL -> "<blobs> <bytes>" downloaded by its latest --repo rebuild / pull
ages=""          # age (ms) of slipway's final stage in the repo when each rebuild started

# Row "--repo rebuild, empty store". slipway: push the app once (a cold build with --repo),
# then build it with new empty stores and the same --repo; every stage is found in the
# repo, and only the final stage's manifest and config are downloaded. buildah's nearest
# equivalent, fetching the built image: push its app image once, `buildah pull` it into new
# empty storage. Rows with grace 0 set SLIPWAY_PUBLISH_GRACE_MS=0 (buildah: the same pulls).
stage_ts=""
if ((app_runs)) && [[ -z ${fail[cold.slipway]:-} ]]; then
    fresh "$B/stores/slipway-repo"
    if record apppush.slipway "$B/logs/apppush.slipway.log" slipway_repo_build \
        "$B/stores/slipway-repo" app "$R/slipway-app" ""; then
        # The build's last line ends "→ REPO:DIGEST-TIMESTAMP_MS" (the final stage's tag).
        stage_ts=$(grep -o -- '-[0-9]\{13\}$' "$B/logs/apppush.slipway.log" | tail -n1 | tr -d -)
    fi
fi
buildah_app=""
if ((app_runs)) && [[ -z ${fail[cold.buildah]:-} ]] && id=$(buildah_image "$B/logs/cold.buildah.$runs.log") &&
    record apppush.buildah "$B/logs/apppush.buildah.log" buildah_push \
        "$B/stores/buildah-app" "$id" "$R/buildah-app"; then
    buildah_app=1
fi
for ((i = 1; i <= app_runs; i++)); do
    log "run $i/$runs: fully cached --repo rebuilds / pulls on empty stores"
    if [[ -n $stage_ts ]]; then
        for g in "" 0; do
            fresh "$B/stores/slipway-repo"
            off=$(log_size) age=$(($(now_ms) - stage_ts))
            if record "rebuild$g.slipway" "$B/logs/rebuild$g.slipway.$i.log" slipway_repo_build \
                "$B/stores/slipway-repo" app "$R/slipway-app" "$g"; then
                got[slipway]=$(blobs_got "$off" "$rpath/slipway-app") ages+="$age "
            fi
        done
    fi
    if [[ -n $buildah_app ]]; then
        fresh "$B/stores/buildah-pull"
        off=$(log_size)
        if record rebuild.buildah "$B/logs/rebuild.buildah.$i.log" buildah_pull \
            "$B/stores/buildah-pull" "$R/buildah-app"; then
            got[buildah]=$(blobs_got "$off" "$rpath/buildah-app")
        fi
    fi
done
if ((app_runs)); then
    [[ -n ${ms[rebuild.slipway]:-} || -n ${fail[rebuild.slipway]:-} ]] ||
        fail[rebuild.slipway]="no app pushed with --repo (see the cold/apppush rows)"
    [[ -n ${ms[rebuild.buildah]:-} || -n ${fail[rebuild.buildah]:-} ]] ||
        fail[rebuild.buildah]="no app image pushed (see the cold/apppush rows)"
fi

# Rows "500 MiB layer" and "push 500 MiB layer", run by run. slipway pushes while it builds
# (and a build with --repo rebuilds stages that are only in the local store), so its push
# time is the difference: a fresh-store `build --repo` (every stage pushed, then the settle
# delay) minus the fresh-store build without --repo just before it, median of the
# differences. buildah: `buildah push` of the image it has just built (it compresses the
# layer while pushing).
for ((i = 1; i <= big_runs; i++)); do
    log "run $i/$runs: 500 MiB layer (fresh stores) and its push"
    base_ms=""
    for t in "${tools[@]}"; do
        measure "big.$t" "$t" big cold "$i"
        if [[ $t == slipway ]]; then base_ms=$last_ms; fi
    done
    off=$(log_size)
    if id=$(buildah_image "$B/logs/big.buildah.$i.log") &&
        record push.buildah "$B/logs/push.buildah.$i.log" buildah_push \
            "$B/stores/buildah-big" "$id" "$R/buildah-big-$i"; then
        ms[reg.buildah]+="$(busy_ms "$off" "$rpath/buildah-big-$i") "
    fi
    [[ -n $base_ms ]] || continue
    for g in "" 0; do
        fresh "$B/stores/slipway-big"
        off=$(log_size)
        if record "bigrepo$g.slipway" "$B/logs/bigrepo$g.slipway.$i.log" slipway_repo_build \
            "$B/stores/slipway-big" big "$R/slipway-big$g-$i" "$g"; then
            ms[push$g.slipway]+="$((last_ms - base_ms)) "
            settle[d$g]+="$(settle_ms "$B/logs/bigrepo$g.slipway.$i.log") "
            ms[reg.slipway]+="$(busy_ms "$off" "$rpath/slipway-big$g-$i") "
            log "push$g.slipway: $(secs $((last_ms - base_ms))) s (with minus without --repo)"
        fi
    done
    # Row "export 500 MiB image": from the stages just pushed, to another repository, from
    # an empty store (nothing may go through the local disk), beside `skopeo copy` of the
    # same image between the same repositories.
    tag=$(grep -o -- '[0-9a-f]\{56\}-[0-9]\{13\}$' "$B/logs/bigrepo.slipway.$i.log" 2>/dev/null | tail -n1)
    [[ -n $tag ]] || continue
    fresh "$B/stores/slipway-export"
    if record export.slipway "$B/logs/export.slipway.$i.log" slipway_export \
        "$B/stores/slipway-export" big "$R/slipway-big-$i" "$R/exported-$i"; then
        disk[export]+="$(du -sk "$B/stores/slipway-export" | cut -f1) "
    fi
    record export.skopeo "$B/logs/export.skopeo.$i.log" skopeo_copy \
        "$R/slipway-big-$i:$tag" "$R/skopeo-copy-$i:$tag" || true
done
((!big_runs)) || [[ -n ${ms[push.buildah]:-} || -n ${fail[push.buildah]:-} ]] ||
    fail[push.buildah]="no 500 MiB image built (see the big rows)"
rm -rf "$B/stores"   # several GiB of layers

# --- report ------------------------------------------------------------------------------------
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1}
    END { if (NR) printf "%d", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
maximum() { tr ' ' '\n' | grep . | sort -n | tail -n1; }
section_of() { # KEY: the --only section of a row key
    case $1 in
        combo-single-*) echo single-id ;;
        combo-*) echo driver-isolation ;;
        stapel*) echo stapel ;;
        big* | push* | reg* | export*) echo big ;;
        *) echo app ;;
    esac
}

results=$REPO_ROOT/target/bench-results.txt
mkdir -p "$(dirname "$results")"
{
    echo "slipway vs rootless buildah $(buildah --version | awk '{print $3}'), median of $runs runs," \
        "$(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), slipway $(cd "$REPO_ROOT" && git rev-parse --short HEAD)$(cd "$REPO_ROOT" && git diff --quiet HEAD || echo +dirty)${only:+, sections: $only}"
    printf '%-32s | %11s | %11s | %15s | %s\n' scenario "slipway (s)" "buildah (s)" \
        "slipway/buildah" "target (ratio)"
    # A "0" key (SLIPWAY_PUBLISH_GRACE_MS=0) compares with buildah's row without the 0.
    for row in "app:cold:cold build (app):<= 0.5" "app:cached:cached rebuild (app):<= 0.2" \
        "big:big:500 MiB layer:-" "big:push:push 500 MiB layer (vs push):-" \
        "big:push0:  same, grace 0:-" "big:reg:  registry-side request time:-" \
        "app:rebuild:--repo rebuild, empty (vs pull):-" "app:rebuild0:  same, grace 0:-"; do
        IFS=: read -r sec k label target <<<"$row"
        want "$sec" || continue
        s=$(median <<<"${ms[$k.slipway]:-}") b=$(median <<<"${ms[${k%0}.buildah]:-}")
        ratio=-
        [[ -n $s && -n $b ]] && ratio=$(awk -v s="$s" -v b="$b" 'BEGIN { printf "%.2f", s / b }')
        printf '%-32s | %11s | %11s | %15s | %s\n' "$label" "$(secs "$s")" "$(secs "$b")" \
            "$ratio" "$target"
    done
    if want big; then
        s=$(median <<<"${ms[export.slipway]:-}") b=$(median <<<"${ms[export.skopeo]:-}")
        ratio=-
        [[ -n $s && -n $b ]] && ratio=$(awk -v s="$s" -v b="$b" 'BEGIN { printf "%.2f", s / b }')
        printf '%-32s | %11s | %11s | %15s | %s\n' "export 500 MiB (vs skopeo copy)" "$(secs "$s")" \
            "$(secs "$b")" "$ratio" "skopeo copy in the buildah column"
        echo "  export: slipway export --require-built-images from an empty store, stages in one repo," \
            "exported to another; local store afterwards: $(maximum <<<"${disk[export]:-}") KiB (max of runs)"
    fi
    if ((${#mappings[@]})); then
        echo "driver x isolation x id mapping, cold build of the app project (one run each; FAILED rows say why below):"
        for m in "${mappings[@]}"; do
            for c in "${combos[@]}"; do
                s=${ms[combo-$m-$c.slipway]:-} b=${ms[combo-$m-$c.buildah]:-}
                ratio=-
                [[ -n $s && -n $b ]] && ratio=$(awk -v s="$s" -v b="$b" 'BEGIN { printf "%.2f", s / b }')
                printf '  %-30s | %11s | %11s | %15s\n' "${c%:*} x ${c#*:} x $([[ $m == single ]] && echo single-id || echo subids)" \
                    "$(secs "$s")" "$(secs "$b")" "$ratio"
            done
        done
        echo "  subids: as $TEST_USER, with /etc/subuid and /etc/subgid ranges. single-id: as $SINGLE_USER," \
            "without ranges: slipway maps one id (its log says so; a row fails otherwise) and records"
        echo "  RUN chowns through a seccomp listener (runc/crun) or its sandbox; buildah maps one id and needs" \
            "--storage-opt {overlay,vfs}.ignore_chown_errors=true to unpack busybox (/home/app is 1000:1000),"
        echo "  which makes every file root's and fails RUN chown: the same combination timed, not an" \
            "equivalent image. buildah 1.28's chroot RUN calls setgroups, which a single-id namespace denies"
        echo "  (buildah issue #6947, fixed after 1.28 by PR #6961); its crun rows fail on this hybrid-cgroup host."
    fi
    if want stapel; then
        s=$(median <<<"${ms[stapelcold.slipway]:-}") b=$(median <<<"${ms[stapelpatch.slipway]:-}")
        ratio=-
        [[ -n $s && -n $b ]] && ratio=$(awk -v s="$s" -v b="$b" 'BEGIN { printf "%.2f", b / s }')
        echo "Stapel, 5,000-file repository (slipway only): cold build $(secs "$s") s, one-file change" \
            "rebuild $(secs "$b") s, rebuild/cold $ratio (target <= 0.1)"
    fi
    if want big; then
        s=$(maximum <<<"${rss[big.slipway]:-}") b=$(maximum <<<"${rss[big.buildah]:-}")
        echo "peak RSS, 500 MiB layer (max of runs): slipway $([[ -n $s ]] && echo "$((s / 1024)) MiB" \
            || echo FAILED) (target <= 64 MiB), buildah $([[ -n $b ]] && echo "$((b / 1024)) MiB" || echo FAILED)"
        echo "push rows: slipway = fresh-store \`build --repo\` minus fresh-store \`build\` of the same" \
            "run (median of the differences; slipway pushes while building); buildah = \`buildah push\`" \
            "of the image it built (compresses the layer while pushing). Registry-side: time with one of" \
            "the tool's non-GET requests to the repo in flight, from the registry log (slipway: both" \
            "grace settings; no build noise, no settle delay, no client work between requests)."
        echo "  500 MiB with --repo, build + push: slipway $(secs "$(median <<<"${ms[bigrepo.slipway]:-}")") s" \
            "(grace 0: $(secs "$(median <<<"${ms[bigrepo0.slipway]:-}")") s); first app push: slipway cold" \
            "build with --repo $(secs "${ms[apppush.slipway]:-}") s, buildah push $(secs "${ms[apppush.buildah]:-}") s"
        echo "  settle delay inside the 500 MiB --repo builds (slipway's report, total minus stages):" \
            "$(secs "$(median <<<"${settle[d]:-}")") s default, $(secs "$(median <<<"${settle[d0]:-}")") s grace 0"
        each() { local v out=""; for v in $1; do out+="$(secs "$v") "; done; echo "${out% }"; }
        echo "  the differences carry the 500 MiB build's own run-to-run noise; per run (s):" \
            "default $(each "${ms[push.slipway]:-}"), grace 0 $(each "${ms[push0.slipway]:-}")"
    fi
    if want app; then
        echo "rebuild rows: slipway = build with a new empty store and the --repo a cold build pushed" \
            "the app to; buildah = \`buildah pull\` of its pushed app image into new empty storage."
        ages_s=$(tr ' ' '\n' <<<"$ages" | grep . | sort -n | sed -n '1p;$p' | awk '{ printf "%s%.1f", (NR > 1 ? "-" : ""), $1 / 1000 }')
        echo "  final stage age at the rebuilds: ${ages_s:-?} s (older than the grace, so no settle" \
            "sleep; younger than 60 s, so one tag listing)"
        dl() { [[ -n ${got[$1]:-} ]] && awk -v n="${got[$1]% *}" -v b="${got[$1]#* }" \
            'BEGIN { printf "%d blob%s, %.1f KiB", n, (n == 1 ? "" : "s"), b / 1024 }' || echo "?"; }
        echo "  downloaded per rebuild (registry log): slipway $(dl slipway); buildah pull $(dl buildah)"
    fi
    if want app || want big; then
        echo "SLIPWAY_PUBLISH_GRACE_MS: default 1000 ms (used unless a row says grace 0): settle delay" \
            "after a build whose final stage is younger than that; it is inside the default push row" \
            "and the first app push, not in the rebuild rows (their final stage is older)."
    fi
    for k in "${!fail[@]}"; do want "$(section_of "$k")" && echo "FAILED $k: ${fail[$k]}"; done | sort
} | tee "$results"
log "logs in $B/logs; results in $results"
