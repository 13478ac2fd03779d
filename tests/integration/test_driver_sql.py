"""The hot path's driver SQL reads and writes exactly what the SQLAlchemy column types would (issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
import sqlalchemy as sa

from bridge.domain.incidents import HEAD_FIELDS, IncidentHead, IncidentState
from bridge.errors import DataRefused
from bridge.storage import driver_sql, incident_rows
from bridge.storage.incident_repository import incident_from_row
from bridge.storage.incident_rows import FIELDS, _postgres_update
from bridge.storage.read_models import IncidentFilter
from bridge.storage.schema import incidents, notifications
from bridge.storage.store import Store
from tests.conftest import empty_tables, ingest, payload_bytes

T0 = datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)


def test_incidents_read_by_driver_sql_equal_those_read_through_sqlalchemy(store: Store, example_rules):
    ingest(store, example_rules, "alertmanager", payload_bytes("alertmanager-0.25-two-firing.json"), T0)
    ingest(store, example_rules, "zabbix", payload_bytes("zabbix-6.0.14-problem.json"), T0 + timedelta(seconds=1))
    listed = store.list_incidents(IncidentFilter(), 10, None).items
    assert len(listed) == 3
    keys = [incident.dedup_key for incident in listed]
    current = store.run(lambda conn: store.live_rows(conn, keys).incidents(keys))
    for incident in listed:
        fast = current[incident.dedup_key]
        assert fast.id == incident.id
        for name in FIELDS:
            assert getattr(fast, name) == getattr(incident, name), name
            assert type(getattr(fast, name)) is type(getattr(incident, name)), name
        assert fast.first_seen.tzinfo is UTC and fast.state is IncidentState.FIRING


def test_values_written_by_driver_sql_read_back_through_sqlalchemy(store: Store, example_rules):
    """Another offset, unicode labels, microseconds: stored as the UtcDateTime and JSON types store them."""
    ingest(store, example_rules, "alertmanager", payload_bytes("alertmanager-0.25-two-firing.json"), T0)
    [first, *_] = store.list_incidents(IncidentFilter(), 10, None).items
    elsewhere = timezone(timedelta(hours=5, minutes=30))

    def change(conn):
        [incident] = store.live_rows(conn, [first.dedup_key]).incidents([first.dedup_key]).values()
        original = incident.copy()
        incident.labels = {**incident.labels, "ville": "Besançon ✓"}
        incident.last_seen = datetime(2026, 11, 25, 16, 0, 0, 7, tzinfo=elsewhere)
        incident.occurrences += 1
        store.save_incidents(conn, [(incident, None)], {incident.dedup_key: original})

    store.run(change)
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(incidents).where(incidents.c.id == first.id)).mappings().one()
    again = incident_from_row(row)
    assert again.labels["ville"] == "Besançon ✓"
    assert again.last_seen == datetime(2026, 11, 25, 10, 30, 0, 7, tzinfo=UTC) and again.last_seen.tzinfo is UTC
    assert again.occurrences == first.occurrences + 1
    untouched = [name for name in FIELDS if name not in ("labels", "last_seen", "occurrences")]
    assert [getattr(again, name) for name in untouched] == [getattr(first, name) for name in untouched]


def test_a_value_the_database_refuses_is_a_data_refusal_on_the_driver_path(store: Store, example_rules):
    ingest(store, example_rules, "alertmanager", payload_bytes("alertmanager-0.25-two-firing.json"), T0)
    [first, *_] = store.list_incidents(IncidentFilter(), 10, None).items

    def overflow(conn):
        [incident] = store.live_rows(conn, [first.dedup_key]).incidents([first.dedup_key]).values()
        original = incident.copy()
        incident.occurrences = 2**80  # past any integer column
        store.save_incidents(conn, [(incident, None)], {incident.dedup_key: original})

    with pytest.raises(DataRefused):
        store.run(overflow)


@pytest.mark.postgres
@pytest.mark.parametrize("statement", ["update", "repeats"])
def test_the_set_based_updates_probe_the_primary_key_on_a_grown_table(pg_database_url: str, statement: str):
    """Before any ANALYZE (a new install's first storm), 20,000 incidents: an index probe per row, no scan."""
    store = Store.from_url(pg_database_url)
    ids = list(range(1, 81))
    if statement == "update":
        columns = ("last_seen", "occurrences", "labels", "last_notification_id")
        text = _postgres_update(columns)
        document = driver_sql.json_rows((*columns, "id"), [(T0, 2, {"a": "b"}, 1, i) for i in ids])
    else:
        text = incident_rows._POSTGRES_COUNT_REPEATS
        document = driver_sql.json_rows(incident_rows._REPEAT_FIELDS, [(1, T0, 1, i) for i in ids])
    try:
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO incidents (dedup_key, source, state, line, impact, urgency, priority, route, summary, "
                "labels, annotations, occurrences, reopen_count, first_seen, last_seen) "
                "SELECT 'k' || g, 'alertmanager', 'firing', 'L1', 'high', 'high', 'P1', 'r', 's', '{}', '{}', 1, 0, "
                "now(), now() FROM generate_series(1, 20000) AS g"
            )
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + text, (document, ids)))
            conn.rollback()
    finally:
        store.engine.dispose()
    assert "incidents_pkey" in plan and "Seq Scan on incidents" not in plan, plan


def test_heads_read_by_driver_sql_equal_the_heads_of_incidents_read_through_sqlalchemy(store: Store, example_rules):
    """Firing heads from the reading of their columns, resolved ones decoded from the whole rows."""
    ingest(store, example_rules, "alertmanager", payload_bytes("alertmanager-0.25-two-firing.json"), T0)
    ingest(store, example_rules, "zabbix", payload_bytes("zabbix-6.0.14-problem.json"), T0 + timedelta(seconds=1))
    ingest(store, example_rules, "zabbix", payload_bytes("zabbix-6.0.14-recovery.json"), T0 + timedelta(seconds=2))
    listed = store.list_incidents(IncidentFilter(), 10, None).items
    assert {incident.state for incident in listed} == {IncidentState.FIRING, IncidentState.RESOLVED}
    keys = {incident.dedup_key for incident in listed}
    firing = {incident.dedup_key for incident in listed if incident.state is IncidentState.FIRING}

    def read_live(conn):
        heads, live = store.live_heads(conn, [*keys, "nokey"], IncidentState.FIRING)
        rows = store.live_rows(conn, [*keys, "nokey"])
        return heads, live, rows, rows.heads([*keys, "nokey"], IncidentState.RESOLVED)

    heads, live, rows, resolved = store.run(read_live)
    assert set(heads) == firing and set(resolved) == keys - firing
    assert live == rows.keys() == keys
    heads |= resolved
    for incident in listed:
        expected, read = IncidentHead.of(incident), heads[incident.dedup_key]
        assert read == expected
        for name in HEAD_FIELDS:
            assert type(getattr(read, name)) is type(getattr(expected, name)), name
        assert read.first_seen.tzinfo is UTC


def test_inserted_ids_come_back_in_the_order_of_the_rows(store: Store):
    """PostgreSQL: one INSERT over the rows as JSON, ids read back by position; SQLite: ids after the largest."""
    rows = [("alertmanager", T0 + timedelta(seconds=n), f"body {n}", n, 0, 0, None) for n in range(50)]
    columns = ("source", "received_at", "body", "alert_count", "rejected_count", "truncated_alerts", "group_key")
    sqlite = store.engine.dialect.name == "sqlite"
    values = [(s, driver_sql.datetime_value(at, sqlite), *rest) for s, at, *rest in rows]
    first = store.run(lambda conn: driver_sql.insert_returning_ids(conn, notifications, columns, values[:20]))
    second = store.run(lambda conn: driver_sql.insert_returning_ids(conn, notifications, columns, values[20:]))
    ids = first + second
    assert len(set(ids)) == 50 and ids == sorted(ids)
    with store.engine.connect() as conn:
        bodies = dict(conn.execute(sa.select(notifications.c.id, notifications.c.body)).all())
    assert [bodies[row_id] for row_id in ids] == [f"body {n}" for n in range(50)]


def _notification(body: str, **fields) -> dict:
    """A row of `add_notifications`: this body, one alert received at T0, unless `fields` say otherwise."""
    row = dict(
        source="alertmanager",
        received_at=T0,
        body=body,
        alert_count=1,
        rejected_count=0,
        truncated_alerts=0,
        group_key=None,
    )
    return {**row, **fields}


def test_raw_bodies_go_in_apart_from_the_rows_exactly_as_given(store: Store):
    """Bodies bound apart from the rows' document (PostgreSQL: a text array each) are stored character
    for character, quotes, backslashes, escapes and all, each with its own row and id."""
    bodies = [
        '{"alerts": [{"labels": {"a": "say \\"hi\\""}}], "path": "C:\\\\temp"}',
        "línea\nзаголовок\t😀 \\u0000 not a NUL",
        "",
        "x" * 300_000,
        "[1, 2, 3]",
    ]
    rows = [
        _notification(
            body, received_at=T0 + timedelta(seconds=n), alert_count=n, group_key=f"group {n}" if n % 2 else None
        )
        for n, body in enumerate(bodies)
    ]
    ids = store.run(lambda conn: store.add_notifications(conn, rows))
    assert len(set(ids)) == len(bodies) and ids == sorted(ids)
    with store.engine.connect() as conn:
        stored = {row.id: row for row in conn.execute(sa.select(notifications))}
    assert [(stored[row_id].body, stored[row_id].alert_count, stored[row_id].group_key) for row_id in ids] == [
        (row["body"], row["alert_count"], row["group_key"]) for row in rows
    ]


def test_postgresql_refuses_a_raw_body_with_a_nul_as_data(pg_database_url: str):
    """A NUL PostgreSQL text cannot hold, in a body bound apart, is a data refusal as in the document."""
    store = Store.from_url(pg_database_url)
    try:
        with pytest.raises(DataRefused):
            store.run(lambda conn: store.add_notifications(conn, [_notification("before\x00after")]))
    finally:
        store.engine.dispose()


def test_rows_with_different_null_columns_go_in_as_given(store: Store):
    """None binds as NULL (on SQLite through the adapter the store registers for it): every row holds
    what it was given, with its id in the order given."""
    columns = ("source", "received_at", "body", "alert_count", "rejected_count", "truncated_alerts", "group_key")
    sqlite = store.engine.dialect.name == "sqlite"
    given = [
        ("alertmanager", T0 + timedelta(seconds=n), f"body {n}", n, 0, n % 3, None if n % 2 else f"{{}}:{n}")
        for n in range(30)
    ]
    values = [(s, driver_sql.datetime_value(at, sqlite), *rest) for s, at, *rest in given]
    ids = store.run(lambda conn: driver_sql.insert_returning_ids(conn, notifications, columns, values))
    assert len(set(ids)) == 30 and ids == sorted(ids)
    with store.engine.connect() as conn:
        stored = {row.id: row for row in conn.execute(sa.select(notifications))}
    assert [tuple(getattr(stored[row_id], name) for name in columns) for row_id in ids] == given


def test_none_for_a_column_with_a_default_is_refused_not_defaulted(store: Store):
    """None for a NOT NULL column with a server default is refused, never turned into the default."""
    sqlite = store.engine.dialect.name == "sqlite"
    row = {name: None for name in FIELDS} | {
        "dedup_key": "k",
        "source": "alertmanager",
        "state": "firing",
        "line": "L3",
        "impact": "high",
        "urgency": "high",
        "priority": "P1",
        "route": "r",
        "summary": "s",
        "labels": "{}",
        "annotations": "{}",
        "occurrences": 1,
        "reopen_count": 0,
        "first_seen": driver_sql.datetime_value(T0, sqlite),
        "last_seen": driver_sql.datetime_value(T0, sqlite),
        "sla_breached": False,
        "response_breached": False,
        "held": False,
    }
    with pytest.raises(sa.exc.IntegrityError):
        store.run(lambda conn: driver_sql.insert_returning_ids(conn, incidents, FIELDS, [tuple(row.values())]))
    row["sla_elapsed_seconds"] = 0.0
    [incident_id] = store.run(
        lambda conn: driver_sql.insert_returning_ids(conn, incidents, FIELDS, [tuple(row.values())])
    )
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(incidents).where(incidents.c.id == incident_id)).mappings().one()
    assert stored["sla_elapsed_seconds"] == 0.0 and stored["resolved_at"] is None and stored["problem_id"] is None


def test_the_live_lookups_are_planned_at_each_run_never_prepared(pg_database_url: str, example_rules):
    """psycopg prepares a statement at its fifth run, and PostgreSQL keeps the generic plan it made
    then: made while a new install's table was nearly empty, it scanned the whole table per key
    once the table had grown (the paced bench fell from 425 to 75 notifications/s). The lookup
    of live incidents and of their heads is planned each time, from the table as it is."""
    store = Store.from_url(pg_database_url)
    empty_tables(store)
    try:
        ingest(store, example_rules, "alertmanager", payload_bytes("alertmanager-0.25-two-firing.json"), T0)
        keys = [incident.dedup_key for incident in store.list_incidents(IncidentFilter(), 10, None).items]

        def heads_then_prepared(conn):
            for _ in range(10):
                assert len(store.live_heads(conn, keys, IncidentState.FIRING)[0]) == 2
                assert len(store.live_rows(conn, keys).incidents(keys)) == 2
            return conn.exec_driver_sql("SELECT statement FROM pg_prepared_statements").scalars().all()

        prepared = store.run(heads_then_prepared)
    finally:
        store.engine.dispose()
    assert not [statement for statement in prepared if "live.*" in statement], prepared


_GROWN_INCIDENTS = (
    "INSERT INTO incidents (dedup_key, source, state, line, impact, urgency, priority, route, summary, "
    "labels, annotations, occurrences, reopen_count, first_seen, last_seen) "
    "SELECT 'k' || (g - g / 5000 * 5000), 'alertmanager', CASE WHEN g <= 2000 THEN 'firing' WHEN g <= 8000 THEN 'resolved' "
    "ELSE 'closed' END, 'L1', 'high', 'high', 'P1', 'r', 's', '{{}}', '{{}}', 1, 0, {now}, {now} FROM {series}"
)


def _grow_incidents(conn: sa.Connection) -> None:
    """20,000 incidents over 5,000 keys (2,000 firing, 6,000 resolved, the rest closed), no statistics."""
    if conn.dialect.name == "sqlite":
        series = "(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < 20000) SELECT g FROM s)"
        conn.exec_driver_sql(_GROWN_INCIDENTS.format(now="'2026-11-25 10:00:00.000000'", series=series))
    else:
        conn.exec_driver_sql(_GROWN_INCIDENTS.format(now="now()", series="generate_series(1, 20000) AS g"))


@pytest.mark.parametrize("reading", [incident_rows._WHOLE, incident_rows._HEADS], ids=["whole", "heads"])
def test_the_live_lookups_probe_the_key_indexes_on_a_grown_table(store: Store, reading):
    """A key's firing incident and its resolved ones are read through their two partial indexes,
    never by scanning the table or an index led by the state, before any ANALYZE."""
    empty_tables(store)
    keys = ["k1", "k2", "k4999", "nothing"]
    with store.engine.begin() as conn:
        _grow_incidents(conn)
        if conn.dialect.name == "sqlite":
            plan = "\n".join(
                str(row[3])
                for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + reading.sqlite, ('["k1"]',)).fetchall()
            )
        else:
            listed = orjson.dumps(keys).decode()
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + reading.postgres, (listed,)))
        conn.rollback()
    assert "ux_incidents_firing_dedup_key" in plan and "ix_incidents_resolved_dedup_key" in plan, plan
    assert "SCAN incidents" not in plan and "Seq Scan on incidents" not in plan, plan


def test_the_live_incident_of_a_key_is_its_firing_one_else_its_newest_resolved(store: Store):
    """Firing before resolved, the newest resolved of several, and a key with only closed ones has none."""
    empty_tables(store)
    with store.engine.begin() as conn:
        _grow_incidents(conn)
        ids = {
            (key, state): sorted(found)
            for key, state, found in (
                (
                    key,
                    state,
                    [
                        row[0]
                        for row in conn.execute(
                            sa.select(incidents.c.id).where(incidents.c.dedup_key == key, incidents.c.state == state)
                        )
                    ],
                )
                for key in ("k1", "k2500", "k4999")
                for state in ("firing", "resolved", "closed")
            )
        }
        conn.exec_driver_sql("UPDATE incidents SET state = 'closed' WHERE dedup_key = 'k4999'")
        live = store.live_rows(conn, ["k1", "k2500", "k4999", "nothing"]).incidents(["k1", "k2500", "k4999", "nothing"])
        heads, with_live = store.live_heads(conn, ["k1", "k2500", "k4999", "nothing"], IncidentState.RESOLVED)
        conn.rollback()
    assert ids[("k1", "firing")] and live["k1"].id == ids[("k1", "firing")][0]
    assert not ids[("k2500", "firing")] and len(ids[("k2500", "resolved")]) == 2
    assert live["k2500"].id == max(ids[("k2500", "resolved")]) and live["k2500"].state is IncidentState.RESOLVED
    assert set(live) == {"k1", "k2500"} and with_live == {"k1", "k2500"}
    assert set(heads) == {"k2500"} and heads["k2500"].id == live["k2500"].id


@pytest.mark.parametrize("change", [{"occurrences": 2**80}], ids=["integer"])  # past any integer column
def test_a_new_incident_the_database_refuses_is_a_data_refusal(store: Store, example_rules, change):
    """Whatever the store, a value no column can take refuses the insert as bad data (400), never a crash."""
    ingest(store, example_rules, "alertmanager", payload_bytes("alertmanager-0.25-two-firing.json"), T0)
    [first, *_] = store.list_incidents(IncidentFilter(), 10, None).items

    def insert(conn):
        [incident] = store.live_rows(conn, [first.dedup_key]).incidents([first.dedup_key]).values()
        new = incident.copy()
        new.id, new.dedup_key = None, "refused"
        for name, value in change.items():
            setattr(new, name, value)
        store.save_incidents(conn, [(new, None)], {})

    with pytest.raises(DataRefused):
        store.run(insert)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "change",
    [{"route": "r" * 201}, {"summary": "nul\x00byte"}, {"labels": {"nul": "a\x00b"}}],
    ids=["long", "nul", "nul-in-json"],
)
def test_postgresql_refuses_a_long_or_nul_value_of_a_new_incident(pg_database_url: str, example_rules, change):
    """Through the rows' JSON document, a VARCHAR(200) column still refuses 201 characters (no silent cut)
    and text and JSONB still refuse NUL."""
    store = Store.from_url(pg_database_url)
    empty_tables(store)
    try:
        test_a_new_incident_the_database_refuses_is_a_data_refusal(store, example_rules, change)
    finally:
        store.engine.dispose()
