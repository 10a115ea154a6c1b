# healthomics-airflow: `make demo` runs the demo, `make test` runs the tests.
# Both create the project-local virtualenv (.venv) on first use; later runs reuse it
# and reinstall only when a requirements/constraints/project file changed.
# Bytecode is compiled at install: every Airflow task is a fresh process that imports Airflow,
# boto3 and the DAG's modules, and where .pyc files are never written (PYTHONDONTWRITEBYTECODE,
# uv's default of not compiling) each of them compiled all of that from source again.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.9
STATE_DIR := .local
# The runtime package (plugins/, the wheel) and the development code (include/, a distribution of
# its own) are installed in editable mode; a new top-level package needs a reinstall.
PACKAGES := $(wildcard plugins/*/__init__.py include/*/__init__.py)

.PHONY: all venv demo up browser stack-smoke test test-unit test-emulator test-integration test-cluster test-browser lint format compat stack-up stack-down stack-status emulator lock clean bench chaos

all: test

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml include/pyproject.toml $(PACKAGES)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -r requirements.txt -r requirements-dev.txt -c constraints.txt
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e . -e include
	@$(BIN)/python -m compileall -q plugins include dags
	@touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m healthomics_demo

# The Airflow UI on this machine, with the local stack and the demo flowcell; Ctrl-C stops it.
up: $(STAMP)
	$(BIN)/python -m healthomics_demo.up

# Debian's Chromium for the browser test (tests/integration/test_browser.py skips without it).
browser:
	@if [ -x /usr/bin/chromium ] || command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser test ..."; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
			|| echo "chromium could not be installed: the browser test will be skipped"; \
	else echo "no chromium, and installing it needs root and apt-get: the browser test will be skipped"; fi

# The local stack alone: a run batch straight against the emulator, no Airflow.
stack-smoke: $(STAMP)
	$(BIN)/python -m local_aws.smoke

# Every tier on the development pins, then the runtime wheel on the newest MWAA package set
# (make compat for that set alone: about 3 minutes once its virtualenv is built).
test: lint browser
	$(BIN)/pytest
	$(BIN)/python -m healthomics_compat --sets newest-mwaa

# One tier each (the markers in pyproject.toml); make test runs them all.
test-unit test-emulator test-integration test-cluster: $(STAMP)
	$(BIN)/pytest -m $(patsubst test-%,%,$@)

test-browser: browser $(STAMP)
	$(BIN)/pytest -m browser

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

stack-up: $(STAMP)
	$(BIN)/python -m local_aws up --state-dir $(STATE_DIR)

stack-down: $(STAMP)
	$(BIN)/python -m local_aws down --state-dir $(STATE_DIR)

stack-status: $(STAMP)
	$(BIN)/python -m local_aws status --state-dir $(STATE_DIR)

emulator: $(STAMP)
	$(BIN)/python -m omics_emulator --port 9100

# Re-resolve the pinned set (needs PyPI); commit constraints.txt afterwards.
# Re-resolve the pinned set after a requirements change (needs only uv, not the old pins).
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile --universal --python-version 3.11 requirements.txt requirements-dev.txt -o constraints.txt

clean:
	rm -rf $(VENV) $(STATE_DIR) .pytest_cache .mypy_cache .ruff_cache

# Flowcells of 96, 1,000 and 384 samples: this project vs the per-run polling baseline
# (about an hour; results in docs/bench/). Not part of `make test`.
bench: $(STAMP)
	$(BIN)/python -m healthomics_bench $(BENCH_ARGS)

# The multi-node deployment (Celery, PostgreSQL, Redis, two workers) under seeded faults: a
# flowcell of 200 samples and 20 landing manifests while components are SIGKILLed, moto and
# the callback receiver go off the network, HealthOmics throttles and fails 5 % of calls.
# At most 20 minutes; prints the figures and writes docs/chaos/results.{json,txt}. Not part
# of `make test` (tests/integration/test_chaos.py runs a reduced, seeded version of it).
chaos: $(STAMP)
	$(BIN)/python -m healthomics_chaos $(CHAOS_ARGS)

# The runtime wheel on Amazon MWAA's package sets and the development pins: a virtualenv per set
# (.compat/, reused while nothing changed), the wheel installed with pip under the set's constraints,
# then the unit tier and the flowcell end to end. SETS=mwaa-3.3.1 runs one; make test runs the newest MWAA set.
compat: $(STAMP)
	$(BIN)/python -m healthomics_compat $(if $(SETS),--sets $(SETS))
