"""The service report (read token): a period beside the one before as JSON, its summary as CSV, its incidents as CSV."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, stream_with_context

from bridge.domain.problems import JIRA_PROJECT
from bridge.domain.reports import Period
from bridge.reports.exports import incidents_csv, summary_csv
from bridge.reports.service import report_scope, service_report
from bridge.web.context import bridge
from bridge.web.edge import json_writes, pattern_arg, period_args, requires_token

reports = json_writes(Blueprint("reports", __name__))
CSV = "text/csv; charset=utf-8"


def _asked() -> tuple[Period, str | None]:
    """The period and project the request asks for (BadPayload naming a bad parameter)."""
    ctx = bridge()
    return period_args(ctx.settings.timezone, ctx.now()), pattern_arg("project", JIRA_PROJECT, "LKK")


def _attachment(kind: str, period: Period, project: str | None) -> str:
    scope = f"-{project}" if project else ""
    return f'attachment; filename="{kind}{scope}-{period.first_day.isoformat()}-{period.last_day.isoformat()}.csv"'


@reports.get("/api/v1/reports/service")
@requires_token("api")
def service():  # type: ignore[no-untyped-def]
    """The period's figures and the previous period's, side by side."""
    period, project = _asked()
    ctx = bridge()
    return jsonify(service_report(ctx.store, ctx.rules, period, ctx.now(), project))


@reports.get("/api/v1/reports/service.csv")
@requires_token("api")
def service_csv():  # type: ignore[no-untyped-def]
    """The same figures in long form: section, item, figure, current, previous."""
    period, project = _asked()
    ctx = bridge()
    body = summary_csv(service_report(ctx.store, ctx.rules, period, ctx.now(), project))
    return Response(body, content_type=CSV, headers={"Content-Disposition": _attachment("service", period, project)})


@reports.get("/api/v1/reports/incidents.csv")
@requires_token("api")
def incidents():  # type: ignore[no-untyped-def]
    """One row per incident first seen in the period, streamed page by page as the store reads them."""
    period, project = _asked()
    ctx = bridge()
    rows = ctx.store.incident_export(report_scope(period, ctx.now(), ctx.rules, project))
    return Response(
        stream_with_context(incidents_csv(rows)),
        content_type=CSV,
        headers={"Content-Disposition": _attachment("incidents", period, project)},
    )
