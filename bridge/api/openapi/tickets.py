"""Paths of people's tickets: reported, linked by hand, their sync and the workaround they hear."""

from __future__ import annotations

from typing import Any

from adapters import tickets
from bridge.api.bodies import (
    WorkaroundRequest,
)
from bridge.api.openapi.parts import (
    ACTOR,
    BEARER,
    KEYSET_PAGE,
    KEYSET_PAGING,
    id_param,
    json_body,
    model_schema,
    responses,
)


def ticket_paths() -> dict[str, Any]:
    """People's tickets in, linking them to problems by hand, what they hear, how the syncs go (docs/how-to/tickets.md)."""
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
                "requestBody": json_body(dict(tickets.PAYLOAD_SCHEMA)),
                "responses": responses(200, 201, 400, 401, 413, 415, 422, 503, ok=reported),
            }
        },
        "/api/v1/tickets/sync": {
            "get": {
                "operationId": "listTicketSyncs",
                "security": BEARER,
                "tags": ["tickets"],
                "responses": responses(200, 401, 503),
            }
        },
        "/api/v1/problems/{problem_id}/workaround": {
            "post": {
                "operationId": "setWorkaround",
                "security": BEARER,
                "tags": ["tickets"],
                "parameters": [id_param("problem_id"), ACTOR],
                "requestBody": json_body(model_schema(WorkaroundRequest)),
                "responses": responses(200, 400, 401, 404, 413, 415, 503),
            },
            "delete": {
                "operationId": "clearWorkaround",
                "security": BEARER,
                "tags": ["tickets"],
                "parameters": [id_param("problem_id"), ACTOR],
                "responses": responses(200, 401, 404, 503),
            },
        },
        "/api/v1/problems/{problem_id}/tickets": {
            "get": {
                "operationId": "listProblemTickets",
                "security": BEARER,
                "tags": ["tickets"],
                "parameters": [id_param("problem_id"), *KEYSET_PAGING],
                "responses": responses(200, 400, 401, 404, 503, ok=KEYSET_PAGE),
            },
            "post": {
                "operationId": "linkTicket",
                "security": BEARER,
                "tags": ["tickets"],
                "parameters": [id_param("problem_id")],
                "requestBody": json_body(link),
                "responses": responses(200, 201, 400, 401, 404, 409, 413, 415, 422, 503),
            },
        },
        "/api/v1/problems/{problem_id}/tickets/{system}/{ticket_id}": {
            "delete": {
                "operationId": "unlinkTicket",
                "security": BEARER,
                "tags": ["tickets"],
                "parameters": [
                    id_param("problem_id"),
                    {"name": "system", "in": "path", "required": True, "schema": text},
                    {"name": "ticket_id", "in": "path", "required": True, "schema": text},
                ],
                "responses": responses(200, 401, 404, 503),
            }
        },
    }
