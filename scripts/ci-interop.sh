#!/usr/bin/env bash
# Dependencies of the interop tests' third-party clients (tests/interop/google/<language>):
# Google's own reCAPTCHA Enterprise libraries for Go, Node and Java, at pinned versions from
# their registries (the Go module proxy, npm, Maven Central). Python's is in the venv.
# Downloads are cached outside the clone (~/go/pkg/mod, ~/.npm, ~/.m2/repository), so a
# second run costs seconds; the builds (node_modules, Java classes) are kept until their
# manifests change.
set -euo pipefail
cd "$(dirname "$0")/../tests/interop/google"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly"

step() { printf '==> interop: %s\n' "$*" >&2; }

step "go: cloud.google.com/go/recaptchaenterprise/v2 (go build)"
(cd go && go build -o /dev/null .)

if [ ! node/node_modules/.package-lock.json -nt node/package-lock.json ]; then
  step "node: @google-cloud/recaptcha-enterprise (npm ci)"
  (cd node && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ ! java/target/classpath.txt -nt java/pom.xml ] ||
  [ -n "$(find java/src -newer java/target/classpath.txt -print -quit)" ]; then
  step "java: com.google.cloud:google-cloud-recaptchaenterprise (mvn compile)"
  mvn -B -q --no-transfer-progress -Dstyle.color=never -f java/pom.xml \
    compile dependency:build-classpath -Dmdep.outputFile=target/classpath.txt
fi
