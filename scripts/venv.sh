#!/usr/bin/env bash
# Creates (once) the project-local virtualenv with the local tools from PyPI:
# moto (local DynamoDB/SQS/SNS), cargo-lambda (watch/invoke/build) and cfn-lint.
# Idempotent: a stamp file records the requirements it was built from. `--bench` also installs
# the Python peer of `make bench` (scripts/requirements-bench.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
REQ=scripts/requirements-dev.txt
STAMP="$VENV/.requirements.sha"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  [ "${1:-}" = --bench ] || exit 0
else
  echo "==> creating $VENV (moto, cargo-lambda, cfn-lint, zig from PyPI; about a minute, once)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  # Not --quiet: pip names each package as it goes, so a slow download does not look like a hang.
  "$VENV/bin/pip" install --disable-pip-version-check --progress-bar off -r "$REQ" |
    awk '/^Collecting/ { print "    collecting " $2; fflush() }
         /^Installing/ { print "    installing them"; fflush() }
         /^Successfully/ { print "    installed"; fflush() }'
  echo "$want" > "$STAMP"
fi
# --bench: also the benchmark's Python peer (scripts/requirements-bench.txt), with its own stamp.
if [ "${1:-}" = --bench ]; then
  BENCH_REQ=scripts/requirements-bench.txt
  want=$(sha256sum "$BENCH_REQ" | cut -d' ' -f1)
  if [ "$(cat "$VENV/.requirements-bench.sha" 2>/dev/null)" != "$want" ]; then
    echo "==> installing the benchmark's Python peer into $VENV (Powertools, awslambdaric)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$BENCH_REQ"
    echo "$want" > "$VENV/.requirements-bench.sha"
  fi
fi
