#!/usr/bin/env bash
# Build the ecgops images: cpu (CLI + worker + MLflow/Prefect servers), postgres, gpu.
#
# Usage: docker/build-images.sh [cpu] [postgres] [gpu]     (default: cpu postgres)
#
# Environment (all optional):
#   ENGINE=podman|docker  container engine (default: podman when installed, else docker)
#   LOCAL_BASE=1          build FROM the debootstrap base (docker/build-local-base.sh builds it
#                         when missing) instead of python:3.11-slim-bookworm / debian:bookworm-slim:
#                         for hosts that cannot reach an image registry
#   WHEELS_DIR=DIR        extra pip find-links directory mounted at build time (podman only),
#                         e.g. /opt/wheels holding torch-2.13.0+cpu when the PyTorch index is
#                         unreachable
#   EXTRA_CA=FILE         CA bundle for pip at build time (podman only), for TLS-intercepting
#                         proxies; it is mounted, never copied into an image
#   TORCH_INDEX_URL=URL   CPU torch index (default https://download.pytorch.org/whl/cpu; set it
#                         empty to use only PyPI + WHEELS_DIR)
#   GPU_TORCH_INDEX_URL / GPU_TORCH_VERSION   see docker/Dockerfile.gpu
#   TAG=latest            tag of the ecgops-cpu / ecgops-gpu images
#
# This sandbox (no Docker Hub, no PyTorch index, TLS proxy to PyPI):
#   LOCAL_BASE=1 WHEELS_DIR=/opt/wheels EXTRA_CA=/etc/ssl/certs/ca-certificates.crt \
#     TORCH_INDEX_URL= docker/build-images.sh cpu postgres
set -euo pipefail

cd "$(dirname "$0")/.."
ENGINE=${ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
TAG=${TAG:-latest}
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(cpu postgres)

base_args=()
pg_base=()
if [ "${LOCAL_BASE:-0}" = "1" ]; then
  if [ "$ENGINE" != "podman" ]; then
    echo "build-images.sh: LOCAL_BASE=1 needs podman (podman import of a debootstrap tree)" >&2
    exit 1
  fi
  docker/build-local-base.sh
  base_args=(--build-arg BASE_IMAGE=localhost/debian-minbase:bookworm --build-arg PYTHON=python3)
  pg_base=(--build-arg BASE_IMAGE=localhost/debian-minbase:bookworm)
fi

extra=()
if [ -n "${WHEELS_DIR:-}" ] || [ -n "${EXTRA_CA:-}" ]; then
  if [ "$ENGINE" != "podman" ]; then
    echo "build-images.sh: WHEELS_DIR / EXTRA_CA use build-time mounts (podman build -v)" >&2
    exit 1
  fi
  [ -z "${WHEELS_DIR:-}" ] || extra+=(-v "$(realpath "$WHEELS_DIR"):/build-extra/wheels:ro")
  [ -z "${EXTRA_CA:-}" ] || extra+=(-v "$(realpath "$EXTRA_CA"):/build-extra/ca.crt:ro")
fi

build() {
  local name=$1 dockerfile=$2
  shift 2
  local ignore=()
  if [ "$ENGINE" = "podman" ] && [ -f "$dockerfile.dockerignore" ]; then
    ignore=(--ignorefile "$dockerfile.dockerignore")
  fi
  echo "== $ENGINE build $name ($dockerfile)"
  local start=$SECONDS
  "$ENGINE" build -f "$dockerfile" "${ignore[@]}" -t "$name" "$@" .
  echo "== built $name in $((SECONDS - start)) s"
}

for target in "${targets[@]}"; do
  case "$target" in
    cpu)
      build "ecgops-cpu:$TAG" docker/Dockerfile.cpu "${base_args[@]}" "${extra[@]}" \
        --build-arg "TORCH_INDEX_URL=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}"
      ;;
    gpu)
      build "ecgops-gpu:$TAG" docker/Dockerfile.gpu "${base_args[@]}" "${extra[@]}" \
        --build-arg "TORCH_INDEX_URL=${GPU_TORCH_INDEX_URL-}" \
        --build-arg "TORCH_VERSION=${GPU_TORCH_VERSION:-2.13.0}"
      ;;
    postgres)
      build "ecgops-postgres:15" docker/Dockerfile.postgres "${pg_base[@]}"
      ;;
    *)
      echo "build-images.sh: unknown target '$target' (cpu, postgres, gpu)" >&2
      exit 2
      ;;
  esac
done
"$ENGINE" images --filter "reference=*ecgops-*"
