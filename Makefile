# shopops — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
LOCK := requirements.lock
PYTEST_ARGS ?=

.PHONY: help run test lint format bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-8s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The stamps make re-runs reuse the venv: pip runs again only when the dependencies change.
$(VENV)/.installed-run: pyproject.toml $(LOCK) | $(PY)
	$(PIP) install --quiet --constraint $(LOCK) --editable .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(LOCK) | $(PY)
	$(PIP) install --quiet --constraint $(LOCK) --editable ".[dev]"
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run ## Create the venv, install, seed a demo world (first time) and start the platform on :8000
	$(VENV)/bin/shopops up

test: $(VENV)/.installed-dev ## Install test dependencies and run the whole suite
	@bash scripts/ensure-system-deps.sh
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

format: $(VENV)/.installed-dev ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix src tests bench
	$(VENV)/bin/ruff format src tests bench

bench: $(VENV)/.installed-dev ## Run every benchmark in bench/ (figures beside same-run baselines)
	$(PY) bench/run_all.py

clean: ## Remove the venv, the demo data directory and caches
	rm -rf $(VENV) .shopops .pytest_cache .mypy_cache .ruff_cache build dist src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
