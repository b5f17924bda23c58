#!/usr/bin/env bash
# The image's install steps, run by the Dockerfile's build stage and, unchanged, by
# tests/deploy/test_image_install.py: a virtual environment at $1 with exactly the locked
# dependencies (wheels only, hashes checked, so nothing is compiled) and the sidecar's wheel
# (the generated Python stubs inside it) built from the source tree at $2 (default: here). The
# environment gets no pip or setuptools: the build stage's pip installs into it from outside.
set -euo pipefail
VENV=${1:?usage: image-install.sh VENV_DIR [SOURCE_DIR]}
SRC=${2:-$(cd "$(dirname "$0")/.." && pwd)}
PYTHON=${PYTHON:-python3}
WHEELS=$(mktemp -d)
trap 'rm -rf "$WHEELS"' EXIT

"$PYTHON" -m venv --without-pip "$VENV"
pip() { "$PYTHON" -m pip --disable-pip-version-check "$@"; }
pip --python "$VENV/bin/python" install --quiet --no-deps --require-hashes --only-binary=:all: \
  --requirement "$SRC/requirements.lock"
pip wheel --quiet --no-deps --wheel-dir "$WHEELS" "$SRC"
pip --python "$VENV/bin/python" install --quiet --no-deps --no-index "$WHEELS"/*.whl
pip --python "$VENV/bin/python" check
