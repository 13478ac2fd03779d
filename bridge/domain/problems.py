"""Problems: the rules that group incidents, and a problem's lifecycle as pure transitions.

A problem is open, becomes a known error once linked to a Jira issue, is closed by a
release or by hand, and may be reopened (by hand, or as a regression when its failure
comes back after the fix). The store persists what these functions decide.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from bridge.domain.incidents import Incident, Matcher
from bridge.domain.outcomes import OutcomeRules

# A Jira issue key. At most 64 characters in all, as the columns holding a key (problems.jira_key,
# release_issues.issue_key).
JIRA_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,46}-[1-9][0-9]{0,15}$")
# A Jira project key, as the columns holding one (problems.jira_project, releases.project) take it.
JIRA_PROJECT = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")


class ProblemState(enum.StrEnum):
    OPEN = "open"
    KNOWN_ERROR = "known_error"
    CLOSED = "closed"


class TransitionRefused(ValueError):
    """A problem cannot make this change in its current state."""


class MergeRefused(TransitionRefused):
    """A merge or move the problems' states forbid; `invalid` when the request itself makes no sense."""

    def __init__(self, message: str, *, invalid: bool = False) -> None:
        super().__init__(message)
        self.invalid = invalid


@dataclass(frozen=True)
class Problem:
    """A root cause many incidents share; each change returns the problem as it becomes."""

    id: int | None
    problem_key: str
    rule: str
    state: ProblemState
    summary: str
    description: str
    opened_at: datetime
    incident_count: int = 0
    closed_at: datetime | None = None
    fixed_in: str | None = None
    fixed_at: datetime | None = None
    regressions: int = 0
    jira_project: str | None = None
    jira_key: str | None = None
    jira_url: str | None = None
    jira_linked_by: str | None = None
    conclusion: str | None = None
    conclusion_updated_at: datetime | None = None
    comment_pending: int = 0
    comment_pending_since: datetime | None = None
    last_comment_at: datetime | None = None
    last_comment_hash: str | None = None
    # Jira's immutable id of the linked issue (the key changes when the issue moves).
    jira_issue_id: str | None = None
    # When the bridge last asked Jira to create this problem's issue (a retry then waits for the search index).
    jira_create_attempted_at: datetime | None = None
    # What the linked issue's end state means (an IssueOutcome value), once Jira says it is done.
    outcome: str | None = None
    # The problem this one was merged into (it is then closed, its incidents moved there).
    merged_into: int | None = None
    # What the first line can tell callers until the fix ships, set by a person (every open ticket hears it).
    workaround: str | None = None
    workaround_updated_at: datetime | None = None
    workaround_by: str | None = None
    # Tickets reopened by their customers after this problem closed with its fix: the fix did not help them.
    reopened_by_ticket: int = 0
    # The releases and changes that may have caused it (bridge/domain/suspects.py), nearest first, as
    # decided when it opened or last regressed; None when nothing was looked for.
    suspects: list[dict[str, Any]] | None = None

    @property
    def stored_id(self) -> int:
        """The id of a problem the store has written (every one a use case reads back has it)."""
        if self.id is None:
            raise ValueError("a problem not written yet has no id")
        return self.id

    @classmethod
    def open(
        cls, problem_key: str, rule: str, summary: str, description: str, now: datetime, jira_project: str | None = None
    ) -> Problem:
        """A new problem, not yet stored (id None); an empty summary falls back to the key."""
        return cls(
            id=None,
            problem_key=problem_key,
            rule=rule,
            state=ProblemState.OPEN,
            summary=summary.strip()[:1000] or problem_key,
            description=description,
            opened_at=now,
            jira_project=jira_project,
        )

    @property
    def is_closed(self) -> bool:
        return self.state is ProblemState.CLOSED

    def link(self, jira_key: str, jira_url: str, linked_by: str, issue_id: str | None = None) -> Problem:
        """Linked to its Jira issue: an open problem becomes a known error (a closed one stays closed).

        Raises:
            TransitionRefused: already linked to an issue.
        """
        if self.jira_key is not None:
            raise TransitionRefused(f"problem {self.id} is already linked to {self.jira_key}")
        state = ProblemState.KNOWN_ERROR if self.state is ProblemState.OPEN else self.state
        return replace(
            self, jira_key=jira_key, jira_url=jira_url, jira_linked_by=linked_by, jira_issue_id=issue_id, state=state
        )

    def issue_moved(self, jira_key: str, jira_url: str, issue_id: str | None) -> Problem:
        """Its issue answers under another key (moved to another project, or renumbered): follow it."""
        return replace(
            self,
            jira_key=jira_key,
            jira_url=jira_url,
            jira_project=jira_key.rsplit("-", 1)[0],
            jira_issue_id=issue_id or self.jira_issue_id,
        )

    def unlink(self) -> Problem:
        """Its issue forgotten with the conclusion read from it: a known error is an open problem again."""
        state = ProblemState.OPEN if self.state is ProblemState.KNOWN_ERROR else self.state
        return replace(
            self,
            jira_key=None,
            jira_url=None,
            jira_linked_by=None,
            jira_issue_id=None,
            conclusion=None,
            conclusion_updated_at=None,
            state=state,
        )

    def close(self, now: datetime, *, fixed_in: str | None = None, fixed_at: datetime | None = None) -> Problem:
        """Closed by hand, or by a release when `fixed_in` names it (the fix is then remembered)."""
        if fixed_in is None:
            return replace(self, state=ProblemState.CLOSED, closed_at=now)
        return replace(self, state=ProblemState.CLOSED, closed_at=now, fixed_in=fixed_in, fixed_at=fixed_at)

    def reopen(self, *, regression: bool) -> Problem:
        """Live again: a known error while it still has its issue, else open; a regression is counted.

        Raises:
            TransitionRefused: the problem is not closed.
        """
        if not self.is_closed:
            raise TransitionRefused(f"problem {self.id} is not closed")
        state = ProblemState.KNOWN_ERROR if self.jira_key is not None else ProblemState.OPEN
        return replace(self, state=state, closed_at=None, regressions=self.regressions + int(regression))

    def merge_into(self, into: Problem, now: datetime) -> tuple[Problem, Problem, str | None, str | None]:
        """This problem closed as merged into `into`, and `into` as it becomes; plus the issue moved, or the conflict.

        The Jira link is kept: the source's issue moves to `into` when `into` has none; when
        both have their own, `into` keeps its issue and the conflict is named (the source's
        issue stays recorded on the closed source).

        Raises:
            MergeRefused: into itself (`invalid`), or either problem is closed or already merged.
        """
        if self.id == into.id:
            raise MergeRefused(f"problem {self.id} cannot be merged into itself", invalid=True)
        if self.merged_into is not None:
            raise MergeRefused(f"problem {self.id} is already merged into problem {self.merged_into}")
        if self.is_closed:
            raise MergeRefused(f"problem {self.id} is closed; reopen it before merging")
        if into.merged_into == self.id:
            raise MergeRefused(f"problem {into.id} is already merged into problem {self.id}; a merge back would loop")
        if into.merged_into is not None:
            raise MergeRefused(
                f"problem {into.id} is merged into problem {into.merged_into}; merge into that problem instead"
            )
        if into.is_closed:
            raise MergeRefused(f"problem {into.id} is closed; merge into an open problem")
        merged = replace(
            self,
            state=ProblemState.CLOSED,
            closed_at=now,
            merged_into=into.id,
            incident_count=0,
            comment_pending=0,
            comment_pending_since=None,
        )
        if self.jira_key is None or self.jira_key == into.jira_key:
            return merged, into, None, None
        if into.jira_key is None:
            moved = self.jira_key
            # What was read from the issue goes with it, so the next sync finds nothing new to count.
            # So do the issue's comment throttle and what it was not told yet.
            target = replace(
                into,
                outcome=self.outcome,
                conclusion=self.conclusion,
                conclusion_updated_at=self.conclusion_updated_at,
                comment_pending=self.comment_pending,
                comment_pending_since=self.comment_pending_since,
                last_comment_at=self.last_comment_at,
                last_comment_hash=self.last_comment_hash,
            ).link(moved, self.jira_url or "", self.jira_linked_by or "merge")
            return merged.unlink(), target, moved, None
        conflict = (
            f"both problems have a Jira issue: problem {into.id} keeps {into.jira_key}; "
            f"{self.jira_key} stays recorded on merged problem {self.id}"
        )
        return merged, into, None, conflict

    def told_later(self, joined: int, now: datetime) -> Problem:
        """`joined` incidents its issue has not heard of, for the next throttled comment (none without an issue)."""
        if self.jira_key is None or joined <= 0:
            return self
        return replace(
            self,
            comment_pending=self.comment_pending + joined,
            comment_pending_since=self.comment_pending_since or now,
        )

    def fix_shipped_by(self, now: datetime) -> bool:
        """Whether a release closed this problem with its fix out by `now` (a recurrence is then a regression)."""
        return self.is_closed and self.fixed_in is not None and self.fixed_at is not None and now >= self.fixed_at


@dataclass(frozen=True)
class JiraTarget:
    """Where and how a problem rule files its Jira issue."""

    create: bool
    project: str
    issue_type: str
    labels: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    priority_map: Mapping[str, str] = field(default_factory=dict)
    comment_interval: timedelta = timedelta(hours=1)
    close_on_release: bool = True
    done_transition: str | None = None
    reopen_on_regression: bool = True
    reopen_transition: str | None = None
    # Transition name -> fields its screen needs (resolution, custom fields), sent with the transition.
    transition_fields: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # What the issue's resolution means once it is done: fixed, won't do, duplicate.
    outcomes: OutcomeRules = field(default_factory=OutcomeRules)


Renderer = Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class ProblemRule:
    """Groups matching incidents under a root problem keyed by a rendered template."""

    name: str
    matcher: Matcher
    key: Renderer
    summary: Renderer
    description: Renderer
    open_after: int
    window: timedelta
    jira: JiraTarget | None = None


def template_context(incident: Incident) -> dict[str, Any]:
    """What problem templates may read: the incident's own data, nothing from the host."""
    return {
        "labels": dict(incident.labels),
        "annotations": dict(incident.annotations),
        "source": incident.source,
        "summary": incident.summary,
        "priority": incident.priority,
        "line": incident.line,
        "dedup_key": incident.dedup_key,
    }


def problem_rule_for(problem_rules: Sequence[ProblemRule], incident: Incident) -> ProblemRule | None:
    """The first problem rule whose matcher fits the incident's source and labels."""
    for rule in problem_rules:
        if rule.matcher.fits(incident.source, incident.labels):
            return rule
    return None


def opens_problem(rule: ProblemRule, matching_in_window: int) -> bool:
    """Whether a key with no live problem opens one: once `open_after` incidents fell in the window.

    `matching_in_window` counts incidents with this key, not yet in a problem, inside the
    rule's window, including the incidents being decided.
    """
    return matching_in_window >= rule.open_after


def comment_text(new_incidents: int, since: datetime) -> str:
    """The throttled Jira comment for incidents that joined a known problem."""
    noun = "incident" if new_incidents == 1 else "incidents"
    return f"{new_incidents} more {noun} since {since.strftime('%Y-%m-%d %H:%M UTC')}"


def release_comment_text(version: str, problem_ids: Sequence[int], incidents_closed: int) -> str:
    """The Jira comment a release leaves on each issue it closed."""
    problems_text = ", ".join(f"#{pid}" for pid in problem_ids)
    noun = "incident" if incidents_closed == 1 else "incidents"
    return (
        f"Released in {version}: incident-bridge closed problem {problems_text} and {incidents_closed} linked {noun}."
    )


def regression_comment_text(fixed_in: str, incident_summary: str, running_version: str | None) -> str:
    """The Jira comment when a failure fixed in a release comes back."""
    where = f" on version {running_version}" if running_version else ""
    return f"Regression: the failure fixed in {fixed_in} came back{where}: {incident_summary}"
