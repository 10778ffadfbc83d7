#!/usr/bin/env bash
# Stop a server started by cluster/start_postgres.sh DATADIR.
set -euo pipefail
datadir=${1:?usage: stop_postgres.sh DATADIR}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ "$(id -u)" = "0" ]; then
  runuser -u postgres -- "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null
else
  "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null
fi
