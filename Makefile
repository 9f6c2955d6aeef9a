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

.PHONY: help setup build serve test unit integration lint typecheck validate scan load model clean openapi
.PHONY: load-batch
.PHONY: deploy status rollback changelog bench-monitoring bench-batch bench bench-compare
.PHONY: bench-shadow

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements-dev.txt layers/core/requirements.txt pyproject.toml
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	# The project itself, editable: the `onnxlambda` command (cli/) over the runtime package.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
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

# checkov pins dozens of packages of its own (its own boto3, networkx, ...): a venv of its own.
.venv-scan/.installed: requirements-scan.txt
	$(PYTHON_BOOT) -m venv .venv-scan
	.venv-scan/bin/pip install --quiet --disable-pip-version-check -r requirements-scan.txt
	touch $@

setup: $(VENV)/.installed .venv-sam/.installed .venv-runtime/.installed  ## create the three venvs (dev, sam, runtime)

build: setup  ## sam build: function code, core layer, model layer (MODEL=penguins|diabetes)
	# The shadow challenger's layer reads its model's name from here (layers/challenger/Makefile, issue 15).
	echo "$(CHALLENGER)" > models/.challenger
	$(SAM_ENV) $(SAM) build --cached

serve: build  ## serve the built function over HTTP on 127.0.0.1:$(PORT) under the Lambda emulator
	$(PY) -m devtools.serve --port $(PORT)

validate: setup  ## sam validate --lint (cfn-lint) on template.yaml
	$(SAM) validate --lint

scan: .venv-scan/.installed  ## checkov over template.yaml; findings are fixed or skipped in the template with a reason
	.venv-scan/bin/checkov --file template.yaml --framework cloudformation --compact --quiet --skip-download

load: build  ## longer load test through the local HTTP front (LOAD_SECONDS, LOAD_USERS, LOAD_WORKERS)
	$(PY) -m devtools.load --seconds $${LOAD_SECONDS:-120} --users $${LOAD_USERS:-8} \
		--workers $${LOAD_WORKERS:-2} --max-requests $${LOAD_MAX_REQUESTS:-20000}

load-batch: build  ## many batch files at once under the emulator, every row accounted for (BATCH_LOAD_FILES, _MAX_ROWS, _WORKERS)
	PYTHONPATH=layers/core:cli:. $(PY) -m devtools.batchload --files $${BATCH_LOAD_FILES:-120} --min-rows $${BATCH_LOAD_MIN_ROWS:-2000} \
		--max-rows $${BATCH_LOAD_MAX_ROWS:-20000} --workers $${BATCH_LOAD_WORKERS:-2}

lint: setup  ## ruff (lint + format check)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: setup  ## mypy --strict
	$(PY) -m mypy layers/core/onnxlambda layers/core/lazy_init.py cli/onnxlambda_cli functions devtools models tests bench

unit: setup  ## unit tests only (no build)
	$(PY) -m pytest tests -m "not integration"

test: lint typecheck validate scan build  ## everything CI runs: lint, types, template, build, all tests
	$(PY) -m pytest tests

# Not part of `make test`: timings on a shared machine are for reading, never for asserting.
bench: build  ## benchmark vs same-run baselines under the emulator -> bench/out/report.md (BENCH_QUICK=1: smoke run)
	PYTHONPATH=layers/core:cli:. $(PY) -m bench

model: setup  ## retrain the example models (byte-identical artifacts)
	$(PY) models/penguins/train.py
	$(PY) models/diabetes/train.py

# -- releases (README "Releasing and rolling back") ---------------------------------------------
ENV ?= dev
# The function to inspect or roll back: FUNCTION=name, else the API function of ENV's stack.
RELEASE_TARGET = $(if $(FUNCTION),--function $(FUNCTION),--config-env $(ENV))

deploy: build  ## sam deploy ENV=dev|prod, stamping model version, sha256 and git revision on the new version
# Release safety (issue 15): refuse a model version whose bump is smaller than its contract
# change against what ENV's `live` alias serves (exit 2, the diff table as the reason).
	$(VENV)/bin/onnxlambda diff --require-bump --config-env $(ENV) models/$(MODEL)
	$(SAM) deploy --config-env $(if $(filter dev,$(ENV)),default,$(ENV)) \
		--parameter-overrides "$$($(VENV)/bin/onnxlambda release params --config-env $(ENV) --model $(MODEL))"

status: setup  ## which version and model each alias serves (ENV=dev|prod or FUNCTION=name)
	$(VENV)/bin/onnxlambda release status $(RELEASE_TARGET)

rollback: setup  ## point `live` back: previous version, or TO=<version> (ENV=dev|prod or FUNCTION=name)
	$(VENV)/bin/onnxlambda release rollback $(RELEASE_TARGET) --to $(or $(TO),previous)

changelog: setup  ## CHANGELOG entry for models/$(MODEL) vs OLD=<manifest path or git:REV> [WHY="..."]
	$(VENV)/bin/onnxlambda changelog $(if $(OLD),$(OLD),--initial) models/$(MODEL)/manifest.json $(if $(WHY),--why "$(WHY)")

openapi: setup  ## regenerate models/<name>/openapi.json from the routes + manifests (then bump CONTRACT_VERSION)
	PYTHONPATH=. $(VENV)/bin/onnxlambda openapi  # imports functions/api/app.py for the routes

bench-monitoring: setup  ## latency added to /predict by per-request metrics and data capture (in process)
	PYTHONPATH=layers/core:cli:. $(PY) -m bench.monitoring_overhead

bench-compare: build  ## same-run before/after of the API function: BEFORE=<another sam build dir> (bench/compare.py)
	PYTHONPATH=layers/core:cli:. $(PY) -m bench.compare $(BEFORE) $(BENCH_ARGS)

bench-shadow: build  ## shadow challenger overhead: inline in process and under the emulator, vs scoring from the capture stream (bench/shadow_overhead.py)
	PYTHONPATH=layers/core:cli:. $(PY) -m bench.shadow_overhead $(BENCH_ARGS)

bench-batch: build  ## batch scoring benchmark: rows/s end to end vs bare onnxruntime and the floor; peak memory 1x/10x/100x
	PYTHONPATH=layers/core:cli:. $(PY) -m bench.batch_throughput $(BENCH_ARGS)

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
