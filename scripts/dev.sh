#!/usr/bin/env bash
# `make dev`: the local stack and the functions, no AWS account needed.
#   1. .venv with moto, cargo-lambda, cfn-lint (scripts/venv.sh)
#   2. moto on 127.0.0.1:$MOTO_PORT (default 5005) with the tables, queues and topics
#   3. `cargo lambda watch` on 127.0.0.1:$WATCH_PORT (default 9000), console SMS sender
# `--stack-only` stops after step 2 (used by `make stack`). Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
export PATH="$PWD/.venv/bin:$PATH"
MOTO_PORT=${MOTO_PORT:-5005}
WATCH_PORT=${WATCH_PORT:-9000}

endpoint=$(scripts/moto.sh start "$MOTO_PORT")
mkdir -p .local
ENV_FILE=.local/dev.env
{
  echo "AWS_ENDPOINT_URL=$endpoint"
  echo "AWS_ACCESS_KEY_ID=local"
  echo "AWS_SECRET_ACCESS_KEY=local"
  echo "AWS_REGION=us-east-1"
  echo "SMS_SENDER=console"
  echo "DEV_AUTH_HEADER=true"
  echo "RUST_LOG=info"
} > "$ENV_FILE.tmp"
set -a; . "$ENV_FILE.tmp"; set +a
echo "==> creating tables, queues and topics in moto at $endpoint"
cargo run --quiet -p integration-tests --bin local-stack >> "$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
set -a; . "$ENV_FILE"; set +a

cat <<MSG

Local stack is up (moto at $endpoint); variables in $ENV_FILE.

HTTP functions (cargo lambda watch, user named by the dev-only x-dev-user-id header):
  curl -s localhost:$WATCH_PORT/lambda-url/opt-in-api/notifications/sms-opt-in/ -H 'x-dev-user-id: u-42'
  curl -s -X POST localhost:$WATCH_PORT/lambda-url/opt-in-api/notifications/sms-opt-in/ -H 'x-dev-user-id: u-42' \\
       -H 'content-type: application/json' -d '{"action":"opt_in","phoneNumber":"+14155550123","timeZone":"America/Los_Angeles"}'
  curl -s -X POST localhost:$WATCH_PORT/lambda-url/verify-api/notifications/me/phone-verification/ -H 'x-dev-user-id: u-42' \\
       -H 'content-type: application/json' -d '{"phoneNumber":"+14155550123"}'
Event functions (in another terminal, while this one runs):
  export PATH="\$PWD/.venv/bin:\$PATH"
  cargo lambda invoke -A 127.0.0.1 sender          --data-file events/sqs-battle-invitation.json
  cargo lambda invoke -A 127.0.0.1 delivery-status --data-file events/sns-delivery-delivered.json
  cargo lambda invoke -A 127.0.0.1 inbound-sms     --data-file events/sns-inbound-stop.json
SMS messages print here as [CONSOLE SMS]. Stop with Ctrl-C, then \`make stop\` to stop moto.

MSG

if [ "${1:-}" = "--stack-only" ]; then
  exit 0
fi
exec cargo lambda watch -A 127.0.0.1 -P "$WATCH_PORT" --env-file "$ENV_FILE"
