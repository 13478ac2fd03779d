"""Jira identity: the problem's issue found by its marker while Jira's search lags, and twins settled.

Jira Cloud's search is eventually consistent: an issue created a second ago may not be in
the results yet. A create whose answer was lost, retried at once, would search, find
nothing and file a twin. So a create is recorded before it is made, and a retry searches
again, with growing waits, until a settle time after that attempt has passed; only then
does it create again. If a twin appears anyway (the index lagged longer than the settle
time), the oldest issue is kept, every other is linked to it as a duplicate and both are
told; the caller links the problem to the oldest only.

Every issue the bridge creates carries the marker label and an entity property naming
the problem, so a person (or an app) can tell which problem an issue belongs to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bridge.domain.problems import JiraTarget
from jira_link.client import JiraError, JiraIssue, jql_string
from jira_link.linker import LinkOptions, comment_unless_repeated, issue_fields, marker_label
from jira_link.port import JiraPort

log = logging.getLogger(__name__)

PROPERTY_KEY = "incident-bridge.problem"
DUPLICATE = "Duplicate"
# Fields read on the issues a marker search finds: enough to tell twins already settled.
MARKER_FIELDS = ("labels", "issuelinks")


class SearchNotSettled(JiraError):
    """A create may have happened and Jira's search may not show it yet: search again later, do not create."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retryable=True, retry_after=retry_after)


@dataclass(frozen=True)
class FoundIssues:
    """The problem's issue (the oldest with its marker) and the twins made by mistake, oldest first."""

    keep: JiraIssue
    twins: list[JiraIssue] = field(default_factory=list)
    created: bool = False


def problem_property(options: LinkOptions, problem_id: int) -> dict[str, Any]:
    """The entity property written into every issue the bridge creates: whose problem it is."""
    return {"key": PROPERTY_KEY, "value": {"marker": marker_label(options, problem_id), "problem_id": problem_id}}


def issues_with_marker(jira: JiraPort, options: LinkOptions, problem_id: int) -> list[JiraIssue]:
    """Issues carrying the problem's marker label, oldest first, in any project (an issue may have moved)."""
    found = jira.search(f"labels = {jql_string(marker_label(options, problem_id))}", fields=MARKER_FIELDS)
    return sorted(found, key=lambda issue: issue.numeric_id)


def settle_wait(attempted_at: datetime, now: datetime, settle: timedelta) -> float | None:
    """Seconds to wait before searching again after a create attempted at `attempted_at`; None once settled.

    The wait doubles with the time already waited (1, 2, 4... seconds) and never runs past the
    settle time, so a retry re-searches a few times and then, if still nothing, creates.
    """
    settled_at = attempted_at + settle
    if now >= settled_at:
        return None
    waited = max(0.0, (now - attempted_at).total_seconds())
    return max(0.5, min((settled_at - now).total_seconds(), max(1.0, waited)))


def find_or_create_settled(
    jira: JiraPort,
    problem: Mapping[str, Any],
    target: JiraTarget,
    options: LinkOptions,
    priority: str | None,
    now: datetime,
    note_attempt: Callable[[datetime], None],
) -> FoundIssues:
    """The problem's issue: found by marker (keeping the oldest), else created once the index has settled.

    `problem["jira_create_attempted_at"]` says a create may have happened; `note_attempt(now)` must
    durably record this attempt before the create is sent (a crash after it is then known).

    Raises:
        SearchNotSettled: nothing found yet, but an earlier create may not be searchable yet.
        JiraError: from the search or the create.
    """
    found = issues_with_marker(jira, options, problem["id"])
    if found:
        log.info("found issue created earlier for problem", extra={"problem_id": problem["id"], "key": found[0].key})
        return FoundIssues(found[0], found[1:])
    attempted = problem.get("jira_create_attempted_at")
    if attempted is not None:
        wait = settle_wait(attempted, now, timedelta(seconds=options.search_settle_seconds))
        if wait is not None:
            raise SearchNotSettled(
                f"an issue may have been created for problem {problem['id']} at {attempted:%H:%M:%S} UTC and "
                "Jira's search does not show it yet; searching again before creating",
                retry_after=wait,
            )
    note_attempt(now)
    created = jira.create_issue_ref(
        issue_fields(jira, problem, target, options, priority), [problem_property(options, problem["id"])]
    )
    return FoundIssues(created, created=True)


def is_duplicate_of(twin: JiraIssue, keep: JiraIssue) -> bool:
    """Whether the twin already says it duplicates the kept issue (its `issuelinks` field)."""
    for link in (twin.fields or {}).get("issuelinks") or []:
        other = link.get("outwardIssue") or {}
        if (link.get("type") or {}).get("name") == DUPLICATE and (
            (keep.id is not None and other.get("id") == keep.id) or other.get("key") == keep.key
        ):
            return True
    return False


def mark_twins(jira: JiraPort, keep: JiraIssue, twins: Sequence[JiraIssue], problem_id: int) -> list[str]:
    """Link each twin to the kept issue as its duplicate and say so on both; returns the twins newly marked.

    The link goes last: it is what tells a later check the twin is settled, so a crash in
    between only repeats comments, which `comment_unless_repeated` skips.
    """
    marked = []
    for twin in twins:
        if is_duplicate_of(twin, keep):
            continue
        comment_unless_repeated(
            jira,
            twin.key,
            f"Duplicate of {keep.key}: incident-bridge filed problem {problem_id} twice while Jira's search "
            f"did not show the first issue yet. Problem {problem_id} is linked to {keep.key} only.",
        )
        comment_unless_repeated(
            jira,
            keep.key,
            f"{twin.key} duplicates this issue (filed twice for incident-bridge problem {problem_id} while "
            "Jira's search lagged). The problem stays linked here.",
        )
        jira.link_issues(DUPLICATE, twin.key, keep.key)
        log.warning(
            "twin Jira issue marked as duplicate", extra={"problem_id": problem_id, "twin": twin.key, "kept": keep.key}
        )
        marked.append(twin.key)
    return marked
