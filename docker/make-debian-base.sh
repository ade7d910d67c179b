#!/usr/bin/env bash
# Makes a minimal Debian root file system with debootstrap and imports it as a local image,
# for machines that cannot pull one from a registry (no Docker Hub, no nvcr.io). The avel
# image needs nothing from a CUDA base: PyTorch's wheels carry their own CUDA libraries and
# the NVIDIA container toolkit (or apptainer --nv) brings the driver at run time.
#   docker/make-debian-base.sh [TAG] [SUITE] [MIRROR]
# defaults: localhost/debian-base:bookworm, bookworm (Python 3.11), deb.debian.org.
# Needs root, debootstrap, and one of docker (with a daemon), podman or buildah.
set -euo pipefail

TAG=${1:-localhost/debian-base:bookworm}
SUITE=${2:-bookworm}
MIRROR=${3:-http://deb.debian.org/debian}

if [[ $(id -u) != 0 ]]; then
  echo "make-debian-base.sh: debootstrap needs root (run it with sudo)" >&2
  exit 2
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "make-debian-base.sh: debootstrap not found (apt-get install debootstrap)" >&2
  exit 2
fi

ROOT=$(mktemp -d "${TMPDIR:-/tmp}/avel-debootstrap.XXXXXX")
trap 'rm -rf "$ROOT"' EXIT

echo "debootstrap $SUITE from $MIRROR into $ROOT"
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$ROOT" "$MIRROR"

# the security and updates suites, so `apt-get upgrade` in the image build picks up fixes
cat > "$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://deb.debian.org/debian-security $SUITE-security main
EOF
# what a registry image drops too: package lists, caches, docs are re-fetched by apt-get update
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
       "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/*

TARBALL="$ROOT.tar"
tar --numeric-owner -C "$ROOT" -cf "$TARBALL" .
trap 'rm -rf "$ROOT" "$TARBALL"' EXIT

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  docker import "$TARBALL" "$TAG"
elif command -v podman >/dev/null 2>&1; then
  podman import "$TARBALL" "$TAG"
elif command -v buildah >/dev/null 2>&1; then
  ctr=$(buildah from scratch)
  buildah add "$ctr" "$TARBALL" /
  buildah commit --rm "$ctr" "$TAG"
else
  echo "make-debian-base.sh: no docker daemon, podman or buildah to import $TARBALL into" >&2
  exit 2
fi
echo "imported $TAG"
