#!/usr/bin/env bash
# `make test`: formatting, lints, the template lint, and every test against a moto server
# started here on a free port and stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "==> cfn-lint template.yaml"
cfn-lint template.yaml
echo "==> unit tests of the local tools (scripts/test_*.py: local API, tokens)"
.venv/bin/python -m unittest discover -s scripts -p 'test_*.py'

# A moto of our own, never the one `make dev` may be running.
MOTO_DIR=$(mktemp -d)
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$port" > "$MOTO_DIR/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; rm -rf "$MOTO_DIR"' EXIT
.venv/bin/python scripts/wait_http.py "http://127.0.0.1:$port/moto-api/" 20 || { cat "$MOTO_DIR/moto.log"; exit 1; }
export SMS_TEST_MOTO_URL="http://127.0.0.1:$port"

echo "==> cargo test (moto at $SMS_TEST_MOTO_URL)"
cargo test --workspace --quiet

echo "==> contract test: the web app's HTTP client against the local API (tests/contract)"
scripts/contract_test.sh
