"""What people do to incidents: acknowledgements, the response clock, and each incident's own history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.domain.incidents import Incident, IncidentState
from bridge.storage.engine import MAX_ID, Database
from bridge.storage.incident_repository import incident_from_row
from bridge.storage.schema import incident_events, incidents


class ActionRepository(Database):
    """Reads and writes behind the operator's actions on incidents."""

    @staticmethod
    def find_incident(conn: Connection, incident_id: int, *, for_update: bool = False) -> Incident | None:
        """An incident by id inside a transaction; `for_update` locks it, as an action must before it writes."""
        if not 0 < incident_id <= MAX_ID:
            return None
        query = sa.select(incidents).where(incidents.c.id == incident_id)
        row = conn.execute(query.with_for_update() if for_update else query).mappings().first()
        return incident_from_row(row) if row else None

    @staticmethod
    def record_acknowledgement(
        conn: Connection, incident_id: int, actor: str, at: datetime, breached_at: datetime | None
    ) -> bool:
        """Mark an incident acknowledged unless someone already did; False when another request won."""
        values: dict[str, Any] = {"acknowledged_at": at, "acknowledged_by": actor}
        if breached_at is not None:
            values.update(response_breached=True, response_breached_at=breached_at)
        done = conn.execute(
            incidents.update()
            .where(incidents.c.id == incident_id, incidents.c.acknowledged_at.is_(None))
            .values(values)
        ).rowcount
        return bool(done)

    @staticmethod
    def first_priority(conn: Connection, problem_id: int) -> str | None:
        """The priority of a problem's first incident: what its Jira issue is filed with, as when a rule files it."""
        query = (
            sa.select(incidents.c.priority)
            .where(incidents.c.problem_id == problem_id)
            .order_by(incidents.c.id)
            .limit(1)
        )
        priority: str | None = conn.execute(query).scalar()
        return priority

    @staticmethod
    def add_incident_events(conn: Connection, events: Sequence[Mapping[str, Any]]) -> None:
        if events:
            conn.execute(incident_events.insert(), [dict(e) for e in events])

    def incident_history(self, incident_id: int) -> list[dict[str, Any]]:
        """What people did to an incident, oldest first."""
        query = (
            sa.select(incident_events)
            .where(incident_events.c.incident_id == incident_id)
            .order_by(incident_events.c.id)
        )
        return self.read(lambda conn: [dict(row) for row in conn.execute(query).mappings()])

    def mark_response_breaches(self, now: datetime) -> list[dict[str, Any]]:
        """Mark firing incidents nobody acknowledged by their response due time as breached, once each."""

        def work(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                incidents.update()
                .where(
                    incidents.c.state == IncidentState.FIRING.value,
                    incidents.c.response_breached.is_(False),
                    incidents.c.response_due <= now,
                    incidents.c.acknowledged_at.is_(None),
                )
                .values(response_breached=True, response_breached_at=incidents.c.response_due)
                .returning(incidents.c.id, incidents.c.priority, incidents.c.response_due)
            ).mappings()
            return [dict(row) for row in rows]

        return self.run(work)

    def nearest_response(self, limit: int) -> list[Incident]:
        """Firing incidents nobody acknowledged, the one whose response is due soonest first."""
        query = (
            sa.select(incidents)
            .where(
                incidents.c.state == IncidentState.FIRING.value,
                incidents.c.acknowledged_at.is_(None),
                incidents.c.response_due.is_not(None),
            )
            .order_by(incidents.c.response_due, incidents.c.id)
            .limit(limit)
        )
        return self.read(lambda conn: [incident_from_row(row) for row in conn.execute(query).mappings()])
