#!/usr/bin/env bash
# Every lower bound in pyproject.toml is a version the tests pass on: install the lowest
# direct versions (`uv pip install --resolution lowest-direct`) into a venv of their own,
# check each direct dependency really sits at its declared floor (a floor the resolver cannot
# reach is false too), then run the unit and integration tests on them. The venv is cached
# outside the clone and rebuilt when pyproject.toml (or the clone's path) changes; uv keeps
# the wheels in its own cache, so a rebuild takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=.venv/bin/uv
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/recaptcha-sidecar"
VENV="$CACHE/lowest-direct"
KEY=$(cat pyproject.toml clients/python/pyproject.toml <(pwd) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.key" 2>/dev/null)" != "$KEY" ]; then
  echo "== lowest direct versions: building $VENV"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  "$UV" venv -q --python "$(readlink -f .venv/bin/python)" "$VENV"
  VIRTUAL_ENV="$VENV" "$UV" pip install -q --resolution lowest-direct \
    -e ./clients/python -e '.[dev]'
  echo "$KEY" > "$VENV/.key"
fi
echo "== lowest direct versions: every direct dependency at its floor"
"$VENV/bin/python" scripts/check_floors.py
echo "== lowest direct versions: unit and integration tests"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/unit tests/integration "$@"
