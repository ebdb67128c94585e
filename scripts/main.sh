#!/usr/bin/env bash
# The main job: install everything, then run the whole study pipeline on embedded defaults
# (local SQLite MLflow under the project, Prefect's ephemeral local server, the local DVC remote).
# Profile: params.yaml's `profile` (quick by default), or ECGOPS_PROFILE=smoke|quick|full.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
export PREFECT_SERVER_ANALYTICS_ENABLED=false GX_ANALYTICS_ENABLED=false PYTHONUNBUFFERED=1
export PREFECT_HOME="${PREFECT_HOME:-$PWD/.prefect}"
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="${PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS:-180}"
start=$(date +%s)
ecgops pipeline                       # Prefect flow: ingest -> train (classical | deep | transfer) -> register + promote -> report
dvc commit --force --quiet            # record every output in dvc.lock + the DVC cache
dvc push --quiet                      # to the local remote: a failed push fails the main job
echo "main job done in $(( $(date +%s) - start )) s; report: reports/results.html; champions: ecgops promote --dry-run"
