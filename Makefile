# The two commands of the README, and a few helpers. Everything installs itself
# (a project-local .venv for moto, cargo-lambda and cfn-lint).
.PHONY: dev test stop stack lint fmt demo build token seed send reset-limits

## make dev: local stack (moto + tables + queues + secrets), `cargo lambda watch`, console SMS
## sender, and the HTTP API of template.yaml on http://127.0.0.1:3000/api/v1 (scripts/local_api.py).
dev:
	@scripts/dev.sh

## make test: fmt, clippy, cfn-lint and all tests against a private moto server.
test:
	@scripts/test.sh

## make stack: only the local stack (moto with tables, queues, topics); prints its variables.
stack:
	@scripts/dev.sh --stack-only

## make token USER=42: a fresh access token (signed with the local stack's key) and CSRF pair for
## user USER, as ready curl lines; FORMAT=token|cookie|json for other forms. Needs `make stack`.
# USER is also the login name in the environment: only a USER given on the command line counts.
TOKEN_USER := $(if $(filter command line,$(origin USER)),$(USER),42)
token:
	@scripts/venv.sh
	@.venv/bin/python scripts/dev_token.py --user '$(TOKEN_USER)' $(if $(filter command line,$(origin FORMAT)),--format '$(FORMAT)')

## make stop: stop the local moto server started by `make dev` / `make stack` (and forget its data).
stop:
	@scripts/moto.sh stop

## make seed: the samples' user u-42 ready to receive (consent, verified +1 415 555 0123, every
## category on, a time zone where it is daytime), through the local API; idempotent.
seed:
	@scripts/dev.sh --prepare
	@.venv/bin/python scripts/seed.py $(if $(filter command line,$(origin USER)),--user '$(USER)')

## make send KIND=battle_invitation [ID=...]: a sample of events/ with a fresh id through the
## functions, and each record's outcome (sent / suppressed and why / deferred until ...).
## `make send` alone lists the kinds.
send:
	@scripts/dev.sh --prepare
	@.venv/bin/python scripts/send.py '$(KIND)' $(if $(ID),--id '$(ID)') $(if $(filter command line,$(origin USER)),--user '$(USER)')

## make reset-limits: empty the local verification windows (429s) and send counters (daily_cap).
reset-limits:
	@.venv/bin/python scripts/reset_limits.py

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

## make build: release zips (arm64) of the five functions in target/lambda/*/bootstrap.zip, with sizes.
build:
	@scripts/build.sh

## make demo: the whole story (opt in, verify, send, receipt, STOP, suppressed) on the local stack,
## beside a running `make dev` or on its own; any number of times (a new user and number each run).
demo:
	@scripts/dev.sh --prepare
	@PATH="$(CURDIR)/.venv/bin:$$PATH" .venv/bin/python scripts/demo.py

.PHONY: bench bench-quick

## make bench: cold start, memory, sender throughput and pacing, the sender against a Python
## peer, API latency, segments per kind, sizes; one table
## in bench/RESULTS.md (docs/bench.md). Takes about 10 minutes: the pacing run alone sends
## 1,000 messages at 3 per second (5.5 min). Not part of `make test`.
bench:
	@bench/run.sh

## make bench-quick: the same, shorter (60 messages at 3/s, 5 starts per binary); writes
## target/bench/RESULTS.quick.md and leaves bench/RESULTS.md alone.
bench-quick:
	@bench/run.sh --quick

.PHONY: fuzz

## make fuzz: build the cargo-fuzz targets of fuzz/ (stable toolchain, RUSTC_BOOTSTRAP=1) and
## run each for FUZZ_SECONDS (default 20) from its seed corpus (docs/fuzz.md). The first build
## takes about 15 minutes. Not part of `make test`.
fuzz:
	@scripts/fuzz.sh
