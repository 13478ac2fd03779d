"""HTTP API of the third line's newer actions (acknowledge, notes, create the Jira issue now) and release health.

Acting needs the operate token; the actor is whoever `bridge.actors.request_actor` names.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, ValidationError

from bridge.actions import acknowledge_incident, add_problem_note, create_issue_now
from bridge.actors import request_actor
from bridge.api import incident_json, problem_json
from bridge.context import bridge
from bridge.edge import json_object, read_body, require_json, requires_token
from bridge.errors import BadPayload, NotFound
from bridge.release_health import health_json, release_health
from bridge.validation import bounded_str, describe

api_actions = Blueprint("api_actions", __name__)


@api_actions.before_request
def _require_json_body() -> None:
    require_json()


class AcknowledgeRequest(BaseModel):
    """An acknowledgement, optionally with a note (the body itself is optional)."""

    model_config = ConfigDict(extra="forbid")

    note: bounded_str(1, 2000) | None = None  # type: ignore[valid-type]


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: bounded_str(1, 5000)  # type: ignore[valid-type]


def validated_body(model: type[BaseModel], *, optional: bool = False) -> Any:
    """The JSON body as `model`; an empty body is `model()` when `optional`.

    Raises:
        BadPayload: not a JSON object, or a field fails its check.
    """
    if optional and not read_body():
        return model()
    body = json_object()
    if not isinstance(body, dict):
        raise BadPayload("expected a JSON object", ["body: not a JSON object"])
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        raise BadPayload(f"invalid {model.__name__}", describe(exc)) from exc
    return parsed


@api_actions.post("/api/v1/incidents/<int:incident_id>/ack")
@requires_token("operate")
def acknowledge(incident_id: int):  # type: ignore[no-untyped-def]
    """Someone has it: the incident's response clock stops."""
    body = validated_body(AcknowledgeRequest, optional=True)
    ctx = bridge()
    incident = acknowledge_incident(ctx.store, incident_id, request_actor(), body.note, ctx.now())
    return jsonify(incident_json(incident))


@api_actions.post("/api/v1/problems/<int:problem_id>/notes")
@requires_token("operate")
def add_note(problem_id: int):  # type: ignore[no-untyped-def]
    """A note in the problem's history."""
    body = validated_body(NoteRequest)
    ctx = bridge()
    add_problem_note(ctx.store, problem_id, request_actor(), body.text, ctx.now())
    return jsonify(_problem(problem_id)), 201


@api_actions.post("/api/v1/problems/<int:problem_id>/jira/create")
@requires_token("operate")
def create_issue(problem_id: int):  # type: ignore[no-untyped-def]
    """File the Jira issue now for a problem whose rule does not file one (the worker creates it)."""
    ctx = bridge()
    project = create_issue_now(ctx.store, ctx.rules, problem_id, request_actor(), ctx.now())
    return jsonify({**_problem(problem_id), "jira_project": project, "issue": "queued"}), 202


@api_actions.get("/api/v1/releases/<project>/<path:version>")
@requires_token("api")
def get_release(project: str, version: str):  # type: ignore[no-untyped-def]
    """What a release closed and what came after it (BRIDGE_RELEASE_WATCH)."""
    ctx = bridge()
    health = release_health(ctx.store, project, version, ctx.settings.release_watch, ctx.now())
    return jsonify(health_json(health))


def _problem(problem_id: int) -> dict[str, Any]:
    problem = bridge().store.get_problem(problem_id)
    if problem is None:
        raise NotFound(f"no problem {problem_id}")
    return problem_json(problem)
