"""Dead letters go back in the queue once their cause is fixed, keeping one pending job per dedup key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from adapters.zabbix_api import ZabbixClient
from bridge.outbox.jobs import SyncIssue, ZabbixClose
from bridge.storage.schema import outbox
from bridge.storage.store import Store
from bridge.worker import OutboxRunner
from jira_link.linker import LinkOptions
from tests.fakes import FakeZabbix

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
OPTIONS = LinkOptions(marker_prefix="incident-bridge", public_url="http://bridge.test")


def enqueue(store: Store, kind: str, dedup_key: str | None, payload: dict | None = None) -> None:
    store.run(
        lambda conn: store.enqueue(conn, kind, target=kind.split(".")[0], now=T0, payload=payload, dedup_key=dedup_key)
    )


def jobs(store: Store) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(outbox).order_by(outbox.c.id)).mappings()]


def zabbix_runner(store: Store, rules, fake: FakeZabbix, token: str) -> OutboxRunner:
    return OutboxRunner(
        store, rules, None, OPTIONS, timedelta(hours=1), 600, zabbix=ZabbixClient(fake.url, token, timeout=5)
    )


def test_dead_close_job_runs_again_once_the_token_is_fixed(store: Store, example_rules):
    enqueue(store, ZabbixClose.KIND, "zabbix.close_problems:LKK:1.0", {"event_ids": ["42"], "message": "fixed in 1.0"})
    with FakeZabbix(api_token="right-token") as zabbix:
        zabbix_runner(store, example_rules, zabbix, "wrong-token").run_due(T0)
        [dead] = jobs(store)
        assert dead["state"] == "dead" and "Not authorised" in dead["last_error"]
        later = T0 + timedelta(days=2)  # past the one-hour deadline: the retry restarts it
        assert store.retry_dead_jobs(later, kind=ZabbixClose.KIND) == ([dead["id"]], {})
        [pending] = jobs(store)
        assert (pending["state"], pending["attempts"], pending["next_attempt_at"]) == ("pending", 0, later)
        zabbix_runner(store, example_rules, zabbix, "right-token").run_due(later)
        assert jobs(store)[0]["state"] == "done" and zabbix.closed() == {"42"}


def test_retry_filters_by_kind_and_id(store: Store):
    for n in range(3):
        enqueue(store, SyncIssue.KIND if n < 2 else ZabbixClose.KIND, f"key-{n}")
        store.bury_job(n + 1, T0, "boom")
    assert store.retry_dead_jobs(T0, kind=ZabbixClose.KIND) == ([3], {})
    assert store.retry_dead_jobs(T0, job_id=1) == ([1], {})
    assert store.retry_dead_jobs(T0, job_id=1) == ([], {}), "no longer dead"
    assert [job["state"] for job in jobs(store)] == ["pending", "dead", "pending"]


def test_dead_job_with_a_pending_twin_is_skipped_not_duplicated(store: Store):
    enqueue(store, SyncIssue.KIND, "jira.sync_issue:LKK-1", {"jira_key": "LKK-1"})
    store.bury_job(1, T0, "HTTP 401")
    enqueue(store, SyncIssue.KIND, "jira.sync_issue:LKK-1", {"jira_key": "LKK-1"})  # a new sync, queued meanwhile
    enqueue(store, SyncIssue.KIND, "jira.sync_issue:LKK-2", {"jira_key": "LKK-2"})
    store.bury_job(3, T0, "HTTP 401")
    assert store.retry_dead_jobs(T0) == ([3], {1: 2})
    assert [job["state"] for job in jobs(store)] == ["dead", "pending", "pending"]
    store.finish_job(2, T0)
    assert store.retry_dead_jobs(T0) == ([1], {}), "once the twin is done, the dead job may run again"


def test_two_dead_twins_give_one_pending_job(store: Store):
    for _ in range(2):
        enqueue(store, SyncIssue.KIND, "jira.sync_issue:LKK-1", {"jira_key": "LKK-1"})
        store.bury_job(len(jobs(store)), T0, "HTTP 401")
    assert store.retry_dead_jobs(T0) == ([2], {1: 2})
