"""Paths of the service report: JSON, and CSV for BI tools."""

from __future__ import annotations

from typing import Any

from bridge.api.openapi.parts import (
    BEARER,
    query,
    responses,
)
from bridge.domain.problems import JIRA_PROJECT


def report_paths() -> dict[str, Any]:
    """The service report (docs/how-to/reports.md): JSON, and CSV for BI tools."""
    date = {"type": "string", "format": "date"}
    period = [
        query("from", date),
        query("to", date),
        query("month", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"}),
        query("project", {"type": "string", "pattern": JIRA_PROJECT.pattern}),
    ]
    csv = {"text/csv": {"schema": {"type": "string"}}}

    def download(operation: str, what: str) -> dict[str, Any]:
        return {
            "get": {
                "operationId": operation,
                "security": BEARER,
                "tags": ["reports"],
                "parameters": period,
                "responses": {**responses(400, 401, 503), "200": {"description": what, "content": csv}},
            }
        }

    return {
        "/api/v1/reports/service": {
            "get": {
                "operationId": "serviceReport",
                "security": BEARER,
                "tags": ["reports"],
                "parameters": period,
                "responses": responses(200, 400, 401, 503),
            }
        },
        "/api/v1/reports/service.csv": download(
            "serviceReportCsv", "The figures: section, item, figure, current, previous"
        ),
        "/api/v1/reports/incidents.csv": download("incidentsCsv", "One row per incident first seen in the period"),
    }
