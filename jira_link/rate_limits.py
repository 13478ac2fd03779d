"""Jira Cloud's rate limits as its answers tell them: which limit a 429 hit, for what, and for how long.

Jira Cloud applies three limits at once (contracts.md C.8): a points quota per hour, burst
limits per endpoint and HTTP method, and a per-issue write limit. A 429 names the one hit in
`RateLimit-Reason`; the wait comes in `Retry-After` (seconds) or `X-RateLimit-Reset` (an ISO
8601 time), and every answer may carry `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
`X-RateLimit-NearLimit`. The bridge backs off in the scope named: one issue's writes, one
endpoint, or all of Jira. Standard library only: the client parses, the worker decides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

REASON_HEADER = "RateLimit-Reason"
RETRY_AFTER_HEADER = "Retry-After"
RESET_HEADER = "X-RateLimit-Reset"
LIMIT_HEADER = "X-RateLimit-Limit"
REMAINING_HEADER = "X-RateLimit-Remaining"
NEAR_LIMIT_HEADER = "X-RateLimit-NearLimit"

BURST = "jira-burst-based"
PER_ISSUE_ON_WRITE = "jira-per-issue-on-write"
# Quota reasons: the current names and the older ones Atlassian's pages still list.
QUOTA_REASONS = ("jira-quota-global-based", "jira-quota-tenant-based", "jira-quota-based", "jira-cost-based")
# A 429 without RateLimit-Reason (Data Center's token bucket, an older Cloud answer) or with one
# we do not know: treated as the quota, the safe reading (everything waits).
UNSPECIFIED = "unspecified"
OTHER = "other"
# Every value the bridge_jira_rate_limited_total{reason} label can take (unknown reasons count as "other").
REASONS = (BURST, PER_ISSUE_ON_WRITE, *QUOTA_REASONS, UNSPECIFIED, OTHER)

QUOTA = "quota"
ENDPOINT = "endpoint"
ISSUE = "issue"
SCOPE_KINDS = (QUOTA, ENDPOINT, ISSUE)

# Methods that write: the per-issue limit counts only these.
WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
_ISSUE_SEGMENT = re.compile(r"/issue/(?P<issue>[^/?]+)(?=/|$)")
ISSUE_PLACEHOLDER = "{issueIdOrKey}"


@dataclass(frozen=True)
class RateLimitScope:
    """What a limit holds back: all of Jira (quota), one `METHOD /path-template` (endpoint), or one issue's writes.

    `operation` names the client call behind an endpoint scope, so the worker knows which jobs use it.
    """

    kind: str
    name: str = ""
    operation: str | None = None

    @property
    def key(self) -> str:
        """The scope's row in the shared budget (jira_rate_limits.scope)."""
        return self.kind if self.kind == QUOTA else f"{self.kind}:{self.name}"


def clean_reason(value: str | None) -> str | None:
    """A RateLimit-Reason as the bridge keeps it: printable ASCII, at most 64 characters, None when empty."""
    if value is None:
        return None
    cleaned = re.sub(r"[^\x21-\x7e]", "", value)[:64]
    return cleaned or None


def label_reason(reason: str | None) -> str:
    """The metric label for a RateLimit-Reason value: known ones as sent, a missing one `unspecified`, others `other`."""
    if reason is None or not reason.strip():
        return UNSPECIFIED
    reason = reason.strip().lower()
    return reason if reason in REASONS else OTHER


def endpoint_template(path: str) -> str:
    """The path with the issue id or key replaced by `{issueIdOrKey}`: one name per endpoint."""
    return _ISSUE_SEGMENT.sub("/issue/" + ISSUE_PLACEHOLDER, path.split("?", 1)[0])


def issue_of(path: str) -> str | None:
    """The issue id or key a path addresses, if any."""
    match = _ISSUE_SEGMENT.search(path.split("?", 1)[0])
    return match.group("issue") if match else None


def scope_of(reason: str | None, method: str, path: str, operation: str | None = None) -> RateLimitScope:
    """The scope to back off in for a 429 with this `RateLimit-Reason` on `method path`.

    A per-issue write limit on a path without an issue (a create) falls back to the endpoint.
    """
    label = label_reason(reason)
    endpoint = RateLimitScope(ENDPOINT, f"{method.upper()} {endpoint_template(path)}", operation)
    if label == PER_ISSUE_ON_WRITE:
        issue = issue_of(path)
        return RateLimitScope(ISSUE, issue) if issue else endpoint
    if label == BURST:
        return endpoint
    return RateLimitScope(QUOTA)


@dataclass(frozen=True)
class Budget:
    """What an ordinary answer says about the budget: X-RateLimit-Limit, -Remaining, -NearLimit, -Reset."""

    limit: int | None = None
    remaining: int | None = None
    near_limit: bool = False
    reset_at: datetime | None = None

    @property
    def told(self) -> bool:
        """Whether the answer carried any budget header at all."""
        return self.limit is not None or self.remaining is not None or self.near_limit or self.reset_at is not None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value.strip() if value is not None and value.strip() else None


def _int(value: str | None) -> int | None:
    try:
        return max(0, int(float(value))) if value is not None else None
    except ValueError:
        return None


def parse_reset(value: str | None) -> datetime | None:
    """X-RateLimit-Reset: an ISO 8601 time (a trailing Z accepted), or None when absent or unreadable."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_budget(headers: Mapping[str, str]) -> Budget:
    """The budget headers of any answer (absent ones None)."""
    return Budget(
        limit=_int(_header(headers, LIMIT_HEADER)),
        remaining=_int(_header(headers, REMAINING_HEADER)),
        near_limit=(_header(headers, NEAR_LIMIT_HEADER) or "").lower() == "true",
        reset_at=parse_reset(_header(headers, RESET_HEADER)),
    )


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """How long to wait: Retry-After (seconds), else X-RateLimit-Reset minus now, else None (the caller backs off)."""
    retry_after = _header(headers, RETRY_AFTER_HEADER)
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
        try:  # RFC 9110 also allows an HTTP date
            return max(0.0, (parsedate_to_datetime(retry_after) - now).total_seconds())
        except (TypeError, ValueError):
            pass
    reset_at = parse_reset(_header(headers, RESET_HEADER))
    if reset_at is not None:
        return max(0.0, (reset_at - now).total_seconds())
    return None
