#!/usr/bin/env bash
# Start and install what the test suite talks to: PostgreSQL and Alertmanager.
# Idempotent; safe to run on every `make test`.
set -euo pipefail

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "setup-test-env: need root for: $*" >&2; return 1; fi
}

# PostgreSQL: the production store; storage tests run on it as well as SQLite.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
    fi
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 || { echo "setup-test-env: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }

# A real Alertmanager (Debian package) for the end-to-end tests, and promtool (package
# prometheus) to check the alerting rules in dashboards/.
missing=""
command -v prometheus-alertmanager >/dev/null || missing="$missing prometheus-alertmanager"
command -v promtool >/dev/null || missing="$missing prometheus"
# Debian's Chromium for the browser tests of /ui/ (Playwright drives it; no browser download).
command -v chromium >/dev/null || missing="$missing chromium"
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    # policy-rc.d keeps the package from starting a system-wide daemon.
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    # shellcheck disable=SC2086 # a list of package names
    as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
    as_root rm -f /usr/sbin/policy-rc.d
fi
prometheus-alertmanager --version 2>&1 | head -n 1
promtool --version 2>&1 | head -n 1

# Request Tracker 5 (Debian packages; no daemon starts) for the ticket tests, which start and stop its
# standalone server themselves. Where it cannot be installed those tests skip, saying why.
bash "$(dirname "$0")/e2e/request_tracker/rt-env.sh" install ||
    echo "setup-test-env: request-tracker5 could not be installed; the real RT tests will skip" >&2

# podman and mmdebstrap (Debian packages) for the image tests, which bootstrap debian:bookworm-slim,
# build the shipped Dockerfile on it and run the image. Where they cannot be installed those tests skip,
# saying why.
bash "$(dirname "$0")/e2e/image/image-env.sh" install ||
    echo "setup-test-env: podman and mmdebstrap could not be installed; the image tests will skip" >&2
