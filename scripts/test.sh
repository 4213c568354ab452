#!/usr/bin/env bash
# `make test`: formatting, lints, the template lint, and every test against a moto server
# started here on a free port and stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
export PATH="$PWD/.venv/bin:$PATH"

# The EMF metric lines the handlers print (shared/src/metrics.rs) would land among the test
# results: off here unless asked for (SMS_METRICS=on make test).
export SMS_METRICS=${SMS_METRICS:-off}
# Builds say what they are doing at least every 30 s (scripts/cargo_progress.py).
progress() { local note=$1; shift; .venv/bin/python scripts/cargo_progress.py --note "$note" -- "$@"; }

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy --workspace --all-targets -- -D warnings"
progress "A first run checks ~390 crates: about 3 min on 2 cores; later runs take seconds." \
  cargo clippy --workspace --all-targets -- -D warnings
echo "==> cfn-lint template.yaml"
cfn-lint template.yaml
echo "==> unit tests of the local tools (scripts/test_*.py: local API, tokens, build progress, ports, samples)"
.venv/bin/python -m unittest discover -s scripts -p 'test_*.py'

# A moto of our own, never the one `make dev` may be running.
MOTO_DIR=$(mktemp -d)
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$port" > "$MOTO_DIR/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; rm -rf "$MOTO_DIR"' EXIT
.venv/bin/python scripts/wait_http.py "http://127.0.0.1:$port/moto-api/" 20 || { cat "$MOTO_DIR/moto.log"; exit 1; }
export SMS_TEST_MOTO_URL="http://127.0.0.1:$port"

echo "==> cargo test: building the tests"
progress "A first build compiles ~380 crates: about 4 min on 2 cores; later builds take seconds." \
  cargo test --workspace --no-run
echo "==> cargo test (moto at $SMS_TEST_MOTO_URL; fault injection and load tests take about 2 min)"
cargo test --workspace --quiet

echo "==> contract test: the web app's HTTP client against the local API (tests/contract)"
scripts/contract_test.sh
