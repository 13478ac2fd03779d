"""The store on SQLite and PostgreSQL: schema, uniqueness, ingest and races."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from bridge.domain.incidents import IncidentState, Outcome
from bridge.errors import BadPayload, StoreUnavailable
from bridge.storage.engine import _alembic_config, make_engine, migrate
from bridge.storage.read_models import IncidentFilter
from bridge.storage.schema import incidents, metadata, notifications, rejected_payloads
from bridge.storage.store import Store
from tests.conftest import (
    PG_ADMIN_URL,
    empty_tables,
    ingest,
    ingest_concurrently,
    new_pg_database,
    payload,
    payload_bytes,
)

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def incident_row(**values):
    row = dict(
        dedup_key="k",
        source="alertmanager",
        state="firing",
        line="L3",
        impact="low",
        urgency="low",
        priority="P5",
        route="defaults",
        summary="s",
        labels={},
        annotations={},
        occurrences=1,
        reopen_count=0,
        first_seen=T0,
        last_seen=T0,
        episode_started_at=None,
        resolved_at=None,
        closed_at=None,
        close_reason=None,
        auto_close_at=None,
        problem_id=None,
        last_notification_id=None,
    )
    row.update(values)
    return row


def test_migrations_match_the_table_definitions(store: Store):
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert [d for d in diff if d[0] != "remove_table"] == []


def test_database_refuses_a_second_firing_incident_for_a_key(store: Store):
    with store.engine.begin() as conn:
        conn.execute(incidents.insert(), incident_row())
        conn.execute(incidents.insert(), incident_row(state="resolved"))
    with pytest.raises(IntegrityError):
        with store.engine.begin() as conn:
            conn.execute(incidents.insert(), incident_row())


def test_datetimes_come_back_as_aware_utc(store: Store):
    moscow = datetime(2026, 11, 23, 22, 0, tzinfo=UTC).astimezone(ZoneInfo("Europe/Moscow"))
    with store.engine.begin() as conn:
        conn.execute(incidents.insert(), incident_row(first_seen=moscow, last_seen=moscow))
    [incident] = store.list_incidents(IncidentFilter(), 10, None).items
    assert incident.first_seen == moscow and incident.first_seen.tzinfo == UTC


def test_recorded_alertmanager_sequence_makes_one_incident_per_fingerprint(store: Store, example_rules):
    names = [
        "alertmanager-0.25-two-firing.json",
        "alertmanager-0.25-one-resolved-one-firing.json",
        "alertmanager-0.25-repeat-after-resolve.json",
        "alertmanager-0.25-repeat-after-resolve.json",
    ]
    outcomes = [
        ingest(store, example_rules, "alertmanager", payload_bytes(name), T0 + timedelta(seconds=i)).outcomes
        for i, name in enumerate(names)
    ]
    assert outcomes == [{"created": 2}, {"resolved": 1, "repeated": 1}, {"repeated": 1}, {"repeated": 1}]
    items = {i.dedup_key: i for i in store.list_incidents(IncidentFilter(), 10, None).items}
    assert set(items) == {"alertmanager:3d64f6474bce3ff4", "alertmanager:11e44d6c5771e52b"}
    a, b = items["alertmanager:3d64f6474bce3ff4"], items["alertmanager:11e44d6c5771e52b"]
    assert (a.state, a.occurrences) == (IncidentState.RESOLVED, 1)
    assert (b.state, b.occurrences, b.priority, b.line) == (IncidentState.FIRING, 4, "P1", "L3")
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(notifications)).scalar_one() == 4


def test_zabbix_problem_update_recovery_on_one_incident(store: Store, example_rules):
    for name in [
        "zabbix-6.0.14-problem.json",
        "zabbix-6.0.14-update-ack.json",
        "zabbix-6.0.14-recovery.json",
        "zabbix-6.0.14-problem.json",
    ]:
        ingest(store, example_rules, "zabbix", payload_bytes(name), T0)
    [incident] = store.list_incidents(IncidentFilter(source="zabbix"), 10, None).items
    assert (incident.dedup_key, incident.state, incident.occurrences) == ("zabbix:1", IncidentState.RESOLVED, 1)
    assert incident.labels["trigger_id"] == "23133" and incident.labels["host"] == "lkk-app-1"


def test_refused_payload_is_kept_with_its_reason(store: Store, example_rules):
    with pytest.raises(BadPayload):
        ingest(store, example_rules, "alertmanager", b'{"version": "4", \x00 broken', T0, content_type="text/plain")
    [row] = store.list_rejected(10, None).items
    assert row["reason"] == "body is not valid JSON" and row["partial"] is False
    assert row["content_type"] == "text/plain" and "\ufffd" in store.get_rejected(row["id"])["body"]


def test_good_alerts_survive_a_bad_neighbour(store: Store, example_rules):
    body = payload("alertmanager-0.25-two-firing.json")
    body["alerts"][1]["labels"] = "not a map"
    result = ingest(store, example_rules, "alertmanager", json.dumps(body).encode(), T0)
    assert [r.outcome for r in result.results] == [Outcome.CREATED]
    assert len(store.list_incidents(IncidentFilter(), 10, None).items) == 1
    [row] = store.list_rejected(10, None).items
    assert row["partial"] is True and row["errors"] == ["alerts[1].labels: Input should be a valid dictionary"]


def test_rejected_body_is_truncated_to_the_limit(store: Store, example_rules):
    with pytest.raises(BadPayload):
        ingest(store, example_rules, "zabbix", b"[" * 5000, T0, rejected_body_limit=100)
    [row] = store.list_rejected(10, None).items
    assert (row["body_bytes"], row["body_truncated"]) == (100, True)
    assert len(store.get_rejected(row["id"])["body"]) == 100


def test_auto_close_closes_only_resolved_incidents_outside_problems_when_due(store: Store):
    with store.engine.begin() as conn:
        conn.execute(
            incidents.insert(),
            [
                incident_row(dedup_key="due", state="resolved", resolved_at=T0, auto_close_at=T0 + timedelta(hours=1)),
                incident_row(
                    dedup_key="later", state="resolved", resolved_at=T0, auto_close_at=T0 + timedelta(hours=3)
                ),
                incident_row(
                    dedup_key="in-problem",
                    state="resolved",
                    resolved_at=T0,
                    auto_close_at=T0 + timedelta(hours=1),
                    problem_id=5,
                ),
                incident_row(dedup_key="firing"),
            ],
        )
    closed = store.close_resolved_due(T0 + timedelta(hours=2))
    assert len(closed) == 1
    states = {i.dedup_key: (i.state, i.close_reason) for i in store.list_incidents(IncidentFilter(), 10, None).items}
    assert states == {
        "due": (IncidentState.CLOSED, "auto_closed"),
        "later": (IncidentState.RESOLVED, None),
        "in-problem": (IncidentState.RESOLVED, None),
        "firing": (IncidentState.FIRING, None),
    }
    assert store.close_resolved_due(T0 + timedelta(hours=2)) == [], "a second pass changes nothing"


def test_listing_filters_and_pages_newest_first(store: Store):
    with store.engine.begin() as conn:
        conn.execute(incidents.insert(), [incident_row(dedup_key=f"k{i}", priority=f"P{1 + i % 2}") for i in range(5)])
    first = store.list_incidents(IncidentFilter(priority="P1"), 2, None)
    assert [i.dedup_key for i in first.items] == ["k4", "k2"] and first.next_cursor is not None
    second = store.list_incidents(IncidentFilter(priority="P1"), 2, first.next_cursor)
    assert [i.dedup_key for i in second.items] == ["k0"] and second.next_cursor is None


def test_concurrent_notifications_make_one_incident_per_fingerprint(database_url: str, example_rules):
    """Eight writers (separate engines) deliver the same notifications at once."""
    ingest_concurrently(database_url, example_rules, [[payload_bytes("alertmanager-0.25-two-firing.json")] * 5] * 8)
    store = Store.from_url(database_url)
    items = store.list_incidents(IncidentFilter(), 50, None).items
    store.engine.dispose()
    assert sorted(i.dedup_key for i in items) == ["alertmanager:11e44d6c5771e52b", "alertmanager:3d64f6474bce3ff4"]
    assert [i.occurrences for i in items] == [40, 40], "every delivery counted exactly once"


def test_rejected_payload_listing_filters_by_source(store: Store):
    with store.engine.begin() as conn:
        for source in ("zabbix", "alertmanager"):
            conn.execute(
                rejected_payloads.insert(),
                dict(
                    source=source, received_at=T0, reason="r", errors=[], partial=False, body="{}", body_truncated=False
                ),
            )
    assert [row["source"] for row in store.list_rejected(10, None, "zabbix").items] == ["zabbix"]


def test_nul_characters_in_labels_are_refused_before_the_database(store: Store, example_rules):
    body = payload("alertmanager-0.25-two-firing.json")
    body["alerts"][0]["labels"]["instance"] = "a\u0000b"
    result = ingest(store, example_rules, "alertmanager", json.dumps(body).encode(), T0)
    assert [r.outcome for r in result.results] == [Outcome.CREATED]
    [row] = store.list_rejected(10, None).items
    assert row["errors"] == ["alerts[0].labels.instance: NUL characters are not allowed"]


def test_repeated_enqueue_keeps_one_pending_job_even_once_statements_are_prepared(store: Store):
    """psycopg prepares a statement after a few runs; the partial-index upsert must still match."""
    from bridge.storage.schema import outbox

    for _ in range(12):
        store.run(lambda conn: store.enqueue(conn, "test.job", target="jira", now=T0, dedup_key="same"))
        store.run(lambda conn: store.enqueue(conn, "test.job", target="jira", now=T0, dedup_key=None))
    with store.engine.connect() as conn:
        kinds = conn.execute(sa.select(outbox.c.dedup_key)).scalars().all()
    assert kinds.count("same") == 1 and kinds.count(None) == 12


def test_sqlite_writers_of_two_processes_queue_on_the_lock_file(tmp_path):
    """A second process's write waits for the first's to end, then goes at once (no polling sleeps)."""
    url = f"sqlite:///{tmp_path}/queue.db"
    Store.from_url(url).engine.dispose()
    held, release = multiprocessing.Event(), multiprocessing.Event()

    def hold_the_lock() -> None:
        store = Store.from_url(url)
        with store._writers.hold():
            held.set()
            release.wait(10)

    child = multiprocessing.get_context("fork").Process(target=hold_the_lock)
    child.start()
    assert held.wait(10)
    store = Store.from_url(url)
    acquired = []
    waiter = threading.Thread(target=lambda: store.run(lambda conn: acquired.append(time.monotonic())))
    waiter.start()
    waiter.join(0.5)
    assert acquired == [], "the write went ahead while another process held the lock"
    released_at = time.monotonic()
    release.set()
    waiter.join(10)
    child.join(10)
    assert acquired and acquired[0] - released_at < 0.05
    assert (tmp_path / "queue.db-writers.lock").exists()


def test_a_redelivered_zabbix_event_does_not_rewrite_source_ids(store: Store, example_rules):
    """Zabbix resends an event on retries and escalations: the repeat writes last_seen, not the id list."""
    body = payload_bytes("zabbix-6.0.14-problem.json")
    ingest(store, example_rules, "zabbix", body, T0)
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        ingest(store, example_rules, "zabbix", body, T0 + timedelta(minutes=1))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    updates = [s for s in statements if s.lstrip().upper().startswith("UPDATE INCIDENTS")]
    assert updates and not any("source_ids" in s for s in updates)
    [incident] = store.list_incidents(IncidentFilter(source="zabbix"), 10, None).items
    assert (incident.source_ids, incident.last_seen) == (["1"], T0 + timedelta(minutes=1))


def test_a_connection_lost_while_idle_is_replaced_without_an_error(pg_database_url: str, example_rules):
    """No pre-ping round trip per transaction: a pooled connection the server dropped (a restart, a
    proxy's idle timeout) fails its first statement, and the write and the read are retried on a
    fresh one. Nothing is written twice."""
    store = Store.from_url(pg_database_url)
    empty_tables(store)
    try:
        ingest(store, example_rules, "alertmanager", payload_bytes("alertmanager-0.25-two-firing.json"), T0)
        pids = store.read(lambda conn: conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (pg_database_url.rsplit("/", 1)[1],),
            )
        result = ingest(store, example_rules, "alertmanager", payload_bytes("alertmanager-0.25-two-firing.json"), T0)
        assert result.outcomes == {"repeated": 2}
        assert store.read(lambda conn: conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()) != pids
        occurrences = store.read(
            lambda conn: conn.execute(sa.select(sa.func.sum(incidents.c.occurrences))).scalar_one()
        )
        assert occurrences == 4
    finally:
        store.engine.dispose()


def test_a_connection_lost_at_commit_is_not_retried(pg_database_url: str):
    """The commit may have happened before the connection went: running the work again could write
    it twice, so the caller gets a 503 (the sender retries, and dedup absorbs a repeat)."""
    store = Store.from_url(pg_database_url)
    empty_tables(store)
    runs = []

    def work_then_lose_the_connection(conn):
        runs.append(1)
        conn.execute(incidents.insert(), incident_row())
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            for _ in range(100):
                if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                    break
                time.sleep(0.01)

    try:
        with pytest.raises(StoreUnavailable):
            store.run(work_then_lose_the_connection)
        assert len(runs) == 1
        assert (
            store.read(lambda conn: conn.execute(sa.select(sa.func.count()).select_from(incidents)).scalar_one()) == 0
        )
    finally:
        store.engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0013_goes_down_and_up_again(backend: str, tmp_path):
    """An operator can step back before the resolved keys' index and forward again: the schema ends as defined."""
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'steps.db'}" if backend == "sqlite" else stack.enter_context(new_pg_database())
        migrate(url)
        alembic_command.downgrade(_alembic_config(url), "0012")
        engine = make_engine(url)
        before = {index["name"] for index in sa.inspect(engine).get_indexes("incidents")}
        engine.dispose()
        migrate(url)
        engine = make_engine(url)
        after = {index["name"] for index in sa.inspect(engine).get_indexes("incidents")}
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        engine.dispose()
    assert "ix_incidents_dedup_key_state" in before and "ix_incidents_resolved_dedup_key" not in before
    assert after == {index.name for index in incidents.indexes}
    assert [d for d in diff if d[0] != "remove_table"] == []
