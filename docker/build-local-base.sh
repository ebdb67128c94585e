#!/usr/bin/env bash
# Build a minimal Debian 12 (bookworm) base image locally, with no image registry involved:
# debootstrap (from the Debian package mirror) + `podman import`.
#
# The result, localhost/debian-minbase:bookworm, has Debian's python3 (3.11) with venv and
# pip-whl, and ca-certificates; it replaces python:3.11-slim-bookworm where Docker Hub cannot be
# reached:
#   podman build -f docker/Dockerfile.cpu \
#     --build-arg BASE_IMAGE=localhost/debian-minbase:bookworm --build-arg PYTHON=python3 .
#
# Environment:
#   DEBIAN_MIRROR  mirror URL (default: first deb.debian.org-style URI in apt's sources, else
#                  http://deb.debian.org/debian)
#   BASE_TAG       image name (default localhost/debian-minbase:bookworm)
#   SUITE          Debian suite (default bookworm)
#   FORCE=1        rebuild even if the image exists
set -euo pipefail

SUITE=${SUITE:-bookworm}
BASE_TAG=${BASE_TAG:-localhost/debian-minbase:${SUITE}}
INCLUDE=${INCLUDE:-python3,python3-venv,ca-certificates}

if [ "$(id -u)" -ne 0 ]; then
  echo "build-local-base.sh: debootstrap needs root" >&2
  exit 1
fi
for bin in debootstrap podman; do
  command -v "$bin" >/dev/null 2>&1 || {
    echo "build-local-base.sh: '$bin' missing; run docker/podman-setup.sh first" >&2
    exit 1
  }
done

if [ "${FORCE:-0}" != "1" ] && podman image exists "$BASE_TAG"; then
  echo "$BASE_TAG already exists (FORCE=1 to rebuild)"
  exit 0
fi

mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # deb822 sources (Debian 12 default) first, then one-line sources.list.
  mirror=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
  if [ -z "$mirror" ]; then
    mirror=$(grep -hsE '^deb ' /etc/apt/sources.list 2>/dev/null \
      | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
      | grep -E '/debian/?$' | head -n1 || true)
  fi
  mirror=${mirror:-http://deb.debian.org/debian}
fi

rootfs=$(mktemp -d /var/tmp/ecgops-rootfs.XXXXXX)
cleanup() { rm -rf "$rootfs"; }
trap cleanup EXIT

echo "debootstrap $SUITE from $mirror (include: $INCLUDE) ..."
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$rootfs" "$mirror"

# Trim: apt lists and caches, docs, man pages (image only; nothing the runtime needs).
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
  "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log
# The same apt source as the host used, so `apt-get update` works inside derived images.
printf 'deb %s %s main\n' "$mirror" "$SUITE" > "$rootfs/etc/apt/sources.list"
: > "$rootfs/etc/resolv.conf"   # filled in by the container runtime

tar --numeric-owner -C "$rootfs" -c . \
  | podman import \
      --change 'CMD ["/bin/bash"]' \
      --change 'ENV LANG=C.UTF-8' \
      --message "debootstrap --variant=minbase $SUITE ($INCLUDE)" \
      - "$BASE_TAG"
podman images "$BASE_TAG"
