"""Problems: repeats of one failure gather under one root problem, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bridge.domain.problems import ProblemState
from bridge.outbox.jobs import CommentIncidents, EnsureIssue
from bridge.storage.problem_repository import problem_from_row
from bridge.storage.read_models import IncidentFilter
from bridge.storage.schema import incidents, outbox, problems
from bridge.storage.store import Store
from tests.conftest import ingest, ingest_concurrently, payload

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def firing(fingerprint: str, alertname: str = "HighErrorRate", service: str = "lkk") -> bytes:
    body = payload("alertmanager-0.25-two-firing.json")
    alert = dict(body["alerts"][0], fingerprint=fingerprint)
    alert["labels"] = dict(alert["labels"], alertname=alertname, service=service, instance=fingerprint)
    body["alerts"] = [alert]
    return json.dumps(body).encode()


def rows(store: Store, table: sa.Table) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]


def test_problem_opens_at_threshold_and_gathers_earlier_incidents(store: Store, example_rules):
    ingest(store, example_rules, "alertmanager", firing("0000000000000001"), T0)
    assert rows(store, problems) == [], "open_after: 2 - one incident waits"
    ingest(store, example_rules, "alertmanager", firing("0000000000000002"), T0 + timedelta(minutes=5))
    [problem] = rows(store, problems)
    assert (problem["problem_key"], problem["state"], problem["incident_count"]) == ("HighErrorRate/lkk", "open", 2)
    assert problem["summary"] == "HighErrorRate keeps failing on lkk"
    ingest(store, example_rules, "alertmanager", firing("0000000000000003"), T0 + timedelta(minutes=6))
    [problem] = rows(store, problems)
    assert problem["incident_count"] == 3
    members = store.list_incidents(IncidentFilter(problem_id=problem["id"]), 10, None).items
    assert len(members) == 3
    jobs = rows(store, outbox)
    assert [(j["kind"], j["problem_id"], j["state"]) for j in jobs] == [(EnsureIssue.KIND, problem["id"], "pending")]


def test_an_incident_joining_an_open_problem_is_written_with_it_not_updated_after(store: Store, example_rules):
    """The problem is decided before the incidents are written: a storm's new rows go in once."""
    for n in (1, 2):
        ingest(store, example_rules, "alertmanager", firing(f"{n:016x}"), T0 + timedelta(minutes=n))
    [problem] = rows(store, problems)
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    ingest(store, example_rules, "alertmanager", firing("0000000000000003"), T0 + timedelta(minutes=3))
    assert [s for s in statements if s.lstrip().upper().startswith("UPDATE INCIDENTS")] == []
    joined = [row for row in rows(store, incidents) if row["problem_id"] == problem["id"]]
    assert len(joined) == 3
    assert rows(store, problems)[0]["incident_count"] == 3


def test_incidents_joining_a_linked_problem_are_counted_for_one_throttled_comment(store: Store, example_rules):
    """Each join adds to the pending comment; the pending count starts at the first join and one job waits."""
    for n in (1, 2):
        ingest(store, example_rules, "alertmanager", firing(f"{n:016x}"), T0 + timedelta(minutes=n))
    [problem] = rows(store, problems)
    assert store.run(lambda conn: store.link_issue(conn, problem["id"], "LKK-7", "https://jira/LKK-7", "hand"))
    for n in (3, 4):
        ingest(store, example_rules, "alertmanager", firing(f"{n:016x}"), T0 + timedelta(minutes=n))
    [problem] = rows(store, problems)
    assert (problem["incident_count"], problem["comment_pending"]) == (4, 2)
    assert problem["comment_pending_since"] == T0 + timedelta(minutes=3)
    comments = [job for job in rows(store, outbox) if job["kind"] == CommentIncidents.KIND]
    assert [(job["problem_id"], job["state"], job["payload"]) for job in comments] == [(problem["id"], "pending", {})]
    assert comments[0]["next_attempt_at"] == T0 + timedelta(minutes=3)


def test_the_live_problem_read_by_driver_sql_equals_the_one_read_through_sqlalchemy(store: Store, example_rules):
    for n in (1, 2):
        ingest(store, example_rules, "alertmanager", firing(f"{n:016x}"), T0 + timedelta(minutes=n))
    [row] = rows(store, problems)
    assert store.run(lambda conn: store.link_issue(conn, row["id"], "LKK-7", "https://jira/LKK-7", "hand"))
    with store.engine.connect() as conn:
        expected = problem_from_row(conn.execute(sa.select(problems)).mappings().one())
    read = store.run(lambda conn: store.open_problem(conn, "HighErrorRate/lkk"))
    assert read == expected and read.state is ProblemState.KNOWN_ERROR and read.jira_key == "LKK-7"
    for name, value in vars(expected).items():
        assert type(getattr(read, name)) is type(value), name
    assert read.opened_at.tzinfo is UTC
    assert store.run(lambda conn: store.open_problem(conn, "HighErrorRate/other")) is None


def test_incidents_outside_the_window_do_not_count(store: Store, example_rules):
    ingest(store, example_rules, "alertmanager", firing("0000000000000001"), T0)
    ingest(store, example_rules, "alertmanager", firing("0000000000000002"), T0 + timedelta(hours=2))
    assert rows(store, problems) == []


def test_different_failures_make_different_problems(store: Store, example_rules):
    for n, name in enumerate(["A", "A", "B", "B"]):
        ingest(store, example_rules, "alertmanager", firing(f"{n:016x}", alertname=name), T0)
    assert sorted(p["problem_key"] for p in rows(store, problems)) == ["A/lkk", "B/lkk"]


def test_zabbix_problem_opens_at_once_by_trigger_without_jira_job(store: Store, example_rules):
    body = payload("zabbix-6.0.14-problem.json")
    ingest(store, example_rules, "zabbix", json.dumps(body).encode(), T0)
    ingest(store, example_rules, "zabbix", json.dumps(dict(body, event_id="3")).encode(), T0)
    [problem] = rows(store, problems)
    assert (problem["problem_key"], problem["incident_count"]) == ("zabbix-trigger/23133", 2)
    assert rows(store, outbox) == [], "the rule does not ask the bridge to create the issue"


def test_concurrent_writers_open_one_problem_per_key(database_url: str, example_rules):
    writers = [[firing(f"{worker:08x}{n:08x}") for n in range(5)] for worker in range(6)]
    ingest_concurrently(database_url, example_rules, writers)
    store = Store.from_url(database_url)
    [problem] = rows(store, problems)
    creates = [j for j in rows(store, outbox) if j["kind"] == EnsureIssue.KIND]
    in_problem = store.list_incidents(IncidentFilter(problem_id=problem["id"]), 100, None).items
    store.engine.dispose()
    assert len(creates) == 1
    assert problem["incident_count"] == len(in_problem) == 30
