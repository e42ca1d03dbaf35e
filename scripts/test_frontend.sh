#!/usr/bin/env bash
# Dashboard tests: build the SPA, run Vitest, then start a hub on a free port (with whatever database and
# broker the environment names; PostgreSQL and Redis under `make test`), seed the demo sites with
# `manage.py seed_demo`, start a REAL site agent for them beside the hub, and drive Debian's Chromium
# through the whole clinical flow. Screenshots land in test-artifacts/screenshots/ (never committed).
# Stops only the processes it started (the hub by its PID, the agent by its own process group).
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
STARTED=$SECONDS
PY="$(command -v python || true)"
[ -x "$ROOT/.venv/bin/python" ] && [ -z "${VIRTUAL_ENV:-}" ] && [[ "$PY" != "$ROOT/.venv/"* ]] && PY="$ROOT/.venv/bin/python"
ARTIFACTS="$ROOT/test-artifacts"
SHOTS="$ARTIFACTS/screenshots"
CHROMIUM_PATH="${CHROMIUM_PATH:-$(command -v chromium || echo /usr/bin/chromium)}"
export E2E_PASSWORD="${E2E_PASSWORD:-e2e-Pollen-pass-$RANDOM$RANDOM}"
HUB_PID=""
CLOCK_PID=""
AGENT_PID=""
E2E_DATABASE_URL=""
RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/pollen-frontend-tests.XXXXXX")"  # the agent config holds tokens: not in artefacts

stop_pid() {  # stop_pid PID [group]: TERM, wait up to 15 s, then KILL; "group" signals the process group PID leads
  local pid="$1" target="$1"
  [ "${2:-}" = group ] && target="-$1"
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "$target" 2>/dev/null
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "$target" 2>/dev/null || true
}

cleanup() {
  [ -n "$AGENT_PID" ] && stop_pid "$AGENT_PID" group
  [ -n "$CLOCK_PID" ] && stop_pid "$CLOCK_PID"
  [ -n "$HUB_PID" ] && stop_pid "$HUB_PID"
  [ -n "$E2E_DATABASE_URL" ] && "$PY" "$ROOT/scripts/throwaway_db.py" drop "$E2E_DATABASE_URL"
  rm -rf "$RUN_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

summary() { echo "frontend tests: $1 ($2; $((SECONDS - STARTED)) s)"; }
fail() { echo "test_frontend: $*" >&2; summary FAILED "$*"; exit 1; }

[ -x "$CHROMIUM_PATH" ] || fail "Chromium not found at $CHROMIUM_PATH; run 'make chromium' (apt-get install chromium)"
mkdir -p "$SHOTS"
rm -f "$SHOTS"/*.png

echo "== build the dashboard"
( cd frontend && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run build --silent ) \
  || fail "the dashboard did not build"

echo "== component tests (Vitest)"
( cd frontend && npx vitest run --reporter=default )
VITEST_RC=$?

echo "== hub and site agent"
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
BASE_URL="http://127.0.0.1:$PORT"
# A database of its own: a run must never meet the images, people or jobs an earlier run left
# (a reused database once turned an e2e image away as a duplicate of the last run's).
E2E_DATABASE_URL="$("$PY" scripts/throwaway_db.py create "${DATABASE_URL:-}" "$RUN_DIR")" \
  || fail "could not create a database for this run (the PostgreSQL role needs CREATEDB)"
export DATABASE_URL="$E2E_DATABASE_URL"
# The agent config that seed_demo writes points the agent at this hub: set the URL before seeding.
export POLLEN_PUBLIC_URL="$BASE_URL"
"$PY" manage.py migrate --noinput >"$ARTIFACTS/hub-migrate.log" 2>&1 || { cat "$ARTIFACTS/hub-migrate.log"; fail "migrate failed"; }
"$PY" manage.py seed_demo --password "$E2E_PASSWORD" --agent-config "$RUN_DIR/agent.json" >"$ARTIFACTS/hub-seed-demo.log" 2>&1 \
  || { cat "$ARTIFACTS/hub-seed-demo.log"; fail "seed_demo failed"; }
"$PY" manage.py shell <tests/e2e/seed_e2e.py >"$ARTIFACTS/hub-seed-e2e.log" 2>&1 \
  || { cat "$ARTIFACTS/hub-seed-e2e.log"; fail "could not create the e2e outsider"; }
"$PY" manage.py shell <tests/e2e/seed_layout.py >"$ARTIFACTS/hub-seed-layout.log" 2>&1 \
  || { cat "$ARTIFACTS/hub-seed-layout.log"; fail "could not seed the 200-character names for the layout test"; }

# The answer timeout covers presigning while the agent is still checking the demo images.
POLLEN_AGENT_ANSWER_TIMEOUT="${POLLEN_AGENT_ANSWER_TIMEOUT:-20}" POLLEN_LOGIN_RATE=600/min \
  "$PY" manage.py runserver "127.0.0.1:$PORT" --noreload >"$ARTIFACTS/hub.log" 2>&1 &
HUB_PID=$!
deadline=$((SECONDS + 60))
until curl -fsS "$BASE_URL/healthz" >/dev/null 2>&1; do
  kill -0 "$HUB_PID" 2>/dev/null || { tail -40 "$ARTIFACTS/hub.log"; fail "the hub exited while starting"; }
  [ $SECONDS -lt $deadline ] || { tail -40 "$ARTIFACTS/hub.log"; fail "the hub did not answer /healthz within 60 s"; }
  sleep 0.3
done
curl -fsS "$BASE_URL/" | grep -q '/assets/' || fail "the hub does not serve the built dashboard at /"
# The hub's clock: cross-site rounds are combined there, and lapsed work is queued again.
"$PY" manage.py clock --interval 1 >"$ARTIFACTS/clock.log" 2>&1 &
CLOCK_PID=$!

# A real site agent for both demo sites (it imports no Django): its own session, so that stopping its
# process group stops its io and gpu workers too, and nothing else.
(
  unset DJANGO_SETTINGS_MODULE
  export PYTHONPATH="$ROOT/workers" POLLEN_AGENT_HEARTBEAT_SECONDS="${POLLEN_AGENT_HEARTBEAT_SECONDS:-5}"
  export POLLEN_AGENT_IO_CONCURRENCY="${POLLEN_AGENT_IO_CONCURRENCY:-6}" POLLEN_AGENT_NAME="e2e-$PORT"
  exec setsid "$PY" -m pollen_agent worker --config "$RUN_DIR/agent.json"
) >"$ARTIFACTS/agent.log" 2>&1 &
AGENT_PID=$!
sleep 0.2
if [ "$(ps -o pgid= -p "$AGENT_PID" 2>/dev/null | tr -d ' ')" != "$AGENT_PID" ]; then
  fail "the site agent did not start in its own process group"
fi
deadline=$((SECONDS + 120))
until [ "$(grep -c ' ready\.' "$ARTIFACTS/agent.log" 2>/dev/null)" -ge 2 ]; do  # Celery: "celery@io@… ready." ×2
  kill -0 "$AGENT_PID" 2>/dev/null || { tail -40 "$ARTIFACTS/agent.log"; fail "the site agent exited while starting"; }
  [ $SECONDS -lt $deadline ] || { tail -40 "$ARTIFACTS/agent.log"; fail "the site agent's workers were not ready within 120 s"; }
  sleep 0.5
done
echo "hub at $BASE_URL; site agent (pid $AGENT_PID) ready after $((SECONDS - STARTED)) s"

echo "== end-to-end tests (Chromium via playwright-core)"
( cd frontend && E2E_BASE_URL="$BASE_URL" E2E_SCREENSHOTS="$SHOTS" CHROMIUM_PATH="$CHROMIUM_PATH" E2E_AGENT_LOG="$ARTIFACTS/agent.log" \
    node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
      --test-reporter=tap --test-reporter-destination="$ARTIFACTS/e2e.tap" ${E2E_FILES:-e2e/} )  # E2E_FILES: a subset, for quick runs
E2E_RC=$?
kill -0 "$AGENT_PID" 2>/dev/null || { echo "the site agent stopped during the tests:"; tail -30 "$ARTIFACTS/agent.log"; E2E_RC=1; }
kill -0 "$CLOCK_PID" 2>/dev/null || { echo "the hub's clock stopped during the tests:"; tail -30 "$ARTIFACTS/clock.log"; E2E_RC=1; }

tap_count() { sed -nE "s/^# $1 ([0-9]+)$/\1/p" "$ARTIFACTS/e2e.tap" 2>/dev/null | tail -1; }
pass=$(tap_count pass); failed=$(( $(tap_count fail || echo 0) + $(tap_count cancelled || echo 0) )); skipped=$(tap_count skipped)
echo "screenshots: $(ls "$SHOTS"/*.png 2>/dev/null | wc -l) in $SHOTS; logs: $ARTIFACTS/{hub,agent}.log"
status=PASSED
[ "$VITEST_RC" -eq 0 ] && [ "$E2E_RC" -eq 0 ] || status=FAILED
summary "$status" "vitest exit $VITEST_RC; e2e: ${pass:-0} passed, ${failed:-?} failed, ${skipped:-0} skipped"
[ "$status" = PASSED ]
