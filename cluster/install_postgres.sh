#!/usr/bin/env bash
# Installs Debian's PostgreSQL server if it is missing (CI runs as root on a fresh machine).
# The tests start and stop their own throw-away server with cluster/start_postgres.sh.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "PostgreSQL server not found and not root: the 'cluster' tests will be skipped." >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
