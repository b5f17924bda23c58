#!/usr/bin/env bash
# CI for the clients and the proto: toolchain dependencies, builds, buf checks.
#
#   scripts/ci-clients.sh deps    npm ci; go mod download; Maven dependencies; build every client
#   scripts/ci-clients.sh proto   buf lint, buf format (no diff allowed), buf breaking
#   scripts/ci-clients.sh         both
#
# Then `make check-generated` (generated code is current) and `pytest tests/clients` (each
# language against a real sidecar). Everything comes from the package registries (npm, the Go
# module proxy, Maven Central, PyPI) at pinned versions; cache ~/.npm, ~/go/pkg/mod,
# ~/.cache/go-build, ~/.m2/repository and clients/.tools between runs to keep this to seconds.
#
# buf breaking compares proto/ with a base, chosen in this order:
#   $BUF_BREAKING_AGAINST           any buf input, e.g. '.git#branch=main,subdir=proto'
#   HEAD                            when proto/ has uncommitted changes
#   merge-base with main            on a branch (local `main` or `origin/main`)
#   parent of the newest commit that changed proto/, on main itself
# and is skipped, with a note, when there is no such commit (first commit, shallow clone) or
# the base has no proto/ yet.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUF=$ROOT/clients/node/node_modules/.bin/buf
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly"

step() { printf '==> %s\n' "$*" >&2; }

deps() {
  # npm ci only when node_modules is not what package-lock.json says (always, on a fresh clone).
  if [ ! clients/node/node_modules/.package-lock.json -nt clients/node/package-lock.json ]; then
    step "node: npm ci"
    (cd clients/node && npm ci --no-audit --no-fund --loglevel=error)
  fi
  step "node: tsc"
  (cd clients/node && npm run --silent build)

  step "go: go mod download, vet, build"
  (cd clients/go/tools && go mod download)
  (cd clients/go && go mod download && go vet ./... && go test -count=1 -run '^$' ./...)

  # `test` without RECAPTCHA_SIDECAR_* compiles everything and resolves the test runtime
  # (surefire's JUnit provider); the end-to-end test skips itself.
  step "java: mvn test (resolve, compile; e2e skipped without a sidecar)"
  mvn -B -q --no-transfer-progress -Dstyle.color=never -f clients/java/pom.xml test
}

# The commit to compare proto/ with, or nothing (and a reason on stderr).
breaking_base() {
  if [ -n "$(git status --porcelain -- proto)" ]; then
    git rev-parse --verify -q 'HEAD^{commit}' || { echo "no commit yet" >&2; return 1; }
    return 0
  fi
  local head main
  head=$(git rev-parse --verify -q 'HEAD^{commit}') || { echo "no commit yet" >&2; return 1; }
  for main in refs/remotes/origin/main refs/heads/main; do
    main=$(git rev-parse --verify -q "$main^{commit}") || continue
    if [ "$main" != "$head" ]; then
      git merge-base "$head" "$main" && return 0
    fi
    break
  done
  # On main itself: the state before the newest change to proto/, so that change is checked.
  local last
  last=$(git log -1 --format=%H -- proto) && [ -n "$last" ] &&
    git rev-parse --verify -q "$last~1^{commit}" && return 0
  echo "the newest change to proto/ has no parent here (first commit or shallow clone)" >&2
  return 1
}

proto() {
  [ -x "$BUF" ] || (cd clients/node && npm ci --no-audit --no-fund --loglevel=error)
  step "buf lint"
  "$BUF" lint proto
  step "buf format"
  "$BUF" format proto --diff --exit-code
  step "buf breaking"
  local against=${BUF_BREAKING_AGAINST:-} base
  if [ -z "$against" ]; then
    if ! base=$(breaking_base); then
      echo "buf breaking: skipped, no base to compare against" >&2
      return 0
    fi
    if [ -z "$(git ls-tree -r --name-only "$base" -- proto | grep '\.proto$')" ]; then
      echo "buf breaking: skipped, $base has no proto/ yet" >&2
      return 0
    fi
    against=".git#ref=$base,subdir=proto"
  fi
  echo "buf breaking: against $against" >&2
  "$BUF" breaking proto --against "$against"
}

case "${1:-all}" in
  deps) deps ;;
  proto) proto ;;
  all) deps && proto ;;
  *) echo "usage: $0 [deps|proto|all]" >&2; exit 2 ;;
esac
