"""API answers that need the request's rules and clock: an incident with its SLA time left, a problem's tickets."""

from __future__ import annotations

from typing import Any

from bridge.domain.incidents import Incident, IncidentState
from bridge.domain.sla import SlaClock, remaining_seconds
from bridge.shapes import incident_shape, ticket_shape
from bridge.web.context import bridge


def incident_json(incident: Incident) -> dict[str, Any]:
    """The API shape of an incident; SLA time left is in business seconds where the calendar says so."""
    ctx = bridge()
    policy = ctx.rules.sla_policies.get(incident.priority)
    remaining = None
    if policy is not None and incident.state is not IncidentState.CLOSED:
        clock = SlaClock(incident.sla_elapsed_seconds, incident.sla_running_since)
        remaining = round(remaining_seconds(policy, clock, ctx.now()), 3)
    return {**incident_shape(incident), "sla_remaining_seconds": remaining}


def problem_tickets_json(problem_id: int) -> list[dict[str, Any]]:
    """The tickets of a problem with their state, as the problem's detail lists them."""
    return [ticket_shape(ticket) for ticket in bridge().store.problem_tickets(problem_id)]
