"""Two `serve` processes on one PostgreSQL, fed the same notifications at once (an HA pair)."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from bridge.storage.store import Store
from tests.conftest import BridgeProcess, empty_tables

pytestmark = pytest.mark.postgres
TOKEN = "am-token"


def notification(fingerprints: list[str], status: str = "firing") -> bytes:
    start = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    alerts = [
        {
            "status": status,
            "labels": {"alertname": "Storm", "service": "lkk", "instance": fp, "severity": "critical"},
            "annotations": {},
            "startsAt": start.isoformat(),
            "endsAt": (start + timedelta(minutes=5)).isoformat() if status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": fp,
        }
        for fp in fingerprints
    ]
    return json.dumps(
        {
            "version": "4",
            "status": status,
            "receiver": "bridge",
            "groupKey": "{}:{}",
            "truncatedAlerts": 0,
            "alerts": alerts,
        }
    ).encode()


def test_two_servers_one_database_make_one_incident_per_fingerprint(pg_database_url: str):
    store = Store.from_url(pg_database_url)
    empty_tables(store)
    fingerprints = [f"{n:016x}" for n in range(40)]
    batches = [fingerprints[i : i + 10] for i in range(0, 40, 10)]
    env = {"BRIDGE_TOKEN_ALERTMANAGER": TOKEN, "BRIDGE_RUN_WORKER": "0"}
    with BridgeProcess(pg_database_url, env=env) as one, BridgeProcess(pg_database_url, env=env) as two:

        def send(args: tuple[str, bytes]) -> int:
            url, body = args
            return requests.post(
                url + "/api/v1/alerts/alertmanager",
                data=body,
                timeout=30,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            ).status_code

        # Every batch three times to each server, interleaved, from 16 concurrent senders.
        jobs = [(server.url, notification(batch)) for _ in range(3) for batch in batches for server in (one, two)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            assert set(pool.map(send, jobs)) == {200}
        resolves = [(server.url, notification(batch, "resolved")) for batch in batches for server in (one, two)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            assert set(pool.map(send, resolves)) == {200}

    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT dedup_key, count(*), sum(occurrences), min(state), max(state) FROM incidents GROUP BY dedup_key"
        ).all()
    store.engine.dispose()
    assert len(rows) == 40
    assert {row[0] for row in rows} == {f"alertmanager:{fp}" for fp in fingerprints}
    assert all(row[1:] == (1, 6, "resolved", "resolved") for row in rows), rows


@pytest.mark.parametrize("search", ["consistent", "lagging"])
def test_two_servers_and_two_workers_file_exactly_one_jira_issue(pg_database_url: str, search: str):
    """Lagging: Jira's search shows a new issue 2 s late and the first create's answer is lost
    (the client times out after 1 s), so the retry must wait for the index, not file a twin."""
    from tests.fakes import FakeJira

    store = Store.from_url(pg_database_url)
    empty_tables(store)
    with FakeJira() as jira:
        env = {
            "BRIDGE_TOKEN_ALERTMANAGER": TOKEN,
            "BRIDGE_RUN_WORKER": "1",
            "BRIDGE_WORKER_INTERVAL_SECONDS": "0.2",
            "BRIDGE_JIRA_URL": jira.url,
            "BRIDGE_JIRA_EMAIL": "bot@example.com",
            "BRIDGE_JIRA_API_TOKEN": "jira-token",
        }
        if search == "lagging":
            jira.lag_search(2.0)
            jira.fail("POST", r"/rest/api/3/issue$", lose_answer=True, delay=1.5)
            env.update(BRIDGE_JIRA_TIMEOUT_SECONDS="1", BRIDGE_JIRA_SEARCH_SETTLE_SECONDS="6")
        fingerprints = [f"{n:016x}" for n in range(20)]
        with BridgeProcess(pg_database_url, env=env) as one, BridgeProcess(pg_database_url, env=env) as two:

            def send(args: tuple[str, bytes]) -> int:
                url, body = args
                return requests.post(
                    url + "/api/v1/alerts/alertmanager",
                    data=body,
                    timeout=30,
                    headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                ).status_code

            # Alertmanager's group: the same alertname, every alert a distinct instance.
            jobs = [(server.url, notification([fp])) for _ in range(2) for fp in fingerprints for server in (one, two)]
            with ThreadPoolExecutor(max_workers=16) as pool:
                assert set(pool.map(send, jobs)) == {200}
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with store.engine.connect() as conn:
                    linked = conn.exec_driver_sql(
                        "SELECT count(*) FROM problems WHERE jira_key IS NOT NULL"
                    ).scalar_one()
                    pending = conn.exec_driver_sql("SELECT count(*) FROM outbox WHERE state = 'pending'").scalar_one()
                if linked and not pending:
                    break
                time.sleep(0.2)
            time.sleep(1)  # both workers idle a little longer: no late twin may appear
        with store.engine.connect() as conn:
            problem_rows = conn.exec_driver_sql("SELECT id, jira_key, incident_count FROM problems").all()
            ensure_attempts = conn.exec_driver_sql(
                "SELECT attempts FROM outbox WHERE kind = 'jira.ensure_issue'"
            ).scalar_one()
            in_problem = conn.exec_driver_sql(
                "SELECT count(*) FROM incidents WHERE problem_id IS NOT NULL"
            ).scalar_one()
        store.engine.dispose()
        [(problem_id, jira_key, incident_count)] = problem_rows
        issues = jira.issues()
        assert [i["key"] for i in issues] == [jira_key]
        assert f"incident-bridge-problem-{problem_id}" in issues[0]["fields"]["labels"]
        assert incident_count == in_problem == 20
        assert len(jira.calls("POST", r"/rest/api/3/issue$")) == 1
        assert len(jira.remote_links(jira_key)) == 1
        assert issues[0]["properties"]["incident-bridge.problem"]["problem_id"] == problem_id
        if search == "lagging":
            assert ensure_attempts >= 2, "the lost answer made the create job run again"
            assert len(jira.calls("GET", r"/rest/api/3/search/jql")) >= 2
