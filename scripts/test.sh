#!/usr/bin/env bash
# The README's test command (`make test`) and CI's: installs what the tests need on a fresh
# machine, then lint, type check, generated-code check and every test layer, the container
# image's last.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

# Servers and third-party software the tests run for real, from Debian (apt-get), only when
# missing: redis-server (replay stores); google/recaptcha for PHP and the Ruby recaptcha gem
# (pointed at siteverify); nginx (auth_request) and Caddy (forward_auth) in front of a backend.
missing=()
have() { [ -e "$1" ] || command -v "$1" >/dev/null 2>&1; }
have redis-server || missing+=(redis-server)
have php || missing+=(php-cli)
have /usr/share/php/ReCaptcha/ReCaptcha.php || missing+=(php-google-recaptcha)
have ruby || missing+=(ruby)
have /usr/lib/ruby/vendor_ruby/recaptcha.rb || missing+=(ruby-recaptcha)
have /usr/sbin/nginx || missing+=(nginx)
have caddy || missing+=(caddy)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]} (apt-get)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  # Packaged servers (nginx, caddy, redis) must not start themselves on install: the tests
  # start their own on free ports. policy-rc.d says so to invoke-rc.d and deb-systemd-invoke.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    guard=1
  fi
  started=$(date +%s)
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "   installed in $(( $(date +%s) - started )) s"
  if [ -n "$guard" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi
# The client toolchains (go, node + npm, java + mvn), installed where missing or too old.
eval "$(bash scripts/toolchains.sh)"
# Toolchain dependencies of the language clients (Go modules, npm, Maven), when present.
if [ -f scripts/ci-clients.sh ]; then
  bash scripts/ci-clients.sh
fi
# Google's own client libraries the interop tests drive (Go, Node, Java), pinned.
if [ -f scripts/ci-interop.sh ]; then
  bash scripts/ci-interop.sh
fi
# Deploy checkers (helm, kubeconform, Kubernetes schemas), pinned, cached under .tools/.
if [ -f scripts/ci-deploy-tools.sh ]; then
  bash scripts/ci-deploy-tools.sh
fi

echo "== ruff"
$BIN/ruff check .
$BIN/ruff format --check .
echo "== mypy"
$BIN/mypy
echo "== import contracts (dependencies point into the core)"
$BIN/lint-imports
echo "== generated code is current"
bash scripts/generate.sh
if [ -n "$(git status --porcelain -- clients/ proto/ sidecar/third_party/)" ]; then
  git status --short -- clients/ proto/ sidecar/third_party/
  echo "generated code is stale: run 'make generate' and commit" >&2
  exit 1
fi
echo "== pytest"
if [ $# -gt 0 ]; then # a selection: as asked (image tests in it build their own image)
  exec $BIN/pytest -q -p no:cacheprovider "$@"
fi
$BIN/pytest -q -p no:cacheprovider -m "not image"
# The declared lower bounds, proved: the unit and integration tests again, on the lowest direct
# versions pyproject.toml allows (a venv cached outside the clone; see the script).
bash scripts/lowest-deps.sh
# The container image, last: built from the Dockerfile (without an engine, by buildah on a
# Debian base made once and cached in ~/.cache/recaptcha-sidecar), started as the chart does.
echo "== container image (make image-test)"
make --no-print-directory image-test
