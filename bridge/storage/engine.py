"""Engine set-up and transactions: SQLite pragmas, the writer queue, the retry loop, migrations.

The database enforces what matters: at most one firing incident per dedup key (a
partial unique index), so two server processes can never create twin incidents. A
write that loses such a race is retried as a whole transaction, re-reading what the
winner wrote.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, Self, TypeVar

import orjson
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event

# Connection is the transaction a use case's work runs in: the one SQLAlchemy name the rest of the bridge sees.
from sqlalchemy.engine import Connection as Connection
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from bridge.errors import DataRefused, StoreUnavailable
from bridge.storage import driver_sql
from bridge.storage.outages import (
    Outages,
    classify,
    driver_cause,
    file_system_refusal,
    probe_write,
    server_refusal,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
MAX_TRANSACTION_ATTEMPTS = 8
# Attempts when the connection is lost before commit: an idle one dropped by a restart or a
# proxy is replaced once; a database that is down answers 503 after the second.
DISCONNECT_ATTEMPTS = 2
# Ids are 64-bit; a larger number from a URL is simply no id (not an overflow in the driver).
MAX_ID = 2**63 - 1
# PostgreSQL SQLSTATEs worth a retry: serialization failure, deadlock detected.
RETRYABLE_PG_STATES = {"40001", "40P01"}
# PostgreSQL SQLSTATE classes that blame the data: 22 data exception (value too long, out of
# range, NUL), 54 program limit exceeded (index row size). Retrying or waiting never helps.
DATA_PG_STATE_CLASSES = ("22", "54")
# Execution option marking a read-only connection (SQLite then begins without a write lock).
READ_ONLY = "bridge_read_only"
# The advisory lock every bridge process holds while it migrates a PostgreSQL database. Any
# constant works as long as nothing else on that database uses it for something else.
MIGRATION_LOCK_KEY = 0x1B_1D6E_0001


def normalise_url(url: str) -> str:
    """Use psycopg 3 for a bare `postgresql://` URL."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    """An engine with the settings each backend needs for safe concurrent writes."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            json_serializer=_json_text,
            json_deserializer=orjson.loads,
        )
        _configure_sqlite(engine)
        return engine
    # No pre-ping: it cost a round trip per transaction (12% of the writer's time in a storm,
    # py-spy). A connection lost while idle fails the transaction's first statement instead,
    # and `Database.run` and `read` retry on a fresh one (the SQLAlchemy docs' "optimistic"
    # disconnect handling).
    engine = sa.create_engine(
        url, pool_size=5, max_overflow=5, json_serializer=_json_text, json_deserializer=orjson.loads
    )
    _configure_postgres(engine)
    return engine


def _json_text(value: Any) -> str:
    """JSON columns through orjson: labels of every alert go through here, json is several times slower."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _configure_postgres(engine: Engine) -> None:
    """Sessions in UTC, whatever the server's default.

    psycopg hands timestamptz back in the session's zone: under `Etc/UTC` (Debian's default)
    each value carries a ZoneInfo the store must convert; under `UTC` it carries
    `datetime.UTC`, which the hot path takes as it is (a quarter of reading a storm's
    incidents, bench/RESULTS.md). The stored instants are the same either way.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.commit()


def _null(_: None) -> None:
    return None


# The sqlite3 module binds None through its adapter lookup, whose misses (the protocol's and
# the value's own adaptation hooks) cost more than binding any other value: a new incident's
# dozen NULL columns were a third of its insert. A registered adapter is found at once and
# still binds NULL. Process-wide, for every SQLite connection, as the module's registry is.
sqlite3.register_adapter(type(None), _null)


def _configure_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout and BEGIN IMMEDIATE so writers queue instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module (SQLAlchemy recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Readers take no lock in WAL mode; writers take it up front.
        begin = "BEGIN" if connection.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
        driver_sql.execute(connection, begin)


class _WriterQueue:
    """Queues the SQLite writers of every process on one blocking file lock.

    SQLite's own busy handler polls, sleeping in growing steps up to 100 ms, so under a
    storm a writer of one process oversleeps while the other process writes again and
    again; a blocking flock() hands the database to the next writer as soon as the lock is
    released. Threads of a process queue on a mutex first (flock belongs to the open file,
    which they share); the file is opened per process, as forked workers must not share it.
    """

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None

    @contextmanager
    def hold(self) -> Iterator[None]:
        if self._path is None:
            yield
            return
        with self._mutex:
            if self._pid != os.getpid():
                try:
                    self._fd, self._pid = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
                except OSError as exc:  # the database's directory is missing or read-only
                    raise StoreUnavailable("database unavailable; retry later") from exc
            assert self._fd is not None
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)


def _writer_queue(engine: Engine) -> _WriterQueue:
    """A writer queue next to a SQLite database file; none for PostgreSQL or in-memory SQLite."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return _WriterQueue(None)
    return _WriterQueue(database + "-writers.lock")


def _is_retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True
    state = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return state in RETRYABLE_PG_STATES


def _raise_as_bridge_error(exc: DBAPIError | OverflowError, outages: Outages) -> NoReturn:
    """Raise what a database failure means to callers: bad data (400), a full, read-only or unreachable
    database (503, noted in `outages`), or itself (a bug)."""
    refusal = _data_refusal(exc)
    if refusal is not None:
        raise refusal from exc
    unavailable = classify(exc) if isinstance(exc, DBAPIError) else None
    if unavailable is not None:
        outages.refused(unavailable, driver_cause(exc))
        raise unavailable from exc
    raise exc


def _data_refusal(exc: DBAPIError | OverflowError) -> DataRefused | None:
    """The refusal to raise when the database (or its driver) blames a value, else None.

    PostgreSQL reports an index row too large as an OperationalError, which would read as an
    outage: the SQLSTATE decides. SQLite's driver raises OverflowError for an integer past 64 bits.
    """
    if isinstance(exc, OverflowError):
        return DataRefused("a value is out of range for the database", [f"database: {exc}"])
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or ""
    if not isinstance(exc, DataError) and not state.startswith(DATA_PG_STATE_CLASSES):
        return None
    detail = str(orig).strip().splitlines()[0][:300] if orig is not None else type(exc).__name__
    return DataRefused("a value was refused by the database", [f"database: {detail}"])


class _ProbePassed(Exception):
    """Ends a probe transaction with a rollback once its work went through."""


@dataclass(frozen=True)
class Page:
    """One page of a listing and the cursor for the next (None on the last page)."""

    items: list[Any]
    next_cursor: int | None


class Database:
    """Transactions on one engine: the base every repository of the `Store` runs its SQL through."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writers = _writer_queue(engine)
        self.outages = Outages()

    @classmethod
    def from_url(cls, url: str) -> Self:
        return cls(make_engine(url))

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction, retried whole when it loses a race.

        Raises:
            DataRefused: the database refused a value (bad input; the transaction is rolled back).
            StoreUnavailable: the database cannot be reached.
        """
        for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
            committing = False
            try:
                with self._writers.hold(), self.engine.begin() as conn:
                    result = work(conn)
                    committing = True
                return result
            except (DBAPIError, OverflowError) as exc:
                if isinstance(exc, DBAPIError) and _data_refusal(exc) is None and attempt < MAX_TRANSACTION_ATTEMPTS:
                    if _is_retryable(exc):
                        log.info("transaction lost a race, retrying", extra={"attempt": attempt})
                        time.sleep(0.005 * attempt)
                        continue
                    if exc.connection_invalidated and not committing and attempt < DISCONNECT_ATTEMPTS:
                        # Nothing was committed (a lost commit is never retried: it may have
                        # happened): the pool's other idle connections are suspect too.
                        log.info("database connection lost before commit, retrying", extra={"attempt": attempt})
                        self.engine.dispose(close=False)
                        continue
                _raise_as_bridge_error(exc, self.outages)
        raise AssertionError("unreachable")

    def refusal(self, work: Callable[[Connection], object]) -> DataRefused | None:
        """Run `work` in a transaction that is always rolled back; the data refusal it met, if any.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """

        def rolled_back(conn: Connection) -> None:
            work(conn)
            raise _ProbePassed

        try:
            self.run(rolled_back)
        except _ProbePassed:
            return None
        except DataRefused as exc:
            return exc
        raise AssertionError("unreachable")

    def read(self, work: Callable[[Connection], T]) -> T:
        """Run read-only `work`.

        Raises:
            DataRefused: the database refused a value of the query.
            StoreUnavailable: the database cannot be reached.
        """
        for attempt in range(1, DISCONNECT_ATTEMPTS + 1):
            try:
                with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                    return work(conn)
            except (DBAPIError, OverflowError) as exc:
                if isinstance(exc, DBAPIError) and exc.connection_invalidated and attempt < DISCONNECT_ATTEMPTS:
                    self.engine.dispose(close=False)  # an idle connection was lost; so may the pool's others
                    continue
                _raise_as_bridge_error(exc, self.outages)
        raise AssertionError("unreachable")

    def ping(self) -> None:
        """Check the database answers and takes writes, cheaply enough for every `/readyz`.

        Always one read (on PostgreSQL it asks whether the server is read-only) and, for a
        SQLite file, its file system's free space. A write is tried, and rolled back, only
        after this process saw a write refused for a full or read-only database, until one
        goes through: a read cannot see a full disk, and a write at every poll would queue
        behind SQLite's writers and churn PostgreSQL's catalog.

        Raises:
            StoreFull: the database's storage is full.
            StoreReadOnly: the database refuses writes.
            StoreUnavailable: it does not answer.
        """
        found = self.read(server_refusal) or file_system_refusal(self.engine)
        if found is not None:
            refusal, cause = found
            self.outages.refused(refusal, cause)
            raise refusal
        if self.outages.write_refused is not None:
            self.refusal(probe_write)
            self.outages.writes_resumed()

    def _page(
        self,
        query: sa.Select[Any],
        table: sa.Table,
        limit: int,
        cursor: int | None,
        convert: Callable[[Mapping[Any, Any]], Any],
    ) -> Page:
        """Newest first, keyset pagination on id: stable while rows are being added."""
        if cursor is not None:
            query = query.where(table.c.id < cursor)
        query = query.order_by(table.c.id.desc()).limit(limit + 1)

        def work(conn: Connection) -> Page:
            rows = list(conn.execute(query).mappings())
            more = len(rows) > limit
            rows = rows[:limit]
            return Page([convert(row) for row in rows], rows[-1]["id"] if more else None)

        return self.read(work)


def _alembic_config(url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", "bridge:migrations")
    config.set_main_option("sqlalchemy.url", normalise_url(url))
    return config


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (Alembic `upgrade head`), one process at a time.

    Processes that migrate one database at once (replicas started together, each with
    `serve --migrate`) take turns on a lock: the first migrates, the others then find the
    schema current and change nothing.

    Raises:
        StoreUnavailable: the database, or the SQLite lock file beside it, cannot be reached.
    """
    engine = make_engine(url)
    try:
        with _migration_turn(engine):
            alembic_command.upgrade(_alembic_config(url), "head")
    finally:
        engine.dispose()


@contextmanager
def _migration_turn(engine: Engine) -> Iterator[None]:
    """Hold the database's migration lock: PostgreSQL's advisory lock, or SQLite's writer lock file.

    The advisory lock belongs to a session of its own (autocommit, so it holds no snapshot the
    migration's DDL would wait on) and is released when that session ends, even if this process
    dies; it needs a direct connection or session pooling, not a transaction-pooling proxy.

    Raises:
        StoreUnavailable: naming why the lock cannot be taken (the database is down, the directory unwritable).
    """
    with ExitStack() as stack:
        if engine.dialect.name != "postgresql":
            try:
                stack.enter_context(_writer_queue(engine).hold())
            except StoreUnavailable as exc:
                raise StoreUnavailable(f"cannot open the database's lock file: {exc.__cause__}") from exc
            yield
            return
        try:
            conn = stack.enter_context(engine.connect().execution_options(isolation_level="AUTOCOMMIT"))
        except OperationalError as exc:
            raise StoreUnavailable(f"cannot reach the database: {str(exc.orig).strip()}") from exc
        key = {"key": MIGRATION_LOCK_KEY}
        if not conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), key).scalar_one():
            log.info("another process is migrating this database; waiting for it to finish")
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), key)
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), key)


def schema_is_current(url: str) -> bool:
    """True when the database is migrated to the newest revision this code knows."""
    head = ScriptDirectory.from_config(_alembic_config(url)).get_current_head()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() == head
    finally:
        engine.dispose()
