# The two commands a newcomer needs: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export BRIDGE_DATABASE_URL ?= sqlite:///bridge.db
export BRIDGE_RULES ?= rules.yaml

.PHONY: install run test test-env lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Install, migrate the SQLite database and serve the example rules on 127.0.0.1:8080.
run: install
	$(BIN)/incident-bridge check-rules
	$(BIN)/incident-bridge migrate
	$(BIN)/incident-bridge serve

## Lint, format check and type check, start what the tests need (PostgreSQL, a real Alertmanager), run the whole suite.
test: install lint test-env
	$(BIN)/python -m pytest

## ruff (lint and format) and mypy, configured in pyproject.toml.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-env:
	bash tests/setup-test-env.sh

## Benchmarks (results go to bench/RESULTS.md by hand, with date and commit). Needs wrk.
bench: install test-env
	command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; apt-get install -y -qq wrk >/dev/null; }
	PYTHONPATH=. $(BIN)/python bench/release_close.py
	PYTHONPATH=. BRIDGE_HTTP_SERVER=granian $(BIN)/python bench/storm.py
	PYTHONPATH=. BRIDGE_HTTP_SERVER=gunicorn $(BIN)/python bench/storm.py --workload storm
	PYTHONPATH=. $(BIN)/python bench/floor.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache bridge.db bridge.db-wal bridge.db-shm bridge.db-writers.lock
