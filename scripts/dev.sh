#!/usr/bin/env bash
# `make dev`: the local stack and the functions, no AWS account needed.
#   1. .venv with moto, cargo-lambda, cfn-lint (scripts/venv.sh; once, about a minute)
#   2. moto on 127.0.0.1:$MOTO_PORT (default 5005), this checkout's own (scripts/moto.sh)
#   3. one visible `cargo build` of the five functions and the local-stack tool, with a progress
#      line at least every 30 s (scripts/cargo_progress.py). They are built together because
#      that one build leaves every function's `cargo run --bin <name>` (what `cargo lambda
#      watch` runs) with nothing left to compile: the first invocation starts at once.
#   4. the tables, queues, topics and secrets in moto (the local-stack tool), variables in
#      .local/dev.env
#   5. `cargo lambda watch` on 127.0.0.1:$WATCH_PORT (default 9000; scripts/watch.sh), console
#      SMS sender; its output also goes to .local/watch.log (make seed, make send and make demo
#      read it), and the HTTP API of template.yaml on http://127.0.0.1:$LOCAL_API_PORT (default
#      3000), routed to the functions as API Gateway routes them (scripts/local_api.py)
# `--stack-only` stops after step 4 and prints the variables (`make stack`); `--prepare` does
# steps 1-4 without the closing summary, or nothing when `make dev` already runs (`make seed`,
# `make send`, `make demo`). Safe to run twice. Ctrl-C stops step 5; `make stop` stops moto.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
mkdir -p .local
DEV_PID=.local/dev.pid
ENV_FILE=.local/dev.env

# A running `make dev` owns the stack, its ports and .local/dev.env: the tools use it as it is.
dev_running() {
  local pid
  pid=$(cat "$DEV_PID" 2> /dev/null) || return 1
  kill -0 "$pid" 2> /dev/null || return 1
  [ ! -r "/proc/$pid/cmdline" ] || tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q 'scripts/dev.sh'
}
if [ "$mode" = --prepare ] && dev_running; then
  exit 0
fi

started=$(date +%s)
# `--prepare` (make seed, send, demo) says only what takes time: a first build, the venv.
step() { [ "$mode" = --prepare ] || echo "==> $*"; }
took() { local s=$(($(date +%s) - started)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

scripts/venv.sh
export PATH="$PWD/.venv/bin:$PATH"
MOTO_PORT=${MOTO_PORT:-5005}
WATCH_PORT=${WATCH_PORT:-9000}
LOCAL_API_PORT=${LOCAL_API_PORT:-3000}
# The frontend dev server's origins (Vite's default port); CORS and the CSRF origin check use them.
ALLOWED_ORIGINS=${ALLOWED_ORIGINS:-http://localhost:5173,http://127.0.0.1:5173}
API_BASE_PATH=${API_BASE_PATH-/api/v1}

step "moto (local DynamoDB, SQS, SNS, Secrets Manager) on 127.0.0.1:$MOTO_PORT"
endpoint=$(scripts/moto.sh start "$MOTO_PORT")

# The first build compiles about 330 units (crates, build scripts, the six binaries); measured
# on 2 cores: 2 min 49 s, and 3 min 38 s with other builds running beside it (rounded up in
# FIRST_BUILD_MINUTES_2_CORES). Later builds take seconds.
FIRST_BUILD_MINUTES_2_CORES=4
cores=$(nproc 2> /dev/null || getconf _NPROCESSORS_ONLN 2> /dev/null || echo 2)
estimate=$(((FIRST_BUILD_MINUTES_2_CORES * 2 + cores - 1) / cores))
step "cargo build: the five functions and the local-stack tool (debug)"
quiet=()
[ "$mode" != --prepare ] || quiet=(--quiet)
.venv/bin/python scripts/cargo_progress.py ${quiet[@]+"${quiet[@]}"} \
  --note "A first build compiles ~330 crates: about $estimate min on $cores cores; later builds take seconds." \
  -- cargo build --bin opt-in-api --bin verify-api --bin sender --bin delivery-status --bin inbound-sms --bin local-stack

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
  # SMS_METRICS=off make dev: no CloudWatch metric (EMF) lines among the functions' logs.
  if [ -n "${SMS_METRICS:-}" ]; then echo "SMS_METRICS=$SMS_METRICS"; fi
} > "$ENV_FILE.tmp"
set -a; . "$ENV_FILE.tmp"; set +a
step "tables, queues, topics and secrets in moto"
# Built above: `cargo run` only checks that it is up to date.
cargo run --quiet -p integration-tests --bin local-stack >> "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"

if [ "$mode" = --prepare ]; then
  exit 0
fi

if [ "$mode" = --stack-only ]; then
  cat << MSG

Local stack is up (moto at $endpoint, $(took)); variables in $ENV_FILE:
$(sed 's/^/  /' "$ENV_FILE")
\`make stop\` stops moto (and forgets everything in it).
MSG
  exit 0
fi

# Both servers run in process groups of their own (set -m), so Ctrl-C reaches only this script,
# which stops both with TERM (cargo lambda watch then stops the function processes it started).
watch_pid=
api_pid=
stop() {
  trap - INT TERM EXIT
  local pid
  for pid in $api_pid $watch_pid; do kill -TERM -- "-$pid" 2> /dev/null || true; done
  for pid in $api_pid $watch_pid; do wait "$pid" 2> /dev/null || true; done
  rm -f "$DEV_PID"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

step "cargo lambda watch on 127.0.0.1:$WATCH_PORT and the HTTP API on 127.0.0.1:$LOCAL_API_PORT"
for port in "$WATCH_PORT" "$LOCAL_API_PORT"; do
  if ! holder=$(.venv/bin/python scripts/ports.py free "$port"); then
    echo "port $port is already in use by $holder: stop it (another \`make dev\`?), or choose other ports:" >&2
    echo "  WATCH_PORT=9010 LOCAL_API_PORT=3010 make dev" >&2
    exit 1
  fi
done
: > .local/watch.log
set -m
scripts/watch.sh "$WATCH_PORT" "$ENV_FILE" > >(tee -a .local/watch.log) 2>&1 &
watch_pid=$!
.venv/bin/python scripts/local_api.py --port "$LOCAL_API_PORT" --watch-port "$WATCH_PORT" &
api_pid=$!
set +m
.venv/bin/python scripts/ports.py listen "$watch_pid" "$WATCH_PORT" 60
.venv/bin/python scripts/ports.py listen "$api_pid" "$LOCAL_API_PORT" 30
echo $$ > "$DEV_PID"

API="http://127.0.0.1:$LOCAL_API_PORT$API_BASE_PATH"
# A ready curl line: the sample user's preferences, with a token signed by the local stack's key.
if cookie=$(.venv/bin/python scripts/dev_token.py --user u-42 --format cookie 2>&1); then
  curl_line="curl -s $API/notifications/me/sms-preferences/ -b '$cookie'"
else
  curl_line="(no token: $cookie)"
fi
cat << MSG

Ready in $(took). Functions on 127.0.0.1:$WATCH_PORT (cargo lambda watch: it rebuilds a function when
its code changes), the HTTP API on $API, moto at $endpoint.
In a second terminal:
  make seed                        sample user u-42: consent, verified +1415***0123, every toggle on
  make send KIND=battle_invitation  a sample with a fresh request id; prints each record's outcome
  make send                        lists the kinds (sqs-*, sns-delivery-*, sns-inbound-* of events/)
  make token USER=42               a signed access token and curl lines for the HTTP API
  make demo                        the whole story with a new user, step by step
u-42's preferences through the HTTP API (token valid 60 min):
  $curl_line
SMS print here as [CONSOLE SMS] blocks (also in .local/watch.log). Frontend: VITE_API_BASE_URL=$API
(origins allowed: $ALLOWED_ORIGINS). Ctrl-C stops; \`make stop\` then stops moto.

MSG

# Whichever stops first (a crash) stops the other.
wait -n "$watch_pid" "$api_pid" || true
echo "==> a server stopped (see above); stopping the other" >&2
exit 1
