#!/usr/bin/env bash
# THE OFFLINE TEST SET-UP (`make image-cpu` / `make image-gpu` / `make image-torch`, and `make test`): on a fresh
# machine without Docker Hub, install and start a Docker engine, make a local Debian base image, and build that
# flavour of the one Dockerfile on it WITHOUT ImageNet weights (PREFETCH_WEIGHTS=0: no weight source is reachable
# here; the images say so in their labels and in a job's log). The images you push are built by `make images` (or a
# plain `docker build`, README step 1), which bakes the weights in.
#   docker/build.sh cpu|gpu|torch     progress goes to stderr; the last line on stdout is the tag
#   docker/build.sh hopper            the torch image under its old name too (semseg:hopper-<revision>), for one release
#
# Test set-up only (never in the Dockerfile): Docker Hub is unreachable here, so the base image is made with
# debootstrap; and pip inside the build reaches the package index only through this machine's TLS set-up, so
# the host's CA bundle is copied into that local base image, with a `cert =` line in its /etc/pip.conf.
set -euo pipefail
cd "$(dirname "$0")/.."
FLAVOUR=${1:?usage: docker/build.sh cpu|gpu|torch}
ALIAS=
if [ "$FLAVOUR" = hopper ]; then
  ALIAS=hopper
  FLAVOUR=torch
  echo "[image-hopper] the Hopper image is the torch image now (make image-torch); tagging it as both" >&2
fi
case "$FLAVOUR" in
  cpu | gpu) ENGINE=mxnet ;;
  torch) ENGINE=torch ;;
  *) echo "usage: docker/build.sh cpu|gpu|torch" >&2; exit 2 ;;
esac
BASE=${SEMSEG_BASE_IMAGE:-semseg-base:bookworm}
revision=$(git rev-parse --short HEAD 2>/dev/null || echo dev)
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then revision="$revision-dirty"; fi
TAG=${SEMSEG_IMAGE_TAG:-semseg:$FLAVOUR-$revision}
HOST_CA=${SEMSEG_HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
log() { echo "[image-$FLAVOUR] $*" >&2; }

ensure_tools() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  fi
}

ensure_engine() {
  if docker info >/dev/null 2>&1; then return; fi
  log "starting dockerd (no bridge, no iptables: builds and containers use the host network)"
  nohup dockerd --bridge=none --iptables=false >/var/log/semseg-dockerd.log 2>&1 &
  for _ in $(seq 90); do
    if docker info >/dev/null 2>&1; then return; fi
    sleep 1
  done
  log "dockerd did not start; see /var/log/semseg-dockerd.log"
  tail -20 /var/log/semseg-dockerd.log >&2
  exit 1
}

ensure_base() {
  if docker image inspect "$BASE" >/dev/null 2>&1; then return; fi
  local root
  root=$(mktemp -d /var/tmp/semseg-rootfs.XXXXXX)
  log "debootstrap bookworm into $root (a minute or two; cached as $BASE afterwards)"
  debootstrap --variant=minbase bookworm "$root" >&2
  mkdir -p "$root/etc/ssl/certs"
  cp "$HOST_CA" "$root/etc/ssl/certs/host-ca-bundle.crt"
  printf '[global]\ncert = /etc/ssl/certs/host-ca-bundle.crt\n' >"$root/etc/pip.conf"
  tar -C "$root" -c . | docker import - "$BASE" >&2
  rm -rf "$root"
}

ensure_tools
ensure_engine
ensure_base
log "building $TAG: the offline test set-up, PREFETCH_WEIGHTS=0 (no ImageNet weights; \`make images\` builds with them)"
DOCKER_BUILDKIT=0 docker build --network host \
  --build-arg BASE_IMAGE="$BASE" --build-arg FLAVOUR="$FLAVOUR" --build-arg ENGINE="$ENGINE" \
  --build-arg PREFETCH_WEIGHTS=0 \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --build-arg VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' src/semseg/__init__.py)" \
  -t "$TAG" . >&2
if [ -n "$ALIAS" ]; then
  TAG_ALIAS=${TAG/#semseg:torch-/semseg:$ALIAS-}
  docker tag "$TAG" "$TAG_ALIAS" >&2
  TAG=$TAG_ALIAS
fi
echo "$TAG"
