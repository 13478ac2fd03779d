"""Plain repeats on SQLite and PostgreSQL: counting a repeat from the firing incident's head leaves
every column of every row as the whole lifecycle on the whole row leaves it (issue 15)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import sqlalchemy as sa

from bridge.ingest import deliveries as ingest_module
from bridge.ingest.deliveries import prepare_delivery, write_deliveries
from bridge.storage.read_models import IncidentFilter
from bridge.storage.schema import incidents, notifications, problems
from bridge.storage.store import Store
from tests.conftest import empty_tables, ingest, payload

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def sequence() -> list[tuple[str, bytes]]:
    """Re-sends (counted and, for Zabbix, not), near-misses (a changed annotation, an acknowledgement,
    a newer episode), resolves and reopens, across Alertmanager, Zabbix and Grafana."""
    two_firing = payload("alertmanager-0.25-two-firing.json")
    annotated = copy.deepcopy(two_firing)
    annotated["alerts"][0]["annotations"]["description"] = "now with a description"
    steps = [
        ("alertmanager", two_firing),
        ("alertmanager", two_firing),
        ("alertmanager", two_firing),
        ("alertmanager", annotated),
        ("alertmanager", annotated),
        ("zabbix", payload("zabbix-6.0.14-problem.json")),
        ("zabbix", payload("zabbix-6.0.14-problem.json")),
        ("zabbix", payload("zabbix-6.0.14-update-ack.json")),
        ("zabbix", payload("zabbix-6.0.14-problem.json")),
        ("grafana", payload("grafana-11-values.json")),
        ("grafana", payload("grafana-11-values.json")),
        ("alertmanager", payload("alertmanager-0.25-one-resolved-one-firing.json")),
        ("alertmanager", payload("alertmanager-0.25-one-resolved-one-firing.json")),  # a re-sent resolve
        ("alertmanager", payload("alertmanager-0.25-repeat-after-resolve.json")),
        ("alertmanager", payload("alertmanager-0.25-repeat-after-resolve.json")),
        ("zabbix", payload("zabbix-6.0.14-recovery.json")),
        ("zabbix", payload("zabbix-6.0.14-recovery.json")),
        ("grafana", payload("grafana-11-resolved.json")),
        ("grafana", payload("grafana-11-resolved.json")),
    ]
    return [(source, orjson.dumps(body)) for source, body in steps]


def every_column(store: Store) -> list[tuple[object, ...]]:
    """Every incident row, every column, with database ids replaced by order of appearance."""
    with store.engine.connect() as conn:
        order = {
            table.name: {
                row_id: n for n, row_id in enumerate(conn.execute(sa.select(table.c.id).order_by(table.c.id)).scalars())
            }
            for table in (incidents, notifications, problems)
        }
        rows = conn.execute(sa.select(incidents).order_by(incidents.c.id)).mappings().all()
    return [
        tuple(
            order[{"id": "incidents", "last_notification_id": "notifications", "problem_id": "problems"}[name]].get(
                value
            )
            if name in ("id", "last_notification_id", "problem_id")
            else value
            for name, value in row.items()
        )
        for row in rows
    ]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many incidents each write counted as plain repeats."""
    calls: list[int] = []
    original = Store.count_plain_repeats

    def count(conn, repeats):
        calls.append(len(repeats))
        return original(conn, repeats)

    monkeypatch.setattr(Store, "count_plain_repeats", staticmethod(count))
    return calls


def whole_lifecycle_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key is a candidate: every alert goes through the lifecycle on the whole row."""
    monkeypatch.setattr(ingest_module, "repeat_candidates", lambda _notifications: {})


def test_one_by_one_plain_repeats_leave_what_the_lifecycle_leaves(store: Store, example_rules, counted, monkeypatch):
    steps = sequence()
    fast = [
        ingest(store, example_rules, source, body, T0 + timedelta(minutes=n)) for n, (source, body) in enumerate(steps)
    ]
    expected_rows = every_column(store)
    assert sum(counted) >= 6, "the sequence takes the fast path"
    empty_tables(store)

    whole_lifecycle_only(monkeypatch)
    counted.clear()
    whole = [
        ingest(store, example_rules, source, body, T0 + timedelta(minutes=n)) for n, (source, body) in enumerate(steps)
    ]

    assert sum(counted) == 0
    assert every_column(store) == expected_rows
    assert [r.outcomes for r in fast] == [r.outcomes for r in whole]
    assert [len(r.incident_ids) for r in fast] == [len(r.incident_ids) for r in whole]


def test_a_group_of_plain_repeats_leaves_what_the_lifecycle_leaves(store: Store, example_rules, counted, monkeypatch):
    """Shared keys across the group: repeats before and after a change, a resolve and a reopen."""
    steps = sequence()

    def write_as_groups() -> list[object]:
        results = []
        for start in range(0, len(steps), 5):
            deliveries = [
                prepare_delivery(store, example_rules, source, body, T0 + timedelta(minutes=start + n))
                for n, (source, body) in enumerate(steps[start : start + 5])
            ]
            results.extend(write_deliveries(store, example_rules, deliveries))
        return results

    fast = write_as_groups()
    expected_rows = every_column(store)
    assert sum(counted) >= 2, "the groups take the fast path"
    empty_tables(store)

    whole_lifecycle_only(monkeypatch)
    whole = write_as_groups()

    assert every_column(store) == expected_rows
    assert [r.outcomes for r in fast] == [r.outcomes for r in whole]
    assert [r.incident_ids for r in fast] == [r.incident_ids for r in whole]


def test_a_re_sent_resolve_is_seen_on_the_fast_path_and_counts_nothing(store: Store, example_rules, counted):
    ingest(store, example_rules, "zabbix", orjson.dumps(payload("zabbix-6.0.14-problem.json")), T0)
    ingest(
        store, example_rules, "zabbix", orjson.dumps(payload("zabbix-6.0.14-recovery.json")), T0 + timedelta(hours=1)
    )
    [resolved] = store.list_incidents(IncidentFilter(), 10, None).items
    counted.clear()
    again = ingest(
        store, example_rules, "zabbix", orjson.dumps(payload("zabbix-6.0.14-recovery.json")), T0 + timedelta(hours=2)
    )
    assert counted == [1]
    assert again.outcomes == {"repeated": 1}
    [seen] = store.list_incidents(IncidentFilter(), 10, None).items
    assert (seen.state, seen.occurrences, seen.resolved_at) == (
        resolved.state,
        resolved.occurrences,
        resolved.resolved_at,
    )
    assert seen.last_seen == T0 + timedelta(hours=2)
