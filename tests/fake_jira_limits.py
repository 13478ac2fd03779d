"""Jira Cloud's rate limits in the fake Jira: budget headers on every answer, switchable 429s per scope.

As contracts.md C.8 documents them: every answer carries X-RateLimit-Limit, -Remaining and
-NearLimit (below 20% of the budget); a 429 names its limit in RateLimit-Reason
(jira-per-issue-on-write, jira-burst-based, a quota reason) with Retry-After and/or
X-RateLimit-Reset (an ISO 8601 time). FakeJira mixes this in.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Response, jsonify

WRITE_METHODS = {"POST", "PUT", "DELETE"}


@dataclass
class CloudRateLimit:
    """One limit switched on: the next `times` matching requests get a 429 naming it.

    `issue` set: writes to that issue only (jira-per-issue-on-write); `method`/`path` set:
    that endpoint only (jira-burst-based); neither: every request (the quota).
    """

    reason: str
    method: str | None = None
    path: re.Pattern[str] | None = None
    issue: str | None = None
    retry_after: int | None = None
    reset_in: float | None = None
    times: int = 1

    def matches(self, method: str, path: str) -> bool:
        if self.issue is not None:
            on_issue = re.search(rf"/issue/{re.escape(self.issue)}(/|$)", path) is not None
            return method in WRITE_METHODS and on_issue
        if self.path is not None:
            return method == self.method and self.path.search(path) is not None
        return True


class CloudRateLimits:
    """Test controls and request hooks for Jira Cloud's three limits and its budget headers."""

    lock: threading.Lock

    def __init__(self) -> None:
        self.cloud_limits: list[CloudRateLimit] = []
        # X-RateLimit-Limit and -Remaining of every answer; each answer spends one.
        self.budget_limit = 100_000
        self.budget_remaining = 100_000

    def limit_issue_writes(self, key: str, *, retry_after: int | None = 5, times: int = 1) -> None:
        """The per-issue write limit: the next `times` writes to `key` get 429 jira-per-issue-on-write."""
        self._switch_on(CloudRateLimit("jira-per-issue-on-write", issue=key, retry_after=retry_after, times=times))

    def limit_endpoint(self, method: str, path: str, *, retry_after: int | None = 2, times: int = 1) -> None:
        """A burst limit on one endpoint and method: the next `times` matching requests get 429 jira-burst-based."""
        self._switch_on(
            CloudRateLimit("jira-burst-based", method, re.compile(path), retry_after=retry_after, times=times)
        )

    def limit_quota(
        self,
        *,
        retry_after: int | None = None,
        reset_in: float | None = 60,
        times: int = 1,
        reason: str = "jira-quota-global-based",
    ) -> None:
        """The points quota spent: the next `times` requests of any kind get a 429 with `reason`.

        `retry_after` gives Retry-After; `reset_in` gives X-RateLimit-Reset that many seconds from now.
        """
        self._switch_on(CloudRateLimit(reason, retry_after=retry_after, reset_in=reset_in, times=times))

    def set_budget(self, limit: int, remaining: int) -> None:
        """What X-RateLimit-Limit and -Remaining say from now on (each answer spends one)."""
        with self.lock:
            self.budget_limit, self.budget_remaining = limit, remaining

    def _switch_on(self, limit: CloudRateLimit) -> None:
        with self.lock:
            self.cloud_limits.append(limit)

    # Request hooks ------------------------------------------------------------------

    def take_limit(self, method: str, path: str) -> CloudRateLimit | None:
        """The limit this request meets, if one switched on matches it (spending one of its `times`)."""
        with self.lock:
            limit = next((lim for lim in self.cloud_limits if lim.times > 0 and lim.matches(method, path)), None)
            if limit is not None:
                limit.times -= 1
            return limit

    def rate_limited(self, method: str, path: str) -> Response | None:
        """The 429 this request meets, if a limit switched on matches it."""
        limit = self.take_limit(method, path)
        if limit is None:
            return None
        response = jsonify({"errorMessages": ["Rate limit exceeded."], "errors": {}})
        response.status_code = 429
        response.headers["RateLimit-Reason"] = limit.reason
        if limit.retry_after is not None:
            response.headers["Retry-After"] = str(limit.retry_after)
        wait = limit.retry_after if limit.retry_after is not None else limit.reset_in
        if wait is not None:
            reset = datetime.now(UTC) + timedelta(seconds=wait)
            response.headers["X-RateLimit-Reset"] = reset.isoformat(timespec="seconds").replace("+00:00", "Z")
        return response

    def add_budget_headers(self, response: Response) -> None:
        """X-RateLimit-Limit, -Remaining and -NearLimit (below 20%) on every answer."""
        with self.lock:
            self.budget_remaining = max(0, self.budget_remaining - 1)
            limit, remaining = self.budget_limit, self.budget_remaining
        response.headers.setdefault("X-RateLimit-Limit", str(limit))
        response.headers.setdefault("X-RateLimit-Remaining", str(remaining))
        response.headers.setdefault("X-RateLimit-NearLimit", "true" if remaining < limit * 0.2 else "false")
