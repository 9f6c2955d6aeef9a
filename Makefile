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
# The samconfig.toml environment a build is stamped for and a deploy goes to (dev = its [default]).
ENV ?= dev
SAM_CONFIG_ENV = $(if $(filter dev,$(ENV)),default,$(ENV))
TEMPLATE ?= template.yaml
BUILD_DIR ?= .aws-sam/build
CACHE_DIR ?= .aws-sam/cache
# sam's python builds look for python3.13 on PATH; the dev venv provides it.
SAM_ENV := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" PYTHON="$(CURDIR)/$(PY)"

.PHONY: help setup build serve test unit integration lint typecheck validate scan load model clean openapi import
.PHONY: load-batch property distributed-compare
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

build: setup  ## sam build + release stamp (MODEL=penguins|diabetes, ENV=dev|prod: whose settings it pins)
	# The model is named INSIDE the layer's ContentUri: `sam build --cached` keys a layer on those
	# files only, so a MODEL variable alone would ship the previously built model (docs/releasing.md).
	echo "$(MODEL)" > models/.selected
	# The shadow challenger's layer reads its model's name from here (layers/challenger/Makefile, issue 15).
	echo "$(CHALLENGER)" > models/.challenger
	$(SAM_ENV) $(SAM) build --cached --template-file $(TEMPLATE) --build-dir $(BUILD_DIR) --cache-dir $(CACHE_DIR)
	# Ready means able to predict: the built layer answers its own golden set (cli/onnxlambda_cli/check.py).
	$(VENV)/bin/onnxlambda check $(BUILD_DIR)/ModelLayer/model
	$(VENV)/bin/onnxlambda release stamp --config-env $(ENV) --model $(MODEL) --build-dir $(BUILD_DIR)

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
	$(PY) -m mypy layers/core/onnxlambda layers/core/lazy_init.py cli/onnxlambda_cli functions devtools models tests bench examples

unit: setup  ## unit tests only (no build)
	$(PY) -m pytest tests -m "not integration"

property: setup  ## the batch line-accounting and range-merge properties over many damaged files (PROPERTY_EXAMPLES, default 5000)
	BATCH_PROPERTY_EXAMPLES=$${PROPERTY_EXAMPLES:-5000} $(PY) -m pytest tests/unit/batch/test_accounting_property.py \
		tests/unit/batch/test_distributed_property.py -q -p no:cacheprovider --hypothesis-show-statistics

# The large-object path (Step Functions Distributed Map, run by the local driver: a test harness)
# against the single path on one big file; docs/batch.md "Measured". Not part of `make test`.
distributed-compare: build  ## large-object path vs single path, byte for byte, under the emulator (COMPARE_ROWS=2000000, COMPARE_WORKERS=2)
	PYTHONPATH=layers/core:cli:. $(PY) -m devtools.distributed_compare --rows $${COMPARE_ROWS:-2000000} \
		--workers $${COMPARE_WORKERS:-2} $(COMPARE_ARGS)

test: lint typecheck validate scan build  ## everything CI runs: lint, types, template, build, all tests
	$(PY) -m pytest tests

# Not part of `make test`: timings on a shared machine are for reading, never for asserting.
bench: build  ## benchmark vs same-run baselines under the emulator -> bench/out/report.md (BENCH_QUICK=1: smoke run)
	PYTHONPATH=layers/core:cli:. $(PY) -m bench

# Your own model: README "Bring your own model", docs/import.md. NAME defaults to the file's name.
import: setup  ## your ONNX export -> models/<name>: SOURCE=model.onnx|mlflow-dir DATA=ref.csv [TARGET=] [NAME=] [ARGS=]
	PYTHONPATH=. $(VENV)/bin/onnxlambda import "$(SOURCE)" --data "$(DATA)" \
		$(if $(TARGET),--target "$(TARGET)") $(if $(NAME),--name "$(NAME)") $(ARGS)

WINE_RELEASED_AT := 2026-12-01T00:00:00Z
model: setup  ## retrain the example models (byte-identical artifacts); models/wine is the README's import
	$(PY) models/penguins/train.py
	$(PY) models/diabetes/train.py
	$(PY) examples/wine/export.py
	$(MAKE) --no-print-directory import SOURCE=examples/wine/model.onnx DATA=examples/wine/reference.csv TARGET=target \
		ARGS="--test examples/wine/test.csv --class-names class_0 class_1 class_2 --created-at $(WINE_RELEASED_AT) \
		--why 'The README quick start: a user-style export (packed input, ZipMap) served as is.'"

# -- releases (docs/releasing.md) ---------------------------------------------------------------
deploy: build  ## build for ENV=dev|prod, check it may go out now (bump, preflight), sam deploy it
	# Release safety (docs/releasing-a-model.md): refuse a model version whose bump is smaller than its
	# contract change against what ENV's `live` alias serves (exit 2, the diff table as the reason).
	$(VENV)/bin/onnxlambda diff --require-bump --config-env $(ENV) models/$(MODEL)
	# preflight refuses while a deployment runs or after a manual rollback (docs/releasing.md) and
	# prints the complete --parameter-overrides (it replaces samconfig's list).
	overrides="$$($(VENV)/bin/onnxlambda release preflight --config-env $(ENV) --template $(BUILD_DIR)/template.yaml)" && \
		$(SAM) deploy --config-env $(SAM_CONFIG_ENV) --template-file $(BUILD_DIR)/template.yaml \
		--parameter-overrides "$$overrides"

status: setup  ## which version and model each alias serves (ENV=dev|prod or FUNCTION=name)
	$(VENV)/bin/onnxlambda release status $(if $(FUNCTION),--function $(FUNCTION),--config-env $(ENV))

rollback: setup  ## point `live` back: previous version, or TO=<version> (ENV=dev|prod or STACK=name)
	$(VENV)/bin/onnxlambda release rollback $(if $(STACK),--stack $(STACK),--config-env $(ENV)) --to $(or $(TO),previous)

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
