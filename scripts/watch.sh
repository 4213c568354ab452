#!/usr/bin/env bash
# `cargo lambda watch` as `make dev` and `make demo` run it: scripts/watch.sh PORT ENV_FILE
#   * every function on 127.0.0.1:PORT, its environment from ENV_FILE (.local/dev.env);
#   * RUST_LOG (in ENV_FILE) is for the functions, not for cargo-lambda itself: with RUST_LOG=info
#     in its own environment cargo-lambda logs its file-watcher's actions and the whole
#     environment of each function it spawns ("spawning command ... AWS_ACCESS_KEY_ID=...");
#   * functions run through `env -u AWS_LAMBDA_MAX_CONCURRENCY` (cargo's runner setting, which
#     changes nothing that is built): cargo-lambda sets that variable (it belongs to Lambda
#     Managed Instances) for every function, and lambda_runtime then warns at each start that its
#     `concurrency-tokio` feature is off. Deployed functions run on standard Lambda, where the
#     variable is never set, so they neither see it nor need the feature.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:?usage: scripts/watch.sh PORT ENV_FILE}
env_file=${2:?usage: scripts/watch.sh PORT ENV_FILE}
export PATH="$PWD/.venv/bin:$PATH"
unset RUST_LOG
exec cargo lambda watch -A 127.0.0.1 -P "$port" --env-file "$env_file" \
  --config "target.'cfg(all())'.runner=['env', '-u', 'AWS_LAMBDA_MAX_CONCURRENCY']"
