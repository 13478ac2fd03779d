"""The service report's read model: what a period's incidents, problems and releases add up to, in SQL.

Every figure is a set-based statement over a range of `first_seen` (or of an event's time),
grouped in the database: a month of a busy site costs a few index range scans, not a row
per incident in Python. Where an incident stands against its targets is read from what its
clocks recorded (`sla_breached`, `sla_due`, `response_breached`, `acknowledged_at`), by one
pair of expressions the totals and the CSV rows share, so the two cannot disagree.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.domain.incidents import IncidentState
from bridge.domain.reports import Resolution, Response
from bridge.domain.tickets import TICKET_SOURCE
from bridge.storage import driver_sql
from bridge.storage.engine import Database
from bridge.storage.schema import UtcDateTime, incidents, problem_events, problems, releases
from bridge.storage.sql_functions import epoch_seconds

# Rows one read of the CSV export takes: each page is its own short read, so a slow download holds
# no transaction open (SQLite's checkpoints, PostgreSQL's vacuum) and a year of incidents never sits
# in memory.
EXPORT_PAGE = 2000
TOP_PROBLEMS = 10
# PostgreSQL's memory for the report's grouping (this transaction only): enough to hash a month's rows' keys.
AGGREGATE_WORK_MEM = "64MB"

_FIRING = IncidentState.FIRING.value
_FINISHED = (IncidentState.RESOLVED.value, IncidentState.CLOSED.value)
# Problem events the report counts (writers: grouping, releases, actions, jira.outcomes, jira.identity).
LINKED, RELEASED, CLOSED, REGRESSED = "linked", "released", "closed", "regressed"


@dataclass(frozen=True)
class ReportScope:
    """What a report reads: [previous_start, ends_at) split at `starts_at` into the period before and the
    period itself, judged at `now`; `sla_priorities` have a resolution target; `project` narrows it to
    one Jira project's problems, their incidents and the project's releases."""

    previous_start: datetime
    starts_at: datetime
    ends_at: datetime
    now: datetime
    sla_priorities: frozenset[str]
    project: str | None = None


def ticket_system() -> sa.ColumnElement[Any]:
    """The ticket system of a ticket's incident (its `ticket_system` label), None for an alert."""
    return sa.case(
        (incidents.c.source == TICKET_SOURCE, incidents.c.labels["ticket_system"].as_string()), else_=sa.null()
    )


def resolution_class(scope: ReportScope) -> sa.ColumnElement[str]:
    """Where an incident stands against its resolution target (a Resolution value).

    A resolved or closed incident breached when its clock said so, or when it was closed while
    the clock ran past its due time; a firing one is past due once its due time is reached, as
    the worker marks it.
    """
    c = incidents.c
    finished = c.state.in_(_FINISHED)
    closed_late = sa.and_(c.sla_due.is_not(None), c.sla_due < c.closed_at)
    return sa.case(
        (c.priority.not_in(sorted(scope.sla_priorities)), Resolution.NO_TARGET.value),
        (sa.and_(finished, sa.or_(c.sla_breached.is_(True), closed_late)), Resolution.BREACHED.value),
        (finished, Resolution.MET.value),
        (sa.or_(c.sla_breached.is_(True), c.sla_due <= scope.now), Resolution.OPEN_PAST_DUE.value),
        else_=Resolution.OPEN.value,
    )


def response_class(scope: ReportScope) -> sa.ColumnElement[str]:
    """Where an incident stands against its response target (a Response value); an incident has one
    when its policy gave it a response due time, which an acknowledgement keeps."""
    c = incidents.c
    waiting_past_due = sa.and_(c.acknowledged_at.is_(None), c.state == _FIRING, c.response_due <= scope.now)
    return sa.case(
        (c.response_due.is_(None), Response.NO_TARGET.value),
        (sa.or_(c.response_breached.is_(True), waiting_past_due), Response.BREACHED.value),
        (c.acknowledged_at.is_not(None), Response.MET.value),
        else_=Response.NOT_ACKNOWLEDGED.value,
    )


def _in_scope(scope: ReportScope, column: sa.ColumnElement[Any], start: datetime) -> list[sa.ColumnElement[bool]]:
    return [column >= start, column < scope.ends_at]


def _of_project(scope: ReportScope, problem_id: sa.ColumnElement[Any]) -> list[sa.ColumnElement[bool]]:
    if scope.project is None:
        return []
    return [problem_id.in_(sa.select(problems.c.id).where(problems.c.jira_project == scope.project))]


def _incidents_in(scope: ReportScope, start: datetime | None = None) -> list[sa.ColumnElement[bool]]:
    return [
        *_in_scope(scope, incidents.c.first_seen, scope.previous_start if start is None else start),
        *_of_project(scope, incidents.c.problem_id),
    ]


def _is_current(scope: ReportScope, column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    return sa.case((column >= scope.starts_at, sa.true()), else_=sa.false())


def _mappings(query: sa.Select[Any], conn: Connection) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(query).mappings()]


class ReportModel(Database):
    """The report's reads: totals grouped in SQL, and the CSV export's rows page by page."""

    def incident_totals(self, scope: ReportScope) -> list[dict[str, Any]]:
        """Incidents of both periods counted per (current, source, system, priority, resolution, response)."""
        current = _is_current(scope, incidents.c.first_seen).label("current")
        keys = (
            current,
            incidents.c.source.label("source"),
            ticket_system().label("system"),
            incidents.c.priority.label("priority"),
            resolution_class(scope).label("resolution"),
            response_class(scope).label("response"),
        )
        query = sa.select(*keys, sa.func.count().label("count")).where(*_incidents_in(scope)).group_by(*keys)

        def work(conn: Connection) -> list[dict[str, Any]]:
            if conn.dialect.name == "postgresql":
                # The planner cannot tell how many groups computed keys make (it guesses one per row), so with
                # the default work_mem it sorts a month's rows on disk instead of hashing its few dozen groups.
                driver_sql.execute(conn, f"SET LOCAL work_mem = '{AGGREGATE_WORK_MEM}'")
            return [dict(row) for row in conn.execute(query).mappings()]

        return self.read(work)

    def daily_counts(self, scope: ReportScope, days: Sequence[tuple[date, datetime, datetime]]) -> dict[date, int]:
        """Incidents first seen on each day (the day's bounds as the caller's zone draws them): one range
        count per day, joined in the database."""
        if not days:
            return {}
        bounds = sa.union_all(
            *(
                sa.select(
                    sa.literal(n).label("day"),
                    sa.literal(start, UtcDateTime()).label("starts"),
                    sa.literal(end, UtcDateTime()).label("ends"),
                )
                for n, (_, start, end) in enumerate(days)
            )
        ).subquery("days")
        query = (
            sa.select(bounds.c.day, sa.func.count())
            .select_from(
                bounds.join(
                    incidents,
                    sa.and_(incidents.c.first_seen >= bounds.c.starts, incidents.c.first_seen < bounds.c.ends),
                )
            )
            .where(*_of_project(scope, incidents.c.problem_id))
            .group_by(bounds.c.day)
        )
        counted: dict[int, int] = self.read(lambda conn: {int(n): int(count) for n, count in conn.execute(query)})
        return {day: counted.get(n, 0) for n, (day, _, _) in enumerate(days)}

    def clock_rows(self, scope: ReportScope) -> list[sa.Row[Any]]:
        """What working times are computed from, for the incidents of both periods acknowledged or finished,
        instants as epoch seconds (a float each, no datetime built per row): (current, priority, first_seen,
        acknowledged_at, ended, sla_elapsed_seconds, sla_running_since)."""
        c = incidents.c
        ended = sa.case((c.state.in_(_FINISHED), sa.func.coalesce(c.resolved_at, c.closed_at)), else_=sa.null())
        query = sa.select(
            _is_current(scope, c.first_seen),
            c.priority,
            epoch_seconds(c.first_seen),
            epoch_seconds(c.acknowledged_at),
            epoch_seconds(ended),
            c.sla_elapsed_seconds,
            epoch_seconds(c.sla_running_since),
        ).where(*_incidents_in(scope), sa.or_(c.acknowledged_at.is_not(None), c.state.in_(_FINISHED)))
        # fetchall: iterating a psycopg result fetches one row per call, five times slower for a month's rows.
        return self.read(lambda conn: list(conn.execute(query).all()))

    def problem_totals(self, scope: ReportScope) -> dict[str, dict[bool, int]]:
        """Problem figures of both periods, each as {current: count}: opened, became known errors (linked),
        closed by release, closed by hand, won't do, merged, regressions."""
        e, p = problem_events.c, problems.c
        event_current = _is_current(scope, e.at).label("current")
        kind = sa.case(
            (sa.and_(e.kind == CLOSED, e.actor.is_(None)), "wont_do"),  # Jira's outcome closes; people are named
            (e.kind == CLOSED, "closed_by_hand"),
            (e.kind == RELEASED, "closed_by_release"),
            (e.kind == LINKED, "known_errors"),
            else_="regressions",
        ).label("figure")
        events = (
            sa.select(
                event_current,
                kind,
                sa.func.count(sa.distinct(e.problem_id)).label("problems"),
                sa.func.count().label("events"),
            )
            .where(
                e.kind.in_((LINKED, RELEASED, CLOSED, REGRESSED)),
                *_in_scope(scope, e.at, scope.previous_start),
                *_of_project(scope, e.problem_id),
            )
            .group_by(event_current, kind)
        )
        opened_current = _is_current(scope, p.opened_at)
        opened = (
            sa.select(opened_current, sa.func.count())
            .where(*_in_scope(scope, p.opened_at, scope.previous_start), *_of_project(scope, p.id))
            .group_by(opened_current)
        )
        merged_current = _is_current(scope, p.closed_at)
        merged = (
            sa.select(merged_current, sa.func.count())
            .where(
                p.merged_into.is_not(None),
                *_in_scope(scope, p.closed_at, scope.previous_start),
                *_of_project(scope, p.id),
            )
            .group_by(merged_current)
        )

        def work(conn: Connection) -> dict[str, dict[bool, int]]:
            figures: dict[str, dict[bool, int]] = {}
            for row in conn.execute(events).mappings():
                counted = row["events"] if row["figure"] == "regressions" else row["problems"]
                figures.setdefault(row["figure"], {})[bool(row["current"])] = int(counted)
            figures["opened"] = {bool(now): int(n) for now, n in conn.execute(opened)}
            figures["merged"] = {bool(now): int(n) for now, n in conn.execute(merged)}
            return figures

        return self.read(work)

    def top_problems(self, scope: ReportScope, limit: int = TOP_PROBLEMS) -> list[dict[str, Any]]:
        """The problems with the most incidents first seen in the period, with their Jira issue and state."""
        counts = (
            sa.select(incidents.c.problem_id, sa.func.count().label("incidents"))
            .where(*_incidents_in(scope, scope.starts_at), incidents.c.problem_id.is_not(None))
            .group_by(incidents.c.problem_id)
            .order_by(sa.func.count().desc(), incidents.c.problem_id)
            .limit(limit)
            .subquery("counts")
        )
        query = (
            sa.select(
                problems.c.id,
                problems.c.summary,
                problems.c.state,
                problems.c.jira_key,
                problems.c.jira_url,
                counts.c.incidents,
            )
            .select_from(counts.join(problems, problems.c.id == counts.c.problem_id))
            .order_by(counts.c.incidents.desc(), problems.c.id)
        )
        return self.read(lambda conn: [dict(row) for row in conn.execute(query).mappings()])

    def releases_between(self, scope: ReportScope) -> list[dict[str, Any]]:
        """Releases of both periods (oldest first), with the regressions each caused: recurrences after its fix
        of the problems it closed."""
        c = releases.c
        query = (
            sa.select(c.project, c.version, c.released_at, c.summary)
            .where(*_in_scope(scope, c.released_at, scope.previous_start))
            .order_by(c.released_at, c.id)
        )
        if scope.project is not None:
            query = query.where(c.project == scope.project)

        def work(conn: Connection) -> list[dict[str, Any]]:
            found = [dict(row) for row in conn.execute(query).mappings()]
            versions = sorted({row["version"] for row in found})
            recurrences = (
                conn.execute(
                    sa.select(problem_events.c.release_version, problem_events.c.problem_id, sa.func.count())
                    .where(problem_events.c.kind == REGRESSED, problem_events.c.release_version.in_(versions))
                    .group_by(problem_events.c.release_version, problem_events.c.problem_id)
                ).all()
                if versions
                else []
            )
            for row in found:
                closed = {int(pid) for pid in (row["summary"] or {}).get("closed_problems", ())}
                row["regressions"] = sum(
                    int(n) for version, pid, n in recurrences if version == row["version"] and pid in closed
                )
            return found

        return self.read(work)

    def incident_export(self, scope: ReportScope) -> Iterator[dict[str, Any]]:
        """The period's incidents (from `starts_at`), oldest first, with their problem's Jira key and fixing
        release, where they stand against their targets and whether each reopened its problem as a
        regression: page by page (keyset on first_seen and id), each page a short read of its own."""
        c = incidents.c
        regression = sa.exists().where(problem_events.c.kind == REGRESSED, problem_events.c.incident_id == c.id)
        base = (
            sa.select(
                c.id,
                c.source,
                ticket_system().label("system"),
                c.dedup_key,
                c.priority,
                c.line,
                c.route,
                c.state,
                c.first_seen,
                c.acknowledged_at,
                c.resolved_at,
                c.closed_at,
                c.sla_due,
                resolution_class(scope).label("resolution"),
                response_class(scope).label("response"),
                c.problem_id,
                problems.c.jira_key,
                problems.c.fixed_in,
                regression.label("regression"),
            )
            .select_from(incidents.outerjoin(problems, problems.c.id == c.problem_id))
            .where(*_incidents_in(scope, scope.starts_at))
            .order_by(c.first_seen, c.id)
            .limit(EXPORT_PAGE)
        )
        after: tuple[datetime, int] | None = None
        while True:
            query = base
            if after is not None:
                since = sa.tuple_(sa.literal(after[0], UtcDateTime()), sa.literal(after[1], sa.BigInteger()))
                query = base.where(sa.tuple_(c.first_seen, c.id) > since)
            page = self.read(functools.partial(_mappings, query))
            yield from page
            if len(page) < EXPORT_PAGE:
                return
            after = (page[-1]["first_seen"], page[-1]["id"])
