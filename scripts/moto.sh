#!/usr/bin/env bash
# Local AWS (DynamoDB, SQS, SNS, Secrets Manager) for development: the moto server on 127.0.0.1.
#   scripts/moto.sh start [PORT]   start (or reuse) this checkout's moto, print its URL
#   scripts/moto.sh stop           stop it (its data goes with it: tables, queues, windows)
# State lives in .local/ (pid, port and log), so the commands are idempotent.
#
# "This checkout's moto" is the process whose pid is in .local/moto.pid, still running
# scripts/moto_server.py from this directory, and listening on its port. Something else on the
# port (another checkout's moto, any other server) is never taken for it: `start` refuses the
# port and says which process holds it.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .local
PID_FILE=.local/moto.pid
PORT_FILE=.local/moto.port
LOG=.local/moto.log
PY=.venv/bin/python

# Our moto: the recorded pid lives and runs scripts/moto_server.py from this checkout.
ours() {
  [ -f "$PID_FILE" ] || return 1
  local pid
  pid=$(cat "$PID_FILE")
  kill -0 "$pid" 2> /dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q 'scripts/moto_server.py' || return 1
    [ "$(readlink "/proc/$pid/cwd")" = "$PWD" ] || return 1
  fi
}

forget() { rm -f "$PID_FILE" "$PORT_FILE"; }

case "${1:-}" in
  start)
    scripts/venv.sh
    if ours; then
      port=$(cat "$PORT_FILE")
      if "$PY" scripts/ports.py wait "$(cat "$PID_FILE")" "http://127.0.0.1:$port/moto-api/" 5 2> /dev/null; then
        echo "http://127.0.0.1:$port"
        exit 0
      fi
      echo "moto (pid $(cat "$PID_FILE")) runs but does not answer on port $port; restarting it" >&2
      kill "$(cat "$PID_FILE")" 2> /dev/null || true
    fi
    forget
    port=${2:-5005}
    if [ "$port" = 0 ]; then
      port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    fi
    if ! holder=$("$PY" scripts/ports.py free "$port"); then
      cat >&2 << MSG
moto: port $port on 127.0.0.1 is already in use by $holder,
which is not this checkout's moto (.local/moto.pid). Stop that process, or give this checkout
another port: MOTO_PORT=5015 make dev   (make stack, make demo, make seed read it the same way;
WATCH_PORT and LOCAL_API_PORT move the other two servers).
MSG
      exit 1
    fi
    nohup "$PY" scripts/moto_server.py -H 127.0.0.1 -p "$port" > "$LOG" 2>&1 &
    pid=$!
    echo "$pid" > "$PID_FILE"
    echo "$port" > "$PORT_FILE"
    if ! "$PY" scripts/ports.py wait "$pid" "http://127.0.0.1:$port/moto-api/" 20; then
      echo "moto did not start; the end of $LOG:" >&2
      tail -20 "$LOG" >&2
      kill "$pid" 2> /dev/null || true
      forget
      exit 1
    fi
    echo "http://127.0.0.1:$port"
    ;;
  stop)
    if ours; then
      pid=$(cat "$PID_FILE")
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
      echo "moto stopped (its tables, queues and rate-limit windows are gone; make dev creates them again)" >&2
    fi
    forget
    ;;
  *)
    echo "usage: $0 start [PORT|0] | stop" >&2
    exit 2
    ;;
esac
