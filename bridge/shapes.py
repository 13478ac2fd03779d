"""The JSON shapes of incidents, problems and tickets, as the API answers them and as events carry them.

Apart from the HTTP edge so that what ingest and the worker queue (bridge.outbox.notify) and what
the API answers are built by the same functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bridge.domain.incidents import Incident
from bridge.domain.problems import Problem
from bridge.domain.tickets import TicketSystem


def iso(value: datetime | None) -> str | None:
    """An instant as the API writes it: ISO 8601, UTC as Z."""
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def incident_shape(incident: Incident) -> dict[str, Any]:
    """An incident as the API shows it (GET /api/v1/incidents/<id>) but for the live SLA countdown, which
    the API adds and an event, sent later, must not carry."""
    return {
        "id": incident.id,
        "dedup_key": incident.dedup_key,
        "source": incident.source,
        "state": incident.state.value,
        "line": incident.line,
        "impact": incident.impact,
        "urgency": incident.urgency,
        "priority": incident.priority,
        "route": incident.route,
        "summary": incident.summary,
        "labels": dict(incident.labels),
        "annotations": dict(incident.annotations),
        "occurrences": incident.occurrences,
        "reopen_count": incident.reopen_count,
        "first_seen": iso(incident.first_seen),
        "last_seen": iso(incident.last_seen),
        "resolved_at": iso(incident.resolved_at),
        "closed_at": iso(incident.closed_at),
        "close_reason": incident.close_reason,
        "problem_id": incident.problem_id,
        "sla_due": iso(incident.sla_due),
        "sla_breached": incident.sla_breached,
        "sla_breached_at": iso(incident.sla_breached_at),
        "acknowledged_at": iso(incident.acknowledged_at),
        "acknowledged_by": incident.acknowledged_by,
        "response_due": iso(incident.response_due),
        "response_breached": incident.response_breached,
        "response_breached_at": iso(incident.response_breached_at),
        "maintenance": _window_mark(incident, "maintenance"),
        "during_deploy": _deploy_mark(incident.during_deploy),
        "held": incident.held,
        "clocks_from": iso(incident.clocks_from),
    }


def _deploy_mark(mark: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`{project, version, environment}` of the deploy in progress when the incident opened, else None."""
    if mark is None:
        return None
    return {"project": mark["project"], "version": mark["version"], "environment": mark["environment"]}


def _window_mark(incident: Incident, kind: str) -> dict[str, Any] | None:
    """`{id, name}` of the window of this kind that held the incident (kept once it is released), else None."""
    window = incident.hold_window
    if window is None or window.get("kind") != kind:
        return None
    return {"id": window["id"], "name": window["name"]}


def problem_shape(problem: Problem | Mapping[str, Any]) -> dict[str, Any]:
    """A problem as the API shows it (GET /api/v1/problems/<id>, without incidents and history)."""
    row = {**dataclasses.asdict(problem), "id": problem.id} if isinstance(problem, Problem) else problem
    return {
        "id": row["id"],
        "problem_key": row["problem_key"],
        "rule": row["rule"],
        "state": str(row["state"]),
        "summary": row["summary"],
        "description": row["description"],
        "jira_key": row["jira_key"],
        "jira_url": row["jira_url"],
        "jira_issue_id": row.get("jira_issue_id"),
        "incident_count": row["incident_count"],
        "opened_at": iso(row["opened_at"]),
        "closed_at": iso(row["closed_at"]),
        "fixed_in": row["fixed_in"],
        "regressions": row["regressions"],
        "conclusion": row["conclusion"],
        "workaround": row.get("workaround"),
        "workaround_updated_at": iso(row.get("workaround_updated_at")),
        "workaround_by": row.get("workaround_by"),
        "reopened_by_ticket": row.get("reopened_by_ticket", 0),
        "outcome": row.get("outcome"),
        "merged_into": row.get("merged_into"),
        "suspects": row.get("suspects") or [],
    }


def ticket_shape(ticket: Mapping[str, Any]) -> dict[str, Any]:
    """A ticket of a problem as the API lists it."""
    return {
        "system": ticket["system"],
        "ticket_id": ticket["ticket_id"],
        "url": ticket["url"],
        "summary": ticket["summary"],
        "state": ticket["state"],
        "linked_by": ticket["linked_by"],
        "incident_id": ticket["incident_id"],
        "linked_at": iso(ticket["linked_at"]),
        "closed_at": iso(ticket["closed_at"]),
    }


def ticket_sync_shape(system: TicketSystem, state: Mapping[str, Any] | None) -> dict[str, Any]:
    """A ticket system the bridge reads by itself, and how its sync goes (state None: not tried yet)."""
    assert system.sync is not None
    state = state or {}
    return {
        "system": system.name,
        "kind": system.kind,
        "queues": list(system.sync.queues),
        "interval_seconds": system.sync.interval.total_seconds(),
        "watermark": iso(state.get("watermark")),
        "last_attempt_at": iso(state.get("last_attempt_at")),
        "last_success_at": iso(state.get("last_success_at")),
        "next_attempt_at": iso(state.get("next_attempt_at")),
        "failures": state.get("failures", 0),
        "last_error": state.get("last_error"),
        "tickets_read": state.get("tickets_read", 0),
    }


def error_shape(
    status: int, message: str, errors: list[str] | None, request_id: str | None, error: str | None = None
) -> dict[str, Any]:
    """The one JSON envelope every error uses; `error` names the failure for programs where it has a name."""
    named = {"error": error} if error else {}
    return {
        "status": "error",
        "code": status,
        **named,
        "message": message,
        "errors": errors or [],
        "request_id": request_id,
    }
