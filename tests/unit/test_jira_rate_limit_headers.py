"""Reading Jira Cloud's rate-limit headers: which scope a 429 holds back, how long, and what budget is left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.errors import StoreUnavailable
from bridge.jira import budget as jira_budget
from bridge.outbox import jobs
from bridge.storage.rate_limit_repository import JiraLimits, RateLimitBlock
from jira_link import client
from jira_link.rate_limits import (
    REASONS,
    Budget,
    RateLimitScope,
    clean_reason,
    endpoint_template,
    label_reason,
    parse_budget,
    retry_after_seconds,
    scope_of,
)

NOW = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
COMMENT = "/rest/api/3/issue/LKK-7/comment"


@pytest.mark.parametrize(
    "reason, method, path, scope",
    [
        pytest.param("jira-per-issue-on-write", "POST", COMMENT, RateLimitScope("issue", "LKK-7"), id="per-issue"),
        pytest.param(
            "jira-per-issue-on-write",
            "POST",
            "/rest/api/3/issue",
            RateLimitScope("endpoint", "POST /rest/api/3/issue", "op"),
            id="per-issue-without-an-issue-falls-back-to-the-endpoint",
        ),
        pytest.param(
            "jira-burst-based",
            "POST",
            COMMENT,
            RateLimitScope("endpoint", "POST /rest/api/3/issue/{issueIdOrKey}/comment", "op"),
            id="burst",
        ),
        pytest.param("jira-quota-global-based", "GET", "/rest/api/3/search/jql", RateLimitScope("quota"), id="quota"),
        pytest.param("jira-quota-tenant-based", "POST", COMMENT, RateLimitScope("quota"), id="tenant-quota"),
        pytest.param("jira-cost-based", "POST", COMMENT, RateLimitScope("quota"), id="older-cost-name"),
        pytest.param(None, "POST", COMMENT, RateLimitScope("quota"), id="no-reason-data-center"),
        pytest.param("something-new", "POST", COMMENT, RateLimitScope("quota"), id="unknown-reason-waits-for-all"),
    ],
)
def test_the_reason_names_the_scope_held_back(reason, method, path, scope):
    assert scope_of(reason, method, path, "op") == scope


def test_scope_keys_name_one_row_per_scope():
    assert RateLimitScope("quota").key == "quota"
    assert RateLimitScope("issue", "LKK-7").key == "issue:LKK-7"
    assert endpoint_template("/rest/api/2/issue/10042/transitions?expand=x") == (
        "/rest/api/2/issue/{issueIdOrKey}/transitions"
    )


def test_the_wait_is_retry_after_else_the_reset_time_else_unknown():
    reset = (NOW + timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    assert retry_after_seconds({"Retry-After": "12", "X-RateLimit-Reset": reset}, NOW) == 12.0
    assert retry_after_seconds({"X-RateLimit-Reset": reset}, NOW) == 90.0
    assert retry_after_seconds({"X-RateLimit-Reset": "2026-11-23T18:00:00Z"}, NOW) == 0.0, "a reset past is now"
    assert retry_after_seconds({"Retry-After": "Mon, 23 Nov 2026 19:00:30 GMT"}, NOW) == 30.0, "an HTTP date"
    assert retry_after_seconds({"Retry-After": "soon"}, NOW) is None
    assert retry_after_seconds({}, NOW) is None


def test_budget_headers_are_read_from_any_answer():
    budget = parse_budget(
        {
            "X-RateLimit-Limit": "1000",
            "X-RateLimit-Remaining": "150",
            "X-RateLimit-NearLimit": "true",
            "X-RateLimit-Reset": "2026-11-23T20:00:00Z",
        }
    )
    assert budget == Budget(1000, 150, True, datetime(2026, 11, 23, 20, 0, tzinfo=UTC))
    assert not parse_budget({"X-RateLimit-Remaining": "many"}).told


def test_unknown_reasons_count_as_other_so_labels_stay_bounded():
    assert label_reason("JIRA-BURST-BASED ") == "jira-burst-based"
    assert label_reason(None) == "unspecified"
    assert label_reason("x" * 500) == "other"
    assert clean_reason(" jira-burst-based\x00\n") == "jira-burst-based"
    assert clean_reason("\x00") is None and len(clean_reason("y" * 500) or "") == 64
    assert set(REASONS) >= {"jira-burst-based", "jira-per-issue-on-write", "jira-quota-global-based"}


def test_every_operation_a_job_declares_is_one_the_client_makes():
    for kind, job in jobs.CATALOGUE.items():
        assert set(job.OPERATIONS) <= set(client.OPERATIONS), kind
        assert (job.TARGET == "jira") == bool(job.OPERATIONS), kind


def block(scope: str, operation: str | None = None) -> RateLimitBlock:
    return RateLimitBlock(scope, operation, None, NOW + timedelta(minutes=1))


def test_a_quota_block_holds_every_jira_kind_and_an_endpoint_block_only_its_users():
    assert jira_budget.held_kinds(JiraLimits((block("quota"),))) == set(jobs.JIRA_KINDS)
    held = jira_budget.held_kinds(JiraLimits((block("endpoint:POST /x/{issueIdOrKey}/comment", "add_comment"),)))
    assert jobs.Note.KIND in held and jobs.EnsureIssue.KIND not in held and jobs.SyncIssue.KIND not in held
    assert jobs.ZabbixClose.KIND not in held
    assert jira_budget.issue_blocks(JiraLimits((block("issue:LKK-7"),))) == {"LKK-7": NOW + timedelta(minutes=1)}


@pytest.mark.parametrize(
    "limits, short",
    [
        pytest.param(JiraLimits(), False, id="nothing-known"),
        pytest.param(JiraLimits(remaining=500, limit=1000), False, id="plenty"),
        pytest.param(JiraLimits(remaining=150, limit=1000), True, id="under-a-fifth"),
        pytest.param(JiraLimits(remaining=900, limit=1000, near_limit=True), True, id="jira-says-near"),
        pytest.param(JiraLimits(remaining=1, limit=1000, reset_at=NOW - timedelta(seconds=1)), False, id="reset"),
        pytest.param(JiraLimits((block("issue:LKK-7"),)), True, id="under-a-block"),
    ],
)
def test_the_budget_runs_short_below_a_fifth_near_limit_or_under_a_block(limits, short):
    assert jira_budget.is_short(limits, NOW) is short


def test_a_budget_the_database_cannot_take_never_fails_the_jira_call(caplog):
    class DatabaseDown:
        def record_jira_budget(self, **budget: object) -> None:
            raise StoreUnavailable("database unavailable; retry later")

    record = jira_budget.budget_recorder(DatabaseDown(), lambda: NOW)  # type: ignore[arg-type]
    with caplog.at_level("WARNING", logger="bridge.jira.budget"):
        assert record(Budget(1000, 10)) is None
    assert "Jira budget not recorded" in caplog.text
