"""Read models: the listings, single items and counts the API, pages and overview show."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.domain.incidents import Incident, IncidentState
from bridge.domain.outbox import OutboxState
from bridge.domain.problems import ProblemState
from bridge.storage.engine import MAX_ID, Database, Page
from bridge.storage.incident_repository import incident_from_row
from bridge.storage.payload_repository import REJECTED_SUMMARY
from bridge.storage.schema import (
    LIVE_INCIDENTS,
    incidents,
    outbox,
    problem_events,
    problems,
    rejected_payloads,
    releases,
    ticket_sync_state,
)


@dataclass(frozen=True)
class IncidentFilter:
    state: str | None = None
    source: str | None = None
    priority: str | None = None
    problem_id: int | None = None


@dataclass(frozen=True)
class GaugeCounts:
    """Counts behind the system gauges; a label value without rows is absent (the caller fills in 0)."""

    open_incidents: dict[tuple[str, str, str], int]  # (line, priority, source) of incidents not closed
    breached: dict[str, int]  # priority -> incidents not closed whose SLA is breached
    live_problems: dict[str, int]  # state -> problems not closed
    pending_jobs: dict[str, int]  # target -> outbox jobs waiting
    dead_jobs: dict[str, int]  # target -> dead letters
    pending_by_kind: dict[str, int] = field(default_factory=dict)  # job kind -> outbox jobs waiting
    oldest_pending: dict[str, datetime] = field(
        default_factory=dict
    )  # target -> when its oldest waiting job was queued
    # ticket system -> since when its view of that system is stale: the start of its last successful sync
    synced_since: dict[str, datetime] = field(default_factory=dict)


class ReadModels(Database):
    """Reads for people: pages of listings and the overview counts."""

    def problem_history(self, problem_id: int) -> list[dict[str, Any]]:
        query = sa.select(problem_events).where(problem_events.c.problem_id == problem_id).order_by(problem_events.c.id)
        return self.read(lambda conn: [dict(row) for row in conn.execute(query).mappings()])

    def overview_counts(self) -> dict[str, Any]:
        """Counts for the overview page: live incidents by state and by priority, live problems by state."""

        def work(conn: Connection) -> dict[str, Any]:
            by_state: dict[str, int] = {}
            by_priority: dict[str, int] = {}
            breached = 0
            for state, _line, priority, _source, sla_breached, count in _live_incidents(conn):
                by_state[state] = by_state.get(state, 0) + count
                by_priority[priority] = by_priority.get(priority, 0) + count
                breached += count if sla_breached else 0
            return {
                "incidents": by_state,
                "priorities": by_priority,
                "problems": _live_problems(conn),
                "breached": breached,
            }

        return self.read(work)

    def gauge_counts(self) -> GaugeCounts:
        """What the system gauges of /metrics report, read at scrape time so every replica tells the same."""

        def work(conn: Connection) -> GaugeCounts:
            open_incidents: dict[tuple[str, str, str], int] = {}
            breached: dict[str, int] = {}
            for _state, line, priority, source, sla_breached, count in _live_incidents(conn):
                labels = (line, priority, source)
                open_incidents[labels] = open_incidents.get(labels, 0) + count
                if sla_breached:
                    breached[priority] = breached.get(priority, 0) + count
            live_problems = _live_problems(conn)
            jobs: dict[str, dict[str, int]] = {OutboxState.PENDING: {}, OutboxState.DEAD: {}}
            for state, target, count in conn.execute(
                sa.select(outbox.c.state, outbox.c.target, sa.func.count())
                .where(outbox.c.state.in_((OutboxState.PENDING, OutboxState.DEAD)))
                .group_by(outbox.c.state, outbox.c.target)
            ):
                jobs[state][target] = count
            waiting = outbox.c.state == OutboxState.PENDING
            pending_by_kind: dict[str, int] = dict(
                conn.execute(sa.select(outbox.c.kind, sa.func.count()).where(waiting).group_by(outbox.c.kind)).all()
            )
            oldest_pending: dict[str, datetime] = dict(
                conn.execute(
                    sa.select(outbox.c.target, sa.func.min(outbox.c.created_at))
                    .where(waiting)
                    .group_by(outbox.c.target)
                ).all()
            )
            synced_since: dict[str, datetime] = dict(
                conn.execute(
                    sa.select(
                        ticket_sync_state.c.system,
                        sa.func.coalesce(ticket_sync_state.c.last_success_at, ticket_sync_state.c.created_at),
                    )
                ).all()
            )
            return GaugeCounts(
                open_incidents,
                breached,
                live_problems,
                jobs[OutboxState.PENDING],
                jobs[OutboxState.DEAD],
                pending_by_kind,
                oldest_pending,
                synced_since,
            )

        return self.read(work)

    def nearest_sla(self, limit: int) -> list[Incident]:
        """Firing incidents whose SLA runs out soonest (breached ones first)."""
        query = (
            sa.select(incidents)
            .where(incidents.c.state == "firing", incidents.c.sla_due.is_not(None))
            .order_by(incidents.c.sla_due, incidents.c.id)
            .limit(limit)
        )
        return self.read(lambda conn: [incident_from_row(row) for row in conn.execute(query).mappings()])

    def list_releases(self, limit: int, cursor: int | None) -> Page:
        return self._page(sa.select(releases), releases, limit, cursor, dict)

    def list_problems(self, state: str | None, jira_key: str | None, limit: int, cursor: int | None) -> Page:
        query = sa.select(problems)
        if state is not None:
            query = query.where(problems.c.state == state)
        if jira_key is not None:
            query = query.where(problems.c.jira_key == jira_key)
        return self._page(query, problems, limit, cursor, dict)

    def list_jobs(self, state: str | None, limit: int, cursor: int | None) -> Page:
        query = sa.select(outbox)
        if state is not None:
            query = query.where(outbox.c.state == state)
        return self._page(query, outbox, limit, cursor, dict)

    def get_incident(self, incident_id: int) -> Incident | None:
        if not 0 < incident_id <= MAX_ID:
            return None

        def work(conn: Connection) -> Incident | None:
            row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).mappings().first()
            return incident_from_row(row) if row else None

        return self.read(work)

    def list_incidents(self, filters: IncidentFilter, limit: int, cursor: int | None) -> Page:
        """A page of incidents, newest first. The page's ids are chosen by a query of ids alone: a problem's
        then come from its (problem_id, id) index without touching the table, a plan PostgreSQL prefers at
        any size, where for rows it could walk every newer incident when its statistics spread them evenly."""
        chosen = sa.select(incidents.c.id)
        for name in ("state", "source", "priority", "problem_id"):
            value = getattr(filters, name)
            if value is not None:
                chosen = chosen.where(incidents.c[name] == value)
        if cursor is not None:
            chosen = chosen.where(incidents.c.id < cursor)
        newest = chosen.order_by(incidents.c.id.desc()).limit(limit + 1)
        query = sa.select(incidents).where(incidents.c.id.in_(newest.scalar_subquery()))
        return self._page(query, incidents, limit, cursor, incident_from_row)

    def list_rejected(self, limit: int, cursor: int | None, source: str | None = None) -> Page:
        """Refused payloads without their bodies (`body_bytes` says how big each is)."""
        query = sa.select(*REJECTED_SUMMARY)
        if source is not None:
            query = query.where(rejected_payloads.c.source == source)
        return self._page(query, rejected_payloads, limit, cursor, dict)

    def get_rejected(self, rejected_id: int) -> dict[str, Any] | None:
        """One refused payload with its body."""
        if not 0 < rejected_id <= MAX_ID:
            return None
        query = sa.select(*REJECTED_SUMMARY, rejected_payloads.c.body).where(rejected_payloads.c.id == rejected_id)
        return self.read(lambda conn: next((dict(row) for row in conn.execute(query).mappings()), None))


# What is live: incidents not closed, problems not closed. Named by value (IN), never as "not
# closed": an inequality reads every row of the history, a list of values reads the indexes
# led by the state (the live rows only), so these counts cost what is live, not what was kept.
# Live incidents are counted from their partial index (schema.LIVE_INCIDENTS, the same words).
LIVE_INCIDENT_STATES = tuple(state.value for state in IncidentState if state is not IncidentState.CLOSED)
assert LIVE_INCIDENTS == "state IN ({})".format(", ".join(f"'{state}'" for state in LIVE_INCIDENT_STATES))
LIVE_PROBLEM_STATES = tuple(state.value for state in ProblemState if state is not ProblemState.CLOSED)


def _live_incidents(conn: Connection) -> list[tuple[str, str, str, str, bool, int]]:
    """Live incidents counted by (state, line, priority, source, SLA breached)."""
    breached = incidents.c.sla_breached
    query = (
        sa.select(
            incidents.c.state, incidents.c.line, incidents.c.priority, incidents.c.source, breached, sa.func.count()
        )
        .where(sa.text(LIVE_INCIDENTS))
        .group_by(incidents.c.state, incidents.c.line, incidents.c.priority, incidents.c.source, breached)
    )
    return [
        (state, line, priority, source, bool(sla), count)
        for state, line, priority, source, sla, count in conn.execute(query)
    ]


def _live_problems(conn: Connection) -> dict[str, int]:
    """Live problems by state."""
    query = (
        sa.select(problems.c.state, sa.func.count())
        .where(problems.c.state.in_(LIVE_PROBLEM_STATES))
        .group_by(problems.c.state)
    )
    return {state: count for state, count in conn.execute(query)}
