# Pollen: `make help` lists the commands. The two that matter: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
VAR := var
HOST ?= 127.0.0.1
PORT ?= 8000

# The real services of the test stack (started by scripts/services.sh, all on 127.0.0.1).
TEST_ENV := POLLEN_ENV=test \
	DATABASE_URL=postgres://pollen:pollen@127.0.0.1:5432/pollen \
	REDIS_URL=redis://127.0.0.1:6379/13 \
	CELERY_BROKER_URL=redis://127.0.0.1:6379/14 \
	CELERY_RESULT_BACKEND=redis://127.0.0.1:6379/15 \
	POLLEN_S3_ENDPOINT=http://127.0.0.1:8333 \
	POLLEN_VAR_DIR=$(CURDIR)/$(VAR)/test

.PHONY: help install frontend chromium services run test test-python test-frontend lint typecheck bench clean

help: ## List the commands
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[web,worker,dev]"
	touch $@

install: $(VENV)/.installed ## Create .venv and install the hub, agent and dev packages

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

frontend: frontend/node_modules/.installed ## Build the dashboard (frontend/dist)
	cd frontend && npm run build

# The schema is made on PostgreSQL, as the tests and production run: an integer column's range
# in it comes from the database (SQLite's is wider).
.PHONY: api-types
api-types: install services frontend/node_modules/.installed ## After changing the API: regenerate the hub's schema and the dashboard's types from it
	$(TEST_ENV) $(PY) manage.py spectacular --fail-on-warn --format openapi-json --file frontend/src/api/openapi.json
	cd frontend && npm run gen:api

chromium: ## Install Debian's Chromium for browser tests (if missing)
	@command -v chromium >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

services: install ## Start PostgreSQL, Redis and SeaweedFS on 127.0.0.1 if not running
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH scripts/services.sh start

run: install frontend ## Run the platform on the embedded default (SQLite, local storage, no servers) with a seeded demo
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH scripts/run_embedded.sh $(HOST) $(PORT)

lint: install ## ruff, mypy, the import rule and the missing-migrations check
	$(VENV)/bin/ruff check platform workers tests bench
	$(VENV)/bin/mypy platform/pollen workers/pollen_contracts workers/pollen_agent
	PYTHONPATH=platform:workers $(VENV)/bin/lint-imports --config pyproject.toml
	$(PY) manage.py makemigrations --check --dry-run >/dev/null || { echo "Missing migrations: run 'python manage.py makemigrations'"; exit 1; }

typecheck: install ## mypy with django-stubs
	$(VENV)/bin/mypy platform/pollen workers/pollen_contracts workers/pollen_agent

test-python: install services
	$(TEST_ENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/pytest $(PYTEST_ARGS)

test-frontend: install services chromium frontend
	$(TEST_ENV) PATH=$(CURDIR)/$(VENV)/bin:$$PATH scripts/test_frontend.sh

test: install services chromium lint ## Install everything, start the real services, run the whole suite
	$(MAKE) test-python
	$(MAKE) test-frontend

# Flags for the segmentation bench alone, e.g. SEGMENTATION_ARGS="--minutes 2 --seeds 2".
SEGMENTATION_ARGS ?=
bench: install services ## Run the benchmarks side by side and print one table (also docs/benchmarks.md)
	$(TEST_ENV) POLLEN_BENCH_SEGMENTATION="$(SEGMENTATION_ARGS)" PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
		$(PY) -m bench $(BENCH_ARGS)

FUZZ_EXAMPLES ?= 50
FUZZ_SEED ?= 16
.PHONY: fuzz
fuzz: install services ## schemathesis, every check, on the whole API as a clinician; prints the totals
	$(TEST_ENV) POLLEN_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) POLLEN_FUZZ_SEED=$(FUZZ_SEED) \
		POLLEN_FUZZ_PHASES=examples,coverage,fuzzing,stateful PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
		$(VENV)/bin/pytest tests/hub/core/test_schema_fuzz.py -q -s -p no:logging --timeout=3600 \
		--basetemp=$(CURDIR)/$(VAR)/fuzz

clean: ## Remove local state (var/), keeping .venv
	rm -rf $(VAR) frontend/dist
