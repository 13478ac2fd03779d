"""The webhook hot path's incident statements, written once per dialect, and their row codec.

A storm repeats the same three statements thousands of times a second: SQLAlchemy's
per-row type processing and statement handling cost more than the database's own work
(profiled: about half of a repeat's write). These run as driver SQL (`exec_driver_sql`,
so failures still arrive as SQLAlchemy's DBAPIError for the retry and refusal rules)
with the conversions done here, each in one C call per value: SQLite datetimes are the
text SQLAlchemy stores (`YYYY-MM-DD HH:MM:SS.ffffff`, naive UTC), JSON is orjson text.
The SQL text never changes, so SQLite's statement cache and psycopg's prepared
statements hold it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from bridge.domain import Incident, IncidentState
from bridge.storage.schema import UtcDateTime, incidents

COLUMNS = tuple(column.name for column in incidents.columns)
_DATETIMES = tuple(column.name for column in incidents.columns if isinstance(column.type, UtcDateTime))
_JSON = ("labels", "annotations", "source_ids")
_CLOSED = IncidentState.CLOSED.value
_FIRING = IncidentState.FIRING.value

_SQLITE_LIVE = (
    f"SELECT {', '.join(COLUMNS)} FROM incidents "
    "WHERE dedup_key IN (SELECT value FROM json_each(?)) AND state != 'closed' ORDER BY dedup_key, id DESC"
)
# PostgreSQL: one index probe per key (a lateral LIMIT 1), whatever the planner's statistics
# say. An IN list over a table that grew since its last ANALYZE (the first storm on a new
# install) was planned as a sequential scan, once per transaction.
_POSTGRES_LIVE = (
    f"SELECT live.* FROM unnest(%s::text[]) AS k(key) JOIN LATERAL ("
    f"SELECT {', '.join(COLUMNS)} FROM incidents WHERE dedup_key = k.key AND state != 'closed' "
    "ORDER BY state = 'firing' DESC, id DESC LIMIT 1 FOR UPDATE) AS live ON true"
)


def _sqlite_datetime(value: str) -> datetime:
    return datetime.fromisoformat(value + "+00:00")  # six times faster than .replace(tzinfo=UTC)


def _postgres_datetime(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _decode(row: Sequence[Any], sqlite: bool) -> Incident:
    values = dict(zip(COLUMNS, row, strict=True))
    parse = _sqlite_datetime if sqlite else _postgres_datetime
    for name in _DATETIMES:
        value = values[name]
        if value is not None:
            values[name] = parse(value)
    if sqlite:
        for name in _JSON:
            value = values[name]
            if value is not None:
                values[name] = orjson.loads(value)
        values["sla_breached"] = bool(values["sla_breached"])
    values["state"] = IncidentState(values["state"])
    del values["last_notification_id"]
    return Incident.from_fields(values)


def live_incidents(conn: Connection, keys: Iterable[str]) -> dict[str, Incident]:
    """The live incident per key (the firing one, else the newest resolved), locked for update on PostgreSQL."""
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        rows = conn.exec_driver_sql(_SQLITE_LIVE, (orjson.dumps(ordered).decode(),))
    else:
        rows = conn.exec_driver_sql(_POSTGRES_LIVE, (ordered,))
    current: dict[str, Incident] = {}
    for row in rows:
        key, state = row[1], row[3]
        known = current.get(key)
        if known is None or (state == _FIRING and known.state is not IncidentState.FIRING):
            current[key] = _decode(row, sqlite)
    return current


def bind_value(name: str, value: Any, sqlite: bool) -> Any:
    """A column value as the driver takes it (what UtcDateTime and the JSON type do, without their dispatch)."""
    if value is None:
        return None
    if name in _DATETIME_SET:
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.isoformat(" ", "microseconds")[:26] if sqlite else value
    if name in _JSON_SET:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    if name == "state":
        return value.value
    return value


_DATETIME_SET = frozenset(_DATETIMES)
_JSON_SET = frozenset(_JSON)


@functools.lru_cache(maxsize=128)
def update_sql(columns: tuple[str, ...], sqlite: bool) -> str:
    """UPDATE of these columns by id, the last parameter (built once per column set and dialect)."""
    mark = "?" if sqlite else "%s"
    assignments = ", ".join(f"{name} = {mark}" for name in columns)
    if not sqlite:
        assignments = ", ".join(
            f"{name} = {mark}::jsonb" if name in _JSON_SET else f"{name} = {mark}" for name in columns
        )
    return f"UPDATE incidents SET {assignments} WHERE id = {mark}"


def update_rows(conn: Connection, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """One executemany per column set (psycopg pipelines it)."""
    conn.exec_driver_sql(update_sql(columns, conn.dialect.name == "sqlite"), rows)
