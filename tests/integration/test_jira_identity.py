"""A problem's Jira link survives a move, a lost create under a lagging search index, and twins.

Each test runs on SQLite and PostgreSQL (the `store` fixture) against the HTTP FakeJira
with one behaviour switched on: `move`, `lag_search`, a lost create answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa

from bridge import metrics
from bridge.errors import BadPayload
from bridge.jira.webhook import handle_jira_webhook
from bridge.problems.actions import link_problem
from bridge.problems.releases import close_release
from bridge.storage.schema import outbox, problems
from bridge.storage.store import Store
from bridge.worker import OutboxRunner
from jira_link.client import JiraClient
from jira_link.identity import PROPERTY_KEY
from jira_link.linker import LinkOptions
from tests.conftest import ingest, payload
from tests.fakes import FakeJira, iter_texts

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
OPTIONS = LinkOptions(marker_prefix="incident-bridge", public_url="http://bridge.test", search_settle_seconds=30)
CREATE = r"/rest/api/3/issue$"


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    with FakeJira() as jira:
        yield jira


def client(fake: FakeJira, timeout: float = 2.0) -> JiraClient:
    return JiraClient.basic(requests.Session(), fake.url, "bot@example.com", "jira-token", timeout=timeout)


@pytest.fixture
def runner(store: Store, example_rules, fake_jira: FakeJira) -> OutboxRunner:
    # Timeout 0.5 s: a create whose answer is lost (the fake stalls 1.5 s) times out after Jira did the work.
    return OutboxRunner(store, example_rules, client(fake_jira, 0.5), OPTIONS, timedelta(hours=1), 600)


def open_problem(store: Store, rules, at: datetime = T0) -> None:
    """Two incidents of one failure: the example rule opens a problem that files a Jira issue."""
    for n in range(2):
        body = payload("alertmanager-0.25-two-firing.json")
        alert = dict(body["alerts"][0], fingerprint=f"{n:016x}")
        alert["labels"] = dict(alert["labels"], alertname="HighErrorRate", instance=f"host-{n}")
        body["alerts"] = [alert]
        ingest(store, rules, "alertmanager", json.dumps(body).encode(), at)


def the_problem(store: Store) -> dict:
    with store.engine.connect() as conn:
        [row] = conn.execute(sa.select(problems)).mappings().all()
    return dict(row)


def ensure_job(store: Store) -> dict:
    with store.engine.connect() as conn:
        [row] = conn.execute(sa.select(outbox).where(outbox.c.kind == "jira.ensure_issue")).mappings().all()
    return dict(row)


def history(store: Store, kind: str) -> list[str]:
    return [e["detail"] for e in store.problem_history(the_problem(store)["id"]) if e["kind"] == kind]


def texts(fake: FakeJira, key: str) -> list[str]:
    return [" ".join(iter_texts(c["body"])) for c in fake.comments(key)]


def webhook(store: Store, jira: JiraClient, rules, event: str, issue: dict, now: datetime) -> dict:
    body = json.dumps({"webhookEvent": event, "issue": issue}).encode()
    return handle_jira_webhook(store, jira, rules, body, now, OPTIONS.marker_prefix)


def release(store: Store, jira: JiraClient, rules, key: str, now: datetime) -> dict:
    return close_release(
        store, jira, rules, project=key.split("-")[0], version="2026.11.9", issues=[key], released_at=now, now=now
    )


def test_a_created_issue_carries_the_problem_property_and_the_link_keeps_its_id(
    store, example_rules, runner, fake_jira
):
    open_problem(store, example_rules)
    runner.run_due(T0)
    [issue] = fake_jira.issues()
    problem = the_problem(store)
    assert (problem["jira_key"], problem["jira_issue_id"]) == (issue["key"], issue["id"])
    assert issue["properties"] == {
        PROPERTY_KEY: {"marker": f"incident-bridge-problem-{problem['id']}", "problem_id": problem["id"]}
    }
    assert f"incident-bridge-problem-{problem['id']}" in issue["fields"]["labels"]
    assert fake_jira.state.schema_violations == []


def test_sync_after_a_move_follows_the_new_key_keeps_history_and_a_release_by_it_closes(
    store, example_rules, runner, fake_jira
):
    open_problem(store, example_rules)
    runner.run_due(T0)
    old = the_problem(store)
    moved_to = fake_jira.move(old["jira_key"], "OPS")
    runner.run_due(T0 + timedelta(minutes=11))  # the periodic sync reads the issue
    problem = the_problem(store)
    assert (problem["jira_key"], problem["jira_project"], problem["jira_issue_id"]) == (
        moved_to,
        "OPS",
        old["jira_issue_id"],
    )
    assert problem["jira_url"].endswith(f"/browse/{moved_to}")
    assert history(store, "jira_moved") == [f"{old['jira_key']} moved to {moved_to}; link follows"]
    assert fake_jira.calls("GET", rf"/rest/api/3/issue/{old['jira_issue_id']}\?"), "addressed by its id"
    summary = release(store, runner.jira, example_rules, moved_to, T0 + timedelta(minutes=20))
    assert summary["closed_problems"] == [problem["id"]]
    assert the_problem(store)["state"] == "closed"


def test_a_release_naming_the_key_an_issue_moved_away_from_closes_its_problem(store, example_rules, runner, fake_jira):
    """The pipeline may still know the issue by its old key (a commit message written before the move)."""
    open_problem(store, example_rules)
    runner.run_due(T0)
    first_key = the_problem(store)["jira_key"]
    fake_jira.move(first_key, "OPS")
    runner.run_due(T0 + timedelta(minutes=11))
    moved_again = fake_jira.move(the_problem(store)["jira_key"], "LKK")
    runner.run_due(T0 + timedelta(minutes=22))
    assert the_problem(store)["jira_key"] == moved_again
    summary = release(store, runner.jira, example_rules, first_key, T0 + timedelta(minutes=30))
    assert (summary["closed_problems"], summary["unmatched_issues"]) == ([the_problem(store)["id"]], [])
    assert the_problem(store)["state"] == "closed"
    stranger = release(store, runner.jira, example_rules, "LKK-999", T0 + timedelta(minutes=31))
    assert stranger["unmatched_issues"] == ["LKK-999"]


def test_a_moved_issues_webhook_finds_its_problem_by_id_and_the_key_follows_jiras_answer(
    store, example_rules, runner, fake_jira
):
    open_problem(store, example_rules)
    runner.run_due(T0)
    old = the_problem(store)
    moved_to = fake_jira.move(old["jira_key"], "OPS")
    issue = {"id": old["jira_issue_id"], "key": moved_to, "fields": {"labels": []}}
    answer = webhook(store, runner.jira, example_rules, "jira:issue_updated", issue, T0 + timedelta(minutes=1))
    assert (answer["action"], answer["jira_key"], answer["move_read_queued"]) == (
        "sync_queued",
        moved_to,
        old["jira_key"],
    )
    assert the_problem(store)["jira_key"] == old["jira_key"], "the body alone relinks nothing"
    runner.run_due(T0 + timedelta(minutes=2))  # the queued sync reads the issue by its id
    assert fake_jira.calls("GET", rf"/rest/api/3/issue/{old['jira_issue_id']}\?")
    problem = the_problem(store)
    assert (problem["jira_key"], problem["jira_project"]) == (moved_to, "OPS")
    assert history(store, "jira_moved") == [f"{old['jira_key']} moved to {moved_to}; link follows"]
    assert problem["conclusion"] == "Status: To Do"
    summary = release(store, runner.jira, example_rules, moved_to, T0 + timedelta(minutes=20))
    assert summary["closed_problems"] == [problem["id"]]


def test_a_signed_webhook_claiming_a_key_jira_does_not_answer_relinks_nothing(store, example_rules, runner, fake_jira):
    """Someone holding the webhook secret says our issue is now another problem's issue: Jira says otherwise."""
    open_problem(store, example_rules)
    runner.run_due(T0)
    old = the_problem(store)
    fake_jira.add_issue("LKK-77")
    issue = {"id": old["jira_issue_id"], "key": "LKK-77", "fields": {"labels": []}}
    answer = webhook(store, runner.jira, example_rules, "jira:issue_updated", issue, T0 + timedelta(minutes=1))
    assert answer["move_read_queued"] == old["jira_key"]
    runner.run_due(T0 + timedelta(minutes=2))
    problem = the_problem(store)
    assert (problem["jira_key"], problem["jira_issue_id"]) == (old["jira_key"], old["jira_issue_id"])
    assert history(store, "jira_moved") == []


def test_a_key_with_a_trailing_newline_is_not_a_key(store, example_rules, runner, fake_jira):
    open_problem(store, example_rules)
    runner.run_due(T0)
    issue = {"id": the_problem(store)["jira_issue_id"], "key": "LKK-1\n", "fields": {"labels": []}}
    with pytest.raises(BadPayload, match="without an issue key"):
        webhook(store, runner.jira, example_rules, "jira:issue_updated", issue, T0 + timedelta(minutes=1))


def test_a_marker_label_with_a_trailing_newline_asks_for_no_twin_check(store, example_rules, runner, fake_jira):
    open_problem(store, example_rules)
    runner.run_due(T0)
    problem_id = the_problem(store)["id"]
    issue = {"id": "99999", "key": "OPS-5", "fields": {"labels": [f"incident-bridge-problem-{problem_id}\n"]}}
    answer = webhook(store, runner.jira, example_rules, "jira:issue_updated", issue, T0 + timedelta(minutes=1))
    assert answer["action"] == "ignored" and "twin_checks" not in answer


def test_a_lost_create_answer_under_a_lagging_index_still_ends_with_one_issue(store, example_rules, runner, fake_jira):
    fake_jira.lag_search(3600)
    fake_jira.fail("POST", CREATE, lose_answer=True, delay=1.5)
    open_problem(store, example_rules)
    runner.run_due(T0)
    assert ensure_job(store)["state"] == "pending" and "timed out" in ensure_job(store)["last_error"]
    assert the_problem(store)["jira_create_attempted_at"] == T0
    # The retry searches, finds nothing (the index lags) and waits instead of creating a twin.
    runner.run_due(T0 + timedelta(seconds=5))
    job = ensure_job(store)
    assert job["state"] == "pending" and "does not show it yet" in job["last_error"]
    assert T0 + timedelta(seconds=5) < job["next_attempt_at"] <= T0 + timedelta(seconds=11)
    assert len(fake_jira.issues()) == 1 and len(fake_jira.calls("POST", CREATE)) == 1
    fake_jira.lag_search(0)  # the index catches up within the settle time
    runner.run_due(T0 + timedelta(seconds=12))
    [issue] = fake_jira.issues()
    problem = the_problem(store)
    assert (problem["jira_key"], problem["jira_issue_id"]) == (issue["key"], issue["id"])
    assert ensure_job(store)["state"] == "done"
    assert len(fake_jira.calls("POST", CREATE)) == 1
    assert len(fake_jira.remote_links(issue["key"])) == 1


def lose_first_create_then_make_a_twin(store: Store, rules, runner: OutboxRunner, fake_jira: FakeJira) -> None:
    """The index lags longer than the settle time: the retry creates again, and the problem holds the twin."""
    fake_jira.lag_search(3600)
    fake_jira.fail("POST", CREATE, lose_answer=True, delay=1.5)
    open_problem(store, rules)
    runner.run_due(T0)
    runner.run_due(T0 + timedelta(seconds=40))  # settled and still nothing found: create again
    assert [i["key"] for i in fake_jira.issues()] == ["LKK-1", "LKK-2"]
    assert the_problem(store)["jira_key"] == "LKK-2"


def assert_settled_on_the_oldest(store: Store, fake_jira: FakeJira) -> None:
    problem = the_problem(store)
    oldest = fake_jira.issue("LKK-1")
    assert (problem["jira_key"], problem["jira_issue_id"], problem["state"]) == ("LKK-1", oldest["id"], "known_error")
    assert history(store, "jira_twin") == [
        "linked to LKK-1, the oldest issue for this problem, instead of LKK-2 (LKK-2 duplicates LKK-1)"
    ]
    [link] = fake_jira.issue_links("LKK-2")
    assert (link["type"]["name"], link["outwardIssue"]["key"]) == ("Duplicate", "LKK-1")
    assert fake_jira.issue_links("LKK-1")[0]["inwardIssue"]["key"] == "LKK-2"
    assert texts(fake_jira, "LKK-2") == [
        f"Duplicate of LKK-1: incident-bridge filed problem {problem['id']} twice while Jira's search did not show "
        f"the first issue yet. Problem {problem['id']} is linked to LKK-1 only."
    ]
    assert texts(fake_jira, "LKK-1")[0].startswith("LKK-2 duplicates this issue")
    assert f"incident-bridge:problem:{problem['id']}" in fake_jira.remote_links("LKK-1")


def test_a_twin_found_later_at_sync_is_marked_duplicate_and_the_problem_links_to_the_oldest(
    store, example_rules, runner, fake_jira
):
    lose_first_create_then_make_a_twin(store, example_rules, runner, fake_jira)
    before = metrics.JIRA_TWINS.labels("sync")._value.get()
    fake_jira.lag_search(0)
    runner.run_due(T0 + timedelta(minutes=11))  # the periodic sync searches the marker too
    assert_settled_on_the_oldest(store, fake_jira)
    assert metrics.JIRA_TWINS.labels("sync")._value.get() == before + 1
    runner.run_due(T0 + timedelta(minutes=30))  # settled twins are left alone
    assert len(fake_jira.comments("LKK-2")) == 1 and len(fake_jira.calls("POST", r"/issueLink$")) == 1


def test_a_twin_announced_by_a_webhook_is_checked_and_the_problem_links_to_the_oldest(
    store, example_rules, runner, fake_jira
):
    lose_first_create_then_make_a_twin(store, example_rules, runner, fake_jira)
    first = fake_jira.issue("LKK-1")
    answer = webhook(store, runner.jira, example_rules, "jira:issue_created", first, T0 + timedelta(minutes=1))
    assert answer["twin_checks"] == [the_problem(store)["id"]]
    fake_jira.lag_search(0)
    runner.run_due(T0 + timedelta(minutes=2))
    assert_settled_on_the_oldest(store, fake_jira)


def test_twins_found_by_the_create_search_link_the_oldest_only(store, example_rules, runner, fake_jira):
    open_problem(store, example_rules)
    problem_id = the_problem(store)["id"]
    for _ in range(3):  # three earlier creates whose answers were lost, all indexed by now
        fake_jira.add_issue("LKK-" + str(len(fake_jira.issues()) + 1), labels=[f"incident-bridge-problem-{problem_id}"])
    runner.run_due(T0)
    problem = the_problem(store)
    assert (problem["jira_key"], problem["jira_issue_id"]) == ("LKK-1", fake_jira.issue("LKK-1")["id"])
    assert fake_jira.calls("POST", CREATE) == []
    assert [link["outwardIssue"]["key"] for key in ("LKK-2", "LKK-3") for link in fake_jira.issue_links(key)] == [
        "LKK-1",
        "LKK-1",
    ]


def test_linking_by_hand_records_the_issue_id_and_follows_a_moved_key(store, example_rules, fake_jira):
    open_problem(store, example_rules)
    fake_jira.add_issue("LKK-1")
    moved_to = fake_jira.move("LKK-1", "OPS")
    problem_id = the_problem(store)["id"]
    link_problem(store, client(fake_jira), OPTIONS, problem_id, "LKK-1", T0)
    problem = the_problem(store)
    assert (problem["jira_key"], problem["jira_issue_id"]) == (moved_to, fake_jira.issue(moved_to)["id"])
    assert history(store, "linked") == [f"linked to LKK-1 by hand (now {moved_to})"]
