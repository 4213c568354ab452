#!/usr/bin/env bash
# `make fuzz`: builds every cargo-fuzz (libFuzzer) target of fuzz/ and runs each for a short,
# bounded time (FUZZ_SECONDS, default 20) from its seed corpus. Not part of `make test`.
#
# Only the stable toolchain is needed: cargo-fuzz's nightly-only flags are let through with
# RUSTC_BOOTSTRAP=1, and `--sanitizer none` avoids -Zsanitizer (AddressSanitizer needs a
# nightly std; our code is safe Rust, so panics and failed assertions are what we look for).
# cargo-fuzz is installed once from crates.io into .local/cargo-fuzz (ignored).
#
#   scripts/fuzz.sh                  every target, FUZZ_SECONDS each
#   scripts/fuzz.sh phone keywords   only these
#   FUZZ_SECONDS=300 scripts/fuzz.sh send_request
#
# A crash leaves its input in fuzz/artifacts/<target>/ and fails the script; reproduce it
# with `RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none <target> <file>` in fuzz/.
# New inputs libFuzzer finds go to fuzz/target/corpus/<target> (ignored), never into the
# committed seeds of fuzz/corpus/<target>.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
export RUSTC_BOOTSTRAP=1
export PATH="$PWD/.local/cargo-fuzz/bin:$PATH"

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION into .local/cargo-fuzz"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked --root .local/cargo-fuzz
fi

cd fuzz
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

# The first build compiles the dependency tree (sms-core only, no AWS SDK) with coverage
# instrumentation: about 5 minutes on 2 busy cores; later builds take seconds.
echo "==> cargo fuzz build (${#targets[@]} targets)"
cargo fuzz build --sanitizer none

failed=()
for target in "${targets[@]}"; do
    echo "==> fuzz $target for ${FUZZ_SECONDS}s"
    mkdir -p "target/corpus/$target"
    if ! cargo fuzz run --sanitizer none "$target" "target/corpus/$target" "corpus/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 > "target/fuzz-$target.log" 2>&1; then
        failed+=("$target")
        tail -40 "target/fuzz-$target.log"
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "target/fuzz-$target.log" || true
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/target/fuzz-*.log)"
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${FUZZ_SECONDS}s each without a crash"
