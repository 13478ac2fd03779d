"""The report as CSV for BI tools: one row per incident (streamed), and the summary figures in long form.

Cells a spreadsheet would run as a formula (text beginning with =, +, -, @, a tab or a carriage
return: an alert's labels or a ticket's key can carry one) are written with a leading
apostrophe, as OWASP advises against CSV injection; numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from bridge.domain.reports import Resolution, Response
from bridge.reports.service import PROBLEM_FIGURES

INCIDENT_COLUMNS = (
    "id",
    "source",
    "system",
    "key",
    "priority",
    "line",
    "route",
    "state",
    "opened",
    "acknowledged",
    "resolved",
    "closed",
    "sla_due",
    "met",
    "response_met",
    "problem",
    "jira_key",
    "fixed_in",
    "regression",
)
SUMMARY_COLUMNS = ("section", "item", "figure", "current", "previous")
# Rows written per chunk of the streamed export: fewer, larger writes to the client.
ROWS_PER_CHUNK = 500
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_MET = {Resolution.MET.value: "yes", Resolution.BREACHED.value: "no", Resolution.OPEN_PAST_DUE.value: "no"}
_RESPONSE_MET = {Response.MET.value: "yes", Response.BREACHED.value: "no"}


def cell(value: Any) -> Any:
    """A value as a CSV cell: text that could start a formula is quoted with an apostrophe; None is empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _lines(rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([cell(value) for value in row] for row in rows)
    return buffer.getvalue()


def _text(value: str | None) -> str:
    """A text cell of the export (None empty, a formula quoted): `cell` for the columns that hold text."""
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _instant(value: datetime | None) -> str:
    return "" if value is None else value.isoformat().replace("+00:00", "Z")


def incident_row(row: Mapping[str, Any]) -> list[Any]:
    """One incident of the store's export as the CSV's cells (a month of a busy site is many rows: each
    cell is made once, by the function its column needs)."""
    return [
        row["id"],
        row["source"],
        _text(row["system"]),
        _text(row["dedup_key"]),
        row["priority"],
        _text(row["line"]),
        _text(row["route"]),
        row["state"],
        _instant(row["first_seen"]),
        _instant(row["acknowledged_at"]),
        _instant(row["resolved_at"]),
        _instant(row["closed_at"]),
        _instant(row["sla_due"]),
        _MET.get(row["resolution"], ""),
        _RESPONSE_MET.get(row["response"], ""),
        "" if row["problem_id"] is None else row["problem_id"],
        _text(row["jira_key"]),
        _text(row["fixed_in"]),
        "yes" if row["regression"] else "no",
    ]


def incidents_csv(rows: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """The header, then the incidents in chunks of ROWS_PER_CHUNK rows, as they come from the store."""
    yield _lines([INCIDENT_COLUMNS])
    chunk: list[list[Any]] = []
    for row in rows:
        chunk.append(incident_row(row))
        if len(chunk) == ROWS_PER_CHUNK:
            yield _written(chunk)
            chunk = []
    if chunk:
        yield _written(chunk)


def _written(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue()


def _side_by_side(section: str, item: str | None, figure: str, current: Any, previous: Any) -> list[Any]:
    return [section, item, figure, current, previous]


def summary_rows(report: Mapping[str, Any]) -> list[list[Any]]:
    """Every figure of the report as (section, item, figure, current, previous); what belongs to one period
    only (a release, a day, a top problem) has the other period's cell empty."""
    now, before = report["current"], report["previous"]
    rows = [
        _side_by_side("period", None, name, report["period"][name], report["previous_period"][name])
        for name in ("from", "to", "days")
    ]
    for name in ("total", "monitoring", "people", "monitoring_share", "people_share"):
        rows.append(_side_by_side("incidents", None, name, now["incidents"][name], before["incidents"][name]))
    for section, key, name_of in (("channel", "channels", "channel"), ("priority", "priorities", "priority")):
        for name, entry, other in _paired(now[key], before[key], name_of):
            for figure in ("incidents", "share"):
                rows.append(_side_by_side(section, name, figure, entry.get(figure), other.get(figure)))
    for name, entry, other in _paired(now["sla"], before["sla"], "priority"):
        mine, theirs = _sla_figures(entry), _sla_figures(other)
        for figure in dict.fromkeys([*mine, *theirs]):
            rows.append(_side_by_side("sla", name, figure, mine.get(figure), theirs.get(figure)))
    for entry, other in zip(now["time_to_resolve_distribution"], before["time_to_resolve_distribution"], strict=True):
        rows.append(
            _side_by_side("time_to_resolve", entry["bucket"], "incidents", entry["incidents"], other["incidents"])
        )
    for name in PROBLEM_FIGURES:
        rows.append(_side_by_side("problems", None, name, now["problems"][name], before["problems"][name]))
    for column, figures in ((3, now), (4, before)):
        for release in figures["releases"]:
            for figure in ("problems_closed", "incidents_closed", "regressions", "tickets_told"):
                row = ["release", f"{release['project']} {release['version']}", figure, None, None]
                row[column] = release[figure]
                rows.append(row)
        for day in figures["daily"]:
            row = ["day", day["date"], "incidents", None, None]
            row[column] = day["incidents"]
            rows.append(row)
    for problem in report["top_problems"]:
        rows.append(
            _side_by_side(
                "top_problem", f"#{problem['id']} {problem['summary']}", "incidents", problem["incidents"], None
            )
        )
    return rows


def _paired(
    current: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]], key: str
) -> Iterator[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """Entries of both periods by name, the current period's order first: (name, current, previous), {} where absent."""
    mine, theirs = {entry[key]: entry for entry in current}, {entry[key]: entry for entry in previous}
    for name in dict.fromkeys([*mine, *theirs]):
        yield name, mine.get(name, {}), theirs.get(name, {})


def _sla_figures(entry: Mapping[str, Any]) -> dict[str, Any]:
    """One priority's SLA figures flattened: resolution_met, response_breached, resolve_p90_seconds..."""
    if not entry:
        return {}
    flat: dict[str, Any] = {"incidents": entry["incidents"]}
    for part in ("resolution", "response"):
        for name, value in (entry[part] or {}).items():
            flat[f"{part}_{name}"] = value
    for part, label in (("time_to_acknowledge", "acknowledge"), ("time_to_resolve", "resolve")):
        for name, value in entry[part].items():
            flat[f"{label}_{name}"] = value
    return flat


def summary_csv(report: Mapping[str, Any]) -> str:
    """The summary figures as one CSV document."""
    return _lines([SUMMARY_COLUMNS, *summary_rows(report)])
