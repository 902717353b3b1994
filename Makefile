# alweb: `make run` (the main job on embedded defaults) and `make test` (every test) on a bare machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run demo test lint fmt bench install ls-venv services migrate clean browser-deps

install: $(STAMP)

# Installs only what is missing: the stamp is newer than the requirement files once they are installed.
$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt -c constraints.txt
	touch $(STAMP)

# Label Studio pins its own Django: it gets a virtualenv of its own, never the app's.
ls-venv: $(STAMP)
	$(PY) -m devtools.labelstudio.server install

services:
	./scripts/ensure_services.sh

# Browser tests drive Debian's chromium (Playwright's own browser download does not work here); installed once.
browser-deps:
	@test -x /usr/bin/chromium || { sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); $$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

run: $(STAMP) ls-venv
	$(PY) -m alweb.run

# Unattended simulation: the default strategy against random sampling, 3 seeds, through the real Label Studio;
# report in var/reports/, last line RESULT {...}. DEMO_ARGS="--seeds 1 --cycles 2" for a quick look.
demo: $(STAMP) ls-venv
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py demo $(DEMO_ARGS)

# A fresh test database every run: CI runs on the machine's Postgres as a session left it, and a test database
# reused from a run killed mid-way (committed rows from a transactional test) fails unrelated tests.
PYTEST_ARGS ?= --create-db
test: $(STAMP) ls-venv services browser-deps
	$(PY) manage.py makemigrations --check --dry-run --settings=alweb.settings.test
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy alweb campaigns integrations models_registry engine devtools
	$(VENV)/bin/lint-imports

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: $(STAMP) ls-venv services
	$(PY) bench/ingest.py --quick
	$(PY) bench/selection.py
	$(PY) bench/scoring.py --quick
	$(PY) bench/ls_sync.py --quick
	$(PY) bench/learning.py --quick

clean:
	rm -rf $(VENV) var/alweb.sqlite3
