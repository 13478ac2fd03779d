"""The pages' sign-ins, kept in the database so that signing out ends a session on every replica.

The cookie only names its row; each request reads the row (nothing is cached in a process),
so a session ended or expired on one replica is refused by all of them at once. The row
holds the SHA-256 of the session's id: reading the table does not give a way in.
"""

from __future__ import annotations

import functools
import hashlib
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.storage.engine import Database
from bridge.storage.schema import ui_sessions

SIGNED_OUT = "signed out"
SIGNED_OUT_EVERYWHERE = "signed out everywhere"


def _row_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _live(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(ui_sessions.c.ended_at.is_(None), ui_sessions.c.expires_at > now)


class SessionRepository(Database):
    """Sessions begun at sign-in, ended by signing out or by their absolute lifetime."""

    def start_session(
        self, session_id: str, actor: str | None, operate: bool, now: datetime, expires_at: datetime
    ) -> None:
        row = dict(id_sha256=_row_id(session_id), actor=actor, operate=operate, signed_in_at=now, expires_at=expires_at)
        self.run(lambda conn: conn.execute(ui_sessions.insert().values(row)))

    def live_session(self, session_id: str, now: datetime) -> dict[str, Any] | None:
        """The session's row while it lasts: None once signed out, past its expiry, or never begun."""
        query = sa.select(ui_sessions).where(ui_sessions.c.id_sha256 == _row_id(session_id), _live(now))
        return self.read(lambda conn: _first(conn, query))

    def end_session(self, session_id: str, now: datetime) -> bool:
        """Sign one session out; False when it had already ended."""
        where = sa.and_(ui_sessions.c.id_sha256 == _row_id(session_id), _live(now))
        return self.run(functools.partial(_end, where, now, SIGNED_OUT)) > 0

    def end_sessions_of(self, actor: str, now: datetime) -> int:
        """Sign a person out of every browser; how many sessions it ended."""
        where = sa.and_(ui_sessions.c.actor == actor, _live(now))
        return self.run(functools.partial(_end, where, now, SIGNED_OUT_EVERYWHERE))

    def prune_sessions(self, before: datetime) -> int:
        """Forget sessions that ended (signed out or expired) before `before`; how many."""
        ended = sa.or_(ui_sessions.c.ended_at < before, ui_sessions.c.expires_at < before)
        return self.run(lambda conn: conn.execute(ui_sessions.delete().where(ended)).rowcount)


def _first(conn: Connection, query: sa.Select[Any]) -> dict[str, Any] | None:
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def _end(where: sa.ColumnElement[bool], now: datetime, how: str, conn: Connection) -> int:
    return conn.execute(ui_sessions.update().where(where).values(ended_at=now, ended_how=how)).rowcount
