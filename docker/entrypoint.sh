#!/bin/sh
# ecgops container entrypoint (runs under tini).
#   <no args> / ecgops subcommand  ->  ecgops "$@"
#   mlflow | prefect | dvc | python | python3 | pytest | sh | bash ...  ->  run that program
# Before that it points DVC's cache at the cache volume when the project has a .dvc directory,
# and waits (up to $ECGOPS_WAIT_TIMEOUT s) for the services listed in $ECGOPS_WAIT_FOR
# (space-separated http:// or tcp://host:port), so start order holds on every compose engine.
set -eu

root="${ECGOPS_ROOT:-/app}"
cache="${ECGOPS_DVC_CACHE_DIR:-}"
if [ -n "$cache" ] && [ -d "$root/.dvc" ] && [ -w "$root/.dvc" ]; then
  # config.local is DVC's per-machine config (never committed): the image keeps the project's
  # .dvc/config untouched and only redirects the cache to the mounted volume.
  printf '[cache]\n    dir = %s\n' "$cache" > "$root/.dvc/config.local"
fi

if [ -n "${ECGOPS_WAIT_FOR:-}" ]; then
  # shellcheck disable=SC2086  # word splitting intended: a list of URLs
  ecgops-healthcheck --wait "${ECGOPS_WAIT_TIMEOUT:-180}" $ECGOPS_WAIT_FOR
fi

case "${1:-}" in
  ecgops)
    shift
    exec ecgops "$@"
    ;;
  mlflow | prefect | dvc | python | python3 | pytest | sh | bash | ecgops-healthcheck)
    exec "$@"
    ;;
  *)
    exec ecgops "$@"
    ;;
esac
