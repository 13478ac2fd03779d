"""Heartbeats: their states as the worker decided them, the pings written, and when each source was last heard."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from bridge.domain.heartbeats import HeartbeatRecord, HeartbeatState, Transition
from bridge.storage.engine import Database
from bridge.storage.schema import heartbeats, notifications


def _record(row: Mapping[Any, Any]) -> HeartbeatRecord:
    return HeartbeatRecord(
        row["name"], HeartbeatState(row["state"]), row["armed_at"], row["changed_at"], row["last_seen"]
    )


def _later_seen(heard: datetime) -> Any:
    """`last_seen` moved to `heard` unless a later ping is already written (pings and the worker race)."""
    column = heartbeats.c.last_seen
    return sa.case((sa.or_(column.is_(None), column < heard), heard), else_=column)


class HeartbeatRepository(Database):
    """Reads and writes of heartbeats; every change of state is conditional, so one process makes it."""

    @staticmethod
    def heartbeat_records(conn: Connection) -> dict[str, HeartbeatRecord]:
        return {row["name"]: _record(row) for row in conn.execute(sa.select(heartbeats)).mappings()}

    def read_heartbeat_records(self) -> dict[str, HeartbeatRecord]:
        return self.read(self.heartbeat_records)

    @staticmethod
    def sources_last_heard(conn: Connection, sources: Iterable[str]) -> dict[str, datetime | None]:
        """Each source's newest notification: one probe of the (source, received_at) index per source."""
        names = sorted(set(sources))
        if not names:
            return {}
        newest = [
            sa.select(sa.func.max(notifications.c.received_at)).where(notifications.c.source == name).scalar_subquery()
            for name in names
        ]
        row = conn.execute(sa.select(*newest)).one()
        return dict(zip(names, row, strict=True))

    def read_sources_last_heard(self, sources: Iterable[str]) -> dict[str, datetime | None]:
        return self.read(lambda conn: self.sources_last_heard(conn, sources))

    @staticmethod
    def record_pings(conn: Connection, pings: Mapping[str, datetime]) -> None:
        """Write pings (heartbeat name -> when heard), in the caller's transaction. A heartbeat the worker has
        not armed yet is armed by its first ping, waiting: the ping is kept, and the worker decides the rest."""
        for name, at in sorted(pings.items()):
            insert = (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(heartbeats).values(
                name=name, state=HeartbeatState.WAITING.value, armed_at=at, changed_at=at, last_seen=at
            )
            conn.execute(insert.on_conflict_do_update(index_elements=["name"], set_={"last_seen": _later_seen(at)}))

    def record_ping(self, name: str, at: datetime) -> HeartbeatRecord:
        """A ping from the endpoint, in its own transaction; the heartbeat as it is then."""

        def work(conn: Connection) -> HeartbeatRecord:
            self.record_pings(conn, {name: at})
            return _record(conn.execute(sa.select(heartbeats).where(heartbeats.c.name == name)).mappings().one())

        return self.run(work)

    @staticmethod
    def apply_heartbeat_transition(conn: Connection, transition: Transition) -> bool:
        """Make the change if the heartbeat is still as it was read; False when another process changed it first.

        A raise also loses to a ping written since the reading: the next pass decides again.
        """
        after, before = transition.after, transition.before
        values: dict[str, Any] = {
            "state": after.state.value,
            "armed_at": after.armed_at,
            "changed_at": after.changed_at,
        }
        if after.last_seen is not None:
            values["last_seen"] = _later_seen(after.last_seen)
        if before is None:
            insert = (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(heartbeats).values(
                name=after.name, **{**values, "last_seen": after.last_seen}
            )
            return bool(conn.execute(insert.on_conflict_do_nothing(index_elements=["name"])).rowcount)
        seen = heartbeats.c.last_seen
        unchanged = [
            heartbeats.c.name == after.name,
            heartbeats.c.state == before.state.value,
            heartbeats.c.changed_at == before.changed_at,
            seen.is_(None) if before.last_seen is None else seen == before.last_seen,
        ]
        return bool(conn.execute(heartbeats.update().where(*unchanged).values(values)).rowcount)
