#!/usr/bin/env bash
# `make build`: release zips of the five functions for Lambda on arm64 (Graviton), built by
# cargo-lambda and cross-linked with zig (PyPI `ziglang`, in .venv), then a size report.
#   target/lambda/<function>/bootstrap.zip
# A zip over ZIP_LIMIT_MIB (default 4) fails the build (binary size is cold-start time);
# ZIP_LIMIT_STRICT=0 only warns. So does a bootstrap that is not position-dependent
# (.cargo/config.toml says why).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/venv.sh
# .venv first on PATH: cargo-lambda finds zig through `python3 -m ziglang` there.
export PATH="$PWD/.venv/bin:$PATH"
FUNCTIONS=(opt-in-api verify-api sender delivery-status inbound-sms)
ZIP_LIMIT_MIB=${ZIP_LIMIT_MIB:-4}
ZIP_LIMIT_STRICT=${ZIP_LIMIT_STRICT:-1}

if command -v rustup >/dev/null 2>&1; then
  rustup target add aarch64-unknown-linux-gnu >/dev/null
fi

packages=()
for f in "${FUNCTIONS[@]}"; do packages+=(--package "$f"); done
echo "==> cargo lambda build --release --arm64 --output-format zip (${FUNCTIONS[*]})"
cargo lambda build --release --arm64 --output-format zip "${packages[@]}"

mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
limit=$((ZIP_LIMIT_MIB * 1024 * 1024))
over=0
echo
printf '%-16s %12s %9s %14s\n' function "zip bytes" MiB "unzipped MiB"
for f in "${FUNCTIONS[@]}"; do
  zip="target/lambda/$f/bootstrap.zip"
  if [ ! -f "$zip" ]; then
    echo "missing $zip" >&2
    exit 1
  fi
  bytes=$(stat -c %s "$zip")
  unzipped=$(.venv/bin/python -c 'import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))' "$zip")
  # Position-dependent, as .cargo/config.toml asks (ELF e_type 2, EXEC; a PIE is 3, DYN):
  # a toolchain or cargo-lambda that dropped the flag would bring back 0.4 ms of relocations.
  e_type=$(.venv/bin/python -c 'import sys, zipfile; print(int.from_bytes(zipfile.ZipFile(sys.argv[1]).read("bootstrap")[16:18], "little"))' "$zip")
  if [ "$e_type" != 2 ]; then
    echo "$zip: bootstrap is not a position-dependent executable (ELF type $e_type; see .cargo/config.toml)" >&2
    exit 1
  fi
  mark=""
  if [ "$bytes" -gt "$limit" ]; then mark="  over ${ZIP_LIMIT_MIB} MiB"; over=1; fi
  printf '%-16s %12d %9s %14s%s\n' "$f" "$bytes" "$(mib "$bytes")" "$(mib "$unzipped")" "$mark"
done
if [ "$over" = 1 ]; then
  echo "warning: some zips are over the ${ZIP_LIMIT_MIB} MiB budget (ZIP_LIMIT_MIB changes it)" >&2
  if [ "$ZIP_LIMIT_STRICT" = 1 ]; then exit 1; fi
fi
