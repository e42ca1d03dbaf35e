#!/bin/sh
# The hub image's roles. Every manifest (compose, Kubernetes) names a role, never a command,
# so a command changes here and nowhere else.
set -eu
role="${1:-web}"
[ "$#" -gt 0 ] && shift

case "$role" in
  web)
    exec gunicorn --config /app/deploy/docker/gunicorn.conf.py pollen.wsgi:application "$@" ;;
  migrate)
    # One-shot, before each rollout. Migrations must stay backwards compatible with the
    # running release (docs/operations.md, "Upgrades").
    exec python /app/manage.py migrate --noinput "$@" ;;
  worker)
    # The hub's own Celery queue (hub.default). No torch here.
    exec celery --app pollen.celery worker --queues hub.default --loglevel "${POLLEN_LOG_LEVEL:-INFO}" \
      --without-gossip --without-mingle "$@" ;;
  clock)
    # The hub's periodic work (re-queuing lapsed leases, cross-site rounds): one replica.
    exec python /app/manage.py clock "$@" ;;
  clock-health)
    # Liveness: the clock touched its heartbeat file lately.
    exec python /app/manage.py clock --check "$@" ;;
  check)
    exec python /app/manage.py check --deploy --fail-level WARNING "$@" ;;
  manage)
    exec python /app/manage.py "$@" ;;
  backup)
    exec /app/scripts/backup.sh "$@" ;;
  restore)
    exec /app/scripts/restore.sh "$@" ;;
  *)
    echo "hub-entrypoint: unknown role '$role' (web, migrate, worker, clock, clock-health, check, manage, backup, restore)" >&2
    exit 64 ;;
esac
