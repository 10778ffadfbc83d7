#!/usr/bin/env bash
# apt_install.sh PACKAGE PROBE WHAT: installs Debian's PACKAGE unless `PROBE` (a shell test) succeeds.
# CI runs as root on a fresh machine; without root it says what will be skipped (WHAT) and exits 0.
set -euo pipefail
package="$1"; probe="$2"; what="$3"
if bash -c "$probe" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "$package not found and not root: $what will be skipped." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "$package" >/dev/null
