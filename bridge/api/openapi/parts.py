"""The pieces every path of the document is made of: answers, parameters, bodies, the bearer scheme."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from bridge.config import TOKEN_GROUPS
from bridge.storage.engine import MAX_ID
from bridge.web.edge import ACTING_METHODS

ERROR = {"$ref": "#/components/schemas/Error"}


def json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def responses(*codes: int, ok: dict[str, Any] | None = None) -> dict[str, Any]:
    described = {
        200: "OK",
        201: "Created",
        202: "Accepted",
        400: "Invalid input; errors name the fields",
        401: "Missing or wrong token",
        403: "Refused: a browser's request from another site, or one addressed to another host name",
        404: "Not found",
        409: "Conflicts with the current state",
        413: "Body too large",
        415: "Body not sent as application/json",
        422: "Refers to something unusable (e.g. an unknown Jira issue)",
        429: "Too many failed authentications from this client address; retry after Retry-After seconds",
        502: "Upstream refused",
        503: "Database or upstream unavailable; retry",
    }
    responses = {}
    for code in codes:
        content = ok if code < 300 and ok is not None else ERROR if code >= 400 else {"type": "object"}
        responses[str(code)] = {"description": described[code], "content": {"application/json": {"schema": content}}}
    return responses


def id_param(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
    }


def query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


PAGING = [
    query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
    query("cursor", {"type": "integer", "minimum": 1, "maximum": MAX_ID}),
]
# A keyset page (a problem's history, notes, tickets): an opaque cursor from the page before.
KEYSET_PAGING = [PAGING[0], query("cursor", {"type": "string", "maxLength": 200})]
KEYSET_PAGE = {
    "type": "object",
    "required": ["items", "next_cursor"],
    "properties": {
        "items": {"type": "array", "items": {"type": "object"}},
        "next_cursor": {"type": ["string", "null"]},
    },
}
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
# Who an API client acts for (bridge.web.actors); behind a trusted SSO proxy its user header wins.
ACTOR = {
    "name": "X-Bridge-Actor",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 200},
}


def values(states: type[StrEnum]) -> list[str]:
    return [state.value for state in states]


def token_variables() -> str:
    """`BRIDGE_TOKEN_ALERTMANAGER / _ZABBIX / ...`: every endpoint group's token variable."""
    first, *others = TOKEN_GROUPS.values()
    return " / ".join([first, *(variable.removeprefix("BRIDGE_TOKEN") for variable in others)])


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(ref_template="#/components/schemas/{model}")


# Schemas of models nested in request bodies, referred to from components (see `watch_paths`).
NESTED: dict[str, Any] = {}


def operation(op: str, tag: str, codes: tuple[int, ...], *params: Any, body: Any = None, ok: Any = None) -> Any:
    """One operation behind a bearer token, with its request body's schema and its answer's when given."""
    found = {"operationId": op, "security": BEARER, "tags": [tag], "parameters": list(params)}
    return {**found, **({"requestBody": json_body(body)} if body else {}), "responses": responses(*codes, ok=ok)}


# A refusal in a PagerDuty sender's shape (bridge.api.webhooks.pagerduty_error).
EVENT_ERROR = {
    "type": "object",
    "required": ["status", "message", "errors", "code"],
    "properties": {
        "status": {"type": "string"},
        "message": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "string"}},
        "code": {"type": "integer"},
        "error": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
    },
}


def pagerduty_shaped(accepted: dict[str, Any]) -> dict[str, Any]:
    """An endpoint PagerDuty's senders post to: the routing key in the body (no bearer), answers in their shapes."""
    return {
        "tags": ["webhooks"],
        "security": [],
        "responses": {
            code: {**answer, "content": {"application/json": {"schema": accepted if code == "202" else EVENT_ERROR}}}
            for code, answer in responses(202, 400, 413, 415, 503).items()
        },
    }


def with_edge_refusals(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation's answers from the edge checks every request passes (web.edge): 403 for another
    site or host name; 415 for an acting request not declaring JSON; 429 where a token is compared."""
    for item in paths.values():
        for method, op in item.items():
            codes = (
                [403]
                + ([415] if method.upper() in ACTING_METHODS else [])
                + ([429] if "401" in op["responses"] else [])
            )
            for code, answer in responses(*codes).items():
                op["responses"].setdefault(code, answer)
    return paths
