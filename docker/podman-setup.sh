#!/usr/bin/env bash
# Install and configure rootful podman (with runc) so the ecgops images can be built and
# run on a machine without a Docker engine (e.g. a Debian 12 sandbox or CI runner).
#
# Idempotent: re-running only rewrites the ecgops drop-in config.
# Usage: sudo docker/podman-setup.sh            # installs podman, runc, debootstrap
#        PODMAN_SETUP_SKIP_INSTALL=1 docker/podman-setup.sh   # config only
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "podman-setup.sh: run as root (rootful podman is what the scripts use)" >&2
  exit 1
fi

need_install=0
for bin in podman runc debootstrap; do
  command -v "$bin" >/dev/null 2>&1 || need_install=1
done
if [ "${PODMAN_SETUP_SKIP_INSTALL:-0}" != "1" ] && [ "$need_install" = "1" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q \
    podman runc debootstrap netavark aardvark-dns uidmap slirp4netns fuse-overlayfs iptables
fi

# Sandboxed hosts (nested containers, restricted kernels) reject the default ulimits and the
# pids cgroup controller; runc is the OCI runtime that works there (crun is not installed).
conf=/etc/containers/containers.conf
marker="# Written by ecgops docker/podman-setup.sh"
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
  cp "$conf" "$conf.bak.ecgops"   # keep the distribution/admin file once
fi
mkdir -p /etc/containers
cat > "$conf.ecgops.tmp" <<CONF
$marker
[containers]
default_ulimits = []
pids_limit = 0

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
mv "$conf.ecgops.tmp" "$conf"

# Short names like "python" or "postgres" must resolve to docker.io when a registry is reachable.
reg_dropin=/etc/containers/registries.conf.d/50-ecgops-shortnames.conf
if [ ! -f "$reg_dropin" ]; then
  mkdir -p "$(dirname "$reg_dropin")"
  printf 'unqualified-search-registries = ["docker.io"]\n' > "$reg_dropin"
fi

podman --version
podman info --format '{{.Host.OCIRuntime.Name}} {{.Store.GraphDriverName}} cgroup={{.Host.CgroupsVersion}}'
