#!/usr/bin/env bash
# The README's test command (`make test`) and CI's: installs what the tests need on a fresh
# machine, then lint, type check, generated-code check and every test layer, the container
# image's last.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

# Servers the tests start themselves: a real redis-server on loopback.
if ! command -v redis-server >/dev/null 2>&1; then
  echo "== installing redis-server (apt-get)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# The client toolchains (go, node + npm, java + mvn), installed where missing or too old.
eval "$(bash scripts/toolchains.sh)"
# Toolchain dependencies of the language clients (Go modules, npm, Maven), when present.
if [ -f scripts/ci-clients.sh ]; then
  bash scripts/ci-clients.sh
fi
# Deploy checkers (helm, kubeconform, Kubernetes schemas), pinned, cached under .tools/.
if [ -f scripts/ci-deploy-tools.sh ]; then
  bash scripts/ci-deploy-tools.sh
fi

echo "== ruff"
$BIN/ruff check .
$BIN/ruff format --check .
echo "== mypy"
$BIN/mypy
echo "== import contracts (dependencies point into the core)"
$BIN/lint-imports
echo "== generated code is current"
bash scripts/generate.sh
if [ -n "$(git status --porcelain -- clients/ proto/ sidecar/third_party/)" ]; then
  git status --short -- clients/ proto/ sidecar/third_party/
  echo "generated code is stale: run 'make generate' and commit" >&2
  exit 1
fi
echo "== pytest"
if [ $# -gt 0 ]; then # a selection: as asked (image tests in it build their own image)
  exec $BIN/pytest -q -p no:cacheprovider "$@"
fi
$BIN/pytest -q -p no:cacheprovider -m "not image"
# The container image, last: built from the Dockerfile (without an engine, by buildah on a
# Debian base made once and cached in ~/.cache/recaptcha-sidecar), started as the chart does.
echo "== container image (make image-test)"
make --no-print-directory image-test
