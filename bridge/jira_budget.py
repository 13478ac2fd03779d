"""The worker's side of Jira's rate limits: which jobs a block holds back, and when the budget runs short.

The blocks and the budget live in the database (bridge/storage/rate_limit_repository.py),
shared by every worker. A quota block holds back every Jira job; an endpoint block only the
kinds that call that endpoint (jobs.Job.OPERATIONS); a per-issue block only the jobs that
write to that issue. Jobs held back are postponed, never failed: no attempt is counted and
no rate limit ever dead-letters a job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from bridge import jobs
from bridge.storage import JiraLimits, Store
from jira_link import rate_limits
from jira_link.rate_limits import Budget

log = logging.getLogger(__name__)

# Below this share of X-RateLimit-Limit the budget is short (Atlassian sets X-RateLimit-NearLimit at 20%).
LOW_BUDGET_RATIO = 0.2


def budget_recorder(store: Store, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Callable[[Budget], None]:
    """The JiraClient `observe_budget` hook: every answer's X-RateLimit-* headers go to the shared budget."""

    def record(budget: Budget) -> None:
        store.record_jira_budget(
            limit=budget.limit,
            remaining=budget.remaining,
            near_limit=budget.near_limit,
            reset_at=budget.reset_at,
            now=now(),
        )

    return record


def held_kinds(limits: JiraLimits) -> set[str]:
    """Job kinds a quota or endpoint block holds back entirely."""
    held: set[str] = set()
    for block in limits.blocks:
        if block.scope == rate_limits.QUOTA:
            return set(jobs.JIRA_KINDS)
        if block.scope.startswith(rate_limits.ENDPOINT + ":"):
            held.update(kind for kind in jobs.JIRA_KINDS if block.operation in jobs.CATALOGUE[kind].OPERATIONS)
    return held


def issue_blocks(limits: JiraLimits) -> dict[str, datetime]:
    """Issue id or key -> the time its writes are held back until."""
    prefix = rate_limits.ISSUE + ":"
    return {block.scope[len(prefix) :]: block.until for block in limits.blocks if block.scope.startswith(prefix)}


def kind_block(limits: JiraLimits, kind: str) -> datetime | None:
    """When the quota or endpoint blocks holding back `kind` end (None: it may run)."""
    ends = [
        block.until
        for block in limits.blocks
        if kind in jobs.JIRA_KINDS
        and (
            block.scope == rate_limits.QUOTA
            or (
                block.scope.startswith(rate_limits.ENDPOINT + ":")
                and block.operation in jobs.CATALOGUE[kind].OPERATIONS
            )
        )
    ]
    return max(ends, default=None)


def is_short(limits: JiraLimits, now: datetime, ratio: float = LOW_BUDGET_RATIO) -> bool:
    """The budget runs short: a block is in force, Jira says near limit, or remaining is under `ratio` of the limit.

    The headers count only until their reset time passes (the window starts over).
    """
    if limits.blocks:
        return True
    if limits.reset_at is not None and limits.reset_at <= now:
        return False
    if limits.near_limit:
        return True
    return limits.remaining is not None and bool(limits.limit) and limits.remaining < ratio * (limits.limit or 0)
