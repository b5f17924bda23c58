#!/usr/bin/env bash
# `make dist`: every artifact of the version in VERSION, into $1 (default dist/):
#   recaptcha_sidecar-V.tar.gz / -py3-none-any.whl        the sidecar (stubs inside: self-contained)
#   recaptcha_sidecar_proto-V.tar.gz / -py3-none-any.whl  the Python stubs, for apps
#   recaptcha-sidecar-client-V.tgz                        the npm package (npm install FILE)
#   maven/dev/recaptchasidecar/recaptcha-sidecar-client/V/  jar, sources jar and pom, laid out
#                                                          as a Maven repository (file:// URL)
#   goproxy/github.com/recaptcha-sidecar/…/clients/go/@v/vV.zip (+ .mod, .info, list): the
#                                                          Go module, served by GOPROXY=file://…
# None is published to a registry yet; docs/clients.md shows how to consume each.
# tests/packaging/test_dist.py installs each into a fresh consumer project.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
VERSION=$(tr -d '[:space:]' < VERSION)
PYTHON=${PYTHON:-.venv/bin/python}
step() { printf '==> %s\n' "$*" >&2; }

# Leave nothing of an older version behind in the output.
rm -rf "$OUT"/recaptcha_sidecar* "$OUT"/recaptcha-sidecar-client-*.tgz "$OUT/maven" "$OUT/goproxy"

step "python: sdist, then the wheel built from it (uv build)"
"$PYTHON" -m uv build --quiet --out-dir "$OUT" .
"$PYTHON" -m uv build --quiet --out-dir "$OUT" clients/python

step "node: npm pack"
if [ ! clients/node/node_modules/.package-lock.json -nt clients/node/package-lock.json ]; then
  (cd clients/node && npm ci --no-audit --no-fund --loglevel=error)
fi
(cd clients/node && npm pack --silent --pack-destination "$OUT" >/dev/null)

step "java: jar, sources jar, pom"
mvn -B -q --no-transfer-progress -Dstyle.color=never -f clients/java/pom.xml -DskipTests \
  package source:jar-no-fork
REPO="$OUT/maven/dev/recaptchasidecar/recaptcha-sidecar-client/$VERSION"
mkdir -p "$REPO"
cp "clients/java/target/recaptcha-sidecar-client-$VERSION.jar" \
  "clients/java/target/recaptcha-sidecar-client-$VERSION-sources.jar" "$REPO/"
cp clients/java/pom.xml "$REPO/recaptcha-sidecar-client-$VERSION.pom"

step "go: module zip"
"$PYTHON" scripts/go_module_zip.py clients/go "$OUT/goproxy" "v$VERSION" >/dev/null

step "dist: $OUT"
(cd "$OUT" && find . -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.tgz' -o -name '*.jar' -o -name '*.zip' \) | sort)
