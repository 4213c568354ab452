#!/usr/bin/env bash
# The contract test (tests/contract/, DESIGN §5): the web app's own HTTP client (axios, snake_case
# on the wire, cookie token + CSRF) plays the user's story against the real HTTP functions:
#   SMS stub (sms-stub) + local stack in moto (local-stack, with the two secrets)
#   + `cargo lambda watch` (Lambda runtime and invoke APIs) running opt-in-api and verify-api
#   + the local API gateway (scripts/local_api.py: one origin, /api/v1, CORS, routes of template.yaml)
#   then `node --test tests/contract/` with the signing key read from moto.
# Run by scripts/test.sh after `cargo test`, reusing its moto (SMS_TEST_MOTO_URL); on its own it
# starts a moto of its own. A few seconds after `cargo test`. Everything it starts is stopped on
# exit; on failure the tails of the stub's, watch's, functions' and gateway's logs are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
export PATH="$PWD/.venv/bin:$PATH"
for tool in node npm; do
  command -v "$tool" > /dev/null || { echo "contract test: $tool not found (Node 20 or later is needed)" >&2; exit 1; }
done
PY=.venv/bin/python
ALLOWED_ORIGIN=http://localhost:5173
BASE_PATH=/api/v1

WORK=$(mktemp -d)
pids=()
ok=0
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  if [ "$ok" != 1 ]; then
    local log
    for log in sms-stub watch opt-in-api verify-api gateway; do
      [ -s "$WORK/$log.log" ] || continue
      echo "---- last lines of the $log log ----"
      tail -n 40 "$WORK/$log.log"
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
# The processes run in sessions of their own, out of reach of the terminal's Ctrl-C: clean up.
trap 'exit 130' INT TERM

# Starts a command in a process group of its own (stopped as a group): start LOG CMD...
start() {
  local log=$1
  shift
  setsid "$@" > "$WORK/$log" 2>&1 < /dev/null &
  pids+=("$!")
}

# Waits up to SECONDS for CMD to succeed while the process started last lives:
# until_up WHAT SECONDS CMD...
until_up() {
  local what=$1 tenths=$(($2 * 10)) pid=${pids[-1]}
  shift 2
  until "$@" 2> /dev/null; do
    kill -0 "$pid" 2> /dev/null || { echo "$what exited" >&2; return 1; }
    tenths=$((tenths - 1))
    [ "$tenths" -gt 0 ] || { echo "$what did not come up in time" >&2; return 1; }
    sleep 0.1
  done
}

port_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1"); }

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

echo "==> contract test: npm ci (tests/contract)"
(cd tests/contract && npm ci --no-audit --no-fund --loglevel=error > /dev/null)

# The functions, the stub and the local stack, built with the features of the test build: after
# `cargo test` only the two functions are linked (seconds). `cargo lambda watch` would build them
# with `cargo run --bin NAME`, which leaves the dev-dependencies' features out (tokio
# `test-util`, ...) and so compiles about 70 crates again: 90 s on 2 cores. Here it serves the
# Lambda runtime and invoke APIs only (--only-lambda-apis) and the functions run from these builds.
echo "==> contract test: building the HTTP functions, the SMS stub and the local stack"
cargo build --quiet --workspace --tests --bin opt-in-api --bin verify-api --bin sms-stub --bin local-stack
bin=$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug

if [ -n "${SMS_TEST_MOTO_URL:-}" ]; then
  moto=$SMS_TEST_MOTO_URL
else
  moto_port=$(free_port)
  start moto.log "$PY" scripts/moto_server.py -H 127.0.0.1 -p "$moto_port"
  moto="http://127.0.0.1:$moto_port"
  "$PY" scripts/wait_http.py "$moto/moto-api/" 20
fi

start sms-stub.log "$bin/sms-stub" --port 0
until_up sms-stub 60 grep -q '^SMS_STUB_URL=' "$WORK/sms-stub.log"
SMS_STUB_URL=$(sed -n 's/^SMS_STUB_URL=//p' "$WORK/sms-stub.log" | head -n 1)

AWS_ENDPOINT_URL=$moto AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
  "$bin/local-stack" > "$WORK/stack.sh"
# The functions' environment, unquoted (local-stack quotes its values for the shell).
stack_vars=$(sed -n 's/^\([A-Z_][A-Z0-9_]*\)=.*/\1/p' "$WORK/stack.sh")
ENV_FILE="$WORK/functions.env"
{
  echo "AWS_ENDPOINT_URL=$moto"
  echo "AWS_REGION=us-east-1"
  echo "AWS_ACCESS_KEY_ID=local"
  echo "AWS_SECRET_ACCESS_KEY=local"
  (
    set -a
    # shellcheck source=/dev/null
    . "$WORK/stack.sh"
    for var in $stack_vars; do printf '%s=%s\n' "$var" "${!var}"; done
  )
  echo "SMS_SENDER=eum"
  echo "ORIGINATION_IDENTITY=+18005550100"
  echo "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2=$SMS_STUB_URL"
  echo "ALLOWED_ORIGINS=$ALLOWED_ORIGIN"
  echo "API_BASE_PATH=$BASE_PATH"
  echo "RUST_LOG=warn"
} > "$ENV_FILE"
JWT_SIGNING_KEY_SECRET_ID=$(sed -n 's/^JWT_SIGNING_KEY_SECRET_ID=//p' "$ENV_FILE")
if [ -z "$JWT_SIGNING_KEY_SECRET_ID" ]; then
  echo "local-stack printed no JWT_SIGNING_KEY_SECRET_ID: the functions have no signing key" >&2
  exit 1
fi

watch_port=$(free_port)
# --ignore-changes: no file watching; --disable-cors: CORS is the gateway's and the functions'.
start watch.log cargo lambda watch -A 127.0.0.1 -P "$watch_port" --only-lambda-apis \
  --ignore-changes --disable-cors
# Its port, not an HTTP request: that would log an error about the default function.
until_up "cargo lambda watch" 60 port_open "$watch_port"

# Each function as cargo lambda watch starts it: its environment, the runtime API of its name.
mapfile -t function_env < "$ENV_FILE"
declare -A function_pid
for fn in opt-in-api verify-api; do
  start "$fn.log" env -i PATH="$PATH" HOME="$HOME" "${function_env[@]}" \
    AWS_LAMBDA_FUNCTION_NAME="$fn" AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=4096 \
    AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$watch_port/.rt/$fn" "$bin/$fn"
  function_pid[$fn]=${pids[-1]}
done

gateway_port=$(free_port)
if [ ! -f scripts/local_api.py ]; then
  echo "scripts/local_api.py is missing: no gateway to test through" >&2
  exit 1
fi
start gateway.log env ALLOWED_ORIGINS="$ALLOWED_ORIGIN" API_BASE_PATH="$BASE_PATH" \
  "$PY" scripts/local_api.py --port "$gateway_port" --watch-port "$watch_port"
origin="http://127.0.0.1:$gateway_port"
until_up scripts/local_api.py 30 port_open "$gateway_port"

# Each function answers a request without credentials with 401 once it has started (its cold
# start reads the secrets from moto).
ready() {
  local fn=$1 method=$2 path=$3 code tries=300
  local args=(-X "$method")
  [ "$method" = GET ] || args+=(-H 'content-type: application/json' -d '{}')
  while :; do
    kill -0 "${function_pid[$fn]}" 2> /dev/null || { echo "$fn exited (see its log below)" >&2; return 1; }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "${args[@]}" "$origin$BASE_PATH$path" || true)
    case $code in
      401) return 0 ;;
      000 | 502 | 503 | 504) ;;
      *) echo "$fn: $method $path without credentials answered $code, not 401" >&2; return 1 ;;
    esac
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || { echo "$fn did not answer (last status $code)" >&2; return 1; }
    sleep 0.1
  done
}
ready opt-in-api GET /notifications/sms-opt-in/
ready verify-api POST /notifications/me/phone-verification/

JWT_SIGNING_KEY=$(AWS_ENDPOINT_URL=$moto AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \
  "$PY" -c '
import sys, boto3
sm = boto3.client("secretsmanager", region_name="us-east-1")
print(sm.get_secret_value(SecretId=sys.argv[1])["SecretString"])
' "$JWT_SIGNING_KEY_SECRET_ID")

echo "==> contract test: node --test tests/contract/ (gateway $origin)"
API_ORIGIN=$origin API_BASE_PATH=$BASE_PATH SMS_STUB_URL=$SMS_STUB_URL ALLOWED_ORIGINS=$ALLOWED_ORIGIN \
  JWT_SIGNING_KEY=$JWT_SIGNING_KEY node --test tests/contract/
ok=1
