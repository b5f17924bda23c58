# The task runner: the README's commands are targets here.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck generate check-generated clients test-clients lock bench image image-test dist clean

RUN_STAMP := $(VENV)/.run-installed
# Recipes that call go, node/npm, java/mvn: scripts/toolchains.sh installs what is missing.
TOOLCHAINS = eval "$$(bash scripts/toolchains.sh)" &&

# uv installs (a third of pip's time before `make run` prints its first line); its version
# range is the dev extra's, read from pyproject.toml so that it is written once.
UV := $(BIN)/uv
UV_SPEC = $(shell sed -n 's/^  "\(uv[<>=].*\)",$$/\1/p' pyproject.toml)
UV_INSTALL = $(UV) pip install --quiet --python $(BIN)/python

$(BIN)/python:
	@$(PY) -m venv $(VENV) || { echo "'$(PY) -m venv' failed: install python3-venv (apt-get install python3-venv)" >&2; exit 1; }

$(UV): | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check '$(UV_SPEC)'

# What running needs: the sidecar and its runtime dependencies, none of the dev tools.
$(RUN_STAMP): pyproject.toml VERSION | $(UV)
	$(UV_INSTALL) -e .
	touch $@

# What developing needs: the dev tools and the Python client package as well.
$(STAMP): pyproject.toml clients/python/pyproject.toml VERSION | $(UV)
	$(UV_INSTALL) -e ./clients/python -e '.[dev]'
	touch $(STAMP) $(RUN_STAMP)

## Run the sidecar on its embedded emulator (127.0.0.1:50051 and a Unix socket). With
## ARGS="--config FILE" the file alone decides (its listen, emulator, ...); flags in ARGS still win.
RUN_DEFAULTS = --emulator --listen 127.0.0.1:50051 --listen unix:///tmp/recaptcha-sidecar.sock
run: $(RUN_STAMP)
	$(BIN)/recaptcha-sidecar serve $(if $(findstring --config,$(ARGS)),,$(RUN_DEFAULTS)) $(ARGS)

## Run every test, after installing what the tests need (redis-server, the client toolchains).
test: $(STAMP)
	bash scripts/test.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Regenerate every generated file from proto/.
generate: $(STAMP)
	$(TOOLCHAINS) bash scripts/generate.sh

## Fail when a committed generated file is not what `make generate` produces (new files too).
check-generated: generate
	@if [ -n "$$(git status --porcelain -- clients/ proto/ sidecar/third_party/)" ]; then git status --short -- clients/ proto/ sidecar/third_party/; echo "generated code is stale: run 'make generate' and commit" >&2; exit 1; fi

## Client toolchain dependencies and builds (npm, Go modules, Maven); buf lint, format, breaking.
clients: $(STAMP)
	$(TOOLCHAINS) bash scripts/ci-clients.sh

## Each language's client against a real sidecar on the emulator.
test-clients: $(STAMP)
	$(TOOLCHAINS) $(BIN)/pytest -q -p no:cacheprovider tests/clients

## Build the container image from the Dockerfile: docker or podman when an engine answers and a
## registry is reachable, else buildah on a Debian base made here once (docs/deployment.md).
IMAGE ?= localhost/recaptcha-sidecar:$(shell cat VERSION)
image:
	$(PY) scripts/image.py build --tag $(IMAGE)

## Build a throwaway image and start it as the chart does: the smoke checks of tests/deploy/test_image.py.
image-test: $(STAMP)
	$(BIN)/python scripts/image.py with-image -- $(BIN)/pytest -q -p no:cacheprovider -m image tests/deploy/test_image.py

## Every artifact of VERSION into dist/: the sidecar's and the Python stubs' wheel + sdist, the
## npm tarball, the Java jar + sources jar + pom (as a Maven repository), the Go module zip (as
## a GOPROXY directory). Nothing is published; docs/clients.md shows how to consume each.
dist: $(STAMP)
	$(TOOLCHAINS) bash scripts/dist.sh dist

## Re-resolve the image's locked dependencies (requirements.lock) from pyproject.toml.
lock: $(STAMP)
	bash scripts/lock.sh

## Benchmark the sidecar against its baselines (ghz is installed into .tools/bin on first use);
## writes bench/results/latest.{json,md,png}. ARGS are passed on, e.g. ARGS="--only assess-miss".
bench: $(VENV)/.bench-installed
	bash scripts/bench-deps.sh
	$(TOOLCHAINS) $(BIN)/python -m bench.run $(ARGS)

$(VENV)/.bench-installed: $(STAMP)
	$(UV_INSTALL) -e '.[bench]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist
