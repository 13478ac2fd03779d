"""Incidents: listed and read with the read token; acknowledged and moved with the operate token."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from adapters import SOURCES
from bridge.api.bodies import AcknowledgeRequest, MoveRequest
from bridge.domain.incidents import IncidentState
from bridge.errors import NotFound
from bridge.problems.actions import acknowledge_incident
from bridge.problems.corrections import move_incident
from bridge.shapes import iso
from bridge.storage.engine import MAX_ID
from bridge.storage.read_models import IncidentFilter
from bridge.web.actors import request_actor
from bridge.web.answers import incident_json
from bridge.web.context import bridge
from bridge.web.edge import choice_arg, int_arg, json_writes, page_args, requires_token, validated_body

incidents = json_writes(Blueprint("incidents", __name__))


@incidents.get("/api/v1/incidents")
@requires_token("api")
def list_incidents():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    filters = IncidentFilter(
        state=choice_arg("state", IncidentState),
        source=choice_arg("source", SOURCES),
        priority=request.args.get("priority") or None,
        problem_id=int_arg("problem_id", maximum=MAX_ID),
    )
    page = bridge().store.list_incidents(filters, limit, cursor)
    return jsonify({"items": [incident_json(i) for i in page.items], "next_cursor": page.next_cursor})


@incidents.get("/api/v1/incidents/<int:incident_id>")
@requires_token("api")
def get_incident(incident_id: int):  # type: ignore[no-untyped-def]
    incident = bridge().store.get_incident(incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    history = [
        {"at": iso(event["at"]), "kind": event["kind"], "actor": event["actor"], "detail": event["detail"]}
        for event in bridge().store.incident_history(incident_id)
    ]
    return jsonify({**incident_json(incident), "history": history})


@incidents.post("/api/v1/incidents/<int:incident_id>/ack")
@requires_token("operate")
def acknowledge(incident_id: int):  # type: ignore[no-untyped-def]
    """Someone has it: the incident's response clock stops."""
    body = validated_body(AcknowledgeRequest, optional=True)
    ctx = bridge()
    incident = acknowledge_incident(ctx.store, incident_id, request_actor(), body.note, ctx.now())
    return jsonify(incident_json(incident))


@incidents.post("/api/v1/incidents/<int:incident_id>/move")
@requires_token("operate")
def move_incident_to_problem(incident_id: int):  # type: ignore[no-untyped-def]
    """Move an incident a rule grouped wrongly to another open problem."""
    body = validated_body(MoveRequest)
    previous = move_incident(bridge().store, incident_id, body.problem_id, request_actor(), bridge().now())
    incident = bridge().store.get_incident(incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    return jsonify({**incident_json(incident), "moved_from": previous})
