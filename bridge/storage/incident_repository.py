"""Incidents: the live incident per key, the webhook hot path's writes, and the periodic sweeps."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.domain import Incident, IncidentState, ProblemState
from bridge.storage.engine import Database, insert_returning_ids
from bridge.storage.schema import incidents, problems

# Built once: building a statement costs more than running it on a small batch.
_CURRENT_INCIDENTS = (
    sa.select(incidents)
    .where(
        incidents.c.dedup_key.in_(sa.bindparam("keys", expanding=True)), incidents.c.state != IncidentState.CLOSED.value
    )
    .order_by(incidents.c.dedup_key, incidents.c.id.desc())
    .with_for_update()
)
# PostgreSQL: one index probe per key (a lateral LIMIT 1), whatever the planner's statistics
# say. An IN list over a table that grew since its last ANALYZE (the first storm on a new
# install) was planned as a sequential scan, once per transaction.
_KEYS = sa.func.unnest(sa.bindparam("keys", type_=sa.ARRAY(sa.Text()))).table_valued("key").render_derived(name="k")
_LIVE = (
    sa.select(incidents)
    .where(incidents.c.dedup_key == _KEYS.c.key, incidents.c.state != IncidentState.CLOSED.value)
    .order_by((incidents.c.state == IncidentState.FIRING.value).desc(), incidents.c.id.desc())
    .limit(1)
    .with_for_update()
    .lateral("live")
)
_LIVE_INCIDENT_PER_KEY = sa.select(_LIVE).select_from(_KEYS).join(_LIVE, sa.true())
_INCIDENT_FIELDS = [column.name for column in incidents.columns if column.name not in ("id", "last_notification_id")]
_INCIDENT_COLUMNS = frozenset(_INCIDENT_FIELDS)


class IncidentRepository(Database):
    """Reads and writes of incidents."""

    @staticmethod
    def current_incidents(conn: Connection, keys: Iterable[str]) -> dict[str, Incident]:
        """The live incident per key (the firing one, else the newest resolved), locked for update."""
        keys = sorted(set(keys))
        if not keys:
            return {}
        current: dict[str, Incident] = {}
        query = _LIVE_INCIDENT_PER_KEY if conn.dialect.name == "postgresql" else _CURRENT_INCIDENTS
        for row in conn.execute(query, {"keys": keys}).mappings():
            known = current.get(row["dedup_key"])
            if known is None or (
                row["state"] == IncidentState.FIRING.value and known.state is not IncidentState.FIRING
            ):
                current[row["dedup_key"]] = incident_from_row(row)
        return current

    @staticmethod
    def save_incidents(
        conn: Connection,
        changed: Sequence[tuple[Incident, int | None]],
        originals: Mapping[str, Incident] | None = None,
    ) -> None:
        """Insert new incidents (setting their ids) and write only what changed on the others.

        `changed` pairs each incident with the notification that last touched it. New
        incidents go in one bulk insert, in key order so concurrent writers meet the
        unique index in the same order and do not deadlock. An update
        writes only the columns that differ from `originals` (a repeat touches occurrences
        and last_seen, not the labels), grouped into one executemany per column set.
        """
        before = {incident.id: incident for incident in (originals or {}).values()}
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        new = []
        for incident, notification_id in changed:
            if incident.id is None:
                new.append((incident, notification_id))
                continue
            old = before.get(incident.id)
            if old is None:
                values = _incident_values(incident)
            else:
                previous = vars(old)
                values = {
                    name: value
                    for name, value in vars(incident).items()
                    if name in _INCIDENT_COLUMNS and previous[name] != value
                }
                if "state" in values:
                    values["state"] = incident.state.value
            values["last_notification_id"] = notification_id
            groups.setdefault(tuple(sorted(values)), []).append(dict(values, b_id=incident.id))
        if new:
            new.sort(key=lambda pair: pair[0].dedup_key)
            rows = [
                dict(_incident_values(incident), last_notification_id=notification_id)
                for incident, notification_id in new
            ]
            ids = insert_returning_ids(conn, incidents, rows)
            for (incident, _), incident_id in zip(new, ids, strict=True):
                incident.id = incident_id
        for columns, rows in groups.items():
            conn.execute(_incident_update(columns), rows)

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


@functools.lru_cache(maxsize=64)
def _incident_update(columns: tuple[str, ...]) -> sa.Update:
    """UPDATE of these columns by id, built once per column set (statement building is costly)."""
    return (
        incidents.update()
        .where(incidents.c.id == sa.bindparam("b_id"))
        .values({name: sa.bindparam(name) for name in columns})
    )


def _incident_values(incident: Incident) -> dict[str, Any]:
    values = {name: getattr(incident, name) for name in _INCIDENT_FIELDS}
    values["state"] = incident.state.value
    return values


def incident_from_row(row: Mapping[Any, Any]) -> Incident:
    values = {name: row[name] for name in _INCIDENT_FIELDS}
    values["state"] = IncidentState(row["state"])
    return Incident(id=row["id"], **values)
