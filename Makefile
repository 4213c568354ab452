# The two commands of the README, and a few helpers. Everything installs itself
# (a project-local .venv for moto, cargo-lambda and cfn-lint).
.PHONY: dev test stop stack lint fmt

## make dev: local stack (moto + tables + queues), `cargo lambda watch`, console SMS sender.
dev:
	@scripts/dev.sh

## make test: fmt, clippy, cfn-lint and all tests against a private moto server.
test:
	@scripts/test.sh

## make stack: only the local stack (moto with tables, queues, topics); prints its variables.
stack:
	@scripts/dev.sh --stack-only

## make stop: stop the local moto server started by `make dev` / `make stack`.
stop:
	@scripts/moto.sh stop

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all
