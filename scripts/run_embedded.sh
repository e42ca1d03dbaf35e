#!/usr/bin/env bash
# The embedded default: SQLite, local storage per site, an SQLite broker and one agent for every site.
# No PostgreSQL, Redis or S3 server is needed. Usage: scripts/run_embedded.sh [HOST] [PORT]
set -euo pipefail
HOST="${1:-127.0.0.1}"
PORT="${2:-8000}"
cd "$(dirname "$0")/.."
export POLLEN_ENV=embedded
export POLLEN_PUBLIC_URL="http://$HOST:$PORT"
export PYTHONPATH="$PWD/platform:$PWD/workers${PYTHONPATH:+:$PYTHONPATH}"
unset DATABASE_URL CELERY_BROKER_URL CELERY_RESULT_BACKEND REDIS_URL
VAR="${POLLEN_VAR_DIR:-$PWD/var}"
mkdir -p "$VAR"
# The state folder holds the install's secrets, the database and demo passwords: ours alone.
umask 077

python manage.py migrate --noinput -v0
python manage.py collectstatic --noinput -v0
python manage.py seed_demo ${POLLEN_DEMO_PASSWORD:+--password "$POLLEN_DEMO_PASSWORD"} | tee "$VAR/demo-credentials.txt"

echo
echo "Pollen is running at $POLLEN_PUBLIC_URL  (API docs: $POLLEN_PUBLIC_URL/api/v1/docs/)"
echo "Logs: $VAR/hub.log, $VAR/clock.log and $VAR/agent.log. Press Ctrl-C to stop."
# The supervisor restarts whichever process dies (with backoff, logged here) and leaves the others
# running: an agent that crashes must not take the hub down with it. The clock does the hub's
# periodic work (re-queuing lapsed work, cross-site rounds); see docs/architecture.md.
exec python scripts/supervise.py --state-dir "$VAR" \
  --service "hub=gunicorn pollen.wsgi:application --bind $HOST:$PORT --workers 2 --threads 4 --timeout 120 --keep-alive 30 --access-logfile -" \
  --service "clock=python manage.py clock" \
  --service "agent=python -m pollen_agent worker --config $(printf %q "$VAR/agent.json")"
