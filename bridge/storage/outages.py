"""Why the database refuses work, named: its storage is full, it is read-only, or it cannot be reached.

All three answer 503, but only the last passes by itself: a full disk or a read-only
database needs an operator. The driver's error is classified here (SQLite's result code,
PostgreSQL's SQLSTATE), logged at ERROR with the driver's own words once per burst, and
remembered, so that `/readyz` fails until a write goes through again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from bridge.errors import StoreFull, StoreReadOnly, StoreUnavailable

log = logging.getLogger(__name__)

# SQLite primary result codes (the low byte of an extended code): SQLITE_READONLY, SQLITE_FULL.
# SQLITE_IOERR stays an outage: it means a failed read or write, not which one or why.
SQLITE_READONLY = 8
SQLITE_FULL = 13
# PostgreSQL SQLSTATEs: disk_full (a relation or temporary file could not grow), and
# read_only_sql_transaction (a standby, or default_transaction_read_only). Other class 53
# states (out of memory, too many connections) stay outages: waiting may help.
PG_DISK_FULL = "53100"
PG_READ_ONLY = "25006"
# One ERROR line per cause per this many seconds; the next says how many it left out.
LOG_INTERVAL_SECONDS = 60.0
# Below this much free space on a SQLite database's file system a write fails, or soon
# will: a batch's commit appends its pages to the WAL, and the checkpoint grows the file.
MIN_FREE_BYTES = 1024 * 1024
# The probe's row: a few pages, so it needs pages a full database no longer has.
PROBE_BYTES = 16 * 1024

FULL_MESSAGE = "database storage is full; writes fail until space is freed"
READ_ONLY_MESSAGE = "database is read-only; writes fail until it accepts them again"
UNAVAILABLE_MESSAGE = "database unavailable; retry later"


def classify(exc: DBAPIError) -> StoreUnavailable | None:
    """What a driver failure means when it is not the data's fault: full, read-only, unreachable; else None (a bug)."""
    orig = exc.orig
    code = getattr(orig, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    state = getattr(orig, "sqlstate", None)
    if primary == SQLITE_FULL or state == PG_DISK_FULL:
        return StoreFull(FULL_MESSAGE)
    if primary == SQLITE_READONLY or state == PG_READ_ONLY:
        return StoreReadOnly(READ_ONLY_MESSAGE)
    if exc.connection_invalidated or isinstance(exc, OperationalError):
        return StoreUnavailable(UNAVAILABLE_MESSAGE)
    return None


def driver_cause(exc: BaseException) -> str:
    """The first line of the driver's message behind a store error (what an operator searches for)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    orig = getattr(cause, "orig", None) or cause
    text = str(orig).strip().splitlines()
    return text[0][:300] if text else type(orig).__name__


@dataclass
class Outages:
    """One process's record of its database's refusals: the ERROR lines, and the write refusal to probe."""

    interval: float = LOG_INTERVAL_SECONDS
    clock: Callable[[], float] = time.monotonic
    # The last full or read-only refusal, until a write probe goes through: `/readyz` fails meanwhile.
    write_refused: StoreUnavailable | None = None
    _logged_at: dict[str | None, float] = field(default_factory=dict)
    _left_out: dict[str | None, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refused(self, refusal: StoreUnavailable, cause: str) -> None:
        """Note a refusal: an ERROR line naming `cause`, unless one for this kind was logged within `interval`."""
        kind = refusal.error
        with self._lock:
            if isinstance(refusal, (StoreFull, StoreReadOnly)):
                self.write_refused = refusal
            now = self.clock()
            last = self._logged_at.get(kind)
            if last is not None and now - last < self.interval:
                self._left_out[kind] = self._left_out.get(kind, 0) + 1
                return
            self._logged_at[kind] = now
            left_out = self._left_out.pop(kind, 0)
        log.error(refusal.message, extra={"error": kind, "cause": cause, "refusals_not_logged": left_out})

    def writes_resumed(self) -> None:
        """A write probe went through: `/readyz` passes again, and the next refusal is logged at once."""
        with self._lock:
            refusal, self.write_refused = self.write_refused, None
            if refusal is None:
                return
            self._logged_at.pop(refusal.error, None)
            left_out = self._left_out.pop(refusal.error, 0)
        log.warning("database accepts writes again", extra={"error": refusal.error, "refusals_not_logged": left_out})


def server_refusal(conn: Connection) -> tuple[StoreUnavailable, str] | None:
    """The refusal a PostgreSQL server makes of every write (a standby, transaction_read_only) with its
    cause, or None; one read, cheap enough for each `/readyz` (on SQLite, `SELECT 1`)."""
    if conn.dialect.name != "postgresql":
        conn.execute(sa.text("SELECT 1")).scalar_one()
        return None
    standby, read_only = conn.execute(
        sa.text("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')")
    ).one()
    if standby:
        return StoreReadOnly(READ_ONLY_MESSAGE), "the server is a standby (in recovery)"
    if read_only == "on":
        return StoreReadOnly(READ_ONLY_MESSAGE), "transaction_read_only is on (default_transaction_read_only)"
    return None


def file_system_refusal(engine: Engine) -> tuple[StoreUnavailable, str] | None:
    """For a SQLite file: the refusal its file system makes (read-only, full) with its cause, or None."""
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:" or path.startswith("file:"):
        return None
    try:
        stats = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return None  # the directory is gone: the read before this one says so
    if stats.f_flag & os.ST_RDONLY:
        return StoreReadOnly(READ_ONLY_MESSAGE), "the database's file system is mounted read-only"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return StoreReadOnly(READ_ONLY_MESSAGE), "the database file is not writable by this process"
    # root may use the blocks a file system reserves for it; anyone else may not
    free = (stats.f_bfree if os.geteuid() == 0 else stats.f_bavail) * stats.f_frsize
    if free < MIN_FREE_BYTES:
        return StoreFull(FULL_MESSAGE), f"{free} bytes free on the database's file system"
    return None


def probe_write(conn: Connection) -> None:
    """A small write that needs new pages, in a transaction the caller rolls back.

    PostgreSQL: a temporary table, whose first row extends a file (disk full is found
    when a file must grow; a standby or read-only setting refuses the CREATE). SQLite: a
    table with a row of a few pages (a database at its size limit has no page for it).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("CREATE TEMPORARY TABLE bridge_write_probe (filler bytea) ON COMMIT DROP"))
        conn.execute(sa.text("INSERT INTO bridge_write_probe VALUES ('\\x00')"))
        return
    conn.execute(sa.text("CREATE TABLE bridge_write_probe (filler BLOB)"))
    conn.execute(sa.text("INSERT INTO bridge_write_probe VALUES (zeroblob(:size))"), {"size": PROBE_BYTES})
