#!/usr/bin/env bash
# Regenerates the Python stubs (with .pyi type stubs) from proto/. One command: `make generate`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=clients/python/src
INCLUDE=$("$PY" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
rm -f "$OUT"/recaptcha/sidecar/v1/*_pb2*.py "$OUT"/recaptcha/sidecar/v1/*_pb2*.pyi
"$PY" -m grpc_tools.protoc -Iproto -I"$INCLUDE" \
  --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" \
  proto/recaptcha/sidecar/v1/sidecar.proto
for d in "$OUT/recaptcha" "$OUT/recaptcha/sidecar" "$OUT/recaptcha/sidecar/v1"; do
  [ -f "$d/__init__.py" ] || : > "$d/__init__.py"
done
: > "$OUT/recaptcha/py.typed"
