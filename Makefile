# MeDSLIP developer entry points. On a fresh machine (Python 3.11, Debian) the README's two commands:
#   make serve   set up .venv with `.[serve]` (no torch) and serve the default bundle on 0.0.0.0:8000
#   make test    set up .venv with everything, install the Debian test tools (as root), then
#                ruff + mypy + pytest
# Installs are stamped with a hash of pyproject.toml, so a second run reinstalls nothing until the
# dependencies change.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 0.0.0.0
PORT ?= 8000
# The CPU wheel on local disk; a looser spec would pull a multi-GB CUDA build. Extra pip options (an
# index URL of CPU wheels, say) go in TORCH_PIP_ARGS.
TORCH_VERSION ?= 2.13.0
TORCH_PIP_ARGS ?=
# Seconds per test when pytest-timeout is installed (a hung server must not stall CI).
PYTEST_TIMEOUT ?= 300
PYTEST_ARGS ?=

DEPS_HASH := $(shell sha256sum pyproject.toml | cut -c1-16)
SERVE_STAMP := $(VENV)/.medslip-serve-$(DEPS_HASH).stamp
TEST_STAMP := $(VENV)/.medslip-test-$(DEPS_HASH).stamp

# Tools installed in the venv (hadolint, kubernetes-validate, medslip-*) are found by the tests on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: help serve test lint typecheck pytest system-deps k8s-render compose-config \
	docker-build docker-build-gpu docker-build-bridge clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(SERVE_STAMP): | $(BIN)/python
	$(BIN)/python -m pip install -e '.[serve]'
	rm -f $(VENV)/.medslip-serve-*.stamp
	touch $@

$(TEST_STAMP): | $(BIN)/python
	$(BIN)/python -m pip install 'torch==$(TORCH_VERSION)' $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install -e '.[serve,train,bridge,dev]'
	rm -f $(VENV)/.medslip-test-*.stamp
	touch $@

serve: $(SERVE_STAMP)  ## serve the default bundle of model_store/ on $(HOST):$(PORT)
	MEDSLIP_HOST=$(HOST) MEDSLIP_PORT=$(PORT) $(BIN)/medslip-serve

test: $(TEST_STAMP) system-deps lint typecheck pytest  ## the whole check: install, lint, types, tests

system-deps:  ## Debian tools the tests drive (apt-get as root; skipped politely otherwise)
	bash deploy/install-system-deps.sh

lint: $(TEST_STAMP)  ## ruff
	$(BIN)/ruff check .

typecheck: $(TEST_STAMP)  ## mypy on app/, training/ (pyproject) and scripts/
	$(BIN)/mypy
	$(BIN)/mypy scripts

pytest: $(TEST_STAMP)  ## the test suite; PYTEST_ARGS='tests/deploy -x' narrows it
	timeout_arg=""; \
	if $(BIN)/python -c "import pytest_timeout" 2>/dev/null; then timeout_arg="--timeout=$(PYTEST_TIMEOUT)"; fi; \
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest -q $$timeout_arg $(PYTEST_ARGS)

k8s-render: $(TEST_STAMP)  ## render k8s/overlays/{cpu,gpu} to build/k8s/ (no kubectl needed)
	mkdir -p build/k8s
	$(BIN)/python scripts/render_k8s.py k8s/overlays/cpu > build/k8s/cpu.yaml
	$(BIN)/python scripts/render_k8s.py k8s/overlays/gpu > build/k8s/gpu.yaml

compose-config:  ## validate docker-compose.yml offline
	docker-compose config -q

docker-build:  ## CPU service image medslip:latest-cpu (needs a Docker engine)
	docker build --build-arg VARIANT=cpu --target serve -t medslip:latest-cpu .

docker-build-gpu:  ## GPU service image medslip:latest-gpu (needs a Docker engine)
	docker build --build-arg VARIANT=gpu --target serve -t medslip:latest-gpu .

docker-build-bridge:  ## PACS bridge image medslip-bridge:latest (needs a Docker engine)
	docker build --target bridge -t medslip-bridge:latest .

clean:  ## caches and rendered files (keeps .venv)
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
