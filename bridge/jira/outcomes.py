"""Acting on what Jira concluded: a synced issue's outcome applied to the problems linked to it.

The sync job (worker) reads the issue, `apply_issue_reading` decides per problem with
`bridge.domain.outcome_step` and writes in one transaction: the conclusion (which the
problem's open tickets hear, bridge.problems.notices), the outcome and its history; won't
do closes the problem (and its incidents, per rule). What needs other locks runs after,
each in a transaction of its own that re-checks the state: a duplicate relinks to the issue
it duplicates or merges into that issue's problem (`bridge.problems.corrections.merge_problems`,
actor "jira"), and an issue opened again after won't do reopens its problem.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from bridge import metrics
from bridge.domain.outcomes import (
    LINKED_AS_DUPLICATE,
    IssueOutcome,
    IssueReading,
    OutcomeRules,
    OutcomeStep,
    outcome_step,
    outcome_text,
)
from bridge.domain.problems import JIRA_KEY, Problem
from bridge.domain.rules import Rules
from bridge.errors import Conflict
from bridge.outbox.jobs import EnsureIssue, SyncIssue, queue
from bridge.problems.closing import close_and_tell
from bridge.problems.corrections import merge_problems
from bridge.problems.notices import tell_tickets
from bridge.storage.engine import Connection
from bridge.storage.store import Store
from jira_link.linker import conclusion_detail

log = logging.getLogger(__name__)

# Who the history names when Jira's outcome acted.
JIRA_ACTOR = "jira"


def outcome_rules_for(rules: Rules, rule_name: str) -> OutcomeRules:
    """The outcome rules of a problem's rule; the defaults for a rule without Jira (or gone from rules.yaml)."""
    rule = next((r for r in rules.problem_rules if r.name == rule_name), None)
    return rule.jira.outcomes if rule is not None and rule.jira is not None else OutcomeRules()


def apply_issue_reading(
    store: Store, rules: Rules, reading: IssueReading, issue_url: Callable[[str], str], now: datetime
) -> dict[int, OutcomeStep]:
    """Mirror an issue's conclusion on its live problems and act on its outcome; returns the step each took.

    Reading the same issue again changes nothing more (each step checks what was recorded).
    """
    applied: list[str] = []
    closed_incidents: list[int] = []
    later: list[tuple[Problem, OutcomeStep, str | None]] = []

    def work(conn: Connection) -> dict[int, OutcomeStep]:
        # A retried transaction starts over: keep only what the committed attempt decided.
        applied.clear()
        closed_incidents.clear()
        later.clear()
        steps: dict[int, OutcomeStep] = {}
        for problem in store.problems_for_issues(conn, [reading.key]):
            outcomes = outcome_rules_for(rules, problem.rule)
            outcome = outcomes.outcome_of(reading.status_category, reading.resolution)
            duplicates = outcomes.duplicated_issue(reading) if outcome is IssueOutcome.DUPLICATE else None
            if duplicates is not None and not JIRA_KEY.fullmatch(duplicates):
                log.warning("duplicated issue key not usable", extra={"key": reading.key, "duplicates": duplicates})
                duplicates = None
            step = outcome_step(problem, outcome, duplicates)
            steps[problem.stored_id] = step
            if not problem.is_closed:
                read = replace(problem, conclusion=reading.conclusion, conclusion_updated_at=now)
                store.save_problem(conn, problem, read)
                problem = read
                if conclusion_detail(problem.conclusion):
                    tell_tickets(conn, store, rules, [problem.stored_id], now)
            if step is OutcomeStep.NOTHING:
                continue
            if step in (OutcomeStep.REOPEN, OutcomeStep.FOLLOW):
                later.append((problem, step, duplicates))
            if step is OutcomeStep.REOPEN:
                continue
            assert outcome is not None or step is OutcomeStep.CLEAR
            if outcome is not None and problem.outcome != outcome:
                applied.append(outcome.value)
            if step is OutcomeStep.CLOSE:
                closed_incidents.append(_close_wont_do(conn, store, rules, problem, reading, outcomes, now))
                continue
            store.save_problem(conn, problem, replace(problem, outcome=outcome.value if outcome else None))
            detail = (
                outcome_text(reading, outcome, duplicates)
                if outcome is not None
                else f"{reading.key} is {reading.status or 'not done'} again in Jira: outcome cleared"
            )
            store.add_problem_events(conn, [dict(problem_id=problem.stored_id, at=now, kind="outcome", detail=detail)])
        return steps

    steps = store.run(work)
    for outcome in applied:
        metrics.labelled(metrics.PROBLEM_OUTCOMES, outcome).inc()
    if sum(closed_incidents):
        metrics.labelled(metrics.CLOSED, "jira_outcome").inc(sum(closed_incidents))
    for problem, step, duplicates in later:
        if step is OutcomeStep.FOLLOW and duplicates is not None:
            follow_duplicate(store, problem.stored_id, reading.key, duplicates, issue_url(duplicates), now)
        elif step is OutcomeStep.REOPEN:
            reopen_after_jira(store, problem.stored_id, reading, now)
    return steps


def _close_wont_do(
    conn: Connection,
    store: Store,
    rules: Rules,
    problem: Problem,
    reading: IssueReading,
    outcomes: OutcomeRules,
    now: datetime,
) -> int:
    """Close a problem whose issue won't be done, with that conclusion; its incidents too when the rule says so,
    and then its tickets, whose systems are told (bridge.problems.tickets.after_close)."""
    problem_id = problem.stored_id
    store.save_problem(conn, problem, replace(problem, outcome=IssueOutcome.WONT_DO.value))
    reason = f"Jira {reading.key} resolved as {reading.resolution or 'done'}: won't do"
    closed = 0
    if outcomes.close_incidents:
        closed, told = close_and_tell(conn, store, rules, problem_id, now, reason, reason)
        incidents_note = f"{closed} incidents closed" + (f", {told} tickets' systems told" if told else "")
    else:
        store.change_problem(conn, problem_id, lambda live: live.close(now))
        incidents_note = "its incidents left as they are (close_incidents: false)"
    store.add_problem_events(
        conn,
        [
            dict(
                problem_id=problem_id,
                at=now,
                kind="closed",
                detail=f"{outcome_text(reading, IssueOutcome.WONT_DO)} ({incidents_note})",
            )
        ],
    )
    return closed


def follow_duplicate(store: Store, problem_id: int, key: str, duplicates: str, url: str, now: datetime) -> int | None:
    """A problem whose issue duplicates another follows it: relinked to it, or merged into its live problem.

    Returns the problem merged into, if any. Nothing happens when the problem changed
    meanwhile (closed, or linked elsewhere).
    """

    def work(conn: Connection) -> int | None:
        problem = store.find_problem(conn, problem_id, for_update=True)
        if problem is None or problem.is_closed or problem.jira_key != key:
            return None
        others = [p.stored_id for p in store.live_problems_for_issue(duplicates, conn) if p.id != problem_id]
        if others:
            return others[0]
        relinked = replace(problem.unlink(), outcome=problem.outcome).link(duplicates, url, LINKED_AS_DUPLICATE)
        store.save_problem(conn, problem, relinked)
        store.add_problem_events(
            conn,
            [
                dict(
                    problem_id=problem_id,
                    at=now,
                    kind="linked",
                    detail=f"{key} duplicates {duplicates}: the problem follows {duplicates} now",
                )
            ],
        )
        queue(conn, store, EnsureIssue(problem_id), now)
        queue(conn, store, SyncIssue(duplicates), now)
        return None

    into = store.run(work)
    if into is None:
        return None
    try:
        merge_problems(store, problem_id, into, JIRA_ACTOR, f"{key} duplicates {duplicates}", now)
    except Conflict as exc:
        # Someone closed or merged one of them meanwhile; the next sync of the issue decides again.
        log.warning("duplicate not merged", extra={"problem_id": problem_id, "into": into, "reason": exc.message})
        return None
    return into


def reopen_after_jira(store: Store, problem_id: int, reading: IssueReading, now: datetime) -> bool:
    """A problem won't do closed reopens when its issue is worked on again, as a reopen by hand would.

    Its closed incidents stay closed; new ones join it. When another problem is open for
    the key meanwhile, this one stays closed and the history says why. Returns whether it reopened.
    """

    def work(conn: Connection) -> bool:
        found = store.find_problem(conn, problem_id)
        if found is None or not found.is_closed or found.outcome != IssueOutcome.WONT_DO or found.merged_into:
            return False
        # The key's lock before the row's, in the order grouping takes them.
        store.lock_problem_key(conn, found.problem_key)
        other = store.open_problem(conn, found.problem_key)
        problem = store.find_problem(conn, problem_id, for_update=True)
        assert problem is not None
        again = f"{reading.key} is {reading.status or 'not done'} again in Jira"
        if other is not None:
            store.save_problem(conn, problem, replace(problem, outcome=None))
            detail, kind = f"{again}; stays closed: problem {other.id} is open for {problem.problem_key!r}", "outcome"
        else:
            reopened = replace(
                problem.reopen(regression=False),
                outcome=None,
                conclusion=reading.conclusion,
                conclusion_updated_at=now,
            )
            store.save_problem(conn, problem, reopened)
            detail, kind = f"{again}: the won't-do close is undone", "reopened"
        store.add_problem_events(conn, [dict(problem_id=problem_id, at=now, kind=kind, detail=detail)])
        return other is None

    return store.run(work)
