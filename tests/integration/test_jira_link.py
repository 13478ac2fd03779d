"""Problems linked to a (fake, but real-HTTP) Jira through the outbox worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa

from bridge.outbox import jobs as outbox_jobs
from bridge.problems.actions import link_problem
from bridge.storage.schema import outbox, problems
from bridge.storage.store import Store
from bridge.worker import OutboxRunner
from jira_link.client import JiraClient
from jira_link.linker import LinkOptions
from tests.conftest import ingest, payload
from tests.fakes import FakeJira, iter_texts

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
OPTIONS = LinkOptions(marker_prefix="incident-bridge", public_url="http://bridge.test")


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    with FakeJira() as jira:
        yield jira


def cloud_client(fake: FakeJira, timeout: float = 2.0) -> JiraClient:
    return JiraClient.basic(requests.Session(), fake.url, "bot@example.com", "jira-token", timeout=timeout)


@pytest.fixture
def runner(store: Store, example_rules, fake_jira: FakeJira) -> OutboxRunner:
    return OutboxRunner(store, example_rules, cloud_client(fake_jira), OPTIONS, timedelta(hours=1), 600)


def fire(store: Store, rules, n: int, at: datetime, alertname: str = "HighErrorRate", **labels: str) -> None:
    body = payload("alertmanager-0.25-two-firing.json")
    alert = dict(body["alerts"][0], fingerprint=f"{hash((alertname, n)) & 0xFFFFFFFFFFFF:016x}")
    alert["labels"] = dict(alert["labels"], alertname=alertname, instance=f"host-{n}", **labels)
    body["alerts"] = [alert]
    ingest(store, rules, "alertmanager", json.dumps(body).encode(), at)


def the_problem(store: Store) -> dict:
    with store.engine.connect() as conn:
        [row] = conn.execute(sa.select(problems)).mappings().all()
    return dict(row)


def jobs(store: Store) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(outbox).order_by(outbox.c.id)).mappings()]


def test_repeats_make_one_problem_and_exactly_one_linked_issue(store, example_rules, runner, fake_jira):
    for n in range(5):
        fire(store, example_rules, n, T0 + timedelta(minutes=n))
    runner.run_due(T0 + timedelta(minutes=5))
    runner.run_due(T0 + timedelta(minutes=6))
    [issue] = fake_jira.issues()
    problem = the_problem(store)
    assert (problem["state"], problem["jira_key"], problem["incident_count"]) == ("known_error", issue["key"], 5)
    assert problem["jira_url"] == f"{fake_jira.url}/browse/{issue['key']}"
    fields = issue["fields"]
    assert fields["labels"] == ["incident-bridge", "lkk", f"incident-bridge-problem-{problem['id']}"]
    assert fields["priority"] == {"name": "Highest"} and fields["issuetype"] == {"name": "Bug"}
    assert "HighErrorRate" in " ".join(iter_texts(fields["description"]))
    [link] = fake_jira.remote_links(issue["key"]).values()
    assert link["object"]["url"] == f"http://bridge.test/api/v1/problems/{problem['id']}"
    assert [j["state"] for j in jobs(store)] == ["done"]


def test_new_incidents_become_one_throttled_comment(store, example_rules, runner, fake_jira):
    fire(store, example_rules, 0, T0)
    fire(store, example_rules, 1, T0)
    runner.run_due(T0)
    key = the_problem(store)["jira_key"]
    for n in range(2, 5):
        fire(store, example_rules, n, T0 + timedelta(minutes=10))
    runner.run_due(T0 + timedelta(minutes=11))
    texts = [" ".join(iter_texts(c["body"])) for c in fake_jira.comments(key)]
    assert texts == ["3 more incidents since 2026-11-23 19:10 UTC"]

    fire(store, example_rules, 5, T0 + timedelta(minutes=20))
    runner.run_due(T0 + timedelta(minutes=21))
    assert len(fake_jira.comments(key)) == 1, "within the hour: no second comment yet"
    runner.run_due(T0 + timedelta(minutes=72))
    texts = [" ".join(iter_texts(c["body"])) for c in fake_jira.comments(key)]
    assert texts[1] == "1 more incident since 2026-11-23 19:20 UTC"
    runner.run_due(T0 + timedelta(hours=3))
    assert len(fake_jira.comments(key)) == 2


def test_retried_create_after_lost_answer_finds_the_issue_instead_of_a_twin(store, example_rules, fake_jira):
    runner = OutboxRunner(store, example_rules, cloud_client(fake_jira, timeout=0.5), OPTIONS, timedelta(hours=1), 600)
    fake_jira.fail("POST", r"/rest/api/3/issue$", lose_answer=True, delay=1.5)
    fire(store, example_rules, 0, T0)
    fire(store, example_rules, 1, T0)
    runner.run_due(T0)
    [job] = jobs(store)
    assert job["state"] == "pending" and "timed out" in job["last_error"]
    assert len(fake_jira.issues()) == 1, "Jira did create it; only the answer was lost"
    runner.run_due(T0 + timedelta(minutes=5))
    assert len(fake_jira.issues()) == 1
    assert len(fake_jira.calls("POST", r"/rest/api/3/issue$")) == 1
    assert the_problem(store)["jira_key"] == fake_jira.issues()[0]["key"]


def test_429_is_retried_after_the_advertised_wait(store, example_rules, runner, fake_jira):
    fake_jira.fail("POST", r"/rest/api/3/issue$", status=429, retry_after=30)
    fire(store, example_rules, 0, T0)
    fire(store, example_rules, 1, T0)
    runner.run_due(T0)
    [job] = jobs(store)
    wait = (job["next_attempt_at"] - T0).total_seconds()
    assert 30 <= wait <= 33, wait
    assert runner.run_due(T0 + timedelta(seconds=20)) == 0, "not before Retry-After"
    runner.run_due(T0 + timedelta(seconds=34))
    assert len(fake_jira.issues()) == 1 and jobs(store)[0]["state"] == "done"
    assert [c.status for c in fake_jira.calls("POST", r"/rest/api/3/issue$")] == [429, 201]


def test_server_errors_back_off_then_dead_letter_after_the_deadline(store, example_rules, runner, fake_jira):
    fake_jira.fail("GET", r"/search/jql", status=500, times=100)
    fire(store, example_rules, 0, T0)
    fire(store, example_rules, 1, T0)
    runner.run_due(T0)
    first = jobs(store)[0]
    assert first["state"] == "pending" and first["next_attempt_at"] > T0
    runner.run_due(T0 + timedelta(minutes=30))
    assert jobs(store)[0]["state"] == "pending"
    runner.run_due(T0 + timedelta(hours=2))
    job = jobs(store)[0]
    assert job["state"] == "dead" and "HTTP 500" in job["last_error"] and job["attempts"] == 3
    assert fake_jira.issues() == []


def test_rejected_create_is_dead_at_once_with_jiras_reason(store, example_rules, fake_jira):
    rules = example_rules
    bad_target = replace(rules.problem_rules[0].jira, project="NOPE")
    bad_rule = replace(rules.problem_rules[0], jira=bad_target)
    bad_rules = replace(rules, problem_rules=(bad_rule,))
    runner = OutboxRunner(store, bad_rules, cloud_client(fake_jira), OPTIONS, timedelta(hours=1), 600)
    fire(store, bad_rules, 0, T0)
    fire(store, bad_rules, 1, T0)
    runner.run_due(T0)
    [job] = jobs(store)
    assert job["state"] == "dead" and "project: valid project is required" in job["last_error"]


def test_jira_unconfigured_keeps_jobs_pending_and_webhooks_flowing(store, example_rules):
    runner = OutboxRunner(store, example_rules, None, OPTIONS, timedelta(hours=1), 600)
    fire(store, example_rules, 0, T0)
    fire(store, example_rules, 1, T0)
    runner.run_due(T0)
    [job] = jobs(store)
    assert job["state"] == "pending" and "not configured" in job["last_error"]


def test_data_center_flavour_creates_with_plain_text_and_v2(store, example_rules, fake_jira):
    client = JiraClient.bearer(requests.Session(), fake_jira.url, "jira-pat", timeout=2)
    runner = OutboxRunner(store, example_rules, client, OPTIONS, timedelta(hours=1), 600)
    fire(store, example_rules, 0, T0)
    fire(store, example_rules, 1, T0)
    runner.run_due(T0)
    [issue] = fake_jira.issues()
    assert isinstance(issue["fields"]["description"], str)
    assert fake_jira.calls("GET", r"^/rest/api/2/search\?") and fake_jira.calls("POST", r"^/rest/api/2/issue$")


def test_data_center_description_escapes_wiki_markup_from_alert_labels(store, example_rules, fake_jira):
    client = JiraClient.bearer(requests.Session(), fake_jira.url, "jira-pat", timeout=2)
    runner = OutboxRunner(store, example_rules, client, OPTIONS, timedelta(hours=1), 600)
    fire(store, example_rules, 0, T0, service="[x|http://evil.example]")
    fire(store, example_rules, 1, T0, service="[x|http://evil.example]")
    runner.run_due(T0)
    [issue] = fake_jira.issues()
    description = issue["fields"]["description"]
    assert r"on service \[x\|http://evil.example\]." in description
    assert "[x|" not in description
    assert issue["fields"]["summary"] == "HighErrorRate keeps failing on [x|http://evil.example]"


NEEDS_FIELDS = (
    "transition 'Close Issue' on LKK-1 needs fields: customfield_10050, resolution; "
    "set them under jira.transition_fields in rules.yaml"
)


def release_transition(store: Store, rules, fake_jira: FakeJira) -> dict:
    """Link a problem to a new issue, then run a release job that moves it to done; returns that job."""
    runner = OutboxRunner(store, rules, cloud_client(fake_jira), OPTIONS, timedelta(hours=1), 600)
    fire(store, rules, 0, T0)
    fire(store, rules, 1, T0)
    runner.run_due(T0)
    problem = the_problem(store)
    job = outbox_jobs.ReleaseComment(
        problem["id"], problem["jira_key"], "Released in 1.2", True, problem["rule"], "LKK", "1.2"
    )
    store.run(lambda conn: outbox_jobs.queue(conn, store, job, T0))
    runner.run_due(T0 + timedelta(minutes=1))
    return next(j for j in jobs(store) if j["kind"] == outbox_jobs.ReleaseComment.KIND)


def test_transition_needing_fields_is_dead_with_the_fields_named(store, example_rules, fake_jira):
    fake_jira.require_fields("31", "resolution", "customfield_10050")
    job = release_transition(store, example_rules, fake_jira)
    assert (job["state"], job["last_error"]) == ("dead", NEEDS_FIELDS)
    assert fake_jira.issue("LKK-1")["fields"]["status"]["name"] == "To Do"


def test_transition_fields_from_rules_fill_the_required_screen(store, example_rules, fake_jira):
    fake_jira.require_fields("31", "resolution", "customfield_10050")
    fields = {"resolution": {"name": "Fixed"}, "customfield_10050": "rolled back"}
    rule = example_rules.problem_rules[0]
    target = replace(rule.jira, transition_fields={"Close Issue": fields})
    rules = replace(example_rules, problem_rules=(replace(rule, jira=target), *example_rules.problem_rules[1:]))
    job = release_transition(store, rules, fake_jira)
    assert job["state"] == "done"
    [sent] = fake_jira.calls("POST", r"/transitions$")
    assert sent.body == {"transition": {"id": "31"}, "fields": fields}
    issue = fake_jira.issue("LKK-1")["fields"]
    assert (issue["status"]["name"], issue["resolution"]) == ("Done", {"name": "Fixed"})


def test_link_by_hand_commits_link_history_and_sync_job_together(store, example_rules, fake_jira, monkeypatch):
    for n in range(5):
        fire(store, example_rules, n, T0 + timedelta(minutes=n))
    fake_jira.add_issue("LKK-42", "Errors on the portal API")
    problem_id = the_problem(store)["id"]

    def crash(*args, **kwargs):
        raise RuntimeError("crash before the sync job is queued")

    monkeypatch.setattr(store, "enqueue", crash)
    with pytest.raises(RuntimeError):
        link_problem(store, cloud_client(fake_jira), OPTIONS, problem_id, "LKK-42", T0 + timedelta(minutes=6))
    assert (the_problem(store)["jira_key"], the_problem(store)["state"]) == (None, "open")
    assert [event["kind"] for event in store.problem_history(problem_id)] == ["opened"]


def test_worker_records_the_created_issue_and_its_history_together(
    store, example_rules, runner, fake_jira, monkeypatch
):
    for n in range(5):
        fire(store, example_rules, n, T0 + timedelta(minutes=n))

    def crash(*args, **kwargs):
        raise RuntimeError("crash before the history is written")

    monkeypatch.setattr(store, "add_problem_events", crash)
    runner.run_due(T0 + timedelta(minutes=5))
    assert the_problem(store)["jira_key"] is None
    monkeypatch.undo()
    runner.run_due(T0 + timedelta(hours=1))
    [issue] = fake_jira.issues()
    assert the_problem(store)["jira_key"] == issue["key"], "the retry finds the issue by its marker"
    assert [event["kind"] for event in store.problem_history(the_problem(store)["id"])] == ["opened", "linked"]
