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
echo "==> creating $VENV (moto, cargo-lambda, cfn-lint from PyPI)"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
echo "$want" > "$STAMP"
