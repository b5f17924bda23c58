#!/usr/bin/env bash
# Regenerates every client from proto/. One command: `make generate`.
#
#   Go, Java, Node/TypeScript   buf generate --template proto/buf.gen.yaml (local plugins only)
#   Python                      grpc_tools.protoc: messages, .pyi, gRPC stubs, and gRPC type
#                               stubs (sidecar_pb2_grpc.pyi) from mypy-protobuf
#   Envoy ext_authz (Python)    the same, over proto/third_party (scripts/vendor-protos.sh), into
#                               sidecar/third_party, with imports under sidecar.third_party
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

step "grpc_tools.protoc: Envoy ext_authz into sidecar/third_party"
# Every message of the vendored closure; gRPC stubs only for the file with the service. Then
# every import of a vendored package (envoy, udpa, xds, validate) is moved under
# sidecar.third_party, so these modules never import, or clash with, another `envoy` package;
# google.protobuf and google.rpc stay: protobuf and googleapis-common-protos provide them.
OUT=sidecar/third_party
THIRD=proto/third_party
rm -rf "$OUT"
mapfile -t vendored < <(cd "$THIRD" && find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
roots=$(printf '%s\n' "${vendored[@]}" | cut -d/ -f1 | sort -u | paste -sd'|')
mkdir -p "$OUT"
protoc_py() {
  PYTHONPATH="$TOOLS/python" "$PY" -m grpc_tools.protoc -I"$THIRD" -I"$TOOLS/python" \
    -I"$TOOLS/python/grpc_tools/_proto" "$@"
}
protoc_py --python_out="$OUT" --pyi_out="$OUT" "${vendored[@]}"
protoc_py --plugin=protoc-gen-mypy_grpc="$TOOLS/bin/protoc-gen-mypy_grpc" \
  --grpc_python_out="$OUT" --mypy_grpc_out="$OUT" envoy/service/auth/v3/external_auth.proto
# grpcio-tools and mypy-protobuf import dependencies as `from a.b import c_pb2 as alias`;
# a plain `import a.b` would need its uses rewritten too, so it stops the generation.
if grep -rEn "^import ($roots)[. ]" "$OUT"; then
  echo "generate.sh: unexpected plain import in $OUT" >&2
  exit 1
fi
find "$OUT" \( -name '*.py' -o -name '*.pyi' \) -print0 | xargs -0 sed -i -E \
  "s/^from ($roots)([. ])/from sidecar.third_party.\\1\\2/"
find "$OUT" -type d -exec sh -c 'for d; do [ -f "$d/__init__.py" ] || : > "$d/__init__.py"; done' _ {} +
cat > "$OUT/__init__.py" <<'DOC'
"""Generated by `make generate` from proto/third_party (Envoy's ext_authz v3): do not edit.

Every import inside names sidecar.third_party, so these modules never clash with another
`envoy`, `udpa`, `xds` or `validate` package."""
DOC
step "done"
