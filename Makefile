# SendPromptly — the two commands of the quick start, and a few more.
#   make up     start the whole local stack in the background; prints where to look
#   make test   run the whole test suite (starts the Kafka and PostgreSQL it needs)
#   make down   stop the local stack and the test services
#   make chaos  the fault-injection suite's long run (4 min of load; docs/reliability.md)
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: up down test venv lint status bench-tools chaos

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,dev]'
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

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(VENV)/bin/mypy sendpromptly common topics store channels api_gateway agents sinks harness bench tests
