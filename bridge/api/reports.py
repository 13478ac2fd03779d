"""The service report (read token): a period beside the one before as JSON, its summary as CSV, its incidents as CSV."""

from __future__ import annotations

from flask import Blueprint, jsonify

from bridge.web.answers import incidents_csv_answer, report_json, service_csv_answer
from bridge.web.edge import json_writes, requires_token

reports = json_writes(Blueprint("reports", __name__))


@reports.get("/api/v1/reports/service")
@requires_token("api")
def service():  # type: ignore[no-untyped-def]
    """The period's figures and the previous period's, side by side."""
    return jsonify(report_json())


@reports.get("/api/v1/reports/service.csv")
@requires_token("api")
def service_csv():  # type: ignore[no-untyped-def]
    """The same figures in long form: section, item, figure, current, previous."""
    return service_csv_answer()


@reports.get("/api/v1/reports/incidents.csv")
@requires_token("api")
def incidents_csv():  # type: ignore[no-untyped-def]
    """One row per incident first seen in the period, streamed."""
    return incidents_csv_answer()
