#!/usr/bin/env bash
# Installs Debian's PostgreSQL server if it is missing (CI runs as root on a fresh machine).
# The tests start and stop their own throw-away server with cluster/start_postgres.sh.
exec "$(dirname "$0")/apt_install.sh" postgresql 'ls /usr/lib/postgresql/*/bin/pg_ctl' "the 'cluster' tests"
