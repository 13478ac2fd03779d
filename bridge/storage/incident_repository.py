"""Incidents: the live incident per key, the webhook hot path's writes, and the periodic sweeps."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from itertools import compress
from operator import ne
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.domain.incidents import Incident, IncidentHead, IncidentState
from bridge.domain.lifecycle import PlainRepeats
from bridge.domain.problems import ProblemState
from bridge.storage import incident_rows
from bridge.storage.engine import Database
from bridge.storage.incident_rows import LiveRows
from bridge.storage.schema import incidents, problems

_INCIDENT_FIELDS = incident_rows.FIELDS
_ALL_FIELDS = operator.itemgetter(*_INCIDENT_FIELDS)


class IncidentRepository(Database):
    """Reads and writes of incidents."""

    @staticmethod
    def live_rows(conn: Connection, keys: Iterable[str]) -> LiveRows:
        """The live incident per key (the firing one, else the newest resolved), locked for update, read
        whole and decoded on demand (as heads, or whole)."""
        return incident_rows.live_rows(conn, keys)

    @staticmethod
    def live_heads(
        conn: Connection, keys: Iterable[str], state: IncidentState
    ) -> tuple[dict[str, IncidentHead], set[str]]:
        """The head of each key's live incident in `state` (what decides a plain repeat), and the keys
        with a live incident at all, locked for update: the head's columns only."""
        return incident_rows.live_heads(conn, keys, state)

    @staticmethod
    def count_plain_repeats(conn: Connection, repeats: Sequence[tuple[PlainRepeats, int]]) -> None:
        """Write plain repeats, each with the notification that last touched its incident: one set-based statement."""
        incident_rows.count_repeats(
            conn,
            [
                (counted.added, counted.last_seen, notification_id, counted.head.id)
                for counted, notification_id in repeats
            ],
        )

    @staticmethod
    def save_incidents(
        conn: Connection,
        changed: Sequence[tuple[Incident, int | None]],
        originals: Mapping[str, Incident] | None = None,
    ) -> None:
        """Insert new incidents (setting their ids) and write only what changed on the others.

        `changed` pairs each incident with the notification that last touched it (None: a use case
        changed it, and the last notification stands). New
        incidents go in one bulk insert, in key order so concurrent writers meet the
        unique index in the same order and do not deadlock. An update
        writes only the columns that differ from `originals` (a repeat touches occurrences
        and last_seen, not the labels), grouped into one executemany per column set.
        """
        sqlite = conn.dialect.name == "sqlite"
        before = {incident.id: incident for incident in (originals or {}).values()}
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        new = []
        for incident, notification_id in changed:
            if incident.id is None:
                new.append((incident, notification_id))
                continue
            old = before.get(incident.id)
            now = vars(incident)
            if old is None:
                names = _INCIDENT_FIELDS
            else:  # the changed fields, compared in C (a repeat runs this for each alert)
                names = tuple(compress(_INCIDENT_FIELDS, map(ne, _ALL_FIELDS(vars(old)), _ALL_FIELDS(now))))
            values = [incident_rows.bind_value(name, now[name], sqlite) for name in names]
            if notification_id is None:  # changed by a use case, not a notification: the last one stands
                if not names:
                    continue
                groups.setdefault(names, []).append((*values, incident.id))
            else:
                groups.setdefault((*names, "last_notification_id"), []).append((*values, notification_id, incident.id))
        if new:
            new.sort(key=lambda pair: pair[0].dedup_key)
            ids = incident_rows.insert_incidents(conn, new)
            for (incident, _), incident_id in zip(new, ids, strict=True):
                incident.id = incident_id
        for columns, values in groups.items():
            incident_rows.update_rows(conn, columns, values)

    def mark_sla_breaches(self, now: datetime) -> list[dict[str, Any]]:
        """Mark firing incidents past their SLA due time as breached, once each; returns them."""

        def work(conn: Connection) -> list[dict[str, Any]]:
            due = (
                incidents.c.state == IncidentState.FIRING.value,
                incidents.c.sla_breached.is_(False),
                incidents.c.sla_due <= now,
            )
            rows = conn.execute(
                incidents.update()
                .where(*due)
                .values(sla_breached=True, sla_breached_at=incidents.c.sla_due)
                .returning(
                    incidents.c.id,
                    incidents.c.priority,
                    incidents.c.problem_id,
                    incidents.c.sla_due,
                    incidents.c.summary,
                    incidents.c.source,
                )
            ).mappings()
            return [dict(row) for row in rows]

        return self.run(work)

    def close_resolved_due(
        self, now: datetime, then: Callable[[Connection, list[int]], None] | None = None
    ) -> list[int]:
        """Close resolved incidents outside any problem whose auto-close time has come; `then` runs on the
        closed ids in the same transaction (lifecycle events)."""

        def work(conn: Connection) -> list[int]:
            # Outside any live problem: never linked, or attached to a closed one ("fix not deployed").
            closed_problems = sa.select(problems.c.id).where(problems.c.state == ProblemState.CLOSED.value)
            due = (
                incidents.c.state == IncidentState.RESOLVED.value,
                sa.or_(incidents.c.problem_id.is_(None), incidents.c.problem_id.in_(closed_problems)),
                incidents.c.auto_close_at <= now,
                incidents.c.held.is_(False),  # its window's end closes it, quietly
            )
            ids = list(conn.execute(sa.select(incidents.c.id).where(*due)).scalars())
            if ids:
                conn.execute(
                    incidents.update()
                    .where(incidents.c.id.in_(ids), *due)
                    .values(state=IncidentState.CLOSED.value, closed_at=now, close_reason="auto_closed")
                )
                if then is not None:
                    then(conn, ids)
            return ids

        return self.run(work)


def incident_from_row(row: Mapping[Any, Any]) -> Incident:
    values = {name: row[name] for name in _INCIDENT_FIELDS}
    values["state"] = IncidentState(row["state"])
    return Incident(id=row["id"], **values)
