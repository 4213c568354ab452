#!/usr/bin/env bash
# Local AWS (DynamoDB, SQS, SNS) for development: the moto server on 127.0.0.1.
#   scripts/moto.sh start [PORT]   start (or reuse) moto, print its URL
#   scripts/moto.sh stop           stop it
# State lives in .local/ (pid and log), so the commands are idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .local
PID_FILE=.local/moto.pid
PORT_FILE=.local/moto.port

alive() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

wait_ready() {
  local url=$1
  if ! .venv/bin/python scripts/wait_http.py "$url/moto-api/" 20; then
    echo "moto did not start; see .local/moto.log" >&2
    tail -20 .local/moto.log >&2
    return 1
  fi
}

case "${1:-}" in
  start)
    scripts/venv.sh
    if alive; then
      echo "http://127.0.0.1:$(cat "$PORT_FILE")"
      exit 0
    fi
    port=${2:-5005}
    if [ "$port" = 0 ]; then
      port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    fi
    nohup .venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$port" > .local/moto.log 2>&1 &
    echo $! > "$PID_FILE"
    echo "$port" > "$PORT_FILE"
    wait_ready "http://127.0.0.1:$port" >&2
    echo "http://127.0.0.1:$port"
    ;;
  stop)
    if alive; then kill "$(cat "$PID_FILE")" && echo "moto stopped" >&2; fi
    rm -f "$PID_FILE" "$PORT_FILE"
    ;;
  *)
    echo "usage: $0 start [PORT|0] | stop" >&2
    exit 2
    ;;
esac
