#!/usr/bin/env bash
# make image-test: build the image on a Debian base made here, start it from its own filesystem
# and test it (tests/image/). Needs root, podman and debootstrap (`make image-tools`).
#
# No registry is needed: the base is a Debian root filesystem made by debootstrap from the
# machine's own Debian mirror (the one in /etc/apt) with Python 3.11 and venv, the stand-in for
# python:3.11-slim-bookworm. The base and podman's layers are kept in IMAGE_STORE, and the
# pip downloads in a build cache, so a second run rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

STORE=${IMAGE_STORE:-/var/lib/ige-image-test}
# overlay where the kernel has it (a build in seconds), else vfs (a full copy per layer)
DRIVER=${IMAGE_STORAGE_DRIVER:-$(grep -qw overlay /proc/filesystems && echo overlay || echo vfs)}
PODMAN=(podman --root "$STORE/$DRIVER" --runroot "$STORE/run-$DRIVER" --storage-driver "$DRIVER")
BASE=${IMAGE_BASE:-localhost/ige-base:bookworm}
IMAGE=${IMAGE_TEST_TAG:-localhost/ige:test}
PY=${PYTHON_BIN:-.venv/bin/python}
t0=$SECONDS

step() { printf '==> [%3ss] %s\n' "$((SECONDS - t0))" "$*"; }

# The Debian mirror this machine's apt uses (deb822 or one-line sources); DEBIAN_MIRROR wins.
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(awk 'tolower($1)=="uris:" {u=$2}
             tolower($1)=="suites:" && / bookworm( |$)/ {print u; exit}' \
          /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1=="deb" && $3=="bookworm" {print $2; exit}' \
                           /etc/apt/sources.list 2>/dev/null || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

make_base() {
  local mirror dir
  mirror=$(debian_mirror)
  dir=$(mktemp -d /var/tmp/ige-base.XXXXXX)
  step "making the base $BASE: debootstrap bookworm from $mirror"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$dir" "$mirror" > "$STORE/debootstrap.log" 2>&1 \
    || { tail -20 "$STORE/debootstrap.log"; exit 1; }
  # what a container base image leaves out: apt's downloads and lists, logs
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/var/log/* \
         "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/*
  tar --numeric-owner -C "$dir" -c . | "${PODMAN[@]}" import --change 'CMD ["python3"]' \
    --change 'ENV LANG=C.UTF-8' - "$BASE" >> "$STORE/debootstrap.log" 2>&1
  rm -rf "$dir"
}

[ "$(id -u)" = 0 ] || { echo "image-test: needs root (debootstrap, image mount, chroot)"; exit 1; }
for tool in podman debootstrap unshare nsenter; do
  command -v "$tool" > /dev/null || { echo "image-test: no $tool (make image-tools)"; exit 1; }
done
mkdir -p "$STORE"
if "${PODMAN[@]}" image exists "$BASE"; then
  step "base $BASE is cached in $STORE"
else
  make_base
fi

# The build's apt and pip trust the system certificate store; give them this machine's (TLS to
# the package registries may pass a proxy with its own CA here). Mounted over the base's file
# for the RUN steps only: it is in no layer.
CA=${IMAGE_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}
BUILD_MOUNTS=()
[ -f "$CA" ] && BUILD_MOUNTS=(-v "$CA:/etc/ssl/certs/ca-certificates.crt:ro")

step "building $IMAGE on $BASE"
# --format docker: the OCI format has no HEALTHCHECK; --isolation chroot: RUN without a runtime.
# The build stage is tagged too, so that pruning the previous build's leftovers keeps its
# layers (the cache of the next build).
build() {
  "${PODMAN[@]}" build --isolation chroot --format docker --layers "${BUILD_MOUNTS[@]}" \
    --build-arg BASE="$BASE" -f Dockerfile "$@" . >> "$STORE/build.log" 2>&1 \
    || { tail -40 "$STORE/build.log"; exit 1; }
}
: > "$STORE/build.log"
build --target build -t "$IMAGE-build"
build -t "$IMAGE"
"${PODMAN[@]}" image prune -f > /dev/null
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
step "built $IMAGE: $((size / 1000000)) MB"

step "starting the image's entrypoint from its own filesystem (tests/image)"
IGE_IMAGE="$IMAGE" IGE_PODMAN="${PODMAN[*]}" \
  "$PY" -m pytest -q -p no:cacheprovider tests/image
step "image test passed"
