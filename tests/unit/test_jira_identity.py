"""Crash-safe create under a lagging search index, and twin settling, against the in-memory Jira."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.domain.problems import JiraTarget
from jira_link.client import JiraError
from jira_link.identity import (
    PROPERTY_KEY,
    SearchNotSettled,
    find_or_create_settled,
    issues_with_marker,
    mark_twins,
    settle_wait,
)
from jira_link.linker import LinkOptions
from tests.jira_memory import MemoryJira

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
OPTIONS = LinkOptions(marker_prefix="incident-bridge", public_url="http://bridge.test/", search_settle_seconds=30)
TARGET = JiraTarget(create=True, project="LKK", issue_type="Bug", labels=("lkk",))
MARKER = "incident-bridge-problem-7"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def problem(attempted_at: datetime | None = None) -> dict[str, Any]:
    return {
        "id": 7,
        "problem_key": "checkout",
        "summary": "Checkout fails",
        "description": "",
        "jira_create_attempted_at": attempted_at,
    }


@pytest.mark.parametrize(
    "waited, expected",
    [
        pytest.param(0, 1.0, id="at-once-one-second"),
        pytest.param(4, 4.0, id="doubles-with-the-time-waited"),
        pytest.param(20, 10.0, id="never-past-the-settle-time"),
        pytest.param(30, None, id="settled-create-again"),
    ],
)
def test_the_wait_for_the_index_grows_and_is_bounded_by_the_settle_time(waited, expected):
    assert settle_wait(T0, T0 + timedelta(seconds=waited), timedelta(seconds=30)) == expected


def test_a_first_create_records_the_attempt_before_creating_and_writes_the_property():
    jira, attempts = MemoryJira(), []
    found = find_or_create_settled(jira, problem(), TARGET, OPTIONS, None, T0, attempts.append)
    assert attempts == [T0] and found.created and found.keep.key == "LKK-1"
    assert jira.issue("LKK-1").properties == {PROPERTY_KEY: {"marker": MARKER, "problem_id": 7}}
    assert MARKER in jira.issue("LKK-1").fields["labels"]


def test_a_retry_waits_for_a_lagging_index_then_finds_the_issue_instead_of_creating():
    clock = Clock()
    jira = MemoryJira(clock=clock)
    jira.lag_search(20)
    jira.fail("create_issue", lose_answer=True)
    attempts: list[datetime] = []
    with pytest.raises(JiraError, match="timed out"):
        find_or_create_settled(jira, problem(), TARGET, OPTIONS, None, T0, attempts.append)
    with pytest.raises(SearchNotSettled) as waiting:
        find_or_create_settled(jira, problem(T0), TARGET, OPTIONS, None, T0 + timedelta(seconds=5), attempts.append)
    assert waiting.value.retryable and waiting.value.retry_after == 5.0
    clock.now += 21
    found = find_or_create_settled(
        jira, problem(T0), TARGET, OPTIONS, None, T0 + timedelta(seconds=10), attempts.append
    )
    assert (found.keep.key, found.created, found.twins) == ("LKK-1", False, [])
    assert attempts == [T0] and len(jira.called("create_issue")) == 1


def test_twins_are_linked_to_the_oldest_told_once_and_left_alone_when_settled():
    jira = MemoryJira()
    for _ in range(3):
        jira.add_issue(f"LKK-{len(jira.issues) + 1}", labels=[MARKER])
    keep, *twins = issues_with_marker(jira, OPTIONS, 7)
    assert (keep.key, [t.key for t in twins]) == ("LKK-1", ["LKK-2", "LKK-3"])
    assert mark_twins(jira, keep, twins, 7) == ["LKK-2", "LKK-3"]
    assert [args[1:] for args in jira.called("link_issues")] == [("LKK-2", "LKK-1"), ("LKK-3", "LKK-1")]
    assert len(jira.issue("LKK-2").comments) == 1 and len(jira.issue("LKK-1").comments) == 2
    keep, *twins = issues_with_marker(jira, OPTIONS, 7)
    assert mark_twins(jira, keep, twins, 7) == []
    assert len(jira.called("link_issues")) == 2 and len(jira.issue("LKK-1").comments) == 2


@pytest.mark.parametrize(
    "existing, expected, created",
    [
        pytest.param({}, "LKK-1", True, id="nothing-yet-creates"),
        pytest.param({"LKK-1": ("incident-bridge-problem-70",)}, "LKK-2", True, id="marker-of-another-problem-ignored"),
        pytest.param({"LKK-1": ("incident-bridge", "lkk")}, "LKK-2", True, id="rule-labels-alone-are-not-identity"),
        pytest.param({"OPS-1": (MARKER,)}, "OPS-1", False, id="marker-found-in-the-project-it-moved-to"),
    ],
)
def test_only_the_problems_marker_is_identity(existing, expected, created):
    jira = MemoryJira()
    for key, labels in existing.items():
        jira.add_issue(key, labels=labels)
    found = find_or_create_settled(jira, problem(), TARGET, OPTIONS, None, T0, lambda at: None)
    assert (found.keep.key, found.created) == (expected, created)
    assert jira.called("search") == [(f'labels = "{MARKER}"', ("labels", "issuelinks"))]


def test_the_marker_is_escaped_in_jql():
    jira = MemoryJira()
    odd = LinkOptions(marker_prefix='ib"\\x', public_url="http://bridge.test/")
    jira.add_issue("LKK-1", labels=('ib"\\x-problem-7',))
    assert find_or_create_settled(jira, problem(), TARGET, odd, None, T0, lambda at: None).keep.key == "LKK-1"
    assert jira.called("search")[0][0] == 'labels = "ib\\"\\\\x-problem-7"'


@pytest.mark.parametrize(
    "operation, retryable",
    [
        pytest.param("search", True, id="search-unavailable-retryable"),
        pytest.param("search", False, id="search-refused-final"),
        pytest.param("create_issue", True, id="create-unavailable-retryable"),
        pytest.param("create_issue", False, id="create-refused-final"),
    ],
)
def test_jira_failures_pass_on_and_a_create_is_recorded_before_it_is_sent(operation, retryable):
    jira, attempts = MemoryJira(), []
    jira.fail(operation, retryable=retryable)
    with pytest.raises(JiraError) as failed:
        find_or_create_settled(jira, problem(), TARGET, OPTIONS, None, T0, attempts.append)
    assert failed.value.retryable is retryable and jira.issues == {}
    assert attempts == ([T0] if operation == "create_issue" else [])
