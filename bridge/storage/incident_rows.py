"""The webhook hot path's incident statements (driver SQL, see `driver_sql`) and their row codec."""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy.engine import Connection

from bridge.domain.incidents import HEAD_FIELDS, Incident, IncidentHead, IncidentState
from bridge.storage import driver_sql
from bridge.storage.schema import incidents

COLUMNS = tuple(column.name for column in incidents.columns)
# What an Incident holds: every column but the id (set apart) and the last notification (the store's).
FIELDS = tuple(name for name in COLUMNS if name not in ("id", "last_notification_id"))
_DATETIME_SET, _JSON_SET = driver_sql.datetime_columns(incidents), driver_sql.json_columns(incidents)
_FIRING = IncidentState.FIRING.value


class _LiveReading(NamedTuple):
    """A reading of some columns of each key's live rows: its statement per dialect, where the key
    and the state sit in its rows, and the order of PostgreSQL's columns (the packed ones last)."""

    sqlite: str
    postgres: str
    key_at: int
    state_at: int
    postgres_columns: tuple[str, ...]


def _live_reading(columns: Sequence[str], packed: Sequence[str] = ()) -> _LiveReading:
    """The reading of these columns of each key's live rows (SQLite: every one; PostgreSQL: the live one).

    PostgreSQL reads the JSON columns named in `packed` last, as one JSON array's text, decoded
    once per row where psycopg calls a loader written in Python for each JSON value (3% of the
    writer's instructions in a storm). SQLite's JSON columns are text anyway, each decoded by
    orjson (joined in SQL they cost 2% more), so it reads the columns as listed.

    A key's live rows are in two partial indexes: the firing one (unique) and the resolved
    ones; closed incidents, most of the table, are in neither. SQLite names them (INDEXED BY:
    without statistics its planner preferred an index led by the state). PostgreSQL: a bitmap
    of both per key (a lateral LIMIT 1), whatever the planner's statistics say (checked on a
    table without any and on one analysed while small). An IN list over a table that grew
    since its last ANALYZE (the first storm on a new install) was planned as a sequential
    scan, once per transaction.
    """
    listed = ", ".join(columns)
    keyed = "dedup_key IN (SELECT value FROM json_each(?1))"
    sqlite = (
        f"SELECT {listed} FROM incidents INDEXED BY ux_incidents_firing_dedup_key "
        f"WHERE {keyed} AND state = 'firing' UNION ALL "
        f"SELECT {listed} FROM incidents INDEXED BY ix_incidents_resolved_dedup_key "
        f"WHERE {keyed} AND state = 'resolved' ORDER BY dedup_key, id DESC"
    )
    postgres = (
        "SELECT live.* FROM json_array_elements_text(%s::json) AS k(key) JOIN LATERAL ("
        f"SELECT {_packed_last(columns, packed)} FROM incidents "
        "WHERE dedup_key = k.key AND (state = 'firing' OR state = 'resolved') "
        "ORDER BY state = 'firing' DESC, id DESC LIMIT 1 FOR UPDATE) AS live ON true"
    )
    postgres_columns = (*(name for name in columns if name not in packed), *packed)
    key_at, state_at = columns.index("dedup_key"), columns.index("state")
    if (postgres_columns.index("dedup_key"), postgres_columns.index("state")) != (key_at, state_at):
        raise ValueError("the key and the state must come before the packed columns")
    return _LiveReading(sqlite, postgres, key_at, state_at, postgres_columns)


def _packed_last(columns: Sequence[str], packed: Sequence[str]) -> str:
    """The columns but `packed`, then those as the text of one JSON array: each one's JSON text (what
    the server sends for a JSON column anyway) joined."""
    listed = ", ".join(name for name in columns if name not in packed)
    if not packed:
        return listed
    joined = " || ',' || ".join(f"coalesce({name}::text, 'null')" for name in packed)
    return f"{listed}, '[' || {joined} || ']' AS packed"


def _live_rows(conn: Connection, keys: Iterable[str], reading: _LiveReading) -> dict[str, Sequence[Any]]:
    """The live row per key (the firing one, else the newest resolved), locked for update on PostgreSQL."""
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    # Both take the keys as one JSON array: psycopg dumps a list element by element in Python.
    listed = orjson.dumps(ordered).decode()
    if driver_sql.is_sqlite(conn):
        rows = driver_sql.execute(conn, reading.sqlite, (listed,)).fetchall()
    else:
        # Never prepared: psycopg prepares a statement at its fifth run, and PostgreSQL then keeps
        # a generic plan made from the statistics of that moment. Made while a new install's
        # table was nearly empty, that plan scanned the whole table per key once it had grown
        # (4 ms for 10 keys at 2,000 incidents, rising). Planned each time, it probes the index.
        rows = driver_sql.execute(conn, reading.postgres, (listed,), prepare=False).fetchall()
    key_at, state_at = reading.key_at, reading.state_at
    chosen: dict[str, Sequence[Any]] = {}
    for row in rows:
        known = chosen.get(row[key_at])
        if known is None or (row[state_at] == _FIRING and known[state_at] != _FIRING):
            chosen[row[key_at]] = row
    return chosen


_WHOLE = _live_reading(COLUMNS)
_ROWS = driver_sql.RowDecoder(incidents)


def _decode(row: Sequence[Any], sqlite: bool) -> Incident:
    values = _ROWS.decode(row, sqlite)
    values["state"] = IncidentState(values["state"])
    del values["last_notification_id"]
    return Incident.from_fields(values)


# A plain repeat's reading: the key, then the head (on PostgreSQL its JSON fields packed last).
_HEADS = _live_reading(("dedup_key", *HEAD_FIELDS), packed=tuple(name for name in HEAD_FIELDS if name in _JSON_SET))
# PostgreSQL's head (its fields, the packed ones unpacked last) in HEAD_FIELDS order, in one C call.
_POSTGRES_HEAD_ORDER = operator.itemgetter(*(_HEADS.postgres_columns[1:].index(name) for name in HEAD_FIELDS))
_HEAD_DATETIMES = tuple(position for position, name in enumerate(HEAD_FIELDS) if name in _DATETIME_SET)
_HEAD_JSON = tuple(position for position, name in enumerate(HEAD_FIELDS) if name in _JSON_SET)
_HEAD_STATE = HEAD_FIELDS.index("state")
_HEAD_BOOLEANS = tuple(
    position for position, name in enumerate(HEAD_FIELDS) if name in driver_sql.boolean_columns(incidents)
)
_HEAD_OF_WHOLE = operator.itemgetter(*(COLUMNS.index(name) for name in HEAD_FIELDS))
_STATES = {state.value: state for state in IncidentState}


def _decode_head(values: list[Any], sqlite: bool) -> IncidentHead:
    """A head from its fields' stored values, in HEAD_FIELDS order."""
    parse = driver_sql.sqlite_datetime if sqlite else driver_sql.postgres_datetime
    for position in _HEAD_DATETIMES:
        if values[position] is not None:
            values[position] = parse(values[position])
    if sqlite:
        for position in _HEAD_JSON:
            if values[position] is not None:
                values[position] = orjson.loads(values[position])
        for position in _HEAD_BOOLEANS:
            values[position] = bool(values[position])
    values[_HEAD_STATE] = _STATES[values[_HEAD_STATE]]
    return IncidentHead(*values)


class LiveRows:
    """Each key's live incident read whole, decoded on demand: as a head, when a plain repeat may be
    all it takes (half the cost of a whole decode), or whole, for the lifecycle."""

    __slots__ = ("_rows", "_sqlite")

    def __init__(self, rows: dict[str, Sequence[Any]], sqlite: bool) -> None:
        self._rows = rows
        self._sqlite = sqlite

    def keys(self) -> set[str]:
        return set(self._rows)

    def heads(self, keys: Iterable[str], state: IncidentState) -> dict[str, IncidentHead]:
        """The heads of these keys' live incidents that are in `state` (the others stay undecoded)."""
        heads = {}
        for key in keys:
            row = self._rows.get(key)
            if row is not None and row[_WHOLE.state_at] == state.value:
                heads[key] = _decode_head(list(_HEAD_OF_WHOLE(row)), self._sqlite)
        return heads

    def incidents(self, keys: Iterable[str]) -> dict[str, Incident]:
        """These keys' live incidents, whole (a key without one is left out)."""
        rows = self._rows
        return {key: _decode(rows[key], self._sqlite) for key in keys if key in rows}


def live_rows(conn: Connection, keys: Iterable[str]) -> LiveRows:
    """The live incident per key (the firing one, else the newest resolved), locked for update on PostgreSQL."""
    return LiveRows(_live_rows(conn, keys, _WHOLE), driver_sql.is_sqlite(conn))


def live_heads(conn: Connection, keys: Iterable[str], state: IncidentState) -> tuple[dict[str, IncidentHead], set[str]]:
    """The head of each key's live incident that is in `state`, and every key that has a live incident
    at all: a reading of the head's columns only.

    Locked for update on PostgreSQL as `live_rows` locks (the live row, keys in order).
    A key absent from both is new: it needs no reading whole either (a storm's creates).
    """
    rows = _live_rows(conn, keys, _HEADS)
    sqlite = driver_sql.is_sqlite(conn)
    state_at = _HEADS.state_at
    if sqlite:
        heads = {key: _decode_head(list(row[1:]), sqlite) for key, row in rows.items() if row[state_at] == state.value}
    else:
        heads = {
            key: _decode_head(list(_POSTGRES_HEAD_ORDER((*row[1:-1], *orjson.loads(row[-1])))), sqlite)
            for key, row in rows.items()
            if row[state_at] == state.value
        }
    return heads, set(rows)


_SQLITE_COUNT_REPEATS = (
    "UPDATE incidents SET occurrences = occurrences + ?, last_seen = ?, last_notification_id = ? WHERE id = ?"
)
_REPEAT_FIELDS = ("added", "last_seen", "notification_id", "id")
_POSTGRES_COUNT_REPEATS = (
    "UPDATE incidents AS i SET occurrences = i.occurrences + v.added, last_seen = v.last_seen, "
    "last_notification_id = v.notification_id "
    "FROM json_to_recordset(%s::json) AS v(added INTEGER, last_seen TIMESTAMPTZ, notification_id BIGINT, id BIGINT) "
    "WHERE i.id = ANY(%s::BIGINT[]) AND i.id = v.id"
)


def count_repeats(conn: Connection, rows: Sequence[tuple[int, datetime, int, int]]) -> None:
    """Count plain repeats: each row is (occurrences added, last_seen, notification_id, incident id).

    The occurrences are added in SQL, from the row as it is, so the head need not hold them.
    """
    if not rows:
        return
    sqlite = driver_sql.is_sqlite(conn)
    values = [
        (added, driver_sql.datetime_value(seen, sqlite), notification_id, incident_id)
        for added, seen, notification_id, incident_id in rows
    ]
    if sqlite:
        driver_sql.execute(conn, _SQLITE_COUNT_REPEATS, values, many=True)
    else:
        document = driver_sql.json_rows(_REPEAT_FIELDS, values)
        driver_sql.execute(
            conn, _POSTGRES_COUNT_REPEATS, (document, driver_sql.bigint_array(row[-1] for row in values))
        )


def bind_value(name: str, value: Any, sqlite: bool) -> Any:
    """An incident field's value as the driver takes it (the state by its value: psycopg writes an enum's name)."""
    if value is None:
        return None
    if name in _DATETIME_SET:
        return driver_sql.datetime_value(value, sqlite)
    if name in _JSON_SET:
        return driver_sql.json_value(value, sqlite)
    if name == "state":
        return value.value
    return value


_ALL_FIELDS = operator.itemgetter(*FIELDS)
# Positions in FIELDS of the values the driver needs converted.
_DATETIME_POSITIONS = tuple(position for position, name in enumerate(FIELDS) if name in _DATETIME_SET)
_JSON_POSITIONS = tuple(position for position, name in enumerate(FIELDS) if name in _JSON_SET)
_STATE = FIELDS.index("state")


def insert_incidents(conn: Connection, rows: Sequence[tuple[Incident, int | None]]) -> list[int]:
    """Insert new incidents with the notification that opened each; their ids in the order given."""
    sqlite = driver_sql.is_sqlite(conn)
    values = []
    for incident, notification_id in rows:
        row = [*_ALL_FIELDS(vars(incident)), notification_id]  # one C call gathers every field
        for position in _DATETIME_POSITIONS:
            if row[position] is not None:
                row[position] = driver_sql.datetime_value(row[position], sqlite)
        if sqlite:  # PostgreSQL nests JSON values in the rows' document as they are
            for position in _JSON_POSITIONS:
                if row[position] is not None:
                    row[position] = driver_sql.json_text(row[position])
        row[_STATE] = row[_STATE].value
        values.append(row)
    return driver_sql.insert_returning_ids(conn, incidents, (*FIELDS, "last_notification_id"), values)


@functools.lru_cache(maxsize=128)
def _sqlite_update(columns: tuple[str, ...]) -> str:
    """UPDATE of these columns by id, the last parameter (built once per column set)."""
    return f"UPDATE incidents SET {', '.join(f'{name} = ?' for name in columns)} WHERE id = ?"


@functools.lru_cache(maxsize=128)
def _postgres_update(columns: tuple[str, ...]) -> str:
    """One UPDATE of these columns for all the rows: joined by id to the rows of a JSON document (`json_rows`)."""
    assignments = ", ".join(f"{name} = v.{name}" for name in columns)
    return (
        f"UPDATE incidents AS i SET {assignments} "
        f"FROM json_to_recordset(%s::json) AS v({driver_sql.json_record(incidents, (*columns, 'id'))}) "
        "WHERE i.id = ANY(%s::BIGINT[]) AND i.id = v.id"
    )


def update_rows(conn: Connection, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Write these columns of these rows (each row's values end with its id), one statement per column set.

    SQLite: an executemany (its loop is C). PostgreSQL: one set-based UPDATE of fixed text
    (prepared once) over the rows as one JSON document (`driver_sql.json_rows`); psycopg's
    executemany spends Python time on every row (a fifth of a storm's Python time, py-spy
    --gil). The join is by primary key, and the ids again as `id = ANY(...)`, which the
    planner always reads as that many rows of the primary key: an index probe per row, even
    on a table that grew since its last ANALYZE (joined to the rows alone, it scanned the
    whole table, estimating it small).
    """
    if driver_sql.is_sqlite(conn):
        driver_sql.execute(conn, _sqlite_update(columns), rows, many=True)
    else:
        document = driver_sql.json_rows((*columns, "id"), rows)
        driver_sql.execute(
            conn, _postgres_update(columns), (document, driver_sql.bigint_array(row[-1] for row in rows))
        )
