#!/usr/bin/env bash
# Start an MLflow tracking server for explorer studies on a cluster.
#
#   cluster/start_mlflow.sh BACKEND_URI ARTIFACTS [PORT]
#
# BACKEND_URI: a database of its own, never the Optuna one (both write `alembic_version`),
#              e.g. postgresql://postgres@127.0.0.1:5432/explorer_mlflow
# ARTIFACTS:   where figures and configs go: a shared path or s3://bucket/prefix
# Then point studies at it:  export EXPLORER_MLFLOW_URI=http://<head-ip>:PORT
set -euo pipefail
backend=${1:?usage: start_mlflow.sh BACKEND_URI ARTIFACTS [PORT]}
artifacts=${2:?usage: start_mlflow.sh BACKEND_URI ARTIFACTS [PORT]}
port=${3:-5000}
exec mlflow server --backend-store-uri "$backend" --artifacts-destination "$artifacts" \
  --serve-artifacts --host 0.0.0.0 --port "$port"
