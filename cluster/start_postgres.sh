#!/usr/bin/env bash
# Start a PostgreSQL server for explorer's Optuna storage (and, separately, an MLflow backend).
#
#   cluster/start_postgres.sh DATADIR [PORT] [DB ...]
#
# Initialises DATADIR on first use, starts the server on 127.0.0.1:PORT (default 5432) with
# password authentication off for local TCP (trust; use a real password and pg_hba.conf on a shared
# cluster), creates each DB (default: explorer_optuna explorer_mlflow; Optuna and MLflow must never
# share a database), and prints one URL per database on stdout.
# Stop it with: cluster/stop_postgres.sh DATADIR
# As root the server runs as the 'postgres' system user (PostgreSQL refuses to run as root).
set -euo pipefail
datadir=${1:?usage: start_postgres.sh DATADIR [PORT] [DB ...]}
port=${2:-5432}
shift $(( $# >= 2 ? 2 : 1 ))
dbs=("$@"); [ ${#dbs[@]} -gt 0 ] || dbs=(explorer_optuna explorer_mlflow)

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bindir" ] || { echo "PostgreSQL server not installed: run cluster/install_postgres.sh (as root)" >&2; exit 3; }

as_pg() {
  if [ "$(id -u)" = "0" ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
mkdir -p "$datadir"
datadir=$(cd "$datadir" && pwd)
if [ "$(id -u)" = "0" ]; then
  chown -R postgres:postgres "$datadir"
  # the server must be able to traverse to its data dir
  d=$datadir; while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
fi
if [ ! -f "$datadir/PG_VERSION" ]; then
  as_pg "$bindir/initdb" -D "$datadir" -U postgres -A trust --no-sync >/dev/null
fi
as_pg "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 \
  -o "-p $port -k $datadir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
for db in "${dbs[@]}"; do
  as_pg "$bindir/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 \
    || as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
  echo "postgresql://postgres@127.0.0.1:$port/$db"
done
