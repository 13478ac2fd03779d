"""Tickets of problems: linked by hand (problem_tickets) or reported (incidents with source "ticket")."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.domain.incidents import IncidentState
from bridge.domain.tickets import TICKET_SOURCE
from bridge.storage.engine import Database
from bridge.storage.incident_repository import incident_from_row
from bridge.storage.schema import incidents, problem_tickets

_OPEN, _CLOSED = "open", "closed"


def reported_ticket(row: Any) -> dict[str, Any]:
    """A ticket incident as a ticket of its problem: open until the incident is closed."""
    annotations = row.annotations or {}
    return {
        "problem_id": row.problem_id,
        "system": annotations.get("ticket_system", ""),
        "ticket_id": annotations.get("ticket_id", ""),
        "url": annotations.get("ticket_url"),
        "summary": row.summary,
        "state": _CLOSED if row.state == IncidentState.CLOSED.value else _OPEN,
        "linked_by": "rule",
        "incident_id": row.id,
        "linked_at": row.first_seen,
        "closed_at": row.closed_at,
    }


def ticket_link(row: Any) -> dict[str, Any]:
    return {
        "problem_id": row.problem_id,
        "system": row.system,
        "ticket_id": row.ticket_id,
        "url": row.url,
        "summary": row.summary,
        "state": row.state,
        "linked_by": "hand",
        "incident_id": None,
        "linked_at": row.linked_at,
        "closed_at": row.closed_at,
    }


def _one_per_ticket(tickets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A ticket both reported and linked by hand counts once (the reported one, which carries the incident)."""
    seen: dict[tuple[Any, str, str], dict[str, Any]] = {}
    for ticket in tickets:
        seen.setdefault((ticket["problem_id"], ticket["system"], ticket["ticket_id"]), ticket)
    return list(seen.values())


class TicketRepository(Database):
    """Links of tickets to problems, and the tickets a closing problem must tell its systems of."""

    @staticmethod
    def link_ticket(
        conn: Connection, problem_id: int, system: str, ticket_id: str, url: str | None, summary: str, now: datetime
    ) -> bool:
        """Link a ticket to a problem by hand; False when it already was (open or closed)."""
        known = conn.execute(
            sa.select(problem_tickets.c.id).where(
                problem_tickets.c.problem_id == problem_id,
                problem_tickets.c.system == system,
                problem_tickets.c.ticket_id == ticket_id,
            )
        ).first()
        if known is not None:
            return False
        conn.execute(
            problem_tickets.insert().values(
                problem_id=problem_id,
                system=system,
                ticket_id=ticket_id,
                url=url,
                summary=summary,
                state=_OPEN,
                linked_at=now,
            )
        )
        return True

    @staticmethod
    def unlink_ticket(conn: Connection, problem_id: int, system: str, ticket_id: str) -> bool:
        """Forget a hand link; False when there was none."""
        deleted = conn.execute(
            problem_tickets.delete().where(
                problem_tickets.c.problem_id == problem_id,
                problem_tickets.c.system == system,
                problem_tickets.c.ticket_id == ticket_id,
            )
        )
        return bool(deleted.rowcount)

    @staticmethod
    def move_ticket_links(conn: Connection, source_id: int, into_id: int) -> int:
        """Hand links of a merged problem go to the problem it merged into; a ticket linked to both stays once."""
        other = problem_tickets.alias("other")
        linked_there = sa.exists().where(
            other.c.problem_id == into_id,
            other.c.system == problem_tickets.c.system,
            other.c.ticket_id == problem_tickets.c.ticket_id,
        )
        moved = conn.execute(
            problem_tickets.update()
            .where(problem_tickets.c.problem_id == source_id, ~linked_there)
            .values(problem_id=into_id)
        )
        # What stayed behind is linked to `into` already.
        conn.execute(problem_tickets.delete().where(problem_tickets.c.problem_id == source_id))
        return int(moved.rowcount or 0)

    @staticmethod
    def tickets_of_problems(conn: Connection, problem_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Every ticket of these problems, reported or linked, oldest first."""
        if not problem_ids:
            return []
        reported = conn.execute(
            sa.select(
                incidents.c.id,
                incidents.c.problem_id,
                incidents.c.annotations,
                incidents.c.summary,
                incidents.c.state,
                incidents.c.first_seen,
                incidents.c.closed_at,
            )
            .where(incidents.c.problem_id.in_(problem_ids), incidents.c.source == TICKET_SOURCE)
            .order_by(incidents.c.id)
        ).all()
        linked = conn.execute(
            sa.select(problem_tickets)
            .where(problem_tickets.c.problem_id.in_(problem_ids))
            .order_by(problem_tickets.c.id)
        ).all()
        return _one_per_ticket([reported_ticket(row) for row in reported] + [ticket_link(row) for row in linked])

    def problem_tickets(self, problem_id: int) -> list[dict[str, Any]]:
        return self.read(lambda conn: self.tickets_of_problems(conn, [problem_id]))

    @staticmethod
    def close_ticket_links(conn: Connection, problem_ids: Sequence[int], now: datetime, reason: str) -> None:
        """Close the hand-linked tickets of closing problems (reported ones close with their incidents)."""
        if problem_ids:
            conn.execute(
                problem_tickets.update()
                .where(problem_tickets.c.problem_id.in_(problem_ids), problem_tickets.c.state == _OPEN)
                .values(state=_CLOSED, closed_at=now, close_reason=reason)
            )

    @staticmethod
    def incidents_by_ids(conn: Connection, ids: Sequence[int]) -> list[Any]:
        """Incidents as they are now in this transaction (for the events that announce them)."""
        if not ids:
            return []
        rows = conn.execute(sa.select(incidents).where(incidents.c.id.in_(ids)).order_by(incidents.c.id)).mappings()
        return [incident_from_row(row) for row in rows]

    @staticmethod
    def incidents_closed_at(conn: Connection, problem_ids: Sequence[int], now: datetime) -> list[Any]:
        """The incidents of these problems that this transaction closed (closed_at is its `now`)."""
        if not problem_ids:
            return []
        rows = conn.execute(
            sa.select(incidents)
            .where(
                incidents.c.problem_id.in_(problem_ids),
                incidents.c.state == IncidentState.CLOSED.value,
                incidents.c.closed_at == now,
            )
            .order_by(incidents.c.id)
        ).mappings()
        return [incident_from_row(row) for row in rows]
