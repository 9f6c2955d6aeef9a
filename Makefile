# onnxlambda — the two commands a newcomer needs:
#   make serve    set up, build, and serve the example model on http://127.0.0.1:3000
#   make test     set up, lint, type-check, and run every test (what CI runs)
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PYENV_VERSION := 3.13.0
export SAM_CLI_TELEMETRY := 0
export SAM_CLI_POLL_DELAY := 1

PYTHON_BOOT ?= $(shell command -v python3.13 2>/dev/null || echo python3.13)
VENV := .venv
PY := $(VENV)/bin/python
SAM := .venv-sam/bin/sam
MODEL ?= penguins
PORT ?= 3000
# sam's python builds look for python3.13 on PATH; the dev venv provides it.
SAM_ENV := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHON="$(CURDIR)/$(PY)" MODEL=$(MODEL)

.PHONY: help setup build serve test unit integration lint typecheck validate model clean bench

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt layers/core/requirements.txt
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

.venv-sam/.installed: requirements-sam.txt
	$(PYTHON_BOOT) -m venv .venv-sam
	.venv-sam/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $@

# What the python3.13 Lambda runtime itself provides, and nothing else: the emulator runs the
# built function with this interpreter, so a dependency missing from the layers fails here too.
.venv-runtime/.installed: requirements-runtime.txt
	$(PYTHON_BOOT) -m venv .venv-runtime
	.venv-runtime/bin/pip install --quiet --disable-pip-version-check -r requirements-runtime.txt
	touch $@

setup: $(VENV)/.installed .venv-sam/.installed .venv-runtime/.installed  ## create the three venvs (dev, sam, runtime)

build: setup  ## sam build: function code, core layer, model layer (MODEL=penguins|diabetes)
	$(SAM_ENV) $(SAM) build --cached

serve: build  ## serve the built function over HTTP on 127.0.0.1:$(PORT) under the Lambda emulator
	$(PY) -m devtools.serve --port $(PORT)

validate: setup  ## sam validate --lint (cfn-lint) on template.yaml
	$(SAM) validate --lint

lint: setup  ## ruff (lint + format check)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup  ## mypy --strict
	$(PY) -m mypy layers/core/onnxlambda layers/core/lazy_init.py functions devtools models tests bench

unit: setup  ## unit tests only (no build)
	$(PY) -m pytest tests -m "not integration"

test: lint typecheck validate build  ## everything CI runs: lint, types, template, build, all tests
	$(PY) -m pytest tests

# Not part of `make test`: timings on a shared machine are for reading, never for asserting.
bench: build  ## benchmark vs same-run baselines under the emulator -> bench/out/report.md (BENCH_QUICK=1: smoke run)
	PYTHONPATH=layers/core $(PY) -m bench

model: setup  ## retrain the example models (byte-identical artifacts)
	$(PY) models/penguins/train.py
	$(PY) models/diabetes/train.py

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
