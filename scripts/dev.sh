#!/usr/bin/env bash
# `make dev`: the local stack and the functions, no AWS account needed.
#   1. .venv with moto, cargo-lambda, cfn-lint (scripts/venv.sh)
#   2. moto on 127.0.0.1:$MOTO_PORT (default 5005) with the tables, queues, topics and secrets
#   3. `cargo lambda watch` on 127.0.0.1:$WATCH_PORT (default 9000), console SMS sender; its
#      output also goes to .local/watch.log (scripts/demo.py reads the codes from it)
#   4. the HTTP API of template.yaml on http://127.0.0.1:$LOCAL_API_PORT (default 3000),
#      routed to the functions as API Gateway routes them (scripts/local_api.py)
# `--stack-only` stops after step 2 (used by `make stack`). Safe to run twice. Ctrl-C stops
# 3 and 4; `make stop` stops moto.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
export PATH="$PWD/.venv/bin:$PATH"
MOTO_PORT=${MOTO_PORT:-5005}
WATCH_PORT=${WATCH_PORT:-9000}
LOCAL_API_PORT=${LOCAL_API_PORT:-3000}
# The frontend dev server's origins (Vite's default port); CORS and the CSRF origin check use them.
ALLOWED_ORIGINS=${ALLOWED_ORIGINS:-http://localhost:5173,http://127.0.0.1:5173}
API_BASE_PATH=${API_BASE_PATH-/api/v1}

endpoint=$(scripts/moto.sh start "$MOTO_PORT")
mkdir -p .local
ENV_FILE=.local/dev.env
{
  echo "AWS_ENDPOINT_URL=$endpoint"
  echo "AWS_ACCESS_KEY_ID=local"
  echo "AWS_SECRET_ACCESS_KEY=local"
  echo "AWS_REGION=us-east-1"
  echo "SMS_SENDER=console"
  echo "ALLOWED_ORIGINS=$ALLOWED_ORIGINS"
  echo "API_BASE_PATH=$API_BASE_PATH"
  echo "LOCAL_API_PORT=$LOCAL_API_PORT"
  echo "WATCH_PORT=$WATCH_PORT"
  echo "RUST_LOG=info"
} > "$ENV_FILE.tmp"
set -a; . "$ENV_FILE.tmp"; set +a
echo "==> creating tables, queues, topics and secrets in moto at $endpoint"
cargo run --quiet -p integration-tests --bin local-stack >> "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
set -a; . "$ENV_FILE"; set +a

API="http://127.0.0.1:$LOCAL_API_PORT$API_BASE_PATH"
# A fresh token for user 42, signed with the local stack's key (a secret in moto).
if cookie=$(.venv/bin/python scripts/dev_token.py --user 42 --format cookie 2>&1); then
  csrf=${cookie##*csrftoken=}
  AUTH="-b '$cookie' -H 'X-CSRFToken: $csrf'"
  J="-H 'content-type: application/json'"
  http_lines="  curl -s $API/notifications/sms-opt-in/ $AUTH
  curl -s -X POST $API/notifications/sms-opt-in/ $AUTH $J -d '{\"action\":\"opt_in\"}'
  curl -s $API/notifications/me/sms-preferences/ $AUTH
  curl -s -X POST $API/notifications/me/phone-verification/ $AUTH $J -d '{\"phone_number\":\"+14155550123\"}'
  curl -s -X POST $API/notifications/me/phone-verification/check/ $AUTH $J -d '{\"code\":\"123456\"}'"
else
  http_lines="  (no token: $cookie)"
fi

cat <<MSG

Local stack is up (moto at $endpoint); variables in $ENV_FILE.

HTTP API on http://127.0.0.1:$LOCAL_API_PORT: template.yaml's routes, as API Gateway serves them.
User 42, signed in with the app's own access token (access_token cookie) and a CSRF pair
(csrftoken cookie = X-CSRFToken header), valid for 60 minutes:
$http_lines
  A fresh token: make token USER=42   (FORMAT=token for Authorization: Bearer, FORMAT=json for all)
Frontend developers: run the web app with VITE_API_BASE_URL=$API; its dev server's origin
  must be in ALLOWED_ORIGINS (now $ALLOWED_ORIGINS; set ALLOWED_ORIGINS=... before make dev).
Event functions (in another terminal, while this one runs):
  export PATH="\$PWD/.venv/bin:\$PATH"
  cargo lambda invoke -A 127.0.0.1 -P $WATCH_PORT sender          --data-file events/sqs-battle-invitation.json
  cargo lambda invoke -A 127.0.0.1 -P $WATCH_PORT delivery-status --data-file events/sns-delivery-delivered.json
  cargo lambda invoke -A 127.0.0.1 -P $WATCH_PORT inbound-sms     --data-file events/sns-inbound-stop.json
SMS messages print here as [CONSOLE SMS] (and go to .local/watch.log). The first call of each
function compiles it: give it a minute. Stop with Ctrl-C, then \`make stop\` to stop moto.

MSG

if [ "${1:-}" = "--stack-only" ]; then
  exit 0
fi

# Both servers run in process groups of their own (set -m), so Ctrl-C reaches only this script,
# which stops both with TERM (cargo lambda watch then stops the function processes it started).
watch_pid=
api_pid=
stop() {
  trap - INT TERM EXIT
  local pid
  for pid in $api_pid $watch_pid; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in $api_pid $watch_pid; do wait "$pid" 2>/dev/null || true; done
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

set -m
cargo lambda watch -A 127.0.0.1 -P "$WATCH_PORT" --env-file "$ENV_FILE" > >(tee .local/watch.log) 2>&1 &
watch_pid=$!
.venv/bin/python scripts/local_api.py --port "$LOCAL_API_PORT" --watch-port "$WATCH_PORT" &
api_pid=$!
set +m

# Whichever stops first (a port in use, a crash) stops the other.
wait -n "$watch_pid" "$api_pid" || true
echo "==> a server stopped (see above); stopping the other" >&2
exit 1
