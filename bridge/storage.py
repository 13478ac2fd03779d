"""Durable store on SQLAlchemy Core: SQLite (WAL) embedded, PostgreSQL in production.

The database enforces what matters: at most one firing incident per dedup key (a
partial unique index), so two server processes can never create twin incidents. A
write that loses such a race is retried as a whole transaction, re-reading what the
winner wrote.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

from bridge.domain import Incident, IncidentState
from bridge.errors import DataRefused, StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
MAX_TRANSACTION_ATTEMPTS = 8
# Ids are 64-bit; a larger number from a URL is simply no id (not an overflow in the driver).
MAX_ID = 2**63 - 1
# PostgreSQL SQLSTATEs worth a retry: serialization failure, deadlock detected.
RETRYABLE_PG_STATES = {"40001", "40P01"}
# PostgreSQL SQLSTATE classes that blame the data: 22 data exception (value too long, out of
# range, NUL), 54 program limit exceeded (index row size). Retrying or waiting never helps.
DATA_PG_STATE_CLASSES = ("22", "54")
# Execution option marking a read-only connection (SQLite then begins without a write lock).
READ_ONLY = "bridge_read_only"


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonType = sa.JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY columns.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("alert_count", sa.Integer(), nullable=False),
    sa.Column("rejected_count", sa.Integer(), nullable=False),
    sa.Column("truncated_alerts", sa.Integer(), nullable=False),
    sa.Column("group_key", sa.Text()),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Index("ix_notifications_received_at", "received_at"),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("dedup_key", sa.Text(), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("line", sa.String(64), nullable=False),
    sa.Column("impact", sa.String(16), nullable=False),
    sa.Column("urgency", sa.String(16), nullable=False),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("route", sa.String(200), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("labels", JsonType, nullable=False),
    sa.Column("annotations", JsonType, nullable=False),
    sa.Column("occurrences", sa.Integer(), nullable=False),
    sa.Column("reopen_count", sa.Integer(), nullable=False),
    sa.Column("first_seen", UtcDateTime(), nullable=False),
    sa.Column("last_seen", UtcDateTime(), nullable=False),
    sa.Column("episode_started_at", UtcDateTime()),
    sa.Column("resolved_at", UtcDateTime()),
    sa.Column("closed_at", UtcDateTime()),
    sa.Column("close_reason", sa.Text()),
    sa.Column("auto_close_at", UtcDateTime()),
    sa.Column("problem_id", sa.BigInteger()),
    sa.Column("last_notification_id", sa.BigInteger()),
    sa.Column("problem_key", sa.Text()),
    sa.Column("sla_elapsed_seconds", sa.Float(), nullable=False, server_default="0"),
    sa.Column("sla_running_since", UtcDateTime()),
    sa.Column("sla_due", UtcDateTime()),
    sa.Column("sla_breached", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("sla_breached_at", UtcDateTime()),
    # The source's own ids of the events this incident gathered (Zabbix event ids), for closing them there.
    sa.Column("source_ids", JsonType),
    sa.Index(
        "ux_incidents_firing_dedup_key",
        "dedup_key",
        unique=True,
        sqlite_where=sa.text("state = 'firing'"),
        postgresql_where=sa.text("state = 'firing'"),
    ),
    sa.Index("ix_incidents_dedup_key_state", "dedup_key", "state"),
    sa.Index("ix_incidents_state_auto_close_at", "state", "auto_close_at"),
    sa.Index("ix_incidents_problem_id", "problem_id"),
    # No index may cover what a repeat changes (occurrences, last_seen): repeats then stay
    # heap-only updates on PostgreSQL (fillfactor 80, set by migration 0005).
    sa.Index("ix_incidents_problem_key_waiting", "problem_key",
             sqlite_where=sa.text("problem_id IS NULL"), postgresql_where=sa.text("problem_id IS NULL")),
    sa.Index("ix_incidents_sla_watch", "state", "sla_breached", "sla_due"),
)

problems = sa.Table(
    "problems",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("problem_key", sa.Text(), nullable=False),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("incident_count", sa.Integer(), nullable=False),
    sa.Column("opened_at", UtcDateTime(), nullable=False),
    sa.Column("closed_at", UtcDateTime()),
    sa.Column("fixed_in", sa.Text()),
    sa.Column("regressions", sa.Integer(), nullable=False),
    sa.Column("jira_project", sa.String(64)),
    sa.Column("jira_key", sa.String(64)),
    sa.Column("jira_url", sa.Text()),
    sa.Column("jira_linked_by", sa.String(16)),
    sa.Column("conclusion", sa.Text()),
    sa.Column("conclusion_updated_at", UtcDateTime()),
    sa.Column("comment_pending", sa.Integer(), nullable=False),
    sa.Column("comment_pending_since", UtcDateTime()),
    sa.Column("last_comment_at", UtcDateTime()),
    sa.Column("last_comment_hash", sa.String(64)),
    sa.Column("fixed_at", UtcDateTime()),
    sa.Index("ux_problems_open_key", "problem_key", unique=True,
             sqlite_where=sa.text("state <> 'closed'"), postgresql_where=sa.text("state <> 'closed'")),
    sa.Index("ux_problems_live_jira_key", "jira_key", unique=True,
             sqlite_where=sa.text("jira_key IS NOT NULL AND state <> 'closed'"),
             postgresql_where=sa.text("jira_key IS NOT NULL AND state <> 'closed'")),
    sa.Index("ix_problems_state", "state"),
)

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("released_at", UtcDateTime(), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("via", sa.String(32), nullable=False),
    sa.Column("summary", JsonType, nullable=False),
    sa.UniqueConstraint("project", "version", name="uq_releases_project_version"),
)

# A release is identified per issue: a second call for a version processes the issues it adds.
release_issues = sa.Table(
    "release_issues",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("release_id", sa.BigInteger(), nullable=False),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("issue_key", sa.String(64), nullable=False),
    sa.Column("processed_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("project", "version", "issue_key", name="uq_release_issues_project_version_issue"),
)

problem_events = sa.Table(
    "problem_events",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("problem_id", sa.BigInteger(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Index("ix_problem_events_problem_id", "problem_id", "id"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("problem_id", sa.BigInteger()),
    sa.Column("payload", JsonType, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
    sa.Column("locked_until", UtcDateTime()),
    sa.Column("finished_at", UtcDateTime()),
    sa.Column("last_error", sa.Text()),
    sa.Column("dedup_key", sa.Text()),
    sa.Index("ux_outbox_pending_dedup_key", "dedup_key", unique=True,
             sqlite_where=sa.text("state = 'pending'"), postgresql_where=sa.text("state = 'pending'")),
    sa.Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
)

rejected_payloads = sa.Table(
    "rejected_payloads",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("errors", JsonType, nullable=False),
    sa.Column("content_type", sa.Text()),
    sa.Column("partial", sa.Boolean(), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("body_truncated", sa.Boolean(), nullable=False),
    sa.Index("ix_rejected_payloads_received_at", "received_at"),
)


class octet_length(GenericFunction[int]):  # noqa: N801 - SQL function name
    """Bytes of a text value: PostgreSQL's octet_length, SQLite's length of the text as a blob."""

    type = sa.Integer()
    inherit_cache = True


@compiles(octet_length, "sqlite")
def _octet_length_sqlite(element: octet_length, compiler: Any, **kw: Any) -> str:
    return f"length(CAST({compiler.process(element.clauses, **kw)} AS BLOB))"


# What a listing of refused payloads shows: everything but the body, which can be 1 MB each.
_REJECTED_SUMMARY = [column for column in rejected_payloads.columns if column.name != "body"] + [
    octet_length(rejected_payloads.c.body).label("body_bytes")]
# Tables whose rows age out after BRIDGE_RETENTION; nothing else refers to them by key.
PRUNED_TABLES = (notifications, rejected_payloads)
PRUNE_BATCH = 2000

# Built once: building a statement costs more than running it on a small batch.
_CURRENT_INCIDENTS = (
    sa.select(incidents)
    .where(incidents.c.dedup_key.in_(sa.bindparam("keys", expanding=True)),
           incidents.c.state != IncidentState.CLOSED.value)
    .order_by(incidents.c.dedup_key, incidents.c.id.desc())
    .with_for_update()
)
# PostgreSQL: one index probe per key (a lateral LIMIT 1), whatever the planner's statistics
# say. An IN list over a table that grew since its last ANALYZE (the first storm on a new
# install) was planned as a sequential scan, once per transaction.
_KEYS = sa.func.unnest(sa.bindparam("keys", type_=sa.ARRAY(sa.Text()))).table_valued("key").render_derived(name="k")
_LIVE = (sa.select(incidents)
         .where(incidents.c.dedup_key == _KEYS.c.key, incidents.c.state != IncidentState.CLOSED.value)
         .order_by((incidents.c.state == IncidentState.FIRING.value).desc(), incidents.c.id.desc())
         .limit(1).with_for_update().lateral("live"))
_LIVE_INCIDENT_PER_KEY = sa.select(_LIVE).select_from(_KEYS).join(_LIVE, sa.true())
_INCIDENT_FIELDS = [column.name for column in incidents.columns if column.name not in ("id", "last_notification_id")]
_INCIDENT_COLUMNS = frozenset(_INCIDENT_FIELDS)


def normalise_url(url: str) -> str:
    """Use psycopg 3 for a bare `postgresql://` URL."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    """An engine with the settings each backend needs for safe concurrent writes."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                                  json_serializer=_json_text, json_deserializer=orjson.loads)
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                            json_serializer=_json_text, json_deserializer=orjson.loads)


def _json_text(value: Any) -> str:
    """JSON columns through orjson: labels of every alert go through here, json is several times slower."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


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
        connection.exec_driver_sql("BEGIN" if connection.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")


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


def _is_unavailable(exc: DBAPIError) -> bool:
    return exc.connection_invalidated or isinstance(exc, OperationalError)


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


@dataclass(frozen=True)
class IncidentFilter:
    state: str | None = None
    source: str | None = None
    priority: str | None = None
    problem_id: int | None = None


class Store:
    """All reads and writes of the bridge's state."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writers = _writer_queue(engine)

    @classmethod
    def from_url(cls, url: str) -> Store:
        return cls(make_engine(url))

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction, retried whole when it loses a race.

        Raises:
            DataRefused: the database refused a value (bad input; the transaction is rolled back).
            StoreUnavailable: the database cannot be reached.
        """
        for attempt in range(1, MAX_TRANSACTION_ATTEMPTS + 1):
            try:
                with self._writers.hold(), self.engine.begin() as conn:
                    return work(conn)
            except (DBAPIError, OverflowError) as exc:
                refusal = _data_refusal(exc)
                if refusal is not None:
                    raise refusal from exc
                assert isinstance(exc, DBAPIError)
                if _is_retryable(exc) and attempt < MAX_TRANSACTION_ATTEMPTS:
                    log.info("transaction lost a race, retrying", extra={"attempt": attempt})
                    time.sleep(0.005 * attempt)
                    continue
                if _is_unavailable(exc):
                    raise StoreUnavailable("database unavailable; retry later") from exc
                raise
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
        try:
            with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
                return work(conn)
        except (DBAPIError, OverflowError) as exc:
            refusal = _data_refusal(exc)
            if refusal is not None:
                raise refusal from exc
            assert isinstance(exc, DBAPIError)
            if _is_unavailable(exc):
                raise StoreUnavailable("database unavailable; retry later") from exc
            raise

    def ping(self) -> None:
        """Check the database answers.

        Raises:
            StoreUnavailable: it does not.
        """
        self.read(lambda conn: conn.execute(sa.text("SELECT 1")).scalar_one())

    # Writes inside a transaction -------------------------------------------------

    @staticmethod
    def add_notifications(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Keep raw notifications next to what was made of them; ids in the order given.

        Each row holds source, received_at, body, alert_count, rejected_count,
        truncated_alerts and group_key.
        """
        return _insert_returning_ids(conn, notifications, [dict(row) for row in rows])

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
            if known is None or (row["state"] == IncidentState.FIRING.value and known.state is not IncidentState.FIRING):
                current[row["dedup_key"]] = _incident_from_row(row)
        return current

    @staticmethod
    def save_incidents(conn: Connection, changed: Sequence[tuple[Incident, int | None]],
                       originals: Mapping[str, Incident] | None = None) -> None:
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
                values = {name: value for name, value in vars(incident).items()
                          if name in _INCIDENT_COLUMNS and previous[name] != value}
                if "state" in values:
                    values["state"] = incident.state.value
            values["last_notification_id"] = notification_id
            groups.setdefault(tuple(sorted(values)), []).append(dict(values, b_id=incident.id))
        if new:
            new.sort(key=lambda pair: pair[0].dedup_key)
            rows = [dict(_incident_values(incident), last_notification_id=notification_id)
                    for incident, notification_id in new]
            ids = _insert_returning_ids(conn, incidents, rows)
            for (incident, _), incident_id in zip(new, ids, strict=True):
                incident.id = incident_id
        for columns, rows in groups.items():
            conn.execute(_incident_update(columns), rows)

    @staticmethod
    def add_rejected(
        conn: Connection, source: str, received_at: datetime, *, reason: str, errors: Sequence[str],
        body: str, content_type: str | None, partial: bool, body_limit: int,
    ) -> int:
        """Keep a refused payload (or the refused part of one) with its reason.

        Findings quote the sender's keys, which may hold NUL: PostgreSQL text and JSONB refuse it.
        """
        truncated = len(body) > body_limit
        return conn.execute(
            rejected_payloads.insert().returning(rejected_payloads.c.id),
            dict(source=source, received_at=received_at, reason=reason.replace("\x00", "\ufffd"),
                 errors=[line.replace("\x00", "\ufffd") for line in errors],
                 content_type=content_type, partial=partial,
                 body=body[:body_limit] if truncated else body, body_truncated=truncated),
        ).scalar_one()

    def mark_sla_breaches(self, now: datetime) -> list[dict[str, Any]]:
        """Mark firing incidents past their SLA due time as breached, once each; returns them."""

        def work(conn: Connection) -> list[dict[str, Any]]:
            due = (incidents.c.state == IncidentState.FIRING.value, incidents.c.sla_breached.is_(False),
                   incidents.c.sla_due <= now)
            rows = conn.execute(incidents.update().where(*due).values(
                sla_breached=True, sla_breached_at=incidents.c.sla_due).returning(
                incidents.c.id, incidents.c.priority, incidents.c.problem_id, incidents.c.sla_due,
                incidents.c.summary, incidents.c.source)).mappings()
            return [dict(row) for row in rows]

        return self.run(work)

    def close_resolved_due(self, now: datetime) -> list[int]:
        """Close resolved incidents outside any problem whose auto-close time has come."""

        def work(conn: Connection) -> list[int]:
            # Outside any live problem: never linked, or attached to a closed one ("fix not deployed").
            closed_problems = sa.select(problems.c.id).where(problems.c.state == "closed")
            due = (
                incidents.c.state == IncidentState.RESOLVED.value,
                sa.or_(incidents.c.problem_id.is_(None), incidents.c.problem_id.in_(closed_problems)),
                incidents.c.auto_close_at <= now,
            )
            ids = list(conn.execute(sa.select(incidents.c.id).where(*due)).scalars())
            if ids:
                conn.execute(
                    incidents.update().where(incidents.c.id.in_(ids), *due).values(
                        state=IncidentState.CLOSED.value, closed_at=now, close_reason="auto_closed")
                )
            return ids

        return self.run(work)

    # Problems and the outbox, inside a transaction ---------------------------------

    @staticmethod
    def lock_problem_key(conn: Connection, problem_key: str) -> None:
        """Serialise problem decisions for one key until the transaction ends.

        Without it, two PostgreSQL writers could each decide "not yet a problem" (or "open
        one") from snapshots that miss the other's uncommitted incident. SQLite needs
        nothing: BEGIN IMMEDIATE already serialises writers.
        """
        if conn.dialect.name == "postgresql":
            lock_id = int.from_bytes(hashlib.sha256(problem_key.encode()).digest()[:8], "big", signed=True)
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})

    @staticmethod
    def open_problem(conn: Connection, problem_key: str) -> dict[str, Any] | None:
        """The live (not closed) problem for a key, locked for update."""
        row = conn.execute(
            sa.select(problems).where(problems.c.problem_key == problem_key, problems.c.state != "closed")
            .with_for_update()
        ).mappings().first()
        return dict(row) if row else None

    @staticmethod
    def count_problem_candidates(conn: Connection, problem_key: str, since: datetime) -> int:
        """Incidents with this problem key, in no problem yet, seen since `since`."""
        return conn.execute(
            sa.select(sa.func.count()).select_from(incidents).where(
                incidents.c.problem_key == problem_key, incidents.c.problem_id.is_(None),
                incidents.c.last_seen >= since)
        ).scalar_one()

    @staticmethod
    def open_problem_with_candidates(
        conn: Connection, values: Mapping[str, Any], since: datetime
    ) -> tuple[int, int]:
        """Insert a problem and attach the waiting incidents of its key; returns (id, attached).

        Raises:
            IntegrityError: another process opened the problem first (the transaction retries).
        """
        problem_id = conn.execute(problems.insert().returning(problems.c.id), dict(values)).scalar_one()
        attached = conn.execute(
            incidents.update().where(
                incidents.c.problem_key == values["problem_key"], incidents.c.problem_id.is_(None),
                incidents.c.last_seen >= since,
            ).values(problem_id=problem_id)
        ).rowcount
        conn.execute(problems.update().where(problems.c.id == problem_id).values(incident_count=attached))
        return problem_id, attached

    @staticmethod
    def join_problem(conn: Connection, problem_id: int, incident_ids: Sequence[int], notify_jira: bool,
                     now: datetime) -> None:
        """Attach incidents to a problem; count them for the next throttled Jira comment."""
        conn.execute(incidents.update().where(incidents.c.id.in_(incident_ids)).values(problem_id=problem_id))
        values: dict[str, Any] = {"incident_count": problems.c.incident_count + len(incident_ids)}
        if notify_jira:
            values["comment_pending"] = problems.c.comment_pending + len(incident_ids)
            values["comment_pending_since"] = sa.func.coalesce(problems.c.comment_pending_since, now)
        conn.execute(problems.update().where(problems.c.id == problem_id).values(values))

    @staticmethod
    def enqueue(
        conn: Connection, kind: str, *, target: str, now: datetime, payload: Mapping[str, Any] | None = None,
        problem_id: int | None = None, dedup_key: str | None = None, run_at: datetime | None = None,
    ) -> None:
        """Add an outbox job in the caller's transaction; a pending job with the same dedup key wins."""
        values = dict(kind=kind, target=target, problem_id=problem_id, payload=dict(payload or {}),
                      state="pending", attempts=0, created_at=now, next_attempt_at=run_at or now,
                      dedup_key=dedup_key)
        insert = (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(outbox).values(values)
        if dedup_key is not None:
            # The predicate must be literal SQL: PostgreSQL cannot match a partial index
            # against a bound parameter once psycopg prepares the statement.
            insert = insert.on_conflict_do_nothing(index_elements=["dedup_key"],
                                                   index_where=sa.text("state = 'pending'"))
        conn.execute(insert)

    def claim_jobs(self, now: datetime, lease: timedelta, limit: int) -> list[dict[str, Any]]:
        """Lease due jobs to this worker; other workers skip them (SKIP LOCKED on PostgreSQL)."""

        def work(conn: Connection) -> list[dict[str, Any]]:
            due = (
                sa.select(outbox.c.id).where(
                    outbox.c.state == "pending", outbox.c.next_attempt_at <= now,
                    sa.or_(outbox.c.locked_until.is_(None), outbox.c.locked_until < now))
                .order_by(outbox.c.next_attempt_at, outbox.c.id).limit(limit)
                .with_for_update(skip_locked=True)
            )
            ids = list(conn.execute(due).scalars())
            if not ids:
                return []
            rows = conn.execute(
                outbox.update().where(outbox.c.id.in_(ids))
                .values(locked_until=now + lease, attempts=outbox.c.attempts + 1)
                .returning(*outbox.columns)
            ).mappings()
            return sorted((dict(row) for row in rows), key=lambda job: job["id"])

        return self.run(work)

    def finish_job(self, job_id: int, now: datetime) -> None:
        self.run(lambda conn: conn.execute(outbox.update().where(outbox.c.id == job_id).values(
            state="done", finished_at=now, locked_until=None, last_error=None)))

    def retry_job(self, job_id: int, at: datetime, error: str) -> None:
        self.run(lambda conn: conn.execute(outbox.update().where(outbox.c.id == job_id).values(
            next_attempt_at=at, locked_until=None, last_error=error[:2000])))

    def bury_job(self, job_id: int, now: datetime, error: str) -> None:
        """Dead-letter a job: kept and visible, never run again by itself."""
        self.run(lambda conn: conn.execute(outbox.update().where(outbox.c.id == job_id).values(
            state="dead", finished_at=now, locked_until=None, last_error=error[:2000])))

    def retry_dead_jobs(self, now: datetime, *, kind: str | None = None,
                        job_id: int | None = None) -> tuple[list[int], dict[int, int]]:
        """Put dead jobs back in the queue (once their cause is fixed): pending, due now, attempts reset.

        The dead-letter deadline counts again from now (created_at is reset). A dead job
        whose dedup key already has a pending job is left dead: that job does the same work
        (handlers re-read the state), and the pending-dedup unique index allows one.
        Returns the ids retried and, per skipped id, the pending job that stands for it.
        """

        def work(conn: Connection) -> tuple[list[int], dict[int, int]]:
            query = sa.select(outbox.c.id, outbox.c.dedup_key).where(outbox.c.state == "dead")
            if kind is not None:
                query = query.where(outbox.c.kind == kind)
            if job_id is not None:
                query = query.where(outbox.c.id == job_id)
            dead = conn.execute(query.order_by(outbox.c.id.desc()).with_for_update()).all()
            retried: list[int] = []
            skipped: dict[int, int] = {}
            for dead_id, dedup_key in dead:
                twin = None if dedup_key is None else conn.execute(sa.select(outbox.c.id).where(
                    outbox.c.dedup_key == dedup_key, outbox.c.state == "pending")).scalar()
                if twin is not None:
                    skipped[dead_id] = twin
                    continue
                conn.execute(outbox.update().where(outbox.c.id == dead_id).values(
                    state="pending", attempts=0, created_at=now, next_attempt_at=now, locked_until=None,
                    finished_at=None))
                retried.append(dead_id)
            return sorted(retried), skipped

        return self.run(work)

    def get_job(self, job_id: int) -> dict[str, Any] | None:
        if not 0 < job_id <= MAX_ID:
            return None
        query = sa.select(outbox).where(outbox.c.id == job_id)
        return self.read(lambda conn: next((dict(row) for row in conn.execute(query).mappings()), None))

    def record_jira_link(self, problem_id: int, key: str, url: str, linked_by: str) -> bool:
        """Link a problem to an issue unless it already has one; the problem becomes a known error.

        Raises:
            IntegrityError: the issue is already linked to another live problem.
        """

        def work(conn: Connection) -> bool:
            state = sa.case((problems.c.state == "open", "known_error"), else_=problems.c.state)
            return conn.execute(problems.update().where(problems.c.id == problem_id, problems.c.jira_key.is_(None))
                                .values(jira_key=key, jira_url=url, jira_linked_by=linked_by, state=state)).rowcount == 1

        return self.run(work)

    def record_comment(self, problem_id: int, reported: int, text_hash: str, now: datetime) -> int:
        """Count `reported` incidents as told to Jira; returns how many joined meanwhile."""

        def work(conn: Connection) -> int:
            remaining = problems.c.comment_pending - reported
            row = conn.execute(problems.update().where(problems.c.id == problem_id).values(
                comment_pending=remaining, last_comment_at=now, last_comment_hash=text_hash,
                comment_pending_since=sa.case((remaining > 0, now), else_=None),
            ).returning(problems.c.comment_pending)).first()
            return row[0] if row else 0

        return self.run(work)

    # Releases, in a transaction ------------------------------------------------------

    @staticmethod
    def lock_release(conn: Connection, project: str, version: str) -> dict[str, Any] | None:
        """The release row of a version, locked: calls for one version take turns."""
        row = conn.execute(sa.select(releases).where(releases.c.project == project, releases.c.version == version)
                           .with_for_update()).mappings().first()
        return dict(row) if row else None

    @staticmethod
    def add_release(conn: Connection, **values: Any) -> int:
        """Record a version's first call; a concurrent first call hits the unique key and retries.

        Raises:
            IntegrityError: another call recorded the version first (the transaction retries).
        """
        return conn.execute(releases.insert().returning(releases.c.id), values).scalar_one()

    @staticmethod
    def set_release_summary(conn: Connection, release_id: int, summary: Mapping[str, Any]) -> None:
        conn.execute(releases.update().where(releases.c.id == release_id).values(summary=dict(summary)))

    @staticmethod
    def processed_release_issues(conn: Connection, project: str, version: str, keys: Sequence[str]) -> set[str]:
        """Which of these issues an earlier call for the version already processed."""
        if not keys:
            return set()
        return set(conn.execute(sa.select(release_issues.c.issue_key).where(
            release_issues.c.project == project, release_issues.c.version == version,
            release_issues.c.issue_key.in_(sorted(set(keys))))).scalars())

    @staticmethod
    def add_release_issues(conn: Connection, release_id: int, project: str, version: str, keys: Sequence[str],
                           now: datetime) -> None:
        """Mark issues of a version processed.

        Raises:
            IntegrityError: a concurrent call processed one of them first (the transaction retries).
        """
        if keys:
            conn.execute(release_issues.insert(), [dict(release_id=release_id, project=project, version=version,
                                                        issue_key=key, processed_at=now) for key in keys])

    @staticmethod
    def problems_for_issues(conn: Connection, keys: Sequence[str]) -> list[dict[str, Any]]:
        """Every problem (any state) linked to one of the issues, locked."""
        if not keys:
            return []
        query = sa.select(problems).where(problems.c.jira_key.in_(sorted(set(keys)))).order_by(problems.c.id)
        return [dict(row) for row in conn.execute(query.with_for_update()).mappings()]

    @staticmethod
    def close_problems_and_incidents(
        conn: Connection, problem_ids: Sequence[int], now: datetime, close_reason: str, *,
        fixed_in: str | None = None, fixed_at: datetime | None = None,
    ) -> tuple[dict[int, int], dict[int, list[tuple[str, list[str] | None]]]]:
        """Close problems and every incident linked to them, whatever their state, in bulk.

        Returns incidents closed per problem and, per problem, the dedup key and source ids
        of each closed Zabbix incident (to close them in Zabbix). Four statements however
        many incidents: no round trip per row.
        """
        if not problem_ids:
            return {}, {}
        open_incidents = (incidents.c.problem_id.in_(problem_ids), incidents.c.state != IncidentState.CLOSED.value)
        counts = dict(conn.execute(
            sa.select(incidents.c.problem_id, sa.func.count()).where(*open_incidents).group_by(incidents.c.problem_id)
        ).all())
        zabbix: dict[int, list[tuple[str, list[str] | None]]] = {}
        for row in conn.execute(
                sa.select(incidents.c.problem_id, incidents.c.dedup_key, incidents.c.source_ids)
                .where(*open_incidents, incidents.c.source == "zabbix").order_by(incidents.c.id)):
            zabbix.setdefault(int(row.problem_id), []).append((row.dedup_key, row.source_ids))
        conn.execute(incidents.update().where(*open_incidents).values(
            state=IncidentState.CLOSED.value, closed_at=now, close_reason=close_reason))
        values: dict[str, Any] = {"state": "closed", "closed_at": now}
        if fixed_in is not None:
            values.update(fixed_in=fixed_in, fixed_at=fixed_at)
        conn.execute(problems.update().where(problems.c.id.in_(problem_ids)).values(values))
        return {int(pid): int(n) for pid, n in counts.items()}, zabbix

    @staticmethod
    def add_problem_events(conn: Connection, events: Sequence[Mapping[str, Any]]) -> None:
        if events:
            conn.execute(problem_events.insert(), [dict(e) for e in events])

    @staticmethod
    def latest_fixed_problem(conn: Connection, problem_key: str) -> dict[str, Any] | None:
        """The newest closed problem for a key whose fix shipped in a release, locked."""
        row = conn.execute(
            sa.select(problems).where(problems.c.problem_key == problem_key, problems.c.state == "closed",
                                      problems.c.fixed_in.is_not(None))
            .order_by(problems.c.id.desc()).limit(1).with_for_update()
        ).mappings().first()
        return dict(row) if row else None

    @staticmethod
    def reopen_problem(conn: Connection, problem_id: int, *, regression: bool) -> None:
        """A closed problem is live again: known error when it still has its issue, else open."""
        values: dict[str, Any] = {
            "state": sa.case((problems.c.jira_key.is_not(None), "known_error"), else_="open"), "closed_at": None}
        if regression:
            values["regressions"] = problems.c.regressions + 1
        conn.execute(problems.update().where(problems.c.id == problem_id).values(values))

    @staticmethod
    def attach_incident(conn: Connection, problem_id: int, incident_id: int) -> None:
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(problem_id=problem_id))
        conn.execute(problems.update().where(problems.c.id == problem_id).values(
            incident_count=problems.c.incident_count + 1))

    def problem_history(self, problem_id: int) -> list[dict[str, Any]]:
        query = sa.select(problem_events).where(problem_events.c.problem_id == problem_id).order_by(problem_events.c.id)
        return self.read(lambda conn: [dict(row) for row in conn.execute(query).mappings()])

    def overview_counts(self) -> dict[str, Any]:
        """Counts for the overview page: incidents by state and open ones by priority, problems by state."""

        def work(conn: Connection) -> dict[str, Any]:
            by_state = dict(conn.execute(sa.select(incidents.c.state, sa.func.count()).group_by(incidents.c.state)).all())
            by_priority = dict(conn.execute(sa.select(incidents.c.priority, sa.func.count())
                                            .where(incidents.c.state != "closed").group_by(incidents.c.priority)).all())
            problem_states = dict(conn.execute(sa.select(problems.c.state, sa.func.count())
                                               .group_by(problems.c.state)).all())
            breached = conn.execute(sa.select(sa.func.count()).select_from(incidents).where(
                incidents.c.state != "closed", incidents.c.sla_breached.is_(True))).scalar_one()
            return {"incidents": by_state, "priorities": by_priority, "problems": problem_states, "breached": breached}

        return self.read(work)

    def nearest_sla(self, limit: int) -> list[Incident]:
        """Firing incidents whose SLA runs out soonest (breached ones first)."""
        query = (sa.select(incidents).where(incidents.c.state == "firing", incidents.c.sla_due.is_not(None))
                 .order_by(incidents.c.sla_due, incidents.c.id).limit(limit))
        return self.read(lambda conn: [_incident_from_row(row) for row in conn.execute(query).mappings()])

    def list_releases(self, limit: int, cursor: int | None) -> Page:
        return self._page(sa.select(releases), releases, limit, cursor, dict)

    def unlink_jira(self, problem_id: int) -> None:
        """Forget a problem's Jira issue; a known error becomes an open problem again."""
        state = sa.case((problems.c.state == "known_error", "open"), else_=problems.c.state)
        self.run(lambda conn: conn.execute(problems.update().where(problems.c.id == problem_id).values(
            jira_key=None, jira_url=None, jira_linked_by=None, conclusion=None, conclusion_updated_at=None,
            state=state)))

    def live_problems_for_issue(self, key: str, conn: Connection | None = None) -> list[dict[str, Any]]:
        """Problems (not closed) linked to a Jira issue."""
        query = sa.select(problems).where(problems.c.jira_key == key, problems.c.state != "closed")
        if conn is not None:
            return [dict(row) for row in conn.execute(query).mappings()]
        return self.read(lambda c: self.live_problems_for_issue(key, c))

    def issues_due_for_sync(self, older_than: datetime) -> list[str]:
        """Jira keys of live linked problems whose conclusion was not read since `older_than`."""
        query = sa.select(problems.c.jira_key).distinct().where(
            problems.c.jira_key.is_not(None), problems.c.state != "closed",
            sa.or_(problems.c.conclusion_updated_at.is_(None), problems.c.conclusion_updated_at < older_than))
        return self.read(lambda conn: list(conn.execute(query).scalars()))

    def set_conclusion(self, key: str, conclusion: str | None, now: datetime) -> int:
        """Mirror an issue's conclusion onto its live problems; returns how many changed."""
        return self.run(lambda conn: conn.execute(problems.update().where(
            problems.c.jira_key == key, problems.c.state != "closed").values(
            conclusion=conclusion, conclusion_updated_at=now)).rowcount)

    def get_problem(self, problem_id: int, conn: Connection | None = None) -> dict[str, Any] | None:
        if not 0 < problem_id <= MAX_ID:
            return None
        query = sa.select(problems).where(problems.c.id == problem_id)
        if conn is not None:
            row = conn.execute(query).mappings().first()
            return dict(row) if row else None
        return self.read(lambda c: self.get_problem(problem_id, c))

    def list_problems(self, state: str | None, jira_key: str | None, limit: int, cursor: int | None) -> Page:
        query = sa.select(problems)
        if state is not None:
            query = query.where(problems.c.state == state)
        if jira_key is not None:
            query = query.where(problems.c.jira_key == jira_key)
        return self._page(query, problems, limit, cursor, dict)

    def list_jobs(self, state: str | None, limit: int, cursor: int | None) -> Page:
        query = sa.select(outbox)
        if state is not None:
            query = query.where(outbox.c.state == state)
        return self._page(query, outbox, limit, cursor, dict)

    # Reads ------------------------------------------------------------------------

    def get_incident(self, incident_id: int) -> Incident | None:
        if not 0 < incident_id <= MAX_ID:
            return None

        def work(conn: Connection) -> Incident | None:
            row = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).mappings().first()
            return _incident_from_row(row) if row else None

        return self.read(work)

    def list_incidents(self, filters: IncidentFilter, limit: int, cursor: int | None) -> Page:
        query = sa.select(incidents)
        for name in ("state", "source", "priority", "problem_id"):
            value = getattr(filters, name)
            if value is not None:
                query = query.where(incidents.c[name] == value)
        return self._page(query, incidents, limit, cursor, _incident_from_row)

    def list_rejected(self, limit: int, cursor: int | None, source: str | None = None) -> Page:
        """Refused payloads without their bodies (`body_bytes` says how big each is)."""
        query = sa.select(*_REJECTED_SUMMARY)
        if source is not None:
            query = query.where(rejected_payloads.c.source == source)
        return self._page(query, rejected_payloads, limit, cursor, dict)

    def get_rejected(self, rejected_id: int) -> dict[str, Any] | None:
        """One refused payload with its body."""
        if not 0 < rejected_id <= MAX_ID:
            return None
        query = sa.select(*_REJECTED_SUMMARY, rejected_payloads.c.body).where(rejected_payloads.c.id == rejected_id)
        return self.read(lambda conn: next((dict(row) for row in conn.execute(query).mappings()), None))

    def prune(self, before: datetime, batch: int = PRUNE_BATCH) -> dict[str, int]:
        """Delete raw notifications and refused payloads received before `before`; counts per table.

        Batches of `batch` rows, each its own short transaction, so a prune of months of
        storms never holds SQLite's write lock (or PostgreSQL row locks) for long and
        webhooks keep landing in between.
        """
        deleted = {}
        for table in PRUNED_TABLES:
            oldest = (sa.select(table.c.id).where(table.c.received_at < before)
                      .order_by(table.c.received_at).limit(batch))
            statement = table.delete().where(table.c.id.in_(oldest))
            deleted[table.name] = 0
            while True:
                count = self.run(lambda conn: conn.execute(statement).rowcount)
                deleted[table.name] += count
                if count < batch:
                    break
        return deleted

    def _page(
        self, query: sa.Select[Any], table: sa.Table, limit: int, cursor: int | None,
        convert: Callable[[Mapping[str, Any]], Any],
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


def _insert_returning_ids(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows and return their ids in the order given.

    PostgreSQL: ids drawn from the sequence first, then one pipelined executemany of a
    short statement. A multi-row INSERT ... RETURNING of a storm's group has thousands of
    parameters, and psycopg re-parses such a statement on the client each time (it caches
    only short ones): three times slower. SQLite: one multi-row INSERT ... RETURNING.
    """
    if conn.dialect.name != "postgresql":
        result = conn.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), rows)
        return [row.id for row in result]
    ids = list(conn.execute(_NEXT_IDS, {"table": table.name, "n": len(rows)}).scalars())
    conn.execute(table.insert(), [dict(row, id=row_id) for row, row_id in zip(rows, ids, strict=True)])
    return ids


_NEXT_IDS = sa.text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")


@functools.lru_cache(maxsize=64)
def _incident_update(columns: tuple[str, ...]) -> sa.Update:
    """UPDATE of these columns by id, built once per column set (statement building is costly)."""
    return (incidents.update().where(incidents.c.id == sa.bindparam("b_id"))
            .values({name: sa.bindparam(name) for name in columns}))


def _incident_values(incident: Incident) -> dict[str, Any]:
    values = {name: getattr(incident, name) for name in _INCIDENT_FIELDS}
    values["state"] = incident.state.value
    return values


def _incident_from_row(row: Mapping[str, Any]) -> Incident:
    values = {name: row[name] for name in _INCIDENT_FIELDS}
    values["state"] = IncidentState(row["state"])
    return Incident(id=row["id"], **values)



def _alembic_config(url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", "bridge:migrations")
    config.set_main_option("sqlalchemy.url", normalise_url(url))
    return config


def migrate(url: str) -> None:
    """Bring the database at `url` to the newest schema (Alembic `upgrade head`)."""
    alembic_command.upgrade(_alembic_config(url), "head")


def schema_is_current(url: str) -> bool:
    """True when the database is migrated to the newest revision this code knows."""
    head = ScriptDirectory.from_config(_alembic_config(url)).get_current_head()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() == head
    finally:
        engine.dispose()
