#!/usr/bin/env bash
# Installs Debian's Chromium if it is missing (CI runs as root on a fresh machine).
# tests/report/test_html.py uses it headless to check that the report's HTML renders and its images load.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "Chromium not found and not root: the report's browser test will be skipped." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
