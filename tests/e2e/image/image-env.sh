#!/usr/bin/env bash
# The shipped Dockerfile, built here without a Docker daemon, for test_image.py beside this file.
#   image-env.sh install   install podman and mmdebstrap (Debian packages) if needed;
#                          exit 3 when they cannot be installed (the image tests then skip, saying so)
#   image-env.sh build     bootstrap debian:bookworm-slim with mmdebstrap (cached), build the checkout's
#                          Dockerfile on it as shipped, print KEY=VALUE lines: PODMAN_ARGS, IMAGE_ID,
#                          BASE (cached or bootstrapped), BUILD_SECONDS
# The cache ($IMAGE_E2E_CACHE, default /var/cache/incident-bridge-image) keeps the base's tarball,
# named after a hash of what it is bootstrapped from, and podman's own storage, whose layer cache
# makes a rebuild with unchanged dependencies quick. Nothing is pulled from a registry (--pull=never):
# the base is tagged as the image users pull. Runs under $IMAGE_E2E_CACHE/lock, unless the caller
# says it holds it (IMAGE_E2E_LOCK_HELD=1).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
CACHE=${IMAGE_E2E_CACHE:-/var/cache/incident-bridge-image}
BASE=docker.io/library/debian:bookworm-slim
IMAGE=localhost/incident-bridge:e2e

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi
}

install_packages() {
    command -v podman >/dev/null && command -v mmdebstrap >/dev/null && return 0
    export DEBIAN_FRONTEND=noninteractive
    {
        as_root apt-get update -qq &&
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null &&  # start no daemon
        as_root chmod +x /usr/sbin/policy-rc.d &&
        as_root apt-get install -y -qq --no-install-recommends podman mmdebstrap >/dev/null
    } || { as_root rm -f /usr/sbin/policy-rc.d; echo "image-env: cannot install podman and mmdebstrap" >&2; exit 3; }
    as_root rm -f /usr/sbin/policy-rc.d
}

# What debian:bookworm-slim is made of (debuerreotype's "slim" variant): minbase with merged /usr,
# no documentation, manual pages or translations, and apt's docker-clean settings, from Debian's
# own mirrors of bookworm, its updates and its security updates.
BOOTSTRAP=(
    --variant=minbase
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright'
    --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/groff/*'
    --dpkgopt='path-exclude=/usr/share/lintian/*'
    --aptopt='Acquire::Languages "none"'
    --aptopt='DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }'
    --aptopt='APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }'
    --aptopt='Dir::Cache::pkgcache ""'
    --aptopt='Dir::Cache::srcpkgcache ""'
    bookworm
)
MIRRORS=(
    "deb http://deb.debian.org/debian bookworm main"
    "deb http://deb.debian.org/debian bookworm-updates main"
    "deb http://deb.debian.org/debian-security bookworm-security main"
)

storage_driver() {
    if grep -qw overlay /proc/filesystems; then echo overlay; else echo vfs; fi
}

build() {
    install_packages
    mkdir -p "$CACHE"
    if [ "${IMAGE_E2E_LOCK_HELD:-0}" != 1 ]; then
        exec 9>>"$CACHE/lock"
        flock 9
    fi
    local driver started key tarball podman_args base_state=cached
    driver=$(storage_driver)
    podman_args=(--root "$CACHE/storage-$driver" --runroot "$CACHE/run-$driver" --storage-driver "$driver")
    started=$(date +%s.%N)

    key=$({ mmdebstrap --version; printf '%s\n' "${BOOTSTRAP[@]}" "${MIRRORS[@]}"; } | sha256sum | cut -c1-16)
    tarball="$CACHE/base-$key.tar"
    if [ ! -s "$tarball" ]; then
        echo "image-env: bootstrapping $BASE with mmdebstrap into $tarball" >&2
        mmdebstrap --quiet --format=tar "${BOOTSTRAP[@]}" "$tarball.partial" "${MIRRORS[@]}" >&2
        mv "$tarball.partial" "$tarball"
        rm -f "$CACHE"/base-*.id
        base_state=bootstrapped
    fi
    local imported
    imported=$(podman "${podman_args[@]}" image inspect --format '{{.Id}}' "$BASE" 2>/dev/null || true)
    if [ -z "$imported" ] || [ "$imported" != "$(cat "$tarball.id" 2>/dev/null || true)" ]; then
        podman "${podman_args[@]}" import --quiet --change 'CMD ["bash"]' "$tarball" "$BASE" >"$tarball.id"
        sed -i 's/^sha256://' "$tarball.id"
    fi

    # The registries may be reached through a proxy whose certificate authority is in the host's
    # bundle: pip in the build trusts that bundle, mounted where no package of the image writes
    # (ca-certificates owns /etc/ssl/certs/ca-certificates.crt). Build-time mounts only: the image
    # keeps neither file.
    local trust=()
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
        printf '[global]\ncert = /run/host-ca.pem\n' >"$CACHE/pip.conf"
        trust=(--volume /etc/ssl/certs/ca-certificates.crt:/run/host-ca.pem:ro --volume "$CACHE/pip.conf:/etc/pip.conf:ro")
    fi
    # The build stage (and so the dependencies' stage below it) is tagged too, so that pruning what
    # no tag holds keeps the layers a rebuild reuses and drops those of earlier checkouts.
    local common=(--isolation chroot --pull=never --format docker --layers "${trust[@]}" -f "$ROOT/Dockerfile")
    podman "${podman_args[@]}" build "${common[@]}" --target build -t "$IMAGE-build" "$ROOT" >&2
    podman "${podman_args[@]}" build "${common[@]}" --iidfile "$CACHE/iid.$$" -t "$IMAGE" "$ROOT" >&2
    podman "${podman_args[@]}" image prune --force >/dev/null
    echo "PODMAN_ARGS=${podman_args[*]}"
    echo "IMAGE_ID=$(sed 's/^sha256://' "$CACHE/iid.$$")"
    rm -f "$CACHE/iid.$$"
    echo "BASE=$base_state"
    echo "BUILD_SECONDS=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $started }")"
}

case "${1:-}" in
    install) install_packages ;;
    build) build ;;
    *) echo "usage: $0 install|build" >&2; exit 2 ;;
esac
