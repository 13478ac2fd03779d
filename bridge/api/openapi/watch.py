"""Paths of heartbeats and maintenance windows."""

from __future__ import annotations

from typing import Any

from bridge.api.bodies import (
    MaintenanceRequest,
)
from bridge.api.openapi.parts import (
    ACTOR,
    NESTED,
    PAGING,
    id_param,
    model_schema,
    operation,
    query,
    values,
)
from bridge.domain.windows import WindowState


def watch_paths(page: dict[str, Any]) -> dict[str, Any]:
    """Heartbeats and maintenance windows (docs/how-to/heartbeats.md, docs/how-to/maintenance.md)."""
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    window = model_schema(MaintenanceRequest)
    NESTED.update(window.pop("$defs", {}))
    state, window_id = query("state", {"enum": values(WindowState)}), id_param("window_id")
    return {
        "/api/v1/heartbeats": {"get": operation("listHeartbeats", "heartbeats", (200, 401, 503))},
        "/api/v1/heartbeats/{name}/ping": {
            "post": operation("pingHeartbeat", "heartbeats", (200, 401, 404, 409, 415, 503), name)
        },
        "/api/v1/maintenance": {
            "post": operation("makeWindow", "maintenance", (201, 400, 401, 413, 415, 503), ACTOR, body=window),
            "get": operation("listWindows", "maintenance", (200, 400, 401, 503), state, *PAGING, ok=page),
        },
        "/api/v1/maintenance/{window_id}": {
            "get": operation("getWindow", "maintenance", (200, 401, 404, 503), window_id)
        },
        "/api/v1/maintenance/{window_id}/end": {
            "post": operation("endWindow", "maintenance", (200, 401, 404, 409, 415, 503), window_id, ACTOR)
        },
    }
