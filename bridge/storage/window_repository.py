"""Hold windows: made, ended, read on the webhook path, and released once; the incidents each held."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from bridge.domain.incidents import Incident, Matcher
from bridge.domain.windows import Window, WindowKind, matcher_of_match
from bridge.storage import driver_sql
from bridge.storage.engine import MAX_ID, Database, Page
from bridge.storage.incident_repository import incident_from_row
from bridge.storage.schema import hold_windows, incidents

# Driver SQL (see `driver_sql`): asked once per webhook transaction that opens an incident.
_SQLITE_COVERING = (
    "SELECT id, kind, name, match, starts_at, ends_at, ended_at, holds, deploy FROM hold_windows "
    "WHERE ends_at > ? AND starts_at <= ? AND (ended_at IS NULL OR ended_at > ?)"
)
_POSTGRES_COVERING = driver_sql.psycopg_text(_SQLITE_COVERING)


@functools.lru_cache(maxsize=1024)
def _matcher(match: str) -> Matcher:
    """A stored `match` as a matcher, built once per distinct text (regexes compiled once)."""
    return matcher_of_match(orjson.loads(match))


def match_text(match: Any) -> str:
    """A match as canonical text (sorted keys): the key of the matcher cache."""
    return orjson.dumps(match, option=orjson.OPT_SORT_KEYS).decode()


def window_of(row: Any) -> Window:
    """A window from its row (a mapping with the columns `Window` needs)."""
    return Window(
        row["id"],
        WindowKind(row["kind"]),
        row["name"],
        _matcher(match_text(row["match"])),
        row["starts_at"],
        row["ends_at"],
        row["ended_at"],
        bool(row.get("holds", True)),
        row.get("deploy"),
    )


class WindowRepository(Database):
    """Reads and writes of hold windows and the holds of their incidents."""

    @staticmethod
    def covering_windows(conn: Connection, earliest: datetime, latest: datetime) -> list[Window]:
        """Windows in force at some moment between `earliest` and `latest`, as committed now (one made a
        moment ago by another process counts)."""
        sqlite = driver_sql.is_sqlite(conn)
        low, high = (driver_sql.datetime_value(moment, sqlite) for moment in (earliest, latest))
        statement = _SQLITE_COVERING if sqlite else _POSTGRES_COVERING
        rows = driver_sql.execute(conn, statement, (low, high, low)).fetchall()
        parse = driver_sql.sqlite_datetime if sqlite else driver_sql.postgres_datetime
        found = []
        for window_id, kind, name, match, starts_at, ends_at, ended_at, holds, deploy in rows:
            values = {
                "id": window_id,
                "kind": kind,
                "name": name,
                "match": orjson.loads(match) if sqlite else match,
                "starts_at": parse(starts_at),
                "ends_at": parse(ends_at),
                "ended_at": parse(ended_at) if ended_at is not None else None,
                "holds": bool(holds),
                "deploy": (orjson.loads(deploy) if sqlite else deploy) if deploy is not None else None,
            }
            found.append(window_of(values))
        return found

    @staticmethod
    def add_window(conn: Connection, values: dict[str, Any]) -> int:
        window_id: int = conn.execute(hold_windows.insert().returning(hold_windows.c.id), values).scalar_one()
        return window_id

    @staticmethod
    def add_occurrence(conn: Connection, values: dict[str, Any]) -> bool:
        """Store an occurrence of a recurring window unless it is stored already; whether it was new."""
        insert = (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(hold_windows).values(values)
        done = conn.execute(insert.on_conflict_do_nothing(index_elements=["rule", "starts_at"])).rowcount
        return bool(done)

    @staticmethod
    def find_window(conn: Connection, window_id: int, *, for_update: bool = False) -> dict[str, Any] | None:
        if not 0 < window_id <= MAX_ID:
            return None
        query = sa.select(hold_windows).where(hold_windows.c.id == window_id)
        row = conn.execute(query.with_for_update() if for_update else query).mappings().first()
        return dict(row) if row else None

    def get_window(self, window_id: int) -> dict[str, Any] | None:
        return self.read(lambda conn: self.find_window(conn, window_id))

    @staticmethod
    def end_window(conn: Connection, window_id: int, now: datetime, actor: str) -> bool:
        """End a window now, unless it has ended already (by hand, or its time is up); False then."""
        done = conn.execute(
            hold_windows.update()
            .where(hold_windows.c.id == window_id, hold_windows.c.ended_at.is_(None), hold_windows.c.ends_at > now)
            .values(ended_at=now, ended_by=actor)
        ).rowcount
        return bool(done)

    @staticmethod
    def claim_release(conn: Connection, window_id: int, now: datetime) -> bool:
        """Mark a window whose end has come released; only one transaction wins (the one that then releases
        what it held). A deploy window a finish moved the end of meanwhile is not released."""
        done = conn.execute(
            hold_windows.update()
            .where(
                hold_windows.c.id == window_id,
                hold_windows.c.released_at.is_(None),
                sa.or_(hold_windows.c.ends_at <= now, hold_windows.c.ended_at <= now),
            )
            .values(released_at=now)
        ).rowcount
        return bool(done)

    @staticmethod
    def settle_window(conn: Connection, window_id: int, ends_at: datetime, now: datetime) -> bool:
        """Move the end of a window in force (a finished deploy's: its settle time from now); False when it
        has ended or been released already."""
        done = conn.execute(
            hold_windows.update()
            .where(
                hold_windows.c.id == window_id,
                hold_windows.c.released_at.is_(None),
                hold_windows.c.ended_at.is_(None),
                hold_windows.c.ends_at > now,
            )
            .values(ends_at=ends_at)
        ).rowcount
        return bool(done)

    def windows_to_release(self, now: datetime) -> list[int]:
        """Windows that hold, whose end has come and whose release has not run (a deploy window that only
        marks holds nothing to release)."""
        query = sa.select(hold_windows.c.id).where(
            hold_windows.c.holds.is_(True),
            hold_windows.c.released_at.is_(None),
            sa.or_(hold_windows.c.ends_at <= now, hold_windows.c.ended_at <= now),
        )
        return self.read(lambda conn: list(conn.execute(query.order_by(hold_windows.c.id)).scalars()))

    def windows_released_since(self, since: datetime) -> list[int]:
        """Windows released lately: an incident a webhook held while the release ran is released after it."""
        query = sa.select(hold_windows.c.id).where(hold_windows.c.released_at >= since)
        return self.read(lambda conn: list(conn.execute(query.order_by(hold_windows.c.id)).scalars()))

    @staticmethod
    def held_incidents(conn: Connection, window_id: int) -> list[Incident]:
        """What the window holds still, locked: a second releaser waits, then finds them released."""
        query = (
            sa.select(incidents)
            .where(incidents.c.hold_window_id == window_id, incidents.c.held.is_(True))
            .order_by(incidents.c.id)
            .with_for_update()
        )
        return [incident_from_row(row) for row in conn.execute(query).mappings()]

    @staticmethod
    def window_occurrences(conn: Connection, rules: Sequence[str] | None, after: datetime) -> list[dict[str, Any]]:
        """Stored occurrences of recurring windows planned to end after `after` (of these rules, or of every
        rule), those ended by hand too: an occurrence someone ended does not come back."""
        query = sa.select(hold_windows).where(hold_windows.c.rule.is_not(None), hold_windows.c.ends_at > after)
        if rules is not None:
            query = query.where(hold_windows.c.rule.in_(rules))
        return [dict(row) for row in conn.execute(query).mappings()]

    @staticmethod
    def drop_occurrences(conn: Connection, window_ids: Sequence[int]) -> None:
        """Forget occurrences that never started (their rule changed or went): they held nothing."""
        if window_ids:
            conn.execute(hold_windows.delete().where(hold_windows.c.id.in_(window_ids)))

    def list_windows(self, state: str | None, now: datetime, limit: int, cursor: int | None) -> Page:
        """Maintenance windows (deploy windows are shown with their deploys), in this state when given."""
        query = sa.select(hold_windows).where(hold_windows.c.kind == WindowKind.MAINTENANCE.value)
        ended = sa.or_(hold_windows.c.ends_at <= now, hold_windows.c.ended_at <= now)
        if state == "ended":
            query = query.where(ended)
        elif state == "active":
            query = query.where(hold_windows.c.starts_at <= now, sa.not_(ended))
        elif state == "scheduled":
            query = query.where(hold_windows.c.starts_at > now, sa.not_(ended))
        return self._page(query, hold_windows, limit, cursor, dict)

    def window_incidents(self, window_id: int, limit: int) -> list[Incident]:
        """The incidents a window held (newest first), held still or released."""
        query = (
            sa.select(incidents)
            .where(incidents.c.hold_window_id == window_id)
            .order_by(incidents.c.id.desc())
            .limit(limit)
        )
        return self.read(lambda conn: [incident_from_row(row) for row in conn.execute(query).mappings()])

    def held_counts(self, window_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Per window: the incidents it held in all, and those it holds still."""
        if not window_ids:
            return {}
        query = (
            sa.select(
                incidents.c.hold_window_id,
                sa.func.count(),
                sa.func.sum(sa.case((incidents.c.held.is_(True), 1), else_=0)),
            )
            .where(incidents.c.hold_window_id.in_(list(window_ids)))
            .group_by(incidents.c.hold_window_id)
        )
        rows = self.read(lambda conn: conn.execute(query).all())
        return {window_id: (total, int(held or 0)) for window_id, total, held in rows}

    @staticmethod
    def active_window_count(conn: Connection, now: datetime) -> int:
        """Maintenance windows in force now (a gauge)."""
        query = (
            sa.select(sa.func.count())
            .select_from(hold_windows)
            .where(
                hold_windows.c.kind == WindowKind.MAINTENANCE.value,
                hold_windows.c.ends_at > now,
                hold_windows.c.starts_at <= now,
                sa.or_(hold_windows.c.ended_at.is_(None), hold_windows.c.ended_at > now),
            )
        )
        return int(conn.execute(query).scalar_one())
