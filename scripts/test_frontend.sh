#!/usr/bin/env bash
# Dashboard tests: build the SPA, run Vitest, then start a hub on a free port (with whatever database
# the environment names; PostgreSQL under `make test`) and drive Debian's Chromium through it.
# Screenshots land in test-artifacts/screenshots/. Stops only the processes it started.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="$(command -v python || true)"
[ -x "$ROOT/.venv/bin/python" ] && [ -z "${VIRTUAL_ENV:-}" ] && [[ "$PY" != "$ROOT/.venv/"* ]] && PY="$ROOT/.venv/bin/python"
ARTIFACTS="$ROOT/test-artifacts"
SHOTS="$ARTIFACTS/screenshots"
CHROMIUM_PATH="${CHROMIUM_PATH:-$(command -v chromium || echo /usr/bin/chromium)}"
export E2E_PASSWORD="${E2E_PASSWORD:-e2e-Pollen-pass-$RANDOM$RANDOM}"
HUB_PID=""

cleanup() {
  if [ -n "$HUB_PID" ] && kill -0 "$HUB_PID" 2>/dev/null; then
    kill "$HUB_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$HUB_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$HUB_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT INT TERM

fail() { echo "test_frontend: $*" >&2; echo "frontend tests: FAILED ($*)"; exit 1; }

[ -x "$CHROMIUM_PATH" ] || fail "Chromium not found at $CHROMIUM_PATH; run 'make chromium' (apt-get install chromium)"
mkdir -p "$SHOTS"
rm -f "$SHOTS"/*.png

echo "== build the dashboard"
( cd frontend && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run build --silent ) \
  || fail "the dashboard did not build"

echo "== component tests (Vitest)"
( cd frontend && npx vitest run --reporter=default )
VITEST_RC=$?

echo "== end-to-end tests (Chromium via playwright-core)"
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
BASE_URL="http://127.0.0.1:$PORT"
"$PY" manage.py migrate --noinput >"$ARTIFACTS/hub-migrate.log" 2>&1 || { cat "$ARTIFACTS/hub-migrate.log"; fail "migrate failed"; }
if "$PY" manage.py help seed_demo >/dev/null 2>&1; then
  "$PY" manage.py seed_demo >"$ARTIFACTS/hub-seed-demo.log" 2>&1 || { cat "$ARTIFACTS/hub-seed-demo.log"; fail "seed_demo failed"; }
fi
"$PY" manage.py shell <tests/e2e/seed_e2e.py || fail "could not create the e2e personas"

POLLEN_PUBLIC_URL="$BASE_URL" POLLEN_AGENT_ANSWER_TIMEOUT="${POLLEN_AGENT_ANSWER_TIMEOUT:-3}" POLLEN_LOGIN_RATE=600/min \
  "$PY" manage.py runserver "127.0.0.1:$PORT" --noreload >"$ARTIFACTS/hub.log" 2>&1 &
HUB_PID=$!
deadline=$((SECONDS + 60))
until curl -fsS "$BASE_URL/healthz" >/dev/null 2>&1; do
  kill -0 "$HUB_PID" 2>/dev/null || { tail -40 "$ARTIFACTS/hub.log"; fail "the hub exited while starting"; }
  [ $SECONDS -lt $deadline ] || { tail -40 "$ARTIFACTS/hub.log"; fail "the hub did not answer /healthz within 60 s"; }
  sleep 0.3
done
curl -fsS "$BASE_URL/" | grep -q '/assets/' || fail "the hub does not serve the built dashboard at /"

( cd frontend && E2E_BASE_URL="$BASE_URL" E2E_SCREENSHOTS="$SHOTS" CHROMIUM_PATH="$CHROMIUM_PATH" \
    node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
      --test-reporter=tap --test-reporter-destination="$ARTIFACTS/e2e.tap" e2e/ )
E2E_RC=$?

tap_count() { sed -nE "s/^# $1 ([0-9]+)$/\1/p" "$ARTIFACTS/e2e.tap" 2>/dev/null | tail -1; }
pass=$(tap_count pass); failed=$(( $(tap_count fail || echo 0) + $(tap_count cancelled || echo 0) )); skipped=$(tap_count skipped)
echo "screenshots: $(ls "$SHOTS"/*.png 2>/dev/null | wc -l) in $SHOTS"
status=PASSED
[ "$VITEST_RC" -eq 0 ] && [ "$E2E_RC" -eq 0 ] || status=FAILED
echo "frontend tests: $status (vitest exit $VITEST_RC; e2e: ${pass:-0} passed, ${failed:-?} failed, ${skipped:-0} skipped)"
[ "$status" = PASSED ]
