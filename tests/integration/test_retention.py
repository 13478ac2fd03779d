"""Retention on SQLite and PostgreSQL: old raw payloads go, in short batches; what was made of them stays."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bridge.errors import BadPayload
from bridge.storage.read_models import IncidentFilter
from bridge.storage.schema import notifications, rejected_payloads, ui_sessions
from bridge.storage.store import Store
from bridge.worker import Pruner, prune, run_once
from tests.conftest import ingest, payload

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def fire(store: Store, rules, n: int, at: datetime) -> None:
    body = payload("alertmanager-0.25-two-firing.json")
    body["alerts"] = [dict(body["alerts"][0], fingerprint=f"{n:016x}")]
    ingest(store, rules, "alertmanager", json.dumps(body).encode(), at)


def refuse(store: Store, rules, at: datetime, body: bytes = b"{not json") -> None:
    with pytest.raises(BadPayload):
        ingest(store, rules, "alertmanager", body, at)


def count(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_prune_deletes_old_raw_payloads_and_keeps_incidents(store: Store, example_rules):
    for n in range(7):
        fire(store, example_rules, n, T0)
        refuse(store, example_rules, T0)
    fire(store, example_rules, 100, T0 + timedelta(days=31))
    refuse(store, example_rules, T0 + timedelta(days=31))
    deleted = prune(store, T0 + timedelta(days=31, hours=1), timedelta(days=30))
    assert deleted == {"notifications": 7, "rejected_payloads": 7, "ui_sessions": 0}
    assert (count(store, notifications), count(store, rejected_payloads)) == (1, 1)
    kept = store.list_incidents(IncidentFilter(), 50, None).items
    assert len(kept) == 8, "incidents outlive the notifications that made them"
    assert store.get_incident(kept[-1].id).summary == kept[-1].summary


def test_prune_works_in_short_transactions(store: Store, example_rules, monkeypatch):
    for n in range(7):
        fire(store, example_rules, n, T0)
    transactions = []
    real_run = store.run
    monkeypatch.setattr(store, "run", lambda work: transactions.append(1) or real_run(work))
    assert store.prune(T0 + timedelta(seconds=1), batch=3) == {"notifications": 7, "rejected_payloads": 0}
    assert len(transactions) == 3 + 1, "7 rows in batches of 3, then one empty look at rejected_payloads"
    assert count(store, notifications) == 0


def test_rejected_list_carries_no_body_but_its_size(store: Store, example_rules):
    body = '{"déjà": '.encode()
    refuse(store, example_rules, T0, body)
    [listed] = store.list_rejected(10, None).items
    assert "body" not in listed
    assert (listed["body_bytes"], listed["body_truncated"]) == (len(body), False)
    one = store.get_rejected(listed["id"])
    assert one["body"] == body.decode() and one["body_bytes"] == len(body)
    assert store.get_rejected(listed["id"] + 1) is None


def test_worker_prunes_once_a_day(store: Store, example_rules):
    pruner = Pruner(timedelta(days=30))
    fire(store, example_rules, 0, T0 - timedelta(days=40))
    run_once(store, T0, pruner=pruner)
    assert count(store, notifications) == 0
    fire(store, example_rules, 1, T0 - timedelta(days=40))
    run_once(store, T0 + timedelta(hours=23), pruner=pruner)
    assert count(store, notifications) == 1, "not again within the day"
    run_once(store, T0 + timedelta(days=1), pruner=pruner)
    assert count(store, notifications) == 0


def test_the_daily_prune_forgets_sessions_ended_before_the_retention_and_keeps_the_rest(store: Store):
    """Signed out or expired long ago: gone. Live, or ended within the retention: kept (who signed in when)."""
    long_ago, lately = T0 - timedelta(days=40), T0 - timedelta(days=2)
    store.start_session("signed-out-long-ago", "Ann", True, long_ago, long_ago + timedelta(hours=12))
    store.end_session("signed-out-long-ago", long_ago + timedelta(hours=1))
    store.start_session("expired-long-ago", "Ann", True, long_ago, long_ago + timedelta(hours=12))
    store.start_session("signed-out-lately", "Bob", True, lately, lately + timedelta(hours=12))
    store.end_sessions_of("Bob", lately + timedelta(hours=1))
    store.start_session("live", "Ann", False, T0, T0 + timedelta(hours=12))
    assert prune(store, T0, timedelta(days=30))["ui_sessions"] == 2
    assert count(store, ui_sessions) == 2
    assert store.live_session("live", T0) is not None
    assert store.live_session("signed-out-lately", T0) is None
