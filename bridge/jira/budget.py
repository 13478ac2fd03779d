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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge import metrics
from bridge.errors import DataRefused, StoreUnavailable
from bridge.outbox import jobs
from bridge.storage.rate_limit_repository import JiraLimits
from bridge.storage.store import Store
from jira_link import rate_limits
from jira_link.client import JiraRateLimited
from jira_link.rate_limits import Budget

log = logging.getLogger(__name__)

# Below this share of X-RateLimit-Limit the budget is short (Atlassian sets X-RateLimit-NearLimit at 20%).
LOW_BUDGET_RATIO = 0.2


def budget_recorder(store: Store, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Callable[[Budget], None]:
    """The JiraClient `observe_budget` hook: every answer's X-RateLimit-* headers go to the shared budget."""

    def record(budget: Budget) -> None:
        # Advisory: a database hiccup here must not fail a Jira call whose work is done.
        try:
            store.record_jira_budget(
                limit=budget.limit,
                remaining=budget.remaining,
                near_limit=budget.near_limit,
                reset_at=budget.reset_at,
                now=now(),
            )
        except (StoreUnavailable, DataRefused) as exc:
            log.warning("Jira budget not recorded: %s", exc)

    return record


def held_kinds(limits: JiraLimits) -> set[str]:
    """Job kinds a quota or endpoint block holds back entirely (left out of the lease)."""
    return {kind for kind in jobs.JIRA_KINDS if kind_block(limits, kind) is not None}


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


# How the worker runs one leased job, or `instead` the work standing for it; True once done.
RunJob = Callable[[dict[str, Any], datetime, jobs.Job | None], bool]


@dataclass
class JiraGate:
    """One worker's view of the shared budget: what is held back now, what a 429 holds back, comments coalesced."""

    store: Store
    low_budget_ratio: float = LOW_BUDGET_RATIO
    limits: JiraLimits = field(default_factory=JiraLimits)

    def refresh(self, now: datetime, *, enabled: bool = True) -> JiraLimits:
        """Read the shared blocks and budget (once a pass, and again after a 429)."""
        self.limits = self.store.jira_limits(now) if enabled else JiraLimits()
        return self.limits

    def is_short(self, now: datetime) -> bool:
        return is_short(self.limits, now, self.low_budget_ratio)

    def held_until(self, job: dict[str, Any]) -> datetime | None:
        """When the block holding this job back ends: its kind's (quota, endpoint) or its issue's (writes)."""
        if not self.limits.blocks or job["kind"] not in jobs.JIRA_KINDS:
            return None
        ends = [kind_block(self.limits, job["kind"])]
        by_issue = issue_blocks(self.limits)
        if by_issue and job["kind"] != jobs.SyncIssue.KIND:  # the only kind that never writes
            ends.append(by_issue.get(self._issue_of(job) or ""))
        return max((end for end in ends if end is not None), default=None)

    def _issue_of(self, job: dict[str, Any]) -> str | None:
        """The issue a job writes to: its payload's, else its problem's."""
        key = (job.get("payload") or {}).get("jira_key")
        if key is None and job.get("problem_id") is not None:
            problem = self.store.get_problem(job["problem_id"])
            key = problem["jira_key"] if problem is not None else None
        return str(key) if key is not None else None

    def postpone(self, job: dict[str, Any], until: datetime, why: str) -> None:
        """Put a job off until its block ends; no attempt counted.

        Every job a block holds gets the same time (the block's end, jittered once when it was
        recorded), so they run again in the order they were queued.
        """
        log.info("outbox job held back by a Jira rate limit", extra={"job_id": job["id"], "kind": job["kind"]})
        self.store.postpone_job(job["id"], until, f"{why} until {until:%Y-%m-%d %H:%M:%S} UTC")

    def rate_limited(
        self, job: dict[str, Any], now: datetime, exc: JiraRateLimited, wait_seconds: float, cap: timedelta
    ) -> None:
        """A 429: hold its scope back for every worker, count it by reason, put the job off until the block ends.

        `wait_seconds` is Jira's wait (jittered) or a first backoff; without Jira's wait a scope
        hit again right after its block doubles the wait, up to `cap`.
        """
        metrics.labelled(metrics.RATE_LIMITED, rate_limits.label_reason(exc.reason)).inc()
        until = self.store.block_jira(
            exc.scope.key,
            exc.scope.operation,
            exc.reason,
            now + timedelta(seconds=wait_seconds),
            now,
            escalate_up_to=cap if exc.retry_after is None else None,
        )
        log.warning(
            "Jira rate limit hit; scope held back",
            extra={"job_id": job["id"], "kind": job["kind"], "scope": exc.scope.key, "reason": exc.reason},
        )
        self.postpone(job, until, f"rate limited ({exc.reason or 'no reason given'}): {exc.scope.key} held back")
        self.refresh(now)

    def coalesce(
        self, job: dict[str, Any], now: datetime, batch: list[dict[str, Any]], lease: timedelta, run: RunJob
    ) -> set[int]:
        """Run a comment job with the other comments pending for its issue as one Jira comment (budget short).

        The others are this pass's later jobs (`batch`) and pending ones no worker holds. They
        are marked done as coalesced only once the one call went through; if it failed, each
        is given back pending, so no comment's text is ever lost. The texts go in the order
        the jobs were queued. Returns the ids of the other jobs (settled either way for this pass).
        """
        key = (job.get("payload") or {}).get("jira_key")
        text = jobs.from_row(job).comment_text()
        if text is None or key is None:
            run(job, now, None)
            return set()
        ours = [row for row in batch if row["kind"] in jobs.TEXT_KINDS and row["payload"].get("jira_key") == key]
        leased = self.store.lease_pending_texts(jobs.TEXT_KINDS, key, job["id"], now, lease)
        texts = {row["id"]: jobs.from_row(row).comment_text() for row in [*ours, *leased]}
        others = sorted(job_id for job_id, other in texts.items() if other is not None)
        borrowed = {row["id"] for row in leased}
        self.store.release_jobs(sorted(borrowed - set(others)))
        if not others:
            run(job, now, None)
            return set()
        texts[job["id"]] = text
        combined = "\n\n".join(str(texts[job_id]) for job_id in sorted([job["id"], *others]))
        if not run(job, now, jobs.Note(job["problem_id"], key, combined)):
            # Each stays pending, free for the next pass (this one's share of the failed call was its attempt).
            self.store.release_jobs(others)
            return set(others)
        self.store.finish_coalesced(others, job["id"], now)
        log.info("pending comments coalesced into one", extra={"job_id": job["id"], "coalesced": others})
        return set(others)
