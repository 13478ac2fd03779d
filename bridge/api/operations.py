"""What operators and their tools poll: liveness, readiness, Prometheus metrics, this API's OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from bridge import metrics
from bridge.api.openapi.document import build_document
from bridge.web.context import bridge

operations = Blueprint("operations", __name__)


@operations.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    """Liveness: the process answers. Never touches the database."""
    return jsonify({"status": "ok"})


@operations.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    """Readiness: the database answers and takes writes; 503 naming why otherwise (unreachable, full, read-only)."""
    bridge().store.ping()
    return jsonify({"status": "ok", "database": "ok"})


@operations.get("/metrics")
def prometheus_metrics():  # type: ignore[no-untyped-def]
    """Prometheus exposition: counters summed across processes, gauges from the database."""
    body, content_type = metrics.exposition(bridge().store, bridge().rules)
    return Response(body, content_type=content_type)


@operations.get("/api/v1/openapi.json")
def openapi_document():  # type: ignore[no-untyped-def]
    """This API, described for clients and for schemathesis."""
    return jsonify(build_document())
