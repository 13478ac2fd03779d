"""Group commit on SQLite and PostgreSQL: a group of webhooks written in one transaction leaves
what writing them one by one leaves (problem decisions are dated at the group's end)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import orjson
import sqlalchemy as sa

from bridge.ingest.deliveries import Delivery, prepare_delivery, write_deliveries
from bridge.storage.schema import incidents, notifications, outbox, problems, rejected_payloads
from bridge.storage.store import Store
from tests.conftest import empty_tables, ingest, payload

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def sequence() -> list[tuple[str, bytes]]:
    """Fire, repeat, resolve, re-fire (a newer episode), a partly refused body, and Zabbix: shared keys
    across the group, a problem opening at its threshold and incidents joining it."""
    two_firing = payload("alertmanager-0.25-two-firing.json")
    partly_bad = copy.deepcopy(two_firing)
    partly_bad["alerts"].append({"status": "firing", "labels": "not a map"})
    steps = [
        ("alertmanager", two_firing),
        ("alertmanager", two_firing),
        ("alertmanager", payload("alertmanager-0.25-one-resolved-one-firing.json")),
        ("alertmanager", payload("alertmanager-0.25-repeat-after-resolve.json")),
        ("alertmanager", partly_bad),
        ("zabbix", payload("zabbix-6.0.14-problem.json")),
        ("zabbix", payload("zabbix-6.0.14-update-ack.json")),
        ("zabbix", payload("zabbix-6.0.14-recovery.json")),
    ]
    return [(source, orjson.dumps(body)) for source, body in steps]


def snapshot(store: Store) -> dict[str, object]:
    """What the tables hold, with database ids replaced by order of appearance."""
    with store.engine.connect() as conn:
        notification_order = {
            row.id: n for n, row in enumerate(conn.execute(sa.select(notifications.c.id).order_by(notifications.c.id)))
        }
        problem_order = {
            row.id: n for n, row in enumerate(conn.execute(sa.select(problems.c.id).order_by(problems.c.id)))
        }
        incident_rows = [
            (
                row.dedup_key,
                row.state,
                row.occurrences,
                row.reopen_count,
                row.priority,
                row.first_seen,
                row.last_seen,
                row.resolved_at,
                row.sla_due,
                problem_order.get(row.problem_id),
                notification_order.get(row.last_notification_id),
            )
            for row in conn.execute(sa.select(incidents).order_by(incidents.c.dedup_key, incidents.c.first_seen))
        ]
        problem_rows = [
            (row.problem_key, row.state, row.incident_count)
            for row in conn.execute(sa.select(problems).order_by(problems.c.id))
        ]
        jobs = sorted((row.kind, problem_order.get(row.problem_id)) for row in conn.execute(sa.select(outbox)))
        bodies = [
            (row.source, row.received_at, row.alert_count, row.rejected_count)
            for row in conn.execute(sa.select(notifications).order_by(notifications.c.id))
        ]
        refused = [
            (row.source, row.reason, row.partial)
            for row in conn.execute(sa.select(rejected_payloads).order_by(rejected_payloads.c.id))
        ]
    return dict(incidents=incident_rows, problems=problem_rows, jobs=jobs, notifications=bodies, rejected=refused)


def decision_times(store: Store) -> set[datetime]:
    """When problems were opened and their jobs queued."""
    with store.engine.connect() as conn:
        return {row.opened_at for row in conn.execute(sa.select(problems.c.opened_at))} | {
            row.next_attempt_at for row in conn.execute(sa.select(outbox.c.next_attempt_at))
        }


def test_a_group_leaves_what_one_by_one_leaves(store: Store, example_rules):
    steps = sequence()
    one_by_one = [
        ingest(store, example_rules, source, body, T0 + timedelta(seconds=n)) for n, (source, body) in enumerate(steps)
    ]
    expected = snapshot(store)
    empty_tables(store)

    deliveries: list[Delivery] = [
        prepare_delivery(store, example_rules, source, body, T0 + timedelta(seconds=n))
        for n, (source, body) in enumerate(steps)
    ]
    grouped = write_deliveries(store, example_rules, deliveries)

    assert snapshot(store) == expected
    # Problem decisions are taken once for the group, at its latest notification's time.
    assert decision_times(store) == {T0 + timedelta(seconds=len(steps) - 1)}
    assert [r.outcomes for r in grouped] == [r.outcomes for r in one_by_one]
    assert [len(r.incident_ids) for r in grouped] == [len(r.incident_ids) for r in one_by_one]
    assert len(expected["incidents"]) >= 3 and expected["problems"], "the sequence exercises problems"
    assert expected["rejected"] == [("alertmanager", "1 of 3 alerts refused", True)]
