#!/usr/bin/env bash
# Regenerates every client from proto/. One command: `make generate`.
#
#   Go, Java, Node/TypeScript   buf generate --template proto/buf.gen.yaml (local plugins only)
#   Python                      grpc_tools.protoc: messages, .pyi, gRPC stubs, and gRPC type
#                               stubs (sidecar_pb2_grpc.pyi) from mypy-protobuf
#
# Every generator is pinned and comes from its package registry, fetched on first use into
# clients/.tools (gitignored) or the tool's own cache:
#   buf, ts-proto                          clients/node/package-lock.json       (npm)
#   protoc-gen-go, protoc-gen-go-grpc      clients/go/tools/go.mod              (Go module proxy)
#   protoc, protoc-gen-grpc-java           clients/java/pom.xml, protoc-tools   (Maven Central)
#   grpcio-tools, mypy-protobuf            clients/python/requirements-generate.txt (PyPI)
# Python's generators run from clients/.tools/python, not from the venv, so the output does not
# depend on which grpcio-tools the venv resolved.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/clients/.tools
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
mkdir -p "$TOOLS/bin"

step() { printf '==> %s\n' "$*" >&2; }

# newer_than STAMP FILE...: true when STAMP is missing or older than any FILE.
newer_than() {
  local stamp=$1 f
  shift
  [ -e "$stamp" ] || return 0
  for f in "$@"; do [ "$f" -nt "$stamp" ] && return 0; done
  return 1
}

# --- generators -------------------------------------------------------------------------------

# buf and protoc-gen-ts_proto: clients/node devDependencies.
if newer_than clients/node/node_modules/.package-lock.json clients/node/package-lock.json; then
  step "npm ci (clients/node)"
  (cd clients/node && npm ci --no-audit --no-fund --loglevel=error)
fi
BUF=$ROOT/clients/node/node_modules/.bin/buf

# protoc-gen-go, protoc-gen-go-grpc: the `tool` directives of clients/go/tools/go.mod.
if newer_than "$TOOLS/bin/protoc-gen-go-grpc" clients/go/tools/go.mod clients/go/tools/go.sum; then
  step "go install tool (clients/go/tools)"
  (cd clients/go/tools && GOBIN="$TOOLS/bin" GOFLAGS=-mod=readonly go install tool)
  touch "$TOOLS/bin/protoc-gen-go" "$TOOLS/bin/protoc-gen-go-grpc"
fi

# protoc (for buf's java builtin) and protoc-gen-grpc-java: native executables on Maven Central.
if newer_than "$TOOLS/java/protoc.exe" clients/java/pom.xml; then
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) classifier=linux-x86_64 ;;
    Linux-aarch64 | Linux-arm64) classifier=linux-aarch_64 ;;
    Darwin-x86_64) classifier=osx-x86_64 ;;
    Darwin-arm64) classifier=osx-aarch_64 ;;
    *) echo "generate.sh: no protoc build on Maven Central for $(uname -sm)" >&2; exit 1 ;;
  esac
  step "mvn -Pprotoc-tools initialize ($classifier)"
  mvn -B -q -Dstyle.color=never -f clients/java/pom.xml -Pprotoc-tools -Dprotoc.classifier="$classifier" initialize
  chmod +x "$TOOLS/java/protoc.exe" "$TOOLS/java/protoc-gen-grpc-java.exe"
  touch "$TOOLS/java/protoc.exe"
fi

# grpcio-tools and mypy-protobuf, exactly as clients/python/requirements-generate.txt pins them.
case $PY in */*) PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") ;; *) PY=$(command -v "$PY") ;; esac
if ! cmp -s clients/python/requirements-generate.txt "$TOOLS/python/.requirements"; then
  step "pip install --target clients/.tools/python -r clients/python/requirements-generate.txt"
  rm -rf "$TOOLS/python"
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --target "$TOOLS/python" \
    -r clients/python/requirements-generate.txt
  cp clients/python/requirements-generate.txt "$TOOLS/python/.requirements"
fi
printf '#!/bin/sh\nPYTHONPATH="%s" exec "%s" -c "from mypy_protobuf.main import grpc; grpc()"\n' \
  "$TOOLS/python" "$PY" > "$TOOLS/bin/protoc-gen-mypy_grpc"
chmod +x "$TOOLS/bin/protoc-gen-mypy_grpc"

# --- generate ---------------------------------------------------------------------------------

step "buf generate: Go, Java, Node"
# Only generated files live in these places, so a removed message leaves no stale file behind.
rm -f clients/go/recaptchasidecarv1/*.pb.go
rm -rf clients/java/src/main/java/dev/recaptchasidecar/v1 clients/node/src/gen
PATH="$TOOLS/bin:$PATH" "$BUF" generate --template proto/buf.gen.yaml

step "grpc_tools.protoc: Python"
OUT=clients/python/src
rm -f "$OUT"/recaptcha/sidecar/v1/*_pb2*.py "$OUT"/recaptcha/sidecar/v1/*_pb2*.pyi
PYTHONPATH="$TOOLS/python" "$PY" -m grpc_tools.protoc -Iproto -I"$TOOLS/python/grpc_tools/_proto" \
  --plugin=protoc-gen-mypy_grpc="$TOOLS/bin/protoc-gen-mypy_grpc" \
  --python_out="$OUT" --pyi_out="$OUT" --grpc_python_out="$OUT" --mypy_grpc_out="$OUT" \
  proto/recaptcha/sidecar/v1/sidecar.proto
for d in "$OUT/recaptcha" "$OUT/recaptcha/sidecar" "$OUT/recaptcha/sidecar/v1"; do
  [ -f "$d/__init__.py" ] || : > "$d/__init__.py"
done
: > "$OUT/recaptcha/py.typed"
step "done"
