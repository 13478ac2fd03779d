"""Tickets read from their systems: the sync's state and lease, what was seen of each ticket, what each was told."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from bridge.domain.incidents import Incident, IncidentState
from bridge.domain.ticket_sync import SeenTicket, TicketState
from bridge.storage.engine import Database
from bridge.storage.incident_repository import incident_from_row
from bridge.storage.incident_rows import FIELDS
from bridge.storage.merge_repository import MergeRepository
from bridge.storage.schema import (
    incidents,
    problem_tickets,
    problems,
    synced_tickets,
    ticket_notices,
    ticket_sync_state,
)

_OPEN, _CLOSED = "open", "closed"


@dataclass(frozen=True)
class SeenRow:
    """A ticket's record: what was seen of it, and the incident it became."""

    seen: SeenTicket
    incident_id: int | None


def _insert_unless_there(conn: Connection, table: sa.Table, values: dict[str, Any], keys: list[str]) -> bool:
    """Insert a row unless one with the same unique `keys` exists; whether it was inserted (race-free on both)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table).values(values).on_conflict_do_nothing(index_elements=keys)
    # The row it returns says whether it was inserted: psycopg's rowcount does not, for a skipped insert.
    return conn.execute(statement.returning(table.c[keys[0]])).first() is not None


class TicketSyncRepository(Database):
    """The state of each system's sync, the record of each ticket read, and the notices sent to tickets."""

    # The sync's state and lease ------------------------------------------------------

    def sync_state(self, system: str, now: datetime) -> dict[str, Any]:
        """A system's sync state, created (never synced yet) on first use."""

        def work(conn: Connection) -> dict[str, Any]:
            _insert_unless_there(conn, ticket_sync_state, {"system": system, "created_at": now}, ["system"])
            row = conn.execute(sa.select(ticket_sync_state).where(ticket_sync_state.c.system == system)).mappings()
            return dict(row.one())

        return self.run(work)

    def sync_states(self) -> list[dict[str, Any]]:
        """Every system's sync state, by name (for the overview, the API and the lag gauge)."""
        query = sa.select(ticket_sync_state).order_by(ticket_sync_state.c.system)
        return self.read(lambda conn: [dict(row) for row in conn.execute(query).mappings()])

    def take_sync_lease(self, system: str, owner: str, now: datetime, until: datetime) -> bool:
        """Hold a system's sync until `until` unless another worker holds it; True when this one does now.

        One conditional update: of two workers asking at once, on either database, one wins.
        """
        free = sa.or_(
            ticket_sync_state.c.lease_until.is_(None),
            ticket_sync_state.c.lease_until <= now,
            ticket_sync_state.c.lease_owner == owner,
        )
        statement = (
            ticket_sync_state.update()
            .where(ticket_sync_state.c.system == system, free)
            .values(lease_owner=owner, lease_until=until, last_attempt_at=now)
        )
        return self.run(lambda conn: bool(conn.execute(statement).rowcount))

    def renew_sync_lease(self, system: str, owner: str, now: datetime, until: datetime) -> bool:
        """Keep holding the sync during a long read; False when the lease ran out and another worker took it."""
        statement = (
            ticket_sync_state.update()
            .where(ticket_sync_state.c.system == system, ticket_sync_state.c.lease_owner == owner)
            .values(lease_until=until)
        )
        return self.run(lambda conn: bool(conn.execute(statement).rowcount))

    def finish_sync(
        self, system: str, owner: str, now: datetime, watermark: datetime | None, next_at: datetime, read: int
    ) -> None:
        """A pass read everything: the watermark moves on, the failures are forgotten, the lease is let go."""
        statement = (
            ticket_sync_state.update()
            .where(ticket_sync_state.c.system == system, ticket_sync_state.c.lease_owner == owner)
            .values(
                watermark=watermark,
                last_success_at=now,
                next_attempt_at=next_at,
                failures=0,
                last_error=None,
                tickets_read=ticket_sync_state.c.tickets_read + read,
                lease_owner=None,
                lease_until=None,
            )
        )
        self.run(lambda conn: conn.execute(statement))

    def fail_sync(self, system: str, owner: str, error: str, next_at: datetime) -> None:
        """A pass failed: the watermark stays (the next pass reads it all again), the cause is kept to show."""
        statement = (
            ticket_sync_state.update()
            .where(ticket_sync_state.c.system == system, ticket_sync_state.c.lease_owner == owner)
            .values(
                failures=ticket_sync_state.c.failures + 1,
                last_error=error[:2000],
                next_attempt_at=next_at,
                lease_owner=None,
                lease_until=None,
            )
        )
        self.run(lambda conn: conn.execute(statement))

    # What was seen of each ticket ----------------------------------------------------

    @staticmethod
    def seen_ticket(conn: Connection, system: str, ticket_id: str) -> SeenRow | None:
        row = conn.execute(
            sa.select(synced_tickets).where(synced_tickets.c.system == system, synced_tickets.c.ticket_id == ticket_id)
        ).first()
        if row is None:
            return None
        seen = SeenTicket(TicketState(row.state), row.status, row.version, row.problem_ref, row.fingerprint)
        return SeenRow(seen, row.incident_id)

    @staticmethod
    def record_seen_ticket(
        conn: Connection, system: str, ticket_id: str, seen: SeenTicket, incident_id: int | None, now: datetime
    ) -> None:
        """Remember what was seen of a ticket (or written there by the bridge), and the incident it became."""
        values: dict[str, Any] = {
            "state": seen.state.value,
            "status": seen.status[:64],
            "version": seen.version[:64],
            "problem_ref": seen.problem_ref[:200] if seen.problem_ref is not None else None,
            "fingerprint": seen.fingerprint,
            "seen_at": now,
        }
        if incident_id is not None:
            values["incident_id"] = incident_id
        key = {"system": system, "ticket_id": ticket_id}
        if not _insert_unless_there(conn, synced_tickets, {**key, **values}, ["system", "ticket_id"]):
            conn.execute(
                synced_tickets.update()
                .where(synced_tickets.c.system == system, synced_tickets.c.ticket_id == ticket_id)
                .values(values)
            )

    def note_written_ticket(self, system: str, ticket_id: str, state: TicketState, status: str, now: datetime) -> None:
        """The bridge itself moved a ticket (resolved it): the next reading of that state is no change."""

        def work(conn: Connection) -> None:
            known = self.seen_ticket(conn, system, ticket_id)
            if known is None:
                seen = SeenTicket(state, status, "", None, "")
            else:
                seen = SeenTicket(state, status, known.seen.version, known.seen.problem_ref, known.seen.fingerprint)
            self.record_seen_ticket(conn, system, ticket_id, seen, None, now)

        self.run(work)

    # The incident of a ticket --------------------------------------------------------

    @staticmethod
    def ticket_incident(conn: Connection, dedup_key: str, *, for_update: bool = False) -> Incident | None:
        """A ticket's incident: the live one of its key, else the newest closed one; `for_update` locks it."""
        closed_last = sa.case((incidents.c.state == IncidentState.CLOSED.value, 1), else_=0)
        query = (
            sa.select(incidents)
            .where(incidents.c.dedup_key == dedup_key)
            .order_by(closed_last, incidents.c.id.desc())
            .limit(1)
        )
        row = conn.execute(query.with_for_update() if for_update else query).mappings().first()
        return incident_from_row(row) if row else None

    @staticmethod
    def save_ticket_incident(conn: Connection, before: Incident, after: Incident) -> None:
        """Write what a ticket's reading changed on its incident (only those columns)."""
        changed = {name: getattr(after, name) for name in FIELDS if getattr(before, name) != getattr(after, name)}
        if "state" in changed:
            changed["state"] = after.state.value
        if changed:
            conn.execute(incidents.update().where(incidents.c.id == before.id).values(changed))

    @staticmethod
    def detach_incident(conn: Connection, incident_id: int, problem_id: int) -> bool:
        """Take an incident out of its problem (its problem field was cleared); False when it was not in it."""
        left = conn.execute(
            incidents.update()
            .where(incidents.c.id == incident_id, incidents.c.problem_id == problem_id)
            .values(problem_id=None)
        ).rowcount
        if left:
            MergeRepository.recount(conn, problem_id)
        return bool(left)

    @staticmethod
    def set_hand_links_of_ticket(conn: Connection, system: str, ticket_id: str, now: datetime, state: str) -> None:
        """A ticket closed (or reopened) in its system: so are its hand links (those of closed problems stay closed)."""
        where = [problem_tickets.c.system == system, problem_tickets.c.ticket_id == ticket_id]
        if state == _CLOSED:
            values: dict[str, Any] = {"state": _CLOSED, "closed_at": now, "close_reason": "closed in its system"}
            where.append(problem_tickets.c.state == _OPEN)
        else:
            live = sa.select(problems.c.id).where(problems.c.state != _CLOSED)
            values = {"state": _OPEN, "closed_at": None, "close_reason": None}
            where += [problem_tickets.c.state == _CLOSED, problem_tickets.c.problem_id.in_(live)]
        conn.execute(problem_tickets.update().where(*where).values(values))

    # What each ticket was told -------------------------------------------------------

    @staticmethod
    def claim_notice(
        conn: Connection, system: str, ticket_id: str, digest: str, kind: str, problem_id: int, now: datetime
    ) -> bool:
        """Record that a ticket is told a text; False when it was told that text already (never twice)."""
        values = {
            "system": system,
            "ticket_id": ticket_id,
            "digest": digest,
            "kind": kind,
            "problem_id": problem_id,
            "queued_at": now,
        }
        return _insert_unless_there(conn, ticket_notices, values, ["system", "ticket_id", "digest"])
