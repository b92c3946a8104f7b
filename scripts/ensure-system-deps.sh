#!/usr/bin/env bash
# System tools the test suite needs beyond pip: promtool (from Debian's `prometheus` package) checks
# and unit-tests the Prometheus alert rules. Installed when missing and running as root; otherwise
# the command to run is printed (the tests that need it fail with the same message).
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing promtool (Debian package prometheus)…"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
else
  echo "promtool is missing: install it with 'sudo apt-get install prometheus'" >&2
fi
