# scanq — two commands do all set-up on a fresh Debian machine with Rust:
#   make run    install what is missing, build, start redis + API + 2 workers, run a demo scan
#   make test   install what is missing, then run every check and test
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test deps test-tools build lint bench bench-fanout compose-check clean-run

run: deps
	$(CARGO) build --release --bins
	./scripts/run.sh

test: deps test-tools
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

# System packages the stack and the tests need (apt-get as root, sudo otherwise).
deps:
	@./scripts/install-deps.sh

# Real MCP clients for the MCP tests, in the git-ignored .tools/ folder.
test-tools:
	@if [ -x scripts/install-test-tools.sh ]; then ./scripts/install-test-tools.sh; fi

# scanq-bench and ../shared/peers/bullmq/run.sh in one run, then one side-by-side table; the
# combined JSON goes to .run/bench/ (git-ignored). scanq-bench flags: make bench BENCH_ARGS="--jobs 20000".
# Not part of `make test`.
bench: deps
	$(CARGO) build --release --workspace
	CARGO="$(CARGO)" python3 scripts/bench-compare.py -- $(BENCH_ARGS)

# Big scans (issue 21): scanq-bench --fanout, then the BullMQ flow equivalent (scripts/bullmq-flow.js,
# with the bullmq that `make bench` installed); side-by-side table, JSON in .run/bench/fanout-latest.json.
bench-fanout: deps
	$(CARGO) build --release --workspace
	CARGO="$(CARGO)" python3 scripts/bench-fanout.py -- $(BENCH_ARGS)

compose-check:
	docker compose config --quiet && echo "docker-compose.yml is valid"

clean-run:
	rm -rf .run
