#!/usr/bin/env bash
# Install what the tests need (shared install script), lint, and run the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not integration"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Headless Chromium for the report's browser test (tests/evaluation/test_report.py skips
# without it): Debian's package, installed once, only where apt-get runs as root.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
  && [ "$(id -u)" -eq 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    >/dev/null || echo "chromium install failed: the browser test will be skipped" >&2
fi
export PREFECT_SERVER_ANALYTICS_ENABLED=false GX_ANALYTICS_ENABLED=false
export ECGOPS_PROFILE=smoke PYTHONUNBUFFERED=1
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== pytest"
set +e
# Two pytest workers (pytest-xdist), one test file each at a time, so module fixtures are
# built once: the suite is single-threaded Python and CI has 2 cores.
.venv/bin/python -m pytest -n "${ECGOPS_TEST_WORKERS:-2}" --dist loadfile "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests (exit 5): nothing was checked, so this run fails" >&2
fi
exit "$rc"
