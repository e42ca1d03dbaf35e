#!/usr/bin/env bash
# Start the real services the test suite talks to, if they are not running yet.
# Idempotent; binds to 127.0.0.1 only; installs the Debian packages on a fresh machine.
# Usage: scripts/services.sh start|status
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
var="${POLLEN_VAR_DIR:-$repo/var}"
mkdir -p "$var"

PG_USER=pollen
PG_PASSWORD=pollen
PG_DB=pollen

log() { printf '[services] %s\n' "$*" >&2; }

apt_install() {
  if [ "$(id -u)" != "0" ]; then
    log "need root to install $*; run as root or install them yourself"; exit 1
  fi
  if [ -z "${_APT_UPDATED:-}" ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null; _APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() {  # wait_for <seconds> <command...>
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then return 1; fi
    sleep 0.2
  done
}

start_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then log "installing PostgreSQL"; apt_install postgresql; fi
  if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    local version; version="$(ls /etc/postgresql | sort -V | tail -n1)"
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_for 30 pg_isready -h 127.0.0.1 -p 5432 -q || { log "PostgreSQL did not start"; exit 1; }
  fi
  local psql=(psql -v ON_ERROR_STOP=1 -q)
  if [ "$(id -u)" = "0" ]; then psql=(su postgres -c); fi
  run_sql() { if [ "$(id -u)" = "0" ]; then su postgres -c "psql -v ON_ERROR_STOP=1 -qtAc \"$1\""; else psql -h 127.0.0.1 -U postgres -qtAc "$1"; fi; }
  if [ "$(run_sql "SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'")" != "1" ]; then
    run_sql "CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
  fi
  if [ "$(run_sql "SELECT 1 FROM pg_database WHERE datname='$PG_DB'")" != "1" ]; then
    run_sql "CREATE DATABASE $PG_DB OWNER $PG_USER"
  fi
}

start_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then log "installing Redis"; apt_install redis-server; fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting Redis"
    mkdir -p "$var/redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir "$var/redis" --logfile "$var/redis/redis.log" --pidfile "$var/redis/redis.pid"
    wait_for 20 redis-cli -h 127.0.0.1 -p 6379 ping || { log "Redis did not start"; exit 1; }
  fi
}

start_seaweedfs() {
  local code
  code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' http://127.0.0.1:8333/ || true)"
  if [ -n "$code" ] && [ "$code" != "000" ] && [ ! -f "$var/seaweedfs/weed.pid" ]; then
    # Started by this script from another checkout on this machine: same identities, reuse it.
    log "an S3 server already answers on 127.0.0.1:8333; reusing it"
    return 0
  fi
  "$here/seaweedfs.sh" start "$var/seaweedfs"
}

case "${1:-start}" in
  start)
    start_postgres
    start_redis
    start_seaweedfs
    log "PostgreSQL, Redis and SeaweedFS are up on 127.0.0.1"
    ;;
  status)
    pg_isready -h 127.0.0.1 -p 5432 || true
    redis-cli -h 127.0.0.1 -p 6379 ping || true
    "$here/seaweedfs.sh" status "$var/seaweedfs" || true
    ;;
  *) echo "usage: $0 start|status" >&2; exit 2 ;;
esac
