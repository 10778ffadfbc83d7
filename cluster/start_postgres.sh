#!/usr/bin/env bash
# Start a PostgreSQL server for explorer's Optuna storage (and, separately, an MLflow backend).
#
#   cluster/start_postgres.sh [--listen ADDR --allow CIDR [--passfile FILE]] DATADIR [PORT] [DB ...]
#
# Initialises DATADIR on first use, starts the server on PORT (default 5432), creates each DB
# (default: explorer_optuna explorer_mlflow; Optuna and MLflow must never share a database), and
# prints one URL per database on stdout. Stop it with: cluster/stop_postgres.sh DATADIR
#
# Without --listen: 127.0.0.1 only, no password (trust): for a machine of your own. Every user
# logged in on the same node can connect, so on a shared head node use --listen 127.0.0.1.
# With --listen ADDR --allow CIDR: the server listens on ADDR (e.g. the head's IP, or 127.0.0.1) and
# lets in, over TCP, only role 'explorer' (owner of the databases) from 127.0.0.1 and CIDR (e.g.
# 10.1.0.0/16, the cluster's nodes), with a password (scram-sha-256). The password is kept in FILE,
# PostgreSQL's password-file format (`*:PORT:*:explorer:PASSWORD`, mode 0600; default $PGPASSFILE,
# else ~/.pgpass): reused when FILE has it, else made up. It is never in a URL or on a command line:
# libpq (Optuna, MLflow) finds it when PGPASSFILE names FILE (~/.pgpass is read without it).
# As root the server runs as the 'postgres' system user (PostgreSQL refuses to run as root).
set -euo pipefail
usage="usage: start_postgres.sh [--listen ADDR --allow CIDR [--passfile FILE]] DATADIR [PORT] [DB ...]"
listen=; allow=; passfile=${PGPASSFILE:-$HOME/.pgpass}; role=explorer
while [ $# -gt 0 ]; do
  case $1 in
    --listen) listen=${2:?$usage}; shift 2 ;;
    --allow) allow=${2:?$usage}; shift 2 ;;
    --passfile) passfile=${2:?$usage}; shift 2 ;;
    -*) echo "$usage" >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ -n "$listen" ] && [ -z "$allow" ]; then
  echo "--listen needs --allow CIDR: the subnet whose nodes may connect (e.g. 10.1.0.0/16)" >&2; exit 2
fi
datadir=${1:?$usage}
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
# who may connect how: rewritten on every start, so that a restart without --listen closes it again.
# The Unix socket lives in DATADIR (mode 0700): only the server's own user reaches it, and this script
# administers the server through it.
if [ -n "$listen" ]; then
  hba="local all all trust
host all $role 127.0.0.1/32 scram-sha-256
host all $role $allow scram-sha-256"
  addr=$listen
else
  hba="local all all trust
host all all 127.0.0.1/32 trust"
  addr=127.0.0.1
fi
printf '# written by cluster/start_postgres.sh\n%s\n' "$hba" | as_pg tee "$datadir/pg_hba.conf" >/dev/null
as_pg "$bindir/pg_ctl" -D "$datadir" -l "$datadir/server.log" -w -t 60 \
  -o "-p $port -k $datadir -c listen_addresses=$addr -c password_encryption=scram-sha-256 -c fsync=off" \
  start >/dev/null
sql() { as_pg "$bindir/psql" -h "$datadir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

if [ -n "$listen" ]; then
  umask 077
  password=
  if [ -f "$passfile" ]; then
    password=$(awk -F: -v p="$port" -v r="$role" '$1=="*" && $2==p && $3=="*" && $4==r {print $5; exit}' "$passfile")
  fi
  if [ -z "$password" ]; then
    password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    mkdir -p "$(dirname "$passfile")"
    { [ -f "$passfile" ] && grep -v "^\*:$port:\*:$role:" "$passfile" || true; echo "*:$port:*:$role:$password"; } \
      > "$passfile.tmp"
    mv "$passfile.tmp" "$passfile"
  fi
  chmod 600 "$passfile"
  # the password goes to psql on stdin (printf is a shell builtin): never on a command line
  if [ "$(sql -c "SELECT 1 FROM pg_roles WHERE rolname='$role'")" != 1 ]; then
    sql -c "CREATE ROLE $role LOGIN"
  fi
  printf "ALTER ROLE %s PASSWORD '%s';\n" "$role" "$password" | sql -f -
  user=$role
  host=$listen
  case $host in 0.0.0.0|\*|::) host=$(hostname -I 2>/dev/null | awk '{print $1}'); host=${host:-127.0.0.1} ;; esac
  echo "PostgreSQL on $listen:$port, role $role from 127.0.0.1 and $allow with the password in $passfile" \
       "(mode 0600): export PGPASSFILE=$passfile" >&2
else
  user=postgres
  host=127.0.0.1
fi
for db in "${dbs[@]}"; do
  [ "$(sql -c "SELECT 1 FROM pg_database WHERE datname='$db'")" = 1 ] || sql -c "CREATE DATABASE $db"
  # the role that connects owns its databases (PostgreSQL 15+ lets only the owner create tables in public)
  [ "$user" = postgres ] || sql -c "ALTER DATABASE $db OWNER TO $user"
  echo "postgresql://$user@$host:$port/$db"
done
