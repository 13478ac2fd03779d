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
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from bridge.errors import DataRefused
from bridge.storage.schema import UtcDateTime


def execute(
    conn: Connection,
    statement: str,
    parameters: Any = (),
    many: bool = False,
    prepare: bool | None = None,
) -> Any:
    """Run driver SQL in the transaction of `conn`; the driver's cursor.

    `prepare=False` (psycopg): plan the statement at each execution, never prepared.

    Raises:
        DBAPIError: (its subclass for the failure) as SQLAlchemy would raise it.
    """
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None, "a connection in a transaction has its driver connection"
    cursor = dbapi_connection.cursor()
    if conn._has_events or conn.engine._has_events:  # instrumentation listening (tracing, tests) still sees it
        conn.dispatch.before_cursor_execute(conn, cursor, statement, parameters, None, many)
    driver_cursor: Any = cursor  # psycopg's takes `prepare`, which the DBAPI protocol does not know
    try:
        if many:
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


@functools.lru_cache(maxsize=64)
def psycopg_text(statement: str) -> str:
    """A statement written with SQLite's `?` placeholders (and no `?` or `%` otherwise), as psycopg takes it."""
    return statement.replace("?", "%s")


def datetime_columns(table: sa.Table) -> frozenset[str]:
    return frozenset(column.name for column in table.columns if isinstance(column.type, UtcDateTime))


def json_columns(table: sa.Table) -> frozenset[str]:
    return frozenset(column.name for column in table.columns if isinstance(column.type, sa.JSON))


def boolean_columns(table: sa.Table) -> frozenset[str]:
    """Columns SQLite hands back as 0/1 (PostgreSQL as bool)."""
    return frozenset(column.name for column in table.columns if isinstance(column.type, sa.Boolean))


class RowDecoder:
    """A table's rows as the driver hands them back, decoded as its column types would decode them
    (without their dispatch): SQLite's datetime and JSON text and its 0/1 booleans; PostgreSQL's
    datetimes in UTC."""

    __slots__ = ("columns", "_datetimes", "_json", "_booleans")

    def __init__(self, table: sa.Table) -> None:
        self.columns = tuple(column.name for column in table.columns)
        self._datetimes = tuple(sorted(datetime_columns(table)))
        self._json = tuple(sorted(json_columns(table)))
        self._booleans = tuple(sorted(boolean_columns(table)))

    def decode(self, row: Sequence[Any], sqlite: bool) -> dict[str, Any]:
        """A row of every column, in the table's order, as a dict by column name."""
        values = dict(zip(self.columns, row, strict=True))
        parse = sqlite_datetime if sqlite else postgres_datetime
        for name in self._datetimes:
            value = values[name]
            if value is not None:
                values[name] = parse(value)
        if sqlite:
            for name in self._json:
                value = values[name]
                if value is not None:
                    values[name] = orjson.loads(value)
            for name in self._booleans:
                values[name] = bool(values[name])
        return values


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


def json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def json_value(value: Any, sqlite: bool) -> Any:
    """A JSON column's value as the driver takes it: text for SQLite; for PostgreSQL the value
    itself, nested in the rows' document (`json_rows`) and read by its column's own type."""
    return json_text(value) if sqlite else value


@functools.lru_cache(maxsize=32)
def _sqlite_insert(table: str, columns: tuple[str, ...]) -> str:
    """The ids are given (the first column): see `insert_returning_ids`."""
    return f"INSERT INTO {table} (id, {', '.join(columns)}) VALUES (?, {', '.join('?' * len(columns))})"


_SQLITE_LAST_ID = "SELECT coalesce(max(id), 0) FROM {table}"


def json_record(table: sa.Table, columns: Sequence[str]) -> str:
    """The column list `json_to_recordset` types these columns by."""
    types = postgres_types(table)
    return ", ".join(f"{name} {types[name]}" for name in columns)


def json_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows of driver values as one JSON document, an object per row, for `json_to_recordset`.

    PostgreSQL's set-based statements take their rows this way, not as one array per
    column: psycopg dumps an array element by element in Python (a storm's creates: an
    eighth of the serving processes' Python time, py-spy --gil), where orjson writes the
    document in C and PostgreSQL types each field by the column list in C.

    Raises:
        DataRefused: a value JSON cannot carry (an integer past 64 bits, a lone surrogate).
    """
    try:
        # Column names may be SQLAlchemy's str subclass, which orjson takes as keys only with this option.
        return orjson.dumps(
            [dict(zip(columns, row, strict=True)) for row in rows], option=orjson.OPT_NON_STR_KEYS
        ).decode()
    except orjson.JSONEncodeError as exc:
        raise DataRefused("a value was refused by the database", [f"database: {exc}"]) from exc


def bigint_array(ids: Iterable[int]) -> str:
    """Integer ids as a PostgreSQL array literal (`{1,2,3}`), for a `%s::BIGINT[]` parameter.

    psycopg dumps a list element by element in Python (a twentieth of a storm's writer time,
    py-spy); the literal is one join of the ids' decimal text, which the cast parses in C.
    """
    return "{" + ",".join(map(str, ids)) + "}"


class _PostgresInsert(NamedTuple):
    """A set-based INSERT's statement, the columns of its document, and where in a row the values
    of the document (`kept`) and of the arrays (`apart`) are."""

    statement: str
    in_document: tuple[str, ...]
    kept: tuple[int, ...]
    apart: tuple[int, ...]


@functools.lru_cache(maxsize=32)
def _postgres_insert(table: sa.Table, columns: tuple[str, ...], texts: tuple[str, ...] = ()) -> _PostgresInsert:
    """One INSERT of every row from one JSON document (`json_rows`) and, for the `texts` columns, one
    text array each, the new ids in the rows' order.

    The ids are drawn in a materialised CTE sorted by the rows' position (PostgreSQL evaluates
    a volatile target list after ORDER BY, so `nextval` follows the order given) and read back
    from it by that position: RETURNING promises no order. The arrays are zipped with the
    document's rows by position (ROWS FROM), and bound in binary (`%b`): psycopg's text form
    quotes every element in Python (1.4 ms for four bodies of 3.7 KB, against 0.2 ms).
    """
    kept = tuple(position for position, name in enumerate(columns) if name not in texts)
    in_document = tuple(columns[position] for position in kept)
    names = ", ".join(columns)
    functions = ", ".join(
        [f"json_to_recordset(%s::json) AS ({json_record(table, in_document)})", *(["unnest(%b::text[])"] * len(texts))]
    )
    sequence = f"{table.name}_id_seq"
    statement = (
        f"WITH v AS MATERIALIZED (SELECT nextval('{sequence}') AS id, u.* "
        f"FROM ROWS FROM ({functions}) "
        f"WITH ORDINALITY AS u({', '.join((*in_document, *texts))}, position) ORDER BY position), "
        f"inserted AS (INSERT INTO {table.name} (id, {names}) SELECT id, {names} FROM v) "
        "SELECT id FROM v ORDER BY position"
    )
    return _PostgresInsert(statement, in_document, kept, tuple(columns.index(name) for name in texts))


def insert_returning_ids(
    conn: Connection,
    table: sa.Table,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    texts: tuple[str, ...] = (),
) -> list[int]:
    """Insert rows of driver values (in `columns` order) and return their ids in the order given.

    PostgreSQL: one statement of fixed text over one JSON document of the rows (prepared
    once), where a pipelined executemany sent and ran one INSERT per row and spent Python
    time on each (a storm's creates: 4 ms of a 10 ms group of 80 incidents). The `texts`
    columns (long text, such as raw bodies) go apart as one text array each: inside the
    document PostgreSQL's JSON parser would read them character by character, unescaping
    every quote of a JSON body. SQLite: the ids follow the largest one, which is safe
    because a writer holds the database's write lock from BEGIN IMMEDIATE on, and an
    executemany (its loop is C) inserts the rows.

    Raises:
        DataRefused: (PostgreSQL) a value JSON cannot carry (see `json_rows`).
    """
    if not rows:
        return []
    if not is_sqlite(conn):
        insert = _postgres_insert(table, columns, texts)
        # Rows go in the document as they are when nothing goes apart (a storm's new incidents).
        in_document = [[row[position] for position in insert.kept] for row in rows] if texts else rows
        document = json_rows(insert.in_document, in_document)
        arrays = [[row[position] for row in rows] for position in insert.apart]
        return [row_id for (row_id,) in execute(conn, insert.statement, (document, *arrays)).fetchall()]
    [(last,)] = execute(conn, _SQLITE_LAST_ID.format(table=table.name)).fetchall()
    ids = list(range(last + 1, last + 1 + len(rows)))
    statement = _sqlite_insert(table.name, columns)
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
            value = datetime_value(value, sqlite) if kind == "datetime" else json_value(value, sqlite)
        values.append(value)
    return tuple(values)


@functools.cache
def postgres_types(table: sa.Table) -> dict[str, str]:
    """Each column's PostgreSQL type, for set-based statements over a JSON document of rows.

    Text for VARCHAR(n): a value too long for the column is then refused by the assignment
    (a data refusal, as from any other statement), where a cast to VARCHAR(n) cuts it silently.
    """
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    types = {}
    for column in table.columns:
        name = column.type.compile(dialect=dialect)
        types[column.name] = "TEXT" if name.startswith("VARCHAR") else name
    return types


def column_kinds(table: sa.Table) -> dict[str, str]:
    """Which columns need converting for the driver, and how."""
    return {**dict.fromkeys(datetime_columns(table), "datetime"), **dict.fromkeys(json_columns(table), "json")}
