# incident-bridge: slim image, non-root, Granian (the default HTTP server), health-checked.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY adapters ./adapters
COPY jira_link ./jira_link
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BRIDGE_BIND=0.0.0.0:8080 \
    BRIDGE_RULES=/app/rules.yaml \
    BRIDGE_DATABASE_URL=sqlite:////data/bridge.db
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --home /app bridge \
    && mkdir -p /app /data && chown bridge /app /data
WORKDIR /app
COPY rules.yaml /app/rules.yaml
USER bridge
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["incident-bridge"]
CMD ["serve"]
