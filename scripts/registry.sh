#!/usr/bin/env bash
# Local plain-HTTP registry (Debian docker-registry = distribution 2.8) with our own config.
#   registry.sh start|stop|status                 $REGISTRY_ADDR, no auth
#   registry.sh start-auth|stop-auth|status-auth  $AUTH_REGISTRY_ADDR, htpasswd
#                                                 ($AUTH_REGISTRY_USER / $AUTH_REGISTRY_PASS)
# Data, config, pid file and log live in $STATE_DIR/registry[-auth]/.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

action=${1:-status}
case $action in
    start | stop | status) inst=registry addr=$REGISTRY_ADDR auth=0 ;;
    start-auth | stop-auth | status-auth) inst=registry-auth addr=$AUTH_REGISTRY_ADDR auth=1 ;;
    *) die "usage: $0 start|stop|status|start-auth|stop-auth|status-auth" ;;
esac
dir=$STATE_DIR/$inst
pidfile=$dir/registry.pid
logfile=$dir/registry.log
config=$dir/config.yml

answering() {
    local creds=()
    [[ $auth == 1 ]] && creds=(-u "$AUTH_REGISTRY_USER:$AUTH_REGISTRY_PASS")
    curl -fsS -m 2 "${creds[@]}" "http://$addr/v2/" >/dev/null 2>&1
}
# PID of our docker-registry: from the pid file, else (stale/missing pid file) the process
# whose full command line is exactly ours (the config path is unique to this instance).
live_pid() {
    local pid
    pid=$(cat "$pidfile" 2>/dev/null) || pid=""
    if [[ -n $pid ]] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q "docker-registry serve $config"; then
        echo "$pid"
    else
        pgrep -o -x -f "docker-registry serve $config"
    fi
}

write_config() {
    install -d -m 0755 "$dir" "$dir/storage"
    local auth_section=""
    if [[ $auth == 1 ]]; then
        # bcrypt (-B) is the only hash distribution accepts. Regenerated each start: harmless.
        htpasswd -Bbn "$AUTH_REGISTRY_USER" "$AUTH_REGISTRY_PASS" >"$dir/htpasswd"
        auth_section="auth:
  htpasswd:
    realm: slipway-test
    path: $dir/htpasswd"
    fi
    cat >"$config" <<EOF
version: 0.1
log:
  level: info
  fields:
    service: $inst
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: $addr
  headers:
    X-Content-Type-Options: [nosniff]
$auth_section
EOF
}

start() {
    if answering; then
        log "$inst already answering on $addr"
        return 0
    fi
    require_root
    if pid=$(live_pid); then die "$inst pid $pid is running but $addr does not answer; see $logfile"; fi
    write_config
    # Own session so it survives the caller and is not hit by the terminal's signals.
    # Non-interactive bash puts `&` jobs in its own process group, so setsid does not fork
    # and $! is the registry's PID.
    setsid docker-registry serve "$config" </dev/null >>"$logfile" 2>&1 9>&- &
    echo $! >"$pidfile"
    for _ in $(seq 1 60); do
        if answering; then
            log "$inst started on $addr (pid $(cat "$pidfile"), log $logfile)"
            return 0
        fi
        live_pid >/dev/null || { tail -n 20 "$logfile" >&2; die "$inst exited during start-up"; }
        sleep 0.25
    done
    tail -n 20 "$logfile" >&2
    die "$inst did not answer on http://$addr/v2/ within 15 s"
}

stop() {
    local pid
    if ! pid=$(live_pid); then
        rm -f "$pidfile"
        log "$inst not running (no live pid in $pidfile)"
        return 0
    fi
    kill "$pid"
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$pidfile"
    log "$inst stopped (pid $pid)"
}

case $action in
    start*) start ;;
    stop*) stop ;;
    status*)
        if answering; then
            echo "$inst: answering on $addr (pid $(live_pid || echo '?'))"
        else
            echo "$inst: not answering on $addr"
            exit 1
        fi
        ;;
esac
