"""Driver SQL for the webhook hot path: statements written once per dialect, values converted in C calls.

A storm runs the same few statements thousands of times a second, and SQLAlchemy's
per-statement and per-value handling cost more than the database's own work (profiled:
about half of a write). These run on the transaction's own driver connection (`execute`),
and a failure is raised as SQLAlchemy raises it (a DBAPIError subclass, the connection
invalidated when it is lost), so the retry and refusal rules of `Database.run` hold. The
conversions the column types would make are done here: SQLite datetimes are the text
SQLAlchemy stores (`YYYY-MM-DD HH:MM:SS.ffffff`, naive UTC), JSON is orjson text. The SQL
text never changes, so SQLite's statement cache and psycopg's prepared statements hold it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from bridge.storage.schema import UtcDateTime


def execute(
    conn: Connection,
    statement: str,
    parameters: Any = (),
    many: bool = False,
    returning: bool = False,
    prepare: bool | None = None,
) -> Any:
    """Run driver SQL in the transaction of `conn`; the driver's cursor.

    `returning` (psycopg, with `many`): keep each parameter set's result, read with `nextset`.
    `prepare=False` (psycopg): plan the statement at each execution, never prepared.

    Raises:
        DBAPIError: (its subclass for the failure) as SQLAlchemy would raise it.
    """
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None, "a connection in a transaction has its driver connection"
    cursor = dbapi_connection.cursor()
    if conn._has_events or conn.engine._has_events:  # instrumentation listening (tracing, tests) still sees it
        conn.dispatch.before_cursor_execute(conn, cursor, statement, parameters, None, many)
    driver_cursor: Any = cursor  # psycopg's takes `returning` and `prepare`, which the DBAPI protocol does not know
    try:
        if many and returning:
            driver_cursor.executemany(statement, parameters, returning=True)
        elif many:
            cursor.executemany(statement, parameters)
        elif prepare is not None:
            driver_cursor.execute(statement, parameters, prepare=prepare)
        else:
            cursor.execute(statement, parameters)
    except conn.dialect.loaded_dbapi.Error as exc:
        lost = conn.dialect.is_disconnect(exc, dbapi_connection, cursor)
        if lost:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            statement,
            parameters,
            exc,
            conn.dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=conn.dialect,
            ismulti=many,
        ) from exc
    return cursor


def is_sqlite(conn: Connection) -> bool:
    return conn.dialect.name == "sqlite"


def datetime_columns(table: sa.Table) -> frozenset[str]:
    return frozenset(column.name for column in table.columns if isinstance(column.type, UtcDateTime))


def json_columns(table: sa.Table) -> frozenset[str]:
    return frozenset(column.name for column in table.columns if isinstance(column.type, sa.JSON))


def boolean_columns(table: sa.Table) -> frozenset[str]:
    """Columns SQLite hands back as 0/1 (PostgreSQL as bool)."""
    return frozenset(column.name for column in table.columns if isinstance(column.type, sa.Boolean))


def sqlite_datetime(value: str) -> datetime:
    """A datetime SQLAlchemy stored in SQLite (naive UTC text)."""
    return datetime.fromisoformat(value + "+00:00")  # six times faster than .replace(tzinfo=UTC)


def postgres_datetime(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def datetime_value(value: datetime, sqlite: bool) -> Any:
    """A timezone-aware datetime as the driver takes it (what UtcDateTime does, without its dispatch)."""
    if value.tzinfo is not UTC:
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(UTC)
    return _sqlite_text(value) if sqlite else value


@functools.lru_cache(maxsize=256)
def _sqlite_text(value: datetime) -> str:
    """Memoised: the incidents of a notification share its time (last_seen), and isoformat is the costly part."""
    return value.isoformat(" ", "microseconds")[:26]


def json_value(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


@functools.lru_cache(maxsize=32)
def _insert_sql(table: str, columns: tuple[str, ...], sqlite: bool, json: frozenset[str]) -> str:
    """SQLite: the ids are given (the first column). PostgreSQL: the sequence gives them, returned."""
    mark = "?" if sqlite else "%s"
    marks = ", ".join(f"{mark}::jsonb" if not sqlite and name in json else mark for name in columns)
    if sqlite:
        return f"INSERT INTO {table} (id, {', '.join(columns)}) VALUES ({mark}, {marks})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) RETURNING id"


_SQLITE_LAST_ID = "SELECT coalesce(max(id), 0) FROM {table}"


def insert_returning_ids(
    conn: Connection, table: sa.Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> list[int]:
    """Insert rows of driver values (in `columns` order) and return their ids in the order given.

    One executemany of a short statement. On PostgreSQL psycopg pipelines it and keeps each
    row's RETURNING, in order: one round trip (a round trip costs 0.13 ms on this machine's
    loopback). On SQLite the ids follow the largest one, which is safe because a writer
    holds the database's write lock from BEGIN IMMEDIATE on. A multi-row INSERT ... RETURNING
    of a storm's group would have thousands of parameters, which psycopg re-parses on the
    client each time (it caches only short statements).
    """
    if not rows:
        return []
    sqlite = is_sqlite(conn)
    statement = _insert_sql(table.name, columns, sqlite, json_columns(table) if not sqlite else frozenset())
    if not sqlite:
        cursor = execute(conn, statement, rows, many=True, returning=True)
        ids = [cursor.fetchone()[0]]
        while cursor.nextset():
            ids.append(cursor.fetchone()[0])
        return ids
    [(last,)] = execute(conn, _SQLITE_LAST_ID.format(table=table.name)).fetchall()
    ids = list(range(last + 1, last + 1 + len(rows)))
    execute(conn, statement, [(row_id, *row) for row_id, row in zip(ids, rows, strict=True)], many=True)
    return ids


def driver_row(
    row: Mapping[str, Any], columns: Sequence[str], kinds: Mapping[str, str], sqlite: bool
) -> tuple[Any, ...]:
    """A row's values in `columns` order as the driver takes them; `kinds` marks "datetime" and "json" columns."""
    values = []
    for name in columns:
        value = row[name]
        kind = kinds.get(name)
        if value is not None and kind is not None:
            value = datetime_value(value, sqlite) if kind == "datetime" else json_value(value)
        values.append(value)
    return tuple(values)


def postgres_array_types(table: sa.Table) -> dict[str, str]:
    """Each column's PostgreSQL array type, for set-based statements over `unnest`.

    Text for VARCHAR(n): an explicit cast to VARCHAR(n) cuts a long value silently, where the
    assignment to the column refuses it (a data refusal, as from any other statement).
    """
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    types = {}
    for column in table.columns:
        name = column.type.compile(dialect=dialect)
        types[column.name] = ("TEXT" if name.startswith("VARCHAR") else name) + "[]"
    return types


def column_kinds(table: sa.Table) -> dict[str, str]:
    """Which columns need converting for the driver, and how."""
    return {**dict.fromkeys(datetime_columns(table), "datetime"), **dict.fromkeys(json_columns(table), "json")}
