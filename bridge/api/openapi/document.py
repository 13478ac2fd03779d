"""The OpenAPI 3.1 document of the bridge's own HTTP API, served at /api/v1/openapi.json.

Request bodies of the release hook and the manual paths come from the same pydantic
models that validate them, so the document cannot drift from the checks.
"""

from __future__ import annotations

from typing import Any

from adapters import SOURCES
from bridge.api.bodies import (
    MergeRequest,
    MoveRequest,
    ReasonRequest,
    ReleaseRequest,
)
from bridge.api.openapi.deploys import deploy_paths
from bridge.api.openapi.parts import (
    ACTOR,
    BEARER,
    KEYSET_PAGE,
    KEYSET_PAGING,
    NESTED,
    PAGING,
    id_param,
    json_body,
    model_schema,
    pagerduty_shaped,
    query,
    responses,
    token_variables,
    values,
    with_edge_refusals,
)
from bridge.api.openapi.reports import report_paths
from bridge.api.openapi.tickets import ticket_paths
from bridge.api.openapi.watch import watch_paths
from bridge.domain.incidents import IncidentState
from bridge.domain.outbox import OutboxState
from bridge.domain.problems import ProblemState
from bridge.storage.engine import MAX_ID


def build_document() -> dict[str, Any]:
    """The whole document; request bodies from the API's own validators (bridge.api.bodies)."""
    page = {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": {"type": "object"}},
            "next_cursor": {"type": ["integer", "null"]},
        },
    }
    ingest_answer = {
        "type": "object",
        "required": ["status", "incidents", "outcomes", "rejected"],
        "properties": {
            "status": {"const": "ok"},
            "notification_id": {"type": "integer"},
            "incidents": {"type": "array", "items": {"type": "integer"}},
            "alerts": {"type": "integer"},
            "outcomes": {"type": "object"},
            "rejected": {"type": "array"},
            "truncated_alerts": {"type": "integer"},
        },
    }
    webhook = {
        "tags": ["webhooks"],
        "security": BEARER,
        "responses": responses(200, 400, 401, 404, 413, 415, 503, ok=ingest_answer),
    }
    # A source whose credential is in its body (PagerDuty's routing_key) answers in its sender's shape.
    accepted_event = {
        "type": "object",
        "required": ["status", "message", "dedup_key"],
        "properties": {
            "status": {"const": "success"},
            "message": {"type": "string"},
            "dedup_key": {"type": "string"},
            "incidents": {"type": "array", "items": {"type": "integer"}},
            "outcomes": {"type": "object"},
        },
    }
    event_webhook = pagerduty_shaped(accepted_event)
    sources = list(SOURCES)
    paths: dict[str, Any] = {
        **{
            f"/api/v1/alerts/{name}": {
                "post": {
                    **(webhook if source.token_variable else event_webhook),
                    "operationId": f"{name}Webhook",
                    "requestBody": json_body(dict(source.payload_schema)),
                }
            }
            for name, source in SOURCES.items()
            if source.alerts_endpoint
        },
        "/api/v1/incidents": {
            "get": {
                "operationId": "listIncidents",
                "security": BEARER,
                "parameters": [
                    query("state", {"enum": values(IncidentState)}),
                    query("source", {"enum": sources}),
                    query("priority", {"type": "string"}),
                    query("problem_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
                    *PAGING,
                ],
                "responses": responses(200, 400, 401, 503, ok=page),
            }
        },
        "/api/v1/incidents/{incident_id}": {
            "get": {
                "operationId": "getIncident",
                "security": BEARER,
                "parameters": [id_param("incident_id")],
                "responses": responses(200, 401, 404, 503),
            }
        },
        "/api/v1/rejected": {
            "get": {
                "operationId": "listRejected",
                "security": BEARER,
                "parameters": [query("source", {"enum": sources}), *PAGING],
                "responses": responses(200, 400, 401, 503, ok=page),
            }
        },
        "/api/v1/rejected/{rejected_id}": {
            "get": {
                "operationId": "getRejected",
                "security": BEARER,
                "parameters": [id_param("rejected_id")],
                "responses": responses(200, 401, 404, 503),
            }
        },
        "/api/v1/problems": {
            "get": {
                "operationId": "listProblems",
                "security": BEARER,
                "parameters": [
                    query("state", {"enum": values(ProblemState)}),
                    query("jira_key", {"type": "string"}),
                    *PAGING,
                ],
                "responses": responses(200, 400, 401, 503, ok=page),
            }
        },
        "/api/v1/problems/{problem_id}": {
            "get": {
                "operationId": "getProblem",
                "security": BEARER,
                "parameters": [id_param("problem_id")],
                "responses": responses(200, 401, 404, 503),
            }
        },
        "/api/v1/problems/{problem_id}/jira": {
            "post": {
                "operationId": "linkJiraIssue",
                "security": BEARER,
                "parameters": [id_param("problem_id")],
                "requestBody": json_body(
                    {"type": "object", "required": ["jira_key"], "properties": {"jira_key": {"type": "string"}}}
                ),
                "responses": responses(200, 400, 401, 404, 409, 413, 415, 422, 502, 503),
            },
            "delete": {
                "operationId": "unlinkJiraIssue",
                "security": BEARER,
                "parameters": [id_param("problem_id")],
                "responses": responses(200, 401, 404, 503),
            },
        },
        "/api/v1/problems/{problem_id}/jira/create": {
            "post": {
                "operationId": "createJiraIssueNow",
                "security": BEARER,
                "parameters": [id_param("problem_id")],
                "responses": responses(202, 401, 404, 409, 422, 503),
            }
        },
        "/api/v1/problems/{problem_id}/history": {
            "get": {
                "operationId": "listProblemHistory",
                "security": BEARER,
                "parameters": [id_param("problem_id"), *KEYSET_PAGING],
                "responses": responses(200, 400, 401, 404, 503, ok=KEYSET_PAGE),
            }
        },
        "/api/v1/problems/{problem_id}/notes": {
            "get": {
                "operationId": "listProblemNotes",
                "security": BEARER,
                "parameters": [id_param("problem_id"), *KEYSET_PAGING],
                "responses": responses(200, 400, 401, 404, 503, ok=KEYSET_PAGE),
            },
            "post": {
                "operationId": "addProblemNote",
                "security": BEARER,
                "parameters": [id_param("problem_id"), ACTOR],
                "requestBody": json_body(
                    {
                        "type": "object",
                        "required": ["text"],
                        "additionalProperties": False,
                        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 5000}},
                    }
                ),
                "responses": responses(201, 400, 401, 404, 413, 415, 503),
            },
        },
        "/api/v1/incidents/{incident_id}/ack": {
            "post": {
                "operationId": "acknowledgeIncident",
                "security": BEARER,
                "parameters": [id_param("incident_id"), ACTOR],
                "requestBody": json_body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"note": {"type": "string", "minLength": 1, "maxLength": 2000}},
                    },
                    required=False,
                ),
                "responses": responses(200, 400, 401, 404, 409, 413, 415, 503),
            }
        },
        "/api/v1/releases/{project}/{version}": {
            "get": {
                "operationId": "getReleaseHealth",
                "security": BEARER,
                "tags": ["releases"],
                "parameters": [
                    {"name": "project", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "responses": responses(200, 401, 404, 503),
            }
        },
        "/api/v1/problems/{problem_id}/close": {
            "post": {
                "operationId": "closeProblem",
                "security": BEARER,
                "parameters": [id_param("problem_id")],
                "requestBody": json_body(model_schema(ReasonRequest)),
                "responses": responses(200, 400, 401, 404, 409, 413, 415, 503),
            }
        },
        "/api/v1/problems/{problem_id}/reopen": {
            "post": {
                "operationId": "reopenProblem",
                "security": BEARER,
                "parameters": [id_param("problem_id")],
                "requestBody": json_body(model_schema(ReasonRequest)),
                "responses": responses(200, 400, 401, 404, 409, 413, 415, 503),
            }
        },
        "/api/v1/problems/{problem_id}/merge": {
            "post": {
                "operationId": "mergeProblem",
                "security": BEARER,
                "parameters": [id_param("problem_id")],
                "requestBody": json_body(model_schema(MergeRequest)),
                "responses": responses(200, 400, 401, 404, 409, 413, 415, 422, 503),
            }
        },
        "/api/v1/incidents/{incident_id}/move": {
            "post": {
                "operationId": "moveIncident",
                "security": BEARER,
                "parameters": [id_param("incident_id")],
                "requestBody": json_body(model_schema(MoveRequest)),
                "responses": responses(200, 400, 401, 404, 409, 413, 415, 422, 503),
            }
        },
        "/api/v1/releases": {
            "post": {
                "operationId": "releaseShipped",
                "security": BEARER,
                "tags": ["releases"],
                "requestBody": json_body(model_schema(ReleaseRequest)),
                "responses": responses(200, 400, 401, 409, 413, 415, 502, 503),
            },
            "get": {
                "operationId": "listReleases",
                "security": BEARER,
                "parameters": PAGING,
                "responses": responses(200, 400, 401, 503, ok=page),
            },
        },
        "/api/v1/outbox": {
            "get": {
                "operationId": "listOutbox",
                "security": BEARER,
                "parameters": [query("state", {"enum": values(OutboxState)}), *PAGING],
                "responses": responses(200, 400, 401, 503, ok=page),
            }
        },
        "/api/v1/outbox/{job_id}/retry": {
            "post": {
                "operationId": "retryOutboxJob",
                "security": BEARER,
                "parameters": [id_param("job_id")],
                "responses": responses(200, 401, 404, 409, 503),
            }
        },
        "/api/v1/jira/webhook": {
            "post": {
                "operationId": "jiraWebhook",
                "parameters": [query("secret", {"type": "string"})],
                "requestBody": json_body(
                    {"type": "object", "required": ["webhookEvent"], "properties": {"webhookEvent": {"type": "string"}}}
                ),
                "responses": responses(202, 400, 401, 409, 413, 415, 502, 503),
            }
        },
        **ticket_paths(),
        **watch_paths(page),
        **deploy_paths(page, event_webhook),
        **report_paths(),
        "/healthz": {"get": {"operationId": "healthz", "responses": responses(200)}},
        "/readyz": {"get": {"operationId": "readyz", "responses": responses(200, 503)}},
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "incident-bridge",
            "version": "1",
            "description": "Monitoring webhooks in; incidents, problems, Jira links and releases out.",
        },
        "paths": with_edge_refusals(paths),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": token_variables()}},
            "schemas": {
                **NESTED,
                "Error": {
                    "type": "object",
                    "required": ["status", "code", "message", "errors"],
                    "properties": {
                        "status": {"const": "error"},
                        "code": {"type": "integer"},
                        "error": {"enum": ["storage_unavailable", "storage_full", "storage_read_only"]},
                        "message": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "string"}},
                        "request_id": {"type": ["string", "null"]},
                    },
                },
            },
        },
    }
