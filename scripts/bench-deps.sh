#!/usr/bin/env bash
# What `make bench` runs beside the sidecar, from Debian (apt-get), only when missing:
# redis-server (the Redis rows) and wrk (the HTTP load generator of the REST face's row).
# Without apt-get (or rights to use it) the rows that need them say "not available".
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null 2>&1 || { echo "bench: ${missing[*]} missing (no apt-get)" >&2; exit 0; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
export DEBIAN_FRONTEND=noninteractive
guard=""  # a packaged redis-server must not start itself: the bench starts its own
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null || exit 0
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  guard=1
fi
echo "bench: installing ${missing[*]} (apt-get)"
{ $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
  || echo "bench: could not install ${missing[*]}" >&2
if [ -n "$guard" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
