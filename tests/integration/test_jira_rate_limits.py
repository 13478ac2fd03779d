"""Jira Cloud's three rate limits, as its 429s name them, held back in the scope hit and shared by every worker.

Each test runs on SQLite and PostgreSQL: the blocks and the budget live in the database.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from prometheus_client import REGISTRY

from bridge import metrics
from bridge.jira import budget as jira_budget
from bridge.outbox import jobs as outbox_jobs
from bridge.storage.schema import problems
from bridge.storage.store import Store
from bridge.worker import OutboxRunner
from jira_link.client import JiraClient, JiraRateLimited, adf_text
from tests.fakes import FakeJira, iter_texts
from tests.integration.test_jira_link import OPTIONS, T0, fire, jobs

COMMENT_ENDPOINT = "endpoint:POST /rest/api/3/issue/{issueIdOrKey}/comment"


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    with FakeJira() as jira:
        yield jira


def worker(store: Store, rules, fake: FakeJira) -> OutboxRunner:
    """One worker: its own client, recording every answer's budget headers in the shared store."""
    client = JiraClient.basic(
        requests.Session(),
        fake.url,
        "bot@example.com",
        "jira-token",
        timeout=2,
        observe_budget=jira_budget.budget_recorder(store),
    )
    return OutboxRunner(store, rules, client, OPTIONS, timedelta(hours=1), 600)


def linked_problems(store: Store, rules, runner: OutboxRunner, *names: str) -> dict[str, tuple[int, str]]:
    """One problem (two incidents) per alert name, each linked to its new issue: name -> (problem id, key)."""
    for name in names:
        fire(store, rules, 0, T0, alertname=name)
        fire(store, rules, 1, T0, alertname=name)
    runner.run_due(T0)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(problems.c.id, problems.c.jira_key).order_by(problems.c.id)).all()
    assert all(key for _, key in rows), rows
    return {name: (row[0], row[1]) for name, row in zip(names, rows, strict=True)}


def note(store: Store, problem_id: int, key: str, text: str, incident_id: int, at: datetime = T0) -> None:
    job = outbox_jobs.Note(problem_id, key, text, incident_id)
    store.run(lambda conn: outbox_jobs.queue(conn, store, job, at))


def sync(store: Store, key: str, at: datetime = T0) -> None:
    store.run(lambda conn: outbox_jobs.queue(conn, store, outbox_jobs.SyncIssue(key), at))


def comment_texts(fake: FakeJira, key: str) -> list[str]:
    return ["".join(iter_texts(c["body"])) for c in fake.comments(key)]


def pending(store: Store, kind: str | None = None) -> list[dict]:
    return [j for j in jobs(store) if j["state"] == "pending" and (kind is None or j["kind"] == kind)]


def test_a_per_issue_429_delays_only_that_issues_writes(store, example_rules, fake_jira):
    runner = worker(store, example_rules, fake_jira)
    issues = linked_problems(store, example_rules, runner, "A", "B")
    (a, key_a), (b, key_b) = issues["A"], issues["B"]
    fake_jira.limit_issue_writes(key_a, retry_after=30)
    note(store, a, key_a, "first on A", 1)
    note(store, a, key_a, "second on A", 2)
    note(store, b, key_b, "on B", 3)
    sync(store, key_a)
    later = T0 + timedelta(minutes=1)
    runner.run_due(later)

    assert comment_texts(fake_jira, key_b) == ["on B"], "another issue's jobs go on"
    assert comment_texts(fake_jira, key_a) == []
    held = pending(store, outbox_jobs.Note.KIND)
    assert len(held) == 2 and all(j["attempts"] == 0 for j in held), "a rate limit counts no attempt"
    assert all(j["next_attempt_at"] >= later + timedelta(seconds=30) for j in held)
    assert [c.status for c in fake_jira.calls("POST", rf"/issue/{key_a}/comment$")] == [429], "the second one waited"
    assert not pending(store, outbox_jobs.SyncIssue.KIND), "reading the held issue is not a write: it ran"
    [block] = store.jira_limits(later).blocks
    assert (block.scope, block.reason) == (f"issue:{key_a}", "jira-per-issue-on-write")

    runner.run_due(later + timedelta(seconds=10))
    assert len(fake_jira.calls("POST", rf"/issue/{key_a}/comment$")) == 1, "nothing sent before the block ends"
    runner.run_due(later + timedelta(seconds=32))
    assert comment_texts(fake_jira, key_a) == ["first on A", "second on A"]
    assert not pending(store) and not [j for j in jobs(store) if j["state"] == "dead"]


def test_a_burst_429_blocks_only_that_endpoint_and_method(store, example_rules, fake_jira):
    runner = worker(store, example_rules, fake_jira)
    issues = linked_problems(store, example_rules, runner, "A", "B")
    (a, key_a), (b, key_b) = issues["A"], issues["B"]
    fake_jira.limit_endpoint("POST", r"/issue/[^/]+/comment$", retry_after=20)
    note(store, a, key_a, "on A", 1)
    note(store, b, key_b, "on B", 2)
    sync(store, key_a)
    sync(store, key_b)
    fire(store, example_rules, 0, T0, alertname="C")
    fire(store, example_rules, 1, T0, alertname="C")
    runner.run_due(T0 + timedelta(minutes=1))

    [block] = store.jira_limits(T0 + timedelta(minutes=1)).blocks
    assert (block.scope, block.operation, block.reason) == (COMMENT_ENDPOINT, "add_comment", "jira-burst-based")
    assert len(fake_jira.calls("POST", r"/comment$")) == 1, "the other comment was held back without a call"
    assert {j["kind"] for j in pending(store)} == {outbox_jobs.Note.KIND}
    assert len(fake_jira.issues()) == 3, "creates (another endpoint) went on"
    assert len(fake_jira.calls("GET", r"/issue/[^/]+\?")) == 2, "reads went on"

    runner.run_due(T0 + timedelta(minutes=1, seconds=22))
    assert (comment_texts(fake_jira, key_a), comment_texts(fake_jira, key_b)) == (["on A"], ["on B"])
    assert not pending(store)


def test_a_quota_429_holds_back_every_jira_job_until_its_reset(store, example_rules, fake_jira):
    runner = worker(store, example_rules, fake_jira)
    issues = linked_problems(store, example_rules, runner, "A", "B")
    (a, key_a), (b, key_b) = issues["A"], issues["B"]
    fake_jira.limit_quota(retry_after=None, reset_in=60)  # X-RateLimit-Reset only
    note(store, a, key_a, "on A", 1)
    note(store, b, key_b, "on B", 2)
    sync(store, key_b)
    calls_before = len(fake_jira.state.calls)
    runner.run_due(T0 + timedelta(minutes=1))

    assert len(fake_jira.state.calls) == calls_before + 1, "after the 429 no Jira call at all"
    [block] = store.jira_limits(T0 + timedelta(minutes=1)).blocks
    assert (block.scope, block.reason) == ("quota", "jira-quota-global-based")
    ends = (block.until - (T0 + timedelta(minutes=1))).total_seconds()
    assert 55 <= ends <= 61, "the wait comes from X-RateLimit-Reset"
    assert runner.run_due(T0 + timedelta(minutes=1, seconds=30)) == 0, "no Jira job is even leased"
    assert len(pending(store)) == 3 and all(j["attempts"] == 0 for j in pending(store))
    runner.run_due(T0 + timedelta(minutes=2, seconds=2))
    assert not pending(store) and (comment_texts(fake_jira, key_a), comment_texts(fake_jira, key_b)) == (
        ["on A"],
        ["on B"],
    )


def test_two_workers_share_the_block_through_the_database(database_url, store, example_rules, fake_jira):
    first = worker(store, example_rules, fake_jira)
    issues = linked_problems(store, example_rules, first, "A")
    a, key_a = issues["A"]
    other_store = Store.from_url(database_url)  # a second worker process has its own engine
    try:
        second = worker(other_store, example_rules, fake_jira)
        fake_jira.limit_quota(retry_after=60)
        note(store, a, key_a, "one", 1)
        first.run_due(T0 + timedelta(minutes=1))
        assert [c.status for c in fake_jira.state.calls][-1] == 429
        note(store, a, key_a, "two", 2, at=T0 + timedelta(minutes=1))
        calls_before = len(fake_jira.state.calls)
        assert second.run_due(T0 + timedelta(minutes=1, seconds=5)) == 0
        assert len(fake_jira.state.calls) == calls_before, "the second worker honours the first one's 429"
        second.run_due(T0 + timedelta(minutes=2, seconds=2))
        assert sorted(comment_texts(fake_jira, key_a)) == ["one", "two"]
    finally:
        other_store.engine.dispose()


def test_short_budget_puts_a_transition_before_older_comments_and_coalesces_them(store, example_rules, fake_jira):
    runner = worker(store, example_rules, fake_jira)
    issues = linked_problems(store, example_rules, runner, "A")
    a, key_a = issues["A"]
    fake_jira.set_budget(1000, 150)  # under 20% left: X-RateLimit-NearLimit
    runner.run_due(T0)  # any answer tells the budget; here the periodic sync's
    sync(store, key_a)
    runner.run_due(T0 + timedelta(seconds=1))
    assert jira_budget.is_short(store.jira_limits(T0), T0)
    for n, text in enumerate(("disk full on db-1", "disk full on db-2", "disk full on db-3"), start=1):
        note(store, a, key_a, text, n, at=T0 + timedelta(seconds=2))
    release = outbox_jobs.ReleaseComment(a, key_a, "Released in 1.2", True, "portal-errors", "LKK", "1.2")
    store.run(lambda conn: outbox_jobs.queue(conn, store, release, T0 + timedelta(seconds=3)))
    first_call = len(fake_jira.state.calls)
    runner.run_due(T0 + timedelta(seconds=10))

    calls = fake_jira.state.calls[first_call:]
    posts = [(c.path.split("?")[0].rsplit("/", 1)[-1], c) for c in calls if c.method == "POST"]
    assert [name for name, _ in posts] == ["comment", "transitions", "comment"], "release and its transition first"
    assert "".join(iter_texts(posts[0][1].body["body"])) == "Released in 1.2"
    combined = adf_text(posts[2][1].body["body"])
    assert combined == "disk full on db-1\n\ndisk full on db-2\n\ndisk full on db-3", "one call, every text"
    notes = [j for j in jobs(store) if j["kind"] == outbox_jobs.Note.KIND]
    assert [j["state"] for j in notes] == ["done"] * 3
    assert [j["last_error"] for j in notes[1:]] == [f"coalesced into job {notes[0]['id']}"] * 2
    assert fake_jira.issue(key_a)["fields"]["status"]["name"] == "Done"


def test_without_a_wait_from_jira_a_scope_hit_again_soon_waits_twice_as_long(store):
    cap = timedelta(seconds=10)

    def hit(at: timedelta, wait: float = 2) -> timedelta:
        ends = store.block_jira("quota", None, None, T0 + at + timedelta(seconds=wait), T0 + at, escalate_up_to=cap)
        return ends - (T0 + at)

    assert hit(timedelta(0)) == timedelta(seconds=2)
    assert hit(timedelta(seconds=3)) == timedelta(seconds=4), "hit again 1 s after the block ended"
    assert hit(timedelta(seconds=8)) == timedelta(seconds=8)
    assert hit(timedelta(seconds=17)) == cap
    assert hit(timedelta(hours=1)) == timedelta(seconds=2), "long after, the wait starts over"
    jira_wait = store.block_jira("quota", None, None, T0 + timedelta(hours=1, seconds=3), T0 + timedelta(hours=1))
    assert jira_wait == T0 + timedelta(hours=1, seconds=3), "Jira's own wait is taken as given"


def test_a_coalesced_comment_that_fails_loses_no_text(store, example_rules, fake_jira):
    runner = worker(store, example_rules, fake_jira)
    issues = linked_problems(store, example_rules, runner, "A")
    a, key_a = issues["A"]
    fake_jira.set_budget(1000, 10)
    sync(store, key_a)
    runner.run_due(T0 + timedelta(seconds=1))
    for n in range(1, 4):
        note(store, a, key_a, f"note {n}", n, at=T0 + timedelta(seconds=2))
    fake_jira.fail("POST", r"/comment$", status=500)
    runner.run_due(T0 + timedelta(seconds=10))
    assert [j["state"] for j in jobs(store) if j["kind"] == outbox_jobs.Note.KIND] == ["pending"] * 3
    assert comment_texts(fake_jira, key_a) == []
    runner.run_due(T0 + timedelta(minutes=5))
    [comment] = fake_jira.comments(key_a)
    assert adf_text(comment["body"]) == "note 1\n\nnote 2\n\nnote 3"
    assert not pending(store)


def test_a_rate_limit_storm_ends_with_every_job_done_and_one_issue_per_problem(
    database_url, store, example_rules, fake_jira
):
    rng = random.Random(16)
    other_store = Store.from_url(database_url)
    try:
        workers = [worker(store, example_rules, fake_jira), worker(other_store, example_rules, fake_jira)]
        names = [f"Storm{n}" for n in range(4)]
        fake_jira.limit_endpoint("GET", r"/search/jql$", retry_after=3, times=3)
        fake_jira.limit_endpoint("POST", r"/issue$", retry_after=4, times=3)
        fake_jira.limit_quota(retry_after=5, times=2)
        for name in names:
            fire(store, example_rules, 0, T0, alertname=name)
            fire(store, example_rules, 1, T0, alertname=name)
        clock = T0
        for _ in range(40):
            workers[rng.randrange(2)].run_due(clock)
            clock += timedelta(seconds=7)
        problems = {
            row["jira_key"] for row in (store.get_problem(n) for n in range(1, len(names) + 1)) if row is not None
        }
        assert len(problems) == len(names) and None not in problems
        texts = []
        for n, key in enumerate(sorted(problems)):
            fake_jira.limit_issue_writes(key, retry_after=6, times=2)
            for m in range(3):
                texts.append((key, f"breach {n}.{m}"))
                note(store, n + 1, key, f"breach {n}.{m}", 10 * n + m, at=clock)
        fake_jira.limit_endpoint("POST", r"/comment$", retry_after=2, times=4)
        fake_jira.limit_quota(retry_after=None, reset_in=8, times=2, reason="jira-quota-tenant-based")
        for _ in range(60):
            workers[rng.randrange(2)].run_due(clock)
            clock += timedelta(seconds=7)
            if not pending(store):
                break
        assert not pending(store), pending(store)
        assert not [j for j in jobs(store) if j["state"] == "dead"]
        assert sorted(issue["key"] for issue in fake_jira.issues()) == sorted(problems), "one issue per problem"
        assert len([c for c in fake_jira.state.calls if c.status == 429]) >= 10
        for key, text in texts:
            assert any(text in body for body in comment_texts(fake_jira, key)), f"{text} lost"
    finally:
        other_store.engine.dispose()


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_429s_by_reason_and_show_backlog_by_kind_and_oldest_age(store, example_rules, fake_jira):
    metrics.initialise(example_rules)
    for reason in ("jira-per-issue-on-write", "jira-burst-based", "jira-quota-global-based", "other", "unspecified"):
        assert REGISTRY.get_sample_value("bridge_jira_rate_limited_total", {"reason": reason}) is not None
    runner = worker(store, example_rules, fake_jira)
    issues = linked_problems(store, example_rules, runner, "A")
    a, key_a = issues["A"]
    before = {r: sample("bridge_jira_rate_limited_total", reason=r) for r in ("jira-per-issue-on-write", "other")}
    fake_jira.limit_issue_writes(key_a, retry_after=30)
    note(store, a, key_a, "one", 1)
    note(store, a, key_a, "two", 2)
    runner.run_due(T0 + timedelta(minutes=1))
    assert sample("bridge_jira_rate_limited_total", reason="jira-per-issue-on-write") == (
        before["jira-per-issue-on-write"] + 1
    )
    assert sample("bridge_jira_rate_limited_total", reason="other") == before["other"]

    families = {family.name: family for family in metrics.StoreGauges(store, example_rules).collect()}
    backlog = {s.labels["kind"]: s.value for s in families["bridge_outbox_backlog"].samples}
    assert backlog == {**dict.fromkeys(outbox_jobs.CATALOGUE, 0), outbox_jobs.Note.KIND: 2}
    ages = {s.labels["target"]: s.value for s in families["bridge_outbox_oldest_pending_age_seconds"].samples}
    assert ages["zabbix"] == 0 and ages["jira"] >= (datetime.now(T0.tzinfo) - T0).total_seconds() - 5


@pytest.mark.parametrize("flavour", ["cloud", "datacenter"])
def test_the_client_reads_the_cloud_headers_on_every_answer_and_names_the_scope_of_a_429(fake_jira, flavour):
    seen: list = []
    if flavour == "cloud":
        jira = JiraClient.basic(
            requests.Session(), fake_jira.url, "bot@example.com", "jira-token", observe_budget=seen.append
        )
    else:
        jira = JiraClient.bearer(requests.Session(), fake_jira.url, "jira-pat", observe_budget=seen.append)
    fake_jira.add_issue("LKK-1")
    fake_jira.set_budget(1000, 101)
    jira.get_issue("LKK-1")
    assert (seen[-1].limit, seen[-1].remaining, seen[-1].near_limit) == (1000, 100, True)

    fake_jira.limit_issue_writes("LKK-1", retry_after=7)
    jira.get_issue("LKK-1")  # a read passes
    with pytest.raises(JiraRateLimited) as per_issue:
        jira.add_comment("LKK-1", "x")
    assert (per_issue.value.reason, per_issue.value.scope.key, per_issue.value.retry_after) == (
        "jira-per-issue-on-write",
        "issue:LKK-1",
        7.0,
    )
    assert per_issue.value.retryable and per_issue.value.status == 429
    assert seen[-1].remaining == 98, "the 429 told the budget too"

    fake_jira.limit_endpoint("GET", r"/transitions$", retry_after=None)
    with pytest.raises(JiraRateLimited) as burst:
        jira.transitions("LKK-1")
    api = jira.api
    assert burst.value.scope.key == f"endpoint:GET {api}/issue/{{issueIdOrKey}}/transitions"
    assert (burst.value.scope.operation, burst.value.retry_after) == ("get_transitions", None)

    fake_jira.limit_quota(reset_in=40)
    with pytest.raises(JiraRateLimited) as quota:
        jira.get_issue("LKK-1")
    assert quota.value.scope.key == "quota" and 35 <= quota.value.retry_after <= 40
