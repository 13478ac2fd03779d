"""A problem's history, notes and tickets page after page, newest first, so no answer grows with them.

Keyset pagination on (time, id): a page starts after the last row of the one before, so rows
added meanwhile never shift a page, and rows written in the same instant are each read once
(the id breaks the tie).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.domain.tickets import TICKET_SOURCE
from bridge.storage.engine import Database
from bridge.storage.schema import incidents, problem_events, problem_tickets
from bridge.storage.ticket_repository import reported_ticket, ticket_link

# Where a page of history or notes ends: (at, id) of its last row.
HistoryKey = tuple[datetime, int]
# Where a page of tickets ends: (linked at, source, id); source 1 is a reported ticket's incident, 0 a hand link.
TicketKey = tuple[datetime, int, int]
REPORTED, LINKED = 1, 0


@dataclass(frozen=True)
class KeysetPage:
    """One page, newest first, and where the next begins (None on the last page)."""

    items: list[dict[str, Any]]
    next_key: tuple[Any, ...] | None


def _before(at: sa.ColumnElement[Any], row_id: sa.ColumnElement[Any], key: HistoryKey) -> sa.ColumnElement[bool]:
    """Rows after `key` in newest-first order: earlier, or as early with a lower id."""
    return sa.or_(at < key[0], sa.and_(at == key[0], row_id < key[1]))


class HistoryPages(Database):
    """Reads of a problem's history, notes and tickets, one bounded page at a time."""

    def history_page(
        self, problem_id: int, limit: int, after: HistoryKey | None = None, kind: str | None = None
    ) -> KeysetPage:
        """The problem's events (of one `kind` when given), newest first, after `after`."""
        e = problem_events.c
        query = sa.select(problem_events).where(e.problem_id == problem_id)
        if kind is not None:  # inline, so a partial index of that kind (ix_problem_events_notes) serves it
            query = query.where(e.kind == sa.literal(kind, literal_execute=True))
        if after is not None:
            query = query.where(_before(e.at, e.id, after))
        query = query.order_by(e.at.desc(), e.id.desc()).limit(limit + 1)

        def work(conn: Connection) -> KeysetPage:
            rows = [dict(row) for row in conn.execute(query).mappings()]
            more = rows[limit:]
            rows = rows[:limit]
            return KeysetPage(rows, (rows[-1]["at"], rows[-1]["id"]) if more else None)

        return self.read(work)

    def ticket_page(self, problem_id: int, limit: int, after: TicketKey | None = None) -> KeysetPage:
        """The problem's tickets, reported or linked by hand, newest first, after `after`.

        A ticket both reported and linked counts once: as reported (it carries the incident).
        """
        i, t = incidents.c, problem_tickets.c
        reported = sa.select(i.id, i.problem_id, i.annotations, i.summary, i.state, i.first_seen, i.closed_at).where(
            i.problem_id == problem_id, i.source == TICKET_SOURCE
        )
        also_reported = sa.exists().where(
            i.problem_id == t.problem_id,
            i.source == TICKET_SOURCE,
            i.annotations["ticket_system"].as_string() == t.system,
            i.annotations["ticket_id"].as_string() == t.ticket_id,
        )
        linked = sa.select(problem_tickets).where(t.problem_id == problem_id, ~also_reported)
        if after is not None:
            reported = reported.where(_after_in_source(i.first_seen, i.id, REPORTED, after))
            linked = linked.where(_after_in_source(t.linked_at, t.id, LINKED, after))
        reported = reported.order_by(i.first_seen.desc(), i.id.desc()).limit(limit + 1)
        linked = linked.order_by(t.linked_at.desc(), t.id.desc()).limit(limit + 1)

        def work(conn: Connection) -> KeysetPage:
            found = [(reported_ticket(row), REPORTED, int(row.id)) for row in conn.execute(reported)]
            found += [(ticket_link(row), LINKED, int(row.id)) for row in conn.execute(linked)]
            found.sort(key=lambda item: (item[0]["linked_at"], item[1], item[2]), reverse=True)
            page = found[:limit]
            last = page[-1] if len(found) > limit else None
            return KeysetPage(
                [ticket for ticket, _, _ in page], (last[0]["linked_at"], last[1], last[2]) if last else None
            )

        return self.read(work)


def _after_in_source(
    at: sa.ColumnElement[Any], row_id: sa.ColumnElement[Any], source: int, key: TicketKey
) -> sa.ColumnElement[bool]:
    """Rows of one source after `key` in the order (time, source, id), newest first."""
    key_at, key_source, key_id = key
    if source < key_source:
        return at <= key_at
    if source > key_source:
        return at < key_at
    return _before(at, row_id, (key_at, key_id))
