"""What a linked Jira issue's end state means for its problem: fixed, won't do, or duplicate.

Jira ends an issue in a "done" status with a resolution; the resolution says why. Fixed
means the fix ships in a release (the problem waits for it, as a known error); won't do
(or cannot reproduce) means nothing will ship, so the problem closes with that
conclusion; duplicate means another issue carries the work, and the problem follows it.
Which resolution means what is the operator's (rules.yaml `jira.outcomes`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

# How a problem that followed its duplicate issue to the original was linked (problems.jira_linked_by).
LINKED_AS_DUPLICATE = "duplicate"


class IssueOutcome(enum.StrEnum):
    FIXED = "fixed"
    WONT_DO = "wont_do"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class OutcomeRules:
    """Resolutions per outcome; a done issue whose resolution no outcome names counts as fixed."""

    fixed: tuple[str, ...] = ("Done", "Fixed")
    wont_do: tuple[str, ...] = ("Won't Do", "Won't Fix", "Cannot Reproduce")
    duplicate: tuple[str, ...] = ("Duplicate",)
    # Whether a won't-do issue closes the problem's incidents too (else they stay as they are).
    close_incidents: bool = True
    # The issue link type whose outward side ("duplicates") names the issue a duplicate follows.
    duplicate_link_type: str = "Duplicate"

    def outcome_of(self, status_category: str | None, resolution: str | None) -> IssueOutcome | None:
        """The outcome of an issue in this status category with this resolution; None while it is not done."""
        if status_category != "done":
            return None
        name = (resolution or "").strip().casefold()
        for outcome, names in ((IssueOutcome.WONT_DO, self.wont_do), (IssueOutcome.DUPLICATE, self.duplicate)):
            if name in {n.casefold() for n in names}:
                return outcome
        return IssueOutcome.FIXED

    def duplicated_issue(self, reading: IssueReading) -> str | None:
        """The issue `reading`'s issue duplicates: the far end of its outward link of the duplicate type."""
        wanted = self.duplicate_link_type.casefold()
        return next((key for kind, key in reading.outward_links if kind.casefold() == wanted), None)


@dataclass(frozen=True)
class IssueReading:
    """What the bridge read of one issue: status, resolution, conclusion, and its outward links (type, key)."""

    key: str
    status: str | None
    status_category: str | None
    resolution: str | None
    conclusion: str | None
    outward_links: tuple[tuple[str, str], ...] = ()


class OutcomeStep(enum.StrEnum):
    """What a problem does about its issue's outcome."""

    NOTHING = "nothing"
    RECORD = "record"  # fixed (or a duplicate with no issue named): the outcome is shown, the problem waits
    CLOSE = "close"  # won't do: the problem closes with that conclusion
    FOLLOW = "follow"  # duplicate: relink to the duplicated issue, or merge into its problem
    CLEAR = "clear"  # the issue is not done any more: the outcome is forgotten
    REOPEN = "reopen"  # a problem won't do closed: its issue is worked on again


class OutcomeSubject(Protocol):
    """What deciding an outcome reads of a problem (bridge.domain.problems.Problem has it)."""

    @property
    def merged_into(self) -> int | None: ...
    @property
    def outcome(self) -> str | None: ...
    @property
    def jira_linked_by(self) -> str | None: ...
    @property
    def jira_key(self) -> str | None: ...
    @property
    def is_closed(self) -> bool: ...


def outcome_step(problem: OutcomeSubject, outcome: IssueOutcome | None, duplicates: str | None) -> OutcomeStep:
    """Decide what `problem` does now that its issue has `outcome`; repeating a reading changes nothing.

    A merged problem follows the problem it went to, never its own issue. A closed problem
    only reopens, and only when won't do closed it and the issue is open again (a problem
    a release closed comes back as a regression, not through Jira).
    """
    if problem.merged_into is not None:
        return OutcomeStep.NOTHING
    if outcome is None:
        if problem.is_closed:
            return OutcomeStep.REOPEN if problem.outcome == IssueOutcome.WONT_DO else OutcomeStep.NOTHING
        # "duplicate" stays on a problem that followed its issue to the original, until the original is done.
        followed = problem.outcome == IssueOutcome.DUPLICATE and problem.jira_linked_by == LINKED_AS_DUPLICATE
        return OutcomeStep.CLEAR if problem.outcome is not None and not followed else OutcomeStep.NOTHING
    if problem.is_closed:
        return OutcomeStep.NOTHING
    if outcome is IssueOutcome.WONT_DO:
        return OutcomeStep.CLOSE
    if outcome is IssueOutcome.DUPLICATE and duplicates is not None and duplicates != problem.jira_key:
        return OutcomeStep.FOLLOW
    return OutcomeStep.NOTHING if problem.outcome == outcome else OutcomeStep.RECORD


def outcome_text(reading: IssueReading, outcome: IssueOutcome, duplicates: str | None = None) -> str:
    """How the history says what Jira concluded."""
    resolution = f" as {reading.resolution}" if reading.resolution else ""
    if outcome is IssueOutcome.FIXED:
        return f"{reading.key} resolved{resolution}: waiting for the release that carries the fix"
    if outcome is IssueOutcome.WONT_DO:
        return f"{reading.key} resolved{resolution}: nothing will ship, the problem closes"
    if duplicates:
        return f"{reading.key} resolved{resolution}: it duplicates {duplicates}, which the problem follows"
    return f"{reading.key} resolved{resolution} without a duplicated issue linked: the problem keeps its issue"
