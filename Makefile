# One command sets everything up and runs: `make run` (the server) / `make test` (the suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Two installs: what running needs (`make run`), and that plus the dev extra (test
# brokers, linters, type checker) for everything else. The dev one implies the other.
RUN_STAMP := $(VENV)/.kestrel-run-installed
STAMP     := $(VENV)/.kestrel-dev-installed

.PHONY: setup deps bench-deps run test lint typecheck unit bench clean ui ui-check ui-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

setup: $(STAMP)

# The Debian packages the tests need (.ci/system-packages.txt): installed when missing.
deps:
	@.ci/deps

run: $(RUN_STAMP)
	$(BIN)/kestrel server --flows examples/quickstart

lint: setup
	$(BIN)/ruff check flows actors connectors gateway tests benchmarks
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy

unit: setup
	$(BIN)/python -m pytest -q -m "not integration"

test: deps lint typecheck ui-check ui-test
	$(BIN)/python -m pytest -q -ra

BENCH_STAMP := $(VENV)/.kestrel-bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

# The Debian packages the benchmarks add (.ci/bench-packages.txt: redis-server for the
# Celery peer), installed when missing; `make test` does not install them.
bench-deps: deps
	@KESTREL_SYSTEM_PACKAGES=.ci/bench-packages.txt .ci/deps

# The benchmarks (see benchmarks/README.md): servers, Ray, results in benchmarks/results/.
bench: bench-deps $(BENCH_STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# The web UI (gateway/ui): `make ui` rebuilds the committed assets in gateway/ui/dist;
# `make ui-check` rebuilds into a temporary folder and fails if that differs from them.
UI := gateway/ui
UI_DEPS := $(UI)/node_modules/.package-lock.json

$(UI_DEPS): $(UI)/package-lock.json
	cd $(UI) && npm ci --no-audit --no-fund --loglevel=error
	touch $(UI_DEPS)

ui: $(UI_DEPS)
	cd $(UI) && npm run build

ui-check: $(UI_DEPS)
	cd $(UI) && npx tsc --noEmit
	tmp=$$(mktemp -d) && (cd $(UI) && npx vite build --outDir "$$tmp" --emptyOutDir --logLevel warn) \
	  && diff -r "$$tmp" $(UI)/dist && rm -rf "$$tmp" \
	  || { echo "gateway/ui/dist does not match its sources: run 'make ui' and commit"; exit 1; }

ui-test: $(UI_DEPS)
	cd $(UI) && npx vitest run
