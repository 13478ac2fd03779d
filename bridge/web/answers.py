"""Answers that need the request's rules and clock: an incident with its SLA time left, a problem's tickets,
the service report and its CSV downloads (the API's and the pages' alike)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, stream_with_context

from bridge.domain.incidents import Incident, IncidentState
from bridge.domain.problems import JIRA_PROJECT
from bridge.domain.reports import Period
from bridge.domain.sla import SlaClock, remaining_seconds
from bridge.reports.exports import incidents_csv, summary_csv
from bridge.reports.service import report_scope, service_report
from bridge.shapes import incident_shape, iso, ticket_shape
from bridge.web.context import bridge
from bridge.web.cursors import EMBEDDED, encode_cursor
from bridge.web.edge import pattern_arg, period_args

CSV = "text/csv; charset=utf-8"


def incident_json(incident: Incident) -> dict[str, Any]:
    """The API shape of an incident; SLA time left is in business seconds where the calendar says so."""
    ctx = bridge()
    policy = ctx.rules.sla_policies.get(incident.priority)
    remaining = None
    if policy is not None and incident.state is not IncidentState.CLOSED:
        clock = SlaClock(incident.sla_elapsed_seconds, incident.sla_running_since)
        remaining = round(remaining_seconds(policy, clock, ctx.now()), 3)
    return {**incident_shape(incident), "sla_remaining_seconds": remaining}


def problem_event_json(event: Mapping[str, Any]) -> dict[str, Any]:
    """An entry of a problem's history: `count` times, the last at `last_at` (`at` when it happened once)."""
    return {
        "id": event["id"],
        "at": iso(event["at"]),
        "kind": event["kind"],
        "detail": event["detail"],
        "actor": event["actor"],
        "count": event["repeat_count"],
        "last_at": iso(event["last_at"] or event["at"]),
    }


def history_json(problem_id: int, limit: int, after: tuple[Any, ...] | None, kind: str | None = None) -> dict[str, Any]:
    """A page of a problem's history (of its notes, with `kind` "note"), newest first, and the next cursor."""
    page = bridge().store.history_page(problem_id, limit, after, kind)
    return {"items": [problem_event_json(e) for e in page.items], "next_cursor": encode_cursor(page.next_key)}


def problem_tickets_json(
    problem_id: int, limit: int = EMBEDDED, after: tuple[Any, ...] | None = None
) -> dict[str, Any]:
    """A page of a problem's tickets with their state, newest first, and the next cursor."""
    page = bridge().store.ticket_page(problem_id, limit, after)
    return {"items": [ticket_shape(t) for t in page.items], "next_cursor": encode_cursor(page.next_key)}


def report_asked() -> tuple[Period, str | None]:
    """The period (`from` and `to`, or `month`; BRIDGE_TIMEZONE's days) and Jira `project` a report request asks for.

    Raises:
        BadPayload: naming the parameter that is unusable.
    """
    ctx = bridge()
    return period_args(ctx.settings.timezone, ctx.now()), pattern_arg("project", JIRA_PROJECT, "LKK")


def report_json() -> dict[str, Any]:
    """The service report the request asks for."""
    period, project = report_asked()
    ctx = bridge()
    return service_report(ctx.store, ctx.rules, period, ctx.now(), project)


def _csv(body: Any, kind: str, period: Period, project: str | None) -> Response:
    scope = f"-{project}" if project else ""
    name = f"{kind}{scope}-{period.first_day.isoformat()}-{period.last_day.isoformat()}.csv"
    return Response(body, content_type=CSV, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def service_csv_answer() -> Response:
    """The report's figures in long form (section, item, figure, current, previous) as a CSV download."""
    period, project = report_asked()
    ctx = bridge()
    return _csv(
        summary_csv(service_report(ctx.store, ctx.rules, period, ctx.now(), project)), "service", period, project
    )


def incidents_csv_answer() -> Response:
    """One row per incident first seen in the period, streamed page by page as the store reads them."""
    period, project = report_asked()
    ctx = bridge()
    rows = ctx.store.incident_export(report_scope(period, ctx.now(), ctx.rules, project))
    return _csv(stream_with_context(incidents_csv(rows)), "incidents", period, project)
