# incident-bridge: Debian's Python 3.11 and the application in a virtual environment, built in two
# stages (its dependencies, then the package) and copied into a final one that holds no pip, no
# build tool and no compiler.
# Runs as the unprivileged user `bridge` (uid 10001). docs/how-to/production.md tells how to run it;
# tests/e2e/image/ builds this very file and runs what it makes.
#
# BASE_IMAGE is what users pull; pin it by digest for reproducible builds
# (--build-arg BASE_IMAGE=debian:bookworm-slim@sha256:...). Both stages share it, so the
# virtual environment's python3 is the very one it was built with.
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS dependencies
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/incident-bridge
ENV PATH=/opt/incident-bridge/bin:$PATH \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Dependencies first, read from pyproject.toml alone: this layer is rebuilt only when they change.
# Wheels only: nothing is compiled, so no compiler is needed in either stage.
COPY pyproject.toml ./
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        >requirements.txt \
    && pip install --only-binary=:all: -r requirements.txt

FROM dependencies AS build
COPY README.md ./
COPY bridge ./bridge
COPY adapters ./adapters
COPY jira_link ./jira_link
# The package itself (templates, static files, migrations: its package data), then the installer
# is removed: nothing in the final image can install code.
RUN pip install --no-deps . \
    && pip uninstall --yes pip setuptools

FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=""
LABEL org.opencontainers.image.title="incident-bridge" \
      org.opencontainers.image.description="Monitoring webhooks (Alertmanager, Zabbix, Grafana, Events v2) in; deduplicated incidents, problems linked to Jira, release close out" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
# tini is PID 1: it passes SIGTERM on to the bridge and reaps the processes the bridge starts.
# ca-certificates: the system's trust store, for Jira, Zabbix and outbound webhooks over HTTPS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 tini ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid bridge --home-dir /data --no-create-home --shell /usr/sbin/nologin bridge \
    && mkdir -p /data /etc/incident-bridge \
    && chown bridge:bridge /data
COPY --from=build /opt/incident-bridge /opt/incident-bridge
# The example rules, so the image starts as it is; mount your own file over it.
COPY rules.yaml /etc/incident-bridge/rules.yaml
ENV PATH=/opt/incident-bridge/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BRIDGE_BIND=0.0.0.0:8080 \
    BRIDGE_RULES=/etc/incident-bridge/rules.yaml \
    BRIDGE_DATABASE_URL=sqlite:////data/bridge.db
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Asks /healthz on 127.0.0.1 at BRIDGE_BIND's port (so it follows a changed BRIDGE_BIND); Python's
# standard library only, so a check costs milliseconds, not an import of the application.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; port = os.environ['BRIDGE_BIND'].rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=2)"]
ENTRYPOINT ["/usr/bin/tini", "--", "incident-bridge"]
# Migrates first (once, whatever the number of replicas starting together), then serves.
CMD ["serve", "--migrate"]
