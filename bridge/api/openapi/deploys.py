"""Paths of deploys and changes, and the PagerDuty drop-in (`/v2/enqueue`, `/v2/change/enqueue`)."""

from __future__ import annotations

from typing import Any

from adapters import changes, events
from bridge.api.bodies import ENVIRONMENT, DeployRequest
from bridge.api.openapi.parts import PAGING, json_body, model_schema, operation, pagerduty_shaped, query
from bridge.domain.problems import JIRA_PROJECT


def deploy_paths(page: dict[str, Any], event_webhook: dict[str, Any]) -> dict[str, Any]:
    """Deploys from the pipeline, changes from Change Events senders (docs/how-to/releases.md,
    docs/how-to/events-v2.md)."""
    accepted_change = {
        "type": "object",
        "required": ["status", "message", "change_id"],
        "properties": {
            "status": {"const": "success"},
            "message": {"type": "string"},
            "change_id": {"type": "integer"},
        },
    }
    change_body = json_body(dict(changes.PAYLOAD_SCHEMA))
    deploy_filters = (
        query("project", {"type": "string", "pattern": JIRA_PROJECT.pattern}),
        query("environment", {"type": "string", "pattern": ENVIRONMENT}),
    )
    return {
        "/api/v1/deploys": {
            "post": operation(
                "deployTold", "releases", (200, 201, 400, 401, 413, 415, 503), body=model_schema(DeployRequest)
            ),
            "get": operation("listDeploys", "releases", (200, 400, 401, 503), *deploy_filters, *PAGING, ok=page),
        },
        "/api/v1/changes": {
            "post": {**pagerduty_shaped(accepted_change), "operationId": "changeEvent", "requestBody": change_body},
            "get": operation("listChanges", "releases", (200, 400, 401, 503), *PAGING, ok=page),
        },
        "/v2/enqueue": {
            "post": {
                **event_webhook,
                "operationId": "pagerdutyEnqueue",
                "requestBody": json_body(dict(events.PAYLOAD_SCHEMA)),
            }
        },
        "/v2/change/enqueue": {
            "post": {
                **pagerduty_shaped(accepted_change),
                "operationId": "pagerdutyChangeEnqueue",
                "requestBody": change_body,
            }
        },
    }
