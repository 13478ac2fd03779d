"""Problems as a feature: grouping incidents under problems, and the problem use cases.

Grouping runs inside the webhook's transaction (set-based per key); linking, closing and
reopening by hand are the operator's use cases. What a problem may become is decided by
`bridge.domain.Problem`; this module loads, decides, saves and queues the side effects.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from bridge.domain.incidents import AlertResult, Incident, Outcome, bounded_key
from bridge.domain.problems import (
    Problem,
    ProblemRule,
    opens_problem,
    problem_rule_for,
    regression_comment_text,
    template_context,
)
from bridge.domain.rules import Rules
from bridge.outbox.jobs import CommentIncidents, EnsureIssue, RegressionReopen, queue
from bridge.outbox.notify import Announcer
from bridge.problems.suspects import find_suspects
from bridge.problems.versions import is_older
from bridge.rules.templates import TemplateError
from bridge.storage.engine import Connection
from bridge.storage.store import Store

log = logging.getLogger(__name__)


def set_problem_keys(rules: Rules, results: list[AlertResult]) -> list[tuple[Incident, ProblemRule]]:
    """Render problem keys for incidents that just opened or reopened outside a problem (see `problem_candidates`)."""
    return problem_candidates(
        rules,
        [
            result.incident
            for result in results
            if result.incident is not None and result.outcome in (Outcome.CREATED, Outcome.REOPENED)
        ],
    )


def problem_candidates(rules: Rules, opened: list[Incident]) -> list[tuple[Incident, ProblemRule]]:
    """Render problem keys for opened incidents outside a problem; each with its rule.

    A held incident opens or joins no problem until its window ends (its release calls this
    again). A template that fails on a real alert (a label the rule expects is missing) leaves
    the incident without a problem rather than refusing the alert.
    """
    candidates: dict[int, tuple[Incident, ProblemRule]] = {}
    for incident in opened:
        if incident.problem_id is not None or incident.held or id(incident) in candidates:
            continue
        rule = problem_rule_for(rules.problem_rules, incident)
        if rule is None:
            continue
        try:
            incident.problem_key = bounded_key(rule.key(template_context(incident)).strip())
        except TemplateError as exc:
            log.warning(
                "problem key template failed; incident left outside problems",
                extra={"rule": rule.name, "dedup_key": incident.dedup_key, "error": str(exc)},
            )
            continue
        if incident.problem_key:
            candidates[id(incident)] = (incident, rule)
    return list(candidates.values())


def _by_key(candidates: list[tuple[Incident, ProblemRule]]) -> tuple[dict[str, list[Incident]], dict[str, ProblemRule]]:
    """The candidates grouped by problem key, and each key's rule."""
    by_key: dict[str, list[Incident]] = {}
    rules_of: dict[str, ProblemRule] = {}
    for incident, rule in candidates:
        assert incident.problem_key is not None
        by_key.setdefault(incident.problem_key, []).append(incident)
        rules_of.setdefault(incident.problem_key, rule)
    return by_key, rules_of


def join_open_problems(
    conn: Connection, store: Store, candidates: list[tuple[Incident, ProblemRule]], now: datetime
) -> list[tuple[Incident, ProblemRule]]:
    """Before the incidents are written: those whose key has a live problem join it; the others, returned,
    go to `assign_problems` once written.

    A joining incident is written with its problem (an insert or the update of its reopen),
    not inserted and then updated again: in a storm of one failure, that second write of
    every new row cost a fifth of the transaction on PostgreSQL. Every candidate's key is
    locked here, in sorted order, so concurrent writers never deadlock on them, and the lock
    holds until commit: the keys returned still have no live problem when `assign_problems`
    decides them.
    """
    by_key, rules_of = _by_key(candidates)
    pending: list[tuple[Incident, ProblemRule]] = []
    for key in sorted(by_key):
        store.lock_problem_key(conn, key)
        # A key whose problem was merged sends its incidents where the merge gathered them.
        problem = store.open_problem(conn, key) or store.merged_successor(conn, key)
        if problem is None:
            pending.extend((incident, rules_of[key]) for incident in by_key[key])
            continue
        join_known_problem(conn, store, problem, by_key[key], rules_of[key], now, written=False)
    return pending


def assign_problems(
    conn: Connection,
    store: Store,
    pending: list[tuple[Incident, ProblemRule]],
    now: datetime,
    rules: Rules,
    announcer: Announcer | None = None,
) -> int:
    """Decide the written incidents `join_open_problems` left, whose keys it locked and found without a live
    problem: a recurrence of a released fix, a new problem at the threshold, or still waiting.

    Set-based per key, so an alert storm of one failure costs a handful of statements, not
    several per incident. Returns how many problems reopened as regressions. A problem that
    opens or regresses is given its suspects (bridge/problems/suspects.py). `announcer`
    queues problem.opened and problem.regressed.
    """
    by_key, rules_of = _by_key(pending)
    regressions = 0
    for key in sorted(by_key):
        rule = rules_of[key]
        problem = None
        waiting = []
        for incident in by_key[key]:
            assert incident.id is not None
            if problem is None:
                recurrence = handle_recurrence(conn, store, rules, incident, rule, now, announcer)
                if recurrence == "regressed":
                    regressions += 1
                    problem = store.open_problem(conn, key)
                if recurrence is not None:
                    continue
            waiting.append(incident)
        if not waiting:
            continue
        if problem is not None:
            join_known_problem(conn, store, problem, waiting, rule, now, written=True)
            continue
        since = now - rule.window
        if opens_problem(rule, store.count_problem_candidates(conn, key, since)):
            problem_id = open_new_problem(conn, store, key, waiting, rule, now, since)
            _give_suspects(conn, store, rules, problem_id, waiting[0])
            if announcer is not None:
                announcer.announce_problem(conn, "problem.opened", now, problem_id)
    return regressions


def _give_suspects(conn: Connection, store: Store, rules: Rules, problem_id: int, opening: Incident) -> None:
    """Keep the suspects of a problem that just opened, before anything announces it."""
    if not rules.projects:
        return
    first = store.first_occurrence(conn, problem_id) or opening.first_seen
    suspects = find_suspects(conn, store, rules, opening, first)
    if suspects is not None:
        store.set_suspects(conn, problem_id, suspects)


def join_known_problem(
    conn: Connection,
    store: Store,
    problem: Problem,
    joining: list[Incident],
    rule: ProblemRule,
    now: datetime,
    written: bool,
) -> None:
    """Attach incidents to an open problem (`written`: already in the store, so their rows are updated too);
    a linked issue hears of them in one throttled comment."""
    notify = problem.jira_key is not None
    attach = [incident.stored_id for incident in joining] if written else []
    store.join_problem(conn, problem.stored_id, attach, len(joining), notify, now)
    for incident in joining:
        incident.problem_id = problem.id
    if notify and rule.jira is not None:
        last = problem.last_comment_at
        run_at = max(now, last + rule.jira.comment_interval) if last else now
        queue(conn, store, CommentIncidents(problem.stored_id), now, run_at=run_at)


def open_new_problem(
    conn: Connection, store: Store, key: str, opening: list[Incident], rule: ProblemRule, now: datetime, since: datetime
) -> int:
    """Open a problem for a key, gathering every waiting incident of the window, and queue its Jira issue; its id."""
    first = opening[0]
    context = template_context(first)
    try:
        summary, description = rule.summary(context), rule.description(context)
    except TemplateError as exc:
        log.warning("problem summary template failed", extra={"rule": rule.name, "error": str(exc)})
        summary, description = key, ""
    problem = Problem.open(key, rule.name, summary, description, now, rule.jira.project if rule.jira else None)
    problem_id, _ = store.open_problem_with_candidates(conn, problem, since)
    for incident in opening:
        incident.problem_id = problem_id
    store.add_problem_events(
        conn, [dict(problem_id=problem_id, at=now, kind="opened", detail=f"opened by rule {rule.name}")]
    )
    if rule.jira is not None and rule.jira.create:
        queue(conn, store, EnsureIssue(problem_id, first.priority), now)
    return problem_id


def handle_recurrence(
    conn: Connection,
    store: Store,
    rules: Rules,
    incident: Incident,
    rule: ProblemRule,
    now: datetime,
    announcer: Announcer | None = None,
) -> str | None:
    """A failure whose problem a release closed fires again: a regression, or a target not yet fixed.

    With a version label configured, an incident from a target running a version older
    than the fix joins the closed problem as "fix not deployed there yet"; so does, with an
    environment label, one from an environment the fixing release did not reach (when the
    release named its environments). Otherwise the problem reopens as a regression
    (counted, recorded, Jira told, its suspects looked for again from this recurrence).
    Returns "not_deployed" or "regressed", or None when the key has no released fix.
    """
    version_label, environment_label = rules.version_label, rules.environment_label
    fixed = store.latest_fixed_problem(conn, incident.problem_key or "")
    if fixed is None or not fixed.fix_shipped_by(now):
        return None
    running = incident.labels.get(version_label) if version_label else None
    environment = incident.labels.get(environment_label) if environment_label else None
    reached = store.release_environments(conn, fixed) if environment else None
    not_deployed = None
    if running and is_older(running, fixed.fixed_in or ""):
        not_deployed = f"incidents from version {running}, older than the fix in {fixed.fixed_in}"
    elif environment and reached is not None and environment not in reached:
        not_deployed = (
            f"incidents in {environment}, where the fix in {fixed.fixed_in} is not deployed yet "
            f"(it reached {', '.join(reached) or 'no environment'})"
        )
    if not_deployed is not None:
        store.attach_incident(conn, fixed.stored_id, incident.stored_id)
        incident.problem_id = fixed.id
        store.add_problem_events(
            conn,
            [
                dict(
                    problem_id=fixed.id,
                    at=now,
                    kind="not_deployed",
                    detail=not_deployed,
                    release_version=fixed.fixed_in,
                    incident_id=incident.id,
                )
            ],
        )
        return "not_deployed"
    reopened = fixed.reopen(regression=True)
    # The recurrence began when the incident opened (its reopening, for one reopened within its window).
    suspects = find_suspects(
        conn, store, rules, incident, incident.first_seen if incident.reopen_count == 0 else incident.last_seen
    )
    store.save_problem(conn, fixed, reopened if suspects is None else replace(reopened, suspects=suspects))
    store.attach_incident(conn, fixed.stored_id, incident.stored_id)
    incident.problem_id = fixed.id
    where = f" on version {running}" if running else ""
    store.add_problem_events(
        conn,
        [
            dict(
                problem_id=fixed.id,
                at=now,
                kind="regressed",
                detail=f"incident {incident.id}{where} after the fix in {fixed.fixed_in}",
                release_version=fixed.fixed_in,
                incident_id=incident.id,
            )
        ],
    )
    if announcer is not None:
        announcer.announce_problem(conn, "problem.regressed", now, fixed.stored_id)
    if fixed.jira_key is not None and rule.jira is not None and rule.jira.reopen_on_regression:
        queue(
            conn,
            store,
            RegressionReopen(
                fixed.stored_id,
                fixed.jira_key,
                regression_comment_text(fixed.fixed_in or "", incident.summary, running),
            ),
            now,
        )
    return "regressed"
