#!/usr/bin/env bash
# Start an MLflow tracking server for explorer studies on a cluster, with MLflow's own authentication.
#
#   cluster/start_mlflow.sh [--host ADDR] [--auth-dir DIR] [--auth-db URI] BACKEND_URI ARTIFACTS [PORT] [MLFLOW_OPTION ...]
#
# BACKEND_URI: a database of its own, never the Optuna one (both write `alembic_version`),
#              e.g. postgresql://explorer@127.0.0.1:5432/explorer_mlflow (its password from PGPASSFILE,
#              see cluster/start_postgres.sh --listen; never put it in the URL: `ps` shows command lines)
# ARTIFACTS:   where figures and configs go: a shared path or s3://bucket/prefix
# --host:      the address to listen on (default 0.0.0.0: every interface)
# --auth-dir:  where the authentication files live (default ~/.explorer/mlflow-PORT, mode 0700):
#                auth.ini     MLflow's auth config (MLFLOW_AUTH_CONFIG_PATH): no permission by default
#                auth.db      the users and permissions (SQLite), unless --auth-db names another database
#                credentials  the admin's user name and password, in MLflow's credentials-file format
#                flask_secret_key  the key the web UI signs its CSRF tokens with
#              The admin password is $MLFLOW_AUTH_ADMIN_PASSWORD if set, else the one in DIR/credentials,
#              else a new random one; it reaches MLflow through the environment, never the command line.
#              Every file is created mode 0600.
# MLFLOW_OPTION: passed on to `mlflow server`, e.g. --workers 1
# Then point studies at it, from any node:
#   export EXPLORER_MLFLOW_URI=http://<head-ip>:PORT
#   cp DIR/credentials ~/.mlflow/credentials    (or export MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)
set -euo pipefail
usage="usage: start_mlflow.sh [--host ADDR] [--auth-dir DIR] [--auth-db URI] BACKEND_URI ARTIFACTS [PORT] [MLFLOW_OPTION ...]"
host=0.0.0.0; auth_dir=; auth_db=
while [ $# -gt 0 ]; do
  case $1 in
    --host) host=${2:?$usage}; shift 2 ;;
    --auth-dir) auth_dir=${2:?$usage}; shift 2 ;;
    --auth-db) auth_db=${2:?$usage}; shift 2 ;;
    --) shift; break ;;
    -*) echo "$usage" >&2; exit 2 ;;
    *) break ;;
  esac
done
backend=${1:?$usage}
artifacts=${2:?$usage}
port=${3:-5000}
shift $(( $# >= 3 ? 3 : 2 ))

umask 077                                  # every file written below is private to this user
auth_dir=${auth_dir:-$HOME/.explorer/mlflow-$port}
mkdir -p "$auth_dir"; chmod 700 "$auth_dir"
auth_dir=$(cd "$auth_dir" && pwd)
auth_db=${auth_db:-sqlite:///$auth_dir/auth.db}
if [ "$auth_db" = "$backend" ]; then
  echo "the auth database must not be the tracking backend ($backend): give --auth-db its own" >&2; exit 2
fi
creds=$auth_dir/credentials
user=${MLFLOW_AUTH_ADMIN_USERNAME:-admin}
password=${MLFLOW_AUTH_ADMIN_PASSWORD:-}
if [ -z "$password" ] && [ -f "$creds" ]; then
  password=$(sed -n 's/^mlflow_tracking_password *= *//p' "$creds" | head -n 1)
  user=$(sed -n 's/^mlflow_tracking_username *= *//p' "$creds" | head -n 1)
fi
if [ -z "$password" ]; then
  if [ -f "$auth_dir/auth.db" ]; then
    echo "$auth_dir/auth.db exists but $creds does not: set MLFLOW_AUTH_ADMIN_PASSWORD to its admin password" >&2
    exit 2
  fi
  password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
fi
current=$([ -f "$creds" ] && sed -n 's/^mlflow_tracking_password *= *//p' "$creds" | head -n 1 || true)
if [ "$current" != "$password" ]; then      # (no command takes the password as an argument: `ps`)
  printf '[mlflow]\nmlflow_tracking_username = %s\nmlflow_tracking_password = %s\n' "$user" "$password" > "$creds"
fi
chmod 600 "$creds"
cat > "$auth_dir/auth.ini" <<EOF
[mlflow]
# written by cluster/start_mlflow.sh: users other than the admin see nothing until granted
default_permission = NO_PERMISSIONS
database_uri = $auth_db
admin_username = $user
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
EOF
chmod 600 "$auth_dir/auth.ini"
# the web UI's CSRF protection signs with a key of the server's own: kept, so that a restart keeps sessions
[ -s "$auth_dir/flask_secret_key" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$auth_dir/flask_secret_key"
chmod 600 "$auth_dir/flask_secret_key"
echo "MLflow with authentication on $host:$port; credentials in $creds (mode 0600)" >&2

export MLFLOW_AUTH_CONFIG_PATH=$auth_dir/auth.ini MLFLOW_AUTH_ADMIN_USERNAME=$user
export MLFLOW_AUTH_ADMIN_PASSWORD=$password MLFLOW_BACKEND_STORE_URI=$backend
export MLFLOW_FLASK_SERVER_SECRET_KEY=$(cat "$auth_dir/flask_secret_key")
exec mlflow server --app-name basic-auth --artifacts-destination "$artifacts" \
  --serve-artifacts --host "$host" --port "$port" "$@"
