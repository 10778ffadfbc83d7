#!/usr/bin/env bash
# Stop a server started by cluster/start_postgres.sh DATADIR.
set -euo pipefail
datadir=${1:?usage: stop_postgres.sh DATADIR}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ "$(id -u)" = "0" ]; then
  # the 'postgres' user must still reach DATADIR: something may have made a parent private since
  # start (pytest resets /tmp/pytest-of-<user> to 0700 whenever another session starts)
  d=$(cd "$datadir" && pwd); while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
  runuser -u postgres -- "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null
else
  "$bindir/pg_ctl" -D "$datadir" -m fast -w stop >/dev/null
fi
