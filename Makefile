# Syscall Playground
#
#   make run     set up everything and serve on http://$(HOST):$(PORT) (default 127.0.0.1:8000)
#   make test    set up everything the tests need, then ruff + pytest (unit, then browser)
#
# The set-up lives in scripts/setup.sh: it installs system packages with apt (as root; otherwise
# it prints the command to run), makes .venv, installs requirements, builds the native extension
# and the front-end assets. Steps keyed on their inputs are skipped while .stamps/ says they are
# current, so a second `make run` starts in about a second.

SHELL := /bin/bash
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000
BENCH ?= bench/[!_]*.py
PYTEST_ARGS ?=
export PYTHON

.DEFAULT_GOAL := help
.PHONY: help run setup setup-test test lint bench clean

help:
	@echo 'make run          set up and serve on http://$(HOST):$(PORT) (HOST=, PORT= to change)'
	@echo 'make test         set up for tests, then ruff and pytest (unit, then browser)'
	@echo 'make setup        install what `make run` needs, without serving'
	@echo 'make setup-test   install what `make test` needs, without testing'
	@echo 'make lint         ruff check .'
	@echo 'make bench        run bench/*.py with the venv Python (BENCH=bench/x.py for one)'
	@echo 'make clean        remove build outputs and stamps (keeps .venv and the database)'

setup:
	@bash scripts/setup.sh run

setup-test:
	@bash scripts/setup.sh test

# LISTEN_HOST tells the settings where the server listens: sign-in is required off loopback.
# `manage.py serve` is daphne with the embedded agent started at once, not at the first request.
run: setup
	exec env LISTEN_HOST='$(HOST)' .venv/bin/python manage.py serve -b '$(HOST)' -p '$(PORT)'

test: setup-test
	@bash scripts/test.sh $(PYTEST_ARGS)

lint: setup-test
	.venv/bin/ruff check .

bench:
	@bash scripts/setup.sh bench
	@shopt -s nullglob; set -e; benches=($(BENCH)); \
	if [ $${#benches[@]} -eq 0 ]; then echo 'no benchmarks match $(BENCH)'; exit 1; fi; \
	for b in "$${benches[@]}"; do echo "==> $$b"; PYTHONPATH='$(CURDIR)' .venv/bin/python "$$b"; done

clean:
	rm -rf .stamps node_modules static/vendor var/test-reports .pytest_cache .ruff_cache
	find sysops -name '*.so' -delete
	rm -rf sysops/native/bin .cache/go
	find . -path ./.venv -prune -o -path ./node_modules -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
