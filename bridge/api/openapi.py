"""The OpenAPI 3.1 document of the bridge's own HTTP API, served at /api/v1/openapi.json.

Request bodies of the release hook and the manual paths come from the same pydantic
models that validate them, so the document cannot drift from the checks.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from adapters import SOURCES, tickets
from bridge.api.bodies import MaintenanceRequest, MergeRequest, MoveRequest, ReasonRequest, ReleaseRequest
from bridge.config import TOKEN_GROUPS
from bridge.domain.incidents import IncidentState
from bridge.domain.outbox import OutboxState
from bridge.domain.problems import JIRA_PROJECT, ProblemState
from bridge.domain.windows import WindowState
from bridge.storage.engine import MAX_ID

ERROR = {"$ref": "#/components/schemas/Error"}


def _json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _responses(*codes: int, ok: dict[str, Any] | None = None) -> dict[str, Any]:
    described = {
        200: "OK",
        201: "Created",
        202: "Accepted",
        400: "Invalid input; errors name the fields",
        401: "Missing or wrong token",
        404: "Not found",
        409: "Conflicts with the current state",
        413: "Body too large",
        415: "Body not sent as application/json",
        422: "Refers to something unusable (e.g. an unknown Jira issue)",
        502: "Upstream refused",
        503: "Database or upstream unavailable; retry",
    }
    responses = {}
    for code in codes:
        content = ok if code < 300 and ok is not None else ERROR if code >= 400 else {"type": "object"}
        responses[str(code)] = {"description": described[code], "content": {"application/json": {"schema": content}}}
    return responses


def _id_param(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


PAGING = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
    _query("cursor", {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
]
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
# Who an API client acts for (bridge.web.actors); behind a trusted SSO proxy its user header wins.
ACTOR = {
    "name": "X-Bridge-Actor",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}


def _values(states: type[StrEnum]) -> list[str]:
    return [state.value for state in states]


def _token_variables() -> str:
    """`BRIDGE_TOKEN_ALERTMANAGER / _ZABBIX / ...`: every endpoint group's token variable."""
    first, *others = TOKEN_GROUPS.values()
    return " / ".join([first, *(variable.removeprefix("BRIDGE_TOKEN") for variable in others)])


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


def _ticket_paths() -> dict[str, Any]:
    """People's tickets in, and linking them to problems by hand (docs/how-to/tickets.md)."""
    reported = {
        "type": "object",
        "required": ["status", "incident", "outcome"],
        "properties": {
            "status": {"const": "ok"},
            "incident": {"type": ["integer", "null"]},
            "outcome": {"type": "string"},
            "problem_id": {"type": ["integer", "null"]},
            "priority": {"type": "string"},
        },
    }
    link = {
        "type": "object",
        "required": ["system", "ticket_id"],
        "additionalProperties": False,
        "properties": {
            "system": {"type": "string", "pattern": tickets.SYSTEM_PATTERN},
            "ticket_id": {"type": "string", "pattern": tickets.TICKET_ID_PATTERN},
            "url": {"type": "string", "pattern": tickets.URL_PATTERN},
            "summary": {"type": "string", "maxLength": tickets.MAX_SUMMARY_LENGTH},
        },
    }
    text = {"type": "string", "minLength": 1}
    return {
        "/api/v1/tickets": {
            "post": {
                "operationId": "reportTicket",
                "security": BEARER,
                "tags": ["tickets"],
                "requestBody": _json_body(dict(tickets.PAYLOAD_SCHEMA)),
                "responses": _responses(200, 201, 400, 401, 413, 415, 422, 503, ok=reported),
            }
        },
        "/api/v1/problems/{problem_id}/tickets": {
            "post": {
                "operationId": "linkTicket",
                "security": BEARER,
                "tags": ["tickets"],
                "parameters": [_id_param("problem_id")],
                "requestBody": _json_body(link),
                "responses": _responses(200, 201, 400, 401, 404, 409, 413, 415, 422, 503),
            }
        },
        "/api/v1/problems/{problem_id}/tickets/{system}/{ticket_id}": {
            "delete": {
                "operationId": "unlinkTicket",
                "security": BEARER,
                "tags": ["tickets"],
                "parameters": [
                    _id_param("problem_id"),
                    {"name": "system", "in": "path", "required": True, "schema": text},
                    {"name": "ticket_id", "in": "path", "required": True, "schema": text},
                ],
                "responses": _responses(200, 401, 404, 503),
            }
        },
    }


# Schemas of models nested in request bodies, referred to from components (see `_watch_paths`).
NESTED: dict[str, Any] = {}


def _operation(op: str, tag: str, codes: tuple[int, ...], *params: Any, body: Any = None, ok: Any = None) -> Any:
    """One operation behind a bearer token, with its request body's schema and its answer's when given."""
    found = {"operationId": op, "security": BEARER, "tags": [tag], "parameters": list(params)}
    return {**found, **({"requestBody": _json_body(body)} if body else {}), "responses": _responses(*codes, ok=ok)}


def _watch_paths(page: dict[str, Any]) -> dict[str, Any]:
    """Heartbeats and maintenance windows (docs/how-to/heartbeats.md, docs/how-to/maintenance.md)."""
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
    window = _model_schema(MaintenanceRequest)
    NESTED.update(window.pop("$defs", {}))
    state, window_id = _query("state", {"enum": _values(WindowState)}), _id_param("window_id")
    return {
        "/api/v1/heartbeats": {"get": _operation("listHeartbeats", "heartbeats", (200, 401, 503))},
        "/api/v1/heartbeats/{name}/ping": {
            "post": _operation("pingHeartbeat", "heartbeats", (200, 401, 404, 409, 415, 503), name)
        },
        "/api/v1/maintenance": {
            "post": _operation("makeWindow", "maintenance", (201, 400, 401, 413, 415, 503), ACTOR, body=window),
            "get": _operation("listWindows", "maintenance", (200, 400, 401, 503), state, *PAGING, ok=page),
        },
        "/api/v1/maintenance/{window_id}": {
            "get": _operation("getWindow", "maintenance", (200, 401, 404, 503), window_id)
        },
        "/api/v1/maintenance/{window_id}/end": {
            "post": _operation("endWindow", "maintenance", (200, 401, 404, 409, 415, 503), window_id, ACTOR)
        },
    }


def _report_paths() -> dict[str, Any]:
    """The service report (docs/how-to/reports.md): JSON, and CSV for BI tools."""
    date = {"type": "string", "format": "date"}
    period = [
        _query("from", date),
        _query("to", date),
        _query("month", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}),
        _query("project", {"type": "string", "pattern": JIRA_PROJECT.pattern}),
    ]
    csv = {"text/csv": {"schema": {"type": "string"}}}

    def download(operation: str, what: str) -> dict[str, Any]:
        return {
            "get": {
                "operationId": operation,
                "security": BEARER,
                "tags": ["reports"],
                "parameters": period,
                "responses": {**_responses(400, 401, 503), "200": {"description": what, "content": csv}},
            }
        }

    return {
        "/api/v1/reports/service": {
            "get": {
                "operationId": "serviceReport",
                "security": BEARER,
                "tags": ["reports"],
                "parameters": period,
                "responses": _responses(200, 400, 401, 503),
            }
        },
        "/api/v1/reports/service.csv": download(
            "serviceReportCsv", "The figures: section, item, figure, current, previous"
        ),
        "/api/v1/reports/incidents.csv": download("incidentsCsv", "One row per incident first seen in the period"),
    }


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
        "responses": _responses(200, 400, 401, 404, 413, 415, 503, ok=ingest_answer),
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
    event_error = {
        "type": "object",
        "required": ["status", "message", "errors", "code"],
        "properties": {
            "status": {"type": "string"},
            "message": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "string"}},
            "code": {"type": "integer"},
            "request_id": {"type": ["string", "null"]},
        },
    }
    event_webhook = {
        "tags": ["webhooks"],
        "security": [],
        "responses": {
            code: {
                **answer,
                "content": {"application/json": {"schema": accepted_event if code == "202" else event_error}},
            }
            for code, answer in _responses(202, 400, 413, 415, 503).items()
        },
    }
    sources = list(SOURCES)
    paths: dict[str, Any] = {
        **{
            f"/api/v1/alerts/{name}": {
                "post": {
                    **(webhook if source.token_variable else event_webhook),
                    "operationId": f"{name}Webhook",
                    "requestBody": _json_body(dict(source.payload_schema)),
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
                    _query("state", {"enum": _values(IncidentState)}),
                    _query("source", {"enum": sources}),
                    _query("priority", {"type": "string"}),
                    _query("problem_id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
                    *PAGING,
                ],
                "responses": _responses(200, 400, 401, 503, ok=page),
            }
        },
        "/api/v1/incidents/{incident_id}": {
            "get": {
                "operationId": "getIncident",
                "security": BEARER,
                "parameters": [_id_param("incident_id")],
                "responses": _responses(200, 401, 404, 503),
            }
        },
        "/api/v1/rejected": {
            "get": {
                "operationId": "listRejected",
                "security": BEARER,
                "parameters": [_query("source", {"enum": sources}), *PAGING],
                "responses": _responses(200, 400, 401, 503, ok=page),
            }
        },
        "/api/v1/rejected/{rejected_id}": {
            "get": {
                "operationId": "getRejected",
                "security": BEARER,
                "parameters": [_id_param("rejected_id")],
                "responses": _responses(200, 401, 404, 503),
            }
        },
        "/api/v1/problems": {
            "get": {
                "operationId": "listProblems",
                "security": BEARER,
                "parameters": [
                    _query("state", {"enum": _values(ProblemState)}),
                    _query("jira_key", {"type": "string"}),
                    *PAGING,
                ],
                "responses": _responses(200, 400, 401, 503, ok=page),
            }
        },
        "/api/v1/problems/{problem_id}": {
            "get": {
                "operationId": "getProblem",
                "security": BEARER,
                "parameters": [_id_param("problem_id")],
                "responses": _responses(200, 401, 404, 503),
            }
        },
        "/api/v1/problems/{problem_id}/jira": {
            "post": {
                "operationId": "linkJiraIssue",
                "security": BEARER,
                "parameters": [_id_param("problem_id")],
                "requestBody": _json_body(
                    {"type": "object", "required": ["jira_key"], "properties": {"jira_key": {"type": "string"}}}
                ),
                "responses": _responses(200, 400, 401, 404, 409, 413, 415, 422, 502, 503),
            },
            "delete": {
                "operationId": "unlinkJiraIssue",
                "security": BEARER,
                "parameters": [_id_param("problem_id")],
                "responses": _responses(200, 401, 404, 503),
            },
        },
        "/api/v1/problems/{problem_id}/jira/create": {
            "post": {
                "operationId": "createJiraIssueNow",
                "security": BEARER,
                "parameters": [_id_param("problem_id")],
                "responses": _responses(202, 401, 404, 409, 422, 503),
            }
        },
        "/api/v1/problems/{problem_id}/notes": {
            "post": {
                "operationId": "addProblemNote",
                "security": BEARER,
                "parameters": [_id_param("problem_id"), ACTOR],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "required": ["text"],
                        "additionalProperties": False,
                        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 5000}},
                    }
                ),
                "responses": _responses(201, 400, 401, 404, 413, 415, 503),
            }
        },
        "/api/v1/incidents/{incident_id}/ack": {
            "post": {
                "operationId": "acknowledgeIncident",
                "security": BEARER,
                "parameters": [_id_param("incident_id"), ACTOR],
                "requestBody": _json_body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"note": {"type": "string", "minLength": 1, "maxLength": 2000}},
                    },
                    required=False,
                ),
                "responses": _responses(200, 400, 401, 404, 409, 413, 415, 503),
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
                "responses": _responses(200, 401, 404, 503),
            }
        },
        "/api/v1/problems/{problem_id}/close": {
            "post": {
                "operationId": "closeProblem",
                "security": BEARER,
                "parameters": [_id_param("problem_id")],
                "requestBody": _json_body(_model_schema(ReasonRequest)),
                "responses": _responses(200, 400, 401, 404, 409, 413, 415, 503),
            }
        },
        "/api/v1/problems/{problem_id}/reopen": {
            "post": {
                "operationId": "reopenProblem",
                "security": BEARER,
                "parameters": [_id_param("problem_id")],
                "requestBody": _json_body(_model_schema(ReasonRequest)),
                "responses": _responses(200, 400, 401, 404, 409, 413, 415, 503),
            }
        },
        "/api/v1/problems/{problem_id}/merge": {
            "post": {
                "operationId": "mergeProblem",
                "security": BEARER,
                "parameters": [_id_param("problem_id")],
                "requestBody": _json_body(_model_schema(MergeRequest)),
                "responses": _responses(200, 400, 401, 404, 409, 413, 415, 422, 503),
            }
        },
        "/api/v1/incidents/{incident_id}/move": {
            "post": {
                "operationId": "moveIncident",
                "security": BEARER,
                "parameters": [_id_param("incident_id")],
                "requestBody": _json_body(_model_schema(MoveRequest)),
                "responses": _responses(200, 400, 401, 404, 409, 413, 415, 422, 503),
            }
        },
        "/api/v1/releases": {
            "post": {
                "operationId": "releaseShipped",
                "security": BEARER,
                "tags": ["releases"],
                "requestBody": _json_body(_model_schema(ReleaseRequest)),
                "responses": _responses(200, 400, 401, 409, 413, 415, 502, 503),
            },
            "get": {
                "operationId": "listReleases",
                "security": BEARER,
                "parameters": PAGING,
                "responses": _responses(200, 400, 401, 503, ok=page),
            },
        },
        "/api/v1/outbox": {
            "get": {
                "operationId": "listOutbox",
                "security": BEARER,
                "parameters": [_query("state", {"enum": _values(OutboxState)}), *PAGING],
                "responses": _responses(200, 400, 401, 503, ok=page),
            }
        },
        "/api/v1/outbox/{job_id}/retry": {
            "post": {
                "operationId": "retryOutboxJob",
                "security": BEARER,
                "parameters": [_id_param("job_id")],
                "responses": _responses(200, 401, 404, 409, 503),
            }
        },
        "/api/v1/jira/webhook": {
            "post": {
                "operationId": "jiraWebhook",
                "parameters": [_query("secret", {"type": "string"})],
                "requestBody": _json_body(
                    {"type": "object", "required": ["webhookEvent"], "properties": {"webhookEvent": {"type": "string"}}}
                ),
                "responses": _responses(202, 400, 401, 409, 413, 415, 502, 503),
            }
        },
        **_ticket_paths(),
        **_watch_paths(page),
        **_report_paths(),
        "/healthz": {"get": {"operationId": "healthz", "responses": _responses(200)}},
        "/readyz": {"get": {"operationId": "readyz", "responses": _responses(200, 503)}},
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
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": _token_variables()}},
            "schemas": {
                **NESTED,
                "Error": {
                    "type": "object",
                    "required": ["status", "code", "message", "errors"],
                    "properties": {
                        "status": {"const": "error"},
                        "code": {"type": "integer"},
                        "message": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "string"}},
                        "request_id": {"type": ["string", "null"]},
                    },
                },
            },
        },
    }
