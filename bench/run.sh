#!/usr/bin/env bash
# `make bench` / `make bench-quick`: builds the five functions, the bare hello-world baseline and
# the harness with the release profile (host target), starts a moto of its own, runs every part
# and writes one markdown table (bench/RESULTS.md; --quick: target/bench/RESULTS.quick.md).
# See docs/bench.md. The full run takes about 10 minutes (the 1,000-message pacing run at
# 3 messages per second alone takes 5.5); --quick about 3.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-}
# --bench: also the Python peer's packages (Powertools, awslambdaric).
scripts/venv.sh --bench
export PATH="$PWD/.venv/bin:$PATH"
FUNCTIONS=(opt-in-api verify-api sender delivery-status inbound-sms)

# Functions first and on their own, exactly as deployed: built together with the harness,
# cargo would unify features with the harness's dependencies.
# Linked as `make build` links them for Lambda: position-dependent (.cargo/config.toml says
# why). The flag goes to this target only (--target), so proc-macros and build scripts,
# which are host libraries, stay position-independent.
HOST_TRIPLE=x86_64-unknown-linux-gnu
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C relocation-model=static"
packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(--package "$f"); done
echo "==> cargo build --release --target $HOST_TRIPLE ${FUNCTIONS[*]}"
cargo build --release --quiet --target "$HOST_TRIPLE" "${packages[@]}"
echo "==> cargo build --release --target $HOST_TRIPLE hello (bare lambda_runtime baseline)"
cargo build --release --quiet --target "$HOST_TRIPLE" --package bench-hello
unset CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS
echo "==> cargo build --release bench (the harness)"
cargo build --release --quiet --package bench

TARGET_DIR=${CARGO_TARGET_DIR:-target}
BENCH="$TARGET_DIR/release/bench"
OUT="$TARGET_DIR/bench"
mkdir -p "$OUT"
rm -f "$OUT"/*.json

# The pacing part's DynamoDB (moto serves too few requests for 100 parts/s): dynoxide (crate
# dynoxide-rs), built once per machine (about 4 minutes), then found installed.
echo "==> cargo install dynoxide-rs (the DynamoDB of bench pacing)"
cargo install --quiet dynoxide-rs --version 3.2.0 --locked --no-default-features \
  --features native-sqlite,http-server,cli \
  --root "$OUT/dynoxide" --target-dir "$OUT/dynoxide-build"

# A moto of our own, never the one `make dev` may be running.
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.venv/bin/python scripts/moto_server.py -H 127.0.0.1 -p "$port" --keep-alive > "$OUT/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT
.venv/bin/python scripts/wait_http.py "http://127.0.0.1:$port/moto-api/" 20 || { cat "$OUT/moto.log"; exit 1; }
export SMS_TEST_MOTO_URL="http://127.0.0.1:$port"

"$BENCH" size
"$BENCH" segments
"$BENCH" probe > "$OUT/probe.stdout"
"$BENCH" coldstart $MODE
"$BENCH" api $MODE > "$OUT/api.stdout"
"$BENCH" sender $MODE > "$OUT/sender.stdout"
"$BENCH" peer $MODE > "$OUT/peer.stdout"
"$BENCH" pacing $MODE > "$OUT/pacing.stdout"
"$BENCH" report $MODE
