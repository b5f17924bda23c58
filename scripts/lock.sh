#!/usr/bin/env bash
# requirements.lock: every runtime dependency of the image, pinned with hashes, for Python 3.11
# on any platform (`make lock`). The project's own wheel is built from source, not locked.
# Run it after changing `dependencies` in pyproject.toml; tests/deploy/test_image_install.py
# fails (pip check) when the lock no longer covers them.
set -euo pipefail
cd "$(dirname "$0")/.."
printf '.\n' | .venv/bin/uv pip compile - \
  --quiet \
  --python-version 3.11 \
  --universal \
  --generate-hashes \
  --no-emit-package recaptcha-sidecar \
  --annotation-style line \
  --custom-compile-command "make lock" \
  --output-file requirements.lock
