# SendPromptly — the two commands of the quick start, and a few more.
#   make up     start the whole local stack in the background; prints where to look
#   make test   run the whole test suite (starts the Kafka and PostgreSQL it needs)
#   make down   stop the local stack and the test services
#   make chaos  the fault-injection suite's long run (4 min of load; docs/reliability.md)
#   make lock   re-pin every dependency after an edit of pyproject.toml's dependencies
#   make deploy-files   re-render the deploy files' per-process parts after an edit of sendpromptly/processes.py
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: up down test venv lint lock status bench-tools chaos deploy-files

# Exactly the versions (and hashes) pinned in requirements/dev.txt, then the project itself on top
# without resolving anything again.
$(STAMP): pyproject.toml requirements/dev.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --require-hashes -r requirements/dev.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
	@bash scripts/stack.sh up

down:
	@bash scripts/stack.sh down

status:
	@bash scripts/stack.sh status

# The deployment tests' tools (promtool, docker-compose), from Debian's packages; then the suite.
test: $(STAMP)
	@bash scripts/test-tools.sh
	$(VENV)/bin/pytest

# The fault-injection suite at full length; `make test` runs the same test for 60 s of load.
chaos: $(STAMP)
	SENDPROMPTLY_CHAOS_SECONDS=240 $(VENV)/bin/pytest tests/chaos -s

# The benchmarks' load generator (wrk, from Debian) and profiler (py-spy, in the dev extra).
bench-tools: $(STAMP)
	@bash scripts/bench-tools.sh

# requirements/runtime.txt: what the image installs; requirements/dev.txt: that plus the test and dev
# extras, at the same versions. tests/unit/test_locked_dependencies.py fails until this is rerun after
# pyproject.toml's dependencies change. `make lock UPGRADE=--upgrade` moves every pin to the newest.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND='make lock' $(VENV)/bin/pip-compile --quiet --generate-hashes \
	--strip-extras --allow-unsafe --no-emit-find-links $(UPGRADE)
# Not on $(STAMP): the lock must be possible when requirements/dev.txt is missing or stale.
lock:
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@test -x $(VENV)/bin/pip-compile || $(VENV)/bin/pip install --quiet 'pip-tools>=7.4'
	$(PIP_COMPILE) --output-file requirements/runtime.txt pyproject.toml
	$(PIP_COMPILE) --extra test --extra dev --constraint requirements/runtime.txt \
		--output-file requirements/dev.txt pyproject.toml

# Each sink's Kubernetes workload, compose service and SendPromptlySinkDown rule (with its promtool
# cases), and the compose scrape jobs, from sendpromptly/processes.py; tests/test_deployment.py
# fails until this is rerun after an edit there.
deploy-files: $(STAMP)
	$(VENV)/bin/sendpromptly deploy-files

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(VENV)/bin/mypy sendpromptly common topics store channels api_gateway agents sinks harness bench tests
