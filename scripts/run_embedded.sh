#!/usr/bin/env bash
# The embedded default: SQLite, local storage per site, a filesystem broker and one agent for every site.
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

python manage.py migrate --noinput -v0
python manage.py collectstatic --noinput -v0
python manage.py seed_demo ${POLLEN_DEMO_PASSWORD:+--password "$POLLEN_DEMO_PASSWORD"} | tee "$VAR/demo-credentials.txt"

pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

python -m pollen_agent worker --config "$VAR/agent.json" >"$VAR/agent.log" 2>&1 &
pids+=($!)
gunicorn pollen.wsgi:application --bind "$HOST:$PORT" --workers 2 --threads 4 --timeout 120 --keep-alive 30 \
  --access-logfile - >"$VAR/hub.log" 2>&1 &
pids+=($!)

echo
echo "Pollen is running at $POLLEN_PUBLIC_URL  (API docs: $POLLEN_PUBLIC_URL/api/v1/docs/)"
echo "Logs: $VAR/hub.log and $VAR/agent.log. Press Ctrl-C to stop."
wait -n "${pids[@]}"
