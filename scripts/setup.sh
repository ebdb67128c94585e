#!/usr/bin/env bash
# Create (or reuse) the project virtualenv and install ecgops with pinned dependencies.
# Shared by `make run` (main job) and `make test` (test suite); idempotent and offline-safe
# once the packages are cached.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV=${ECGOPS_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.ecgops-installed"
want=$(cat pyproject.toml requirements.lock 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -c requirements.lock -e ".[dev]"
  echo "$want" > "$stamp"
fi
export PREFECT_SERVER_ANALYTICS_ENABLED=false GX_ANALYTICS_ENABLED=false
echo "ecgops environment ready: $VENV"
