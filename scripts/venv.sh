#!/usr/bin/env bash
# Creates (once) the project-local virtualenv with the local tools from PyPI:
# moto (local DynamoDB/SQS/SNS), cargo-lambda (watch/invoke/build) and cfn-lint.
# Idempotent: a stamp file records the requirements it was built from.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
REQ=scripts/requirements-dev.txt
STAMP="$VENV/.requirements.sha"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
echo "==> creating $VENV (moto, cargo-lambda, cfn-lint, zig from PyPI; about a minute, once)"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
# Not --quiet: pip names each package as it goes, so a slow download does not look like a hang.
"$VENV/bin/pip" install --disable-pip-version-check --progress-bar off -r "$REQ" |
  awk '/^Collecting/ { print "    collecting " $2; fflush() }
       /^Installing/ { print "    installing them"; fflush() }
       /^Successfully/ { print "    installed"; fflush() }'
echo "$want" > "$STAMP"
