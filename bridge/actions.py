"""What a person does by hand to problems and incidents, each recorded with who did it.

Use cases in the style of bridge/problems.py: they take the store and the actor's name,
decide, and write the change and its history in one transaction. The HTTP edge (API and
pages) finds the actor (bridge/actors.py); these functions never look at a request.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bridge import metrics
from bridge.domain import Incident, IncidentState, Problem, Rules, mark_acknowledged
from bridge.errors import Conflict, NotFound, Unprocessable
from bridge.jobs import EnsureIssue, queue
from bridge.storage import Connection, Store

log = logging.getLogger(__name__)


def record_action(
    conn: Connection,
    store: Store,
    *,
    at: datetime,
    actor: str,
    kind: str,
    detail: str,
    problem_id: int | None = None,
    incident_id: int | None = None,
) -> None:
    """Write a person's action into the problem's history and the incident's, whichever it touched."""
    if problem_id is not None:
        store.add_problem_events(conn, [dict(problem_id=problem_id, at=at, kind=kind, detail=detail, actor=actor)])
    if incident_id is not None:
        store.add_incident_events(conn, [dict(incident_id=incident_id, at=at, kind=kind, detail=detail, actor=actor)])


def _live_problem(conn: Connection, store: Store, problem_id: int) -> Problem:
    problem = store.find_problem(conn, problem_id, for_update=True)
    if problem is None:
        raise NotFound(f"no problem {problem_id}")
    return problem


def acknowledge_incident(store: Store, incident_id: int, actor: str, note: str | None, now: datetime) -> Incident:
    """Someone has the incident in hand: its response clock stops (a late acknowledgement records the breach).

    Two people acknowledging at once: one wins, the other hears who did.

    Raises:
        NotFound: no such incident. Conflict: closed, or already acknowledged.
    """

    def work(conn: Connection) -> tuple[Incident, bool]:
        incident = store.find_incident(conn, incident_id, for_update=True)
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        if incident.state is IncidentState.CLOSED:
            raise Conflict(f"incident {incident_id} is closed")
        if incident.acknowledged_at is not None:
            raise Conflict(
                f"incident {incident_id} was already acknowledged by {incident.acknowledged_by}",
                [f"acknowledged_at: {incident.acknowledged_at.isoformat()}"],
            )
        after = incident.copy()
        mark_acknowledged(after, actor, now)
        late = after.response_breached and not incident.response_breached
        if not store.record_acknowledgement(
            conn, incident_id, actor, now, after.response_breached_at if late else None
        ):
            raise Conflict(f"incident {incident_id} was acknowledged by someone else meanwhile")
        detail = f"incident {incident_id} acknowledged" + (f": {note}" if note else "")
        record_action(
            conn,
            store,
            at=now,
            actor=actor,
            kind="acknowledged",
            detail=detail,
            problem_id=incident.problem_id,
            incident_id=incident_id,
        )
        return incident, late

    incident, late = store.run(work)
    metrics.labelled(metrics.RESPONSE, incident.priority).observe(max(0.0, (now - incident.first_seen).total_seconds()))
    if late:
        metrics.labelled(metrics.RESPONSE_BREACHES, incident.priority).inc()
    found = store.get_incident(incident_id)
    assert found is not None
    return found


def add_problem_note(store: Store, problem_id: int, actor: str, text: str, now: datetime) -> None:
    """A note in the problem's history: what was tried, who was called.

    Raises:
        NotFound: no such problem.
    """

    def work(conn: Connection) -> None:
        _live_problem(conn, store, problem_id)
        record_action(conn, store, at=now, actor=actor, kind="note", detail=text, problem_id=problem_id)

    store.run(work)


def create_issue_now(store: Store, rules: Rules, problem_id: int, actor: str, now: datetime) -> str:
    """Queue the Jira issue of a problem whose rule does not file one itself; returns the Jira project.

    The worker's ensure-issue job does the rest (crash-safe create, link back), as for rules that create.

    Raises:
        NotFound: no such problem. Conflict: closed, or already linked.
        Unprocessable: its rule names no Jira project.
    """
    rule_of = {rule.name: rule for rule in rules.problem_rules}

    def work(conn: Connection) -> str:
        problem = _live_problem(conn, store, problem_id)
        if problem.is_closed:
            raise Conflict(f"problem {problem_id} is closed")
        if problem.jira_key is not None:
            raise Conflict(f"problem {problem_id} is already linked to {problem.jira_key}")
        rule = rule_of.get(problem.rule)
        if rule is None or rule.jira is None:
            raise Unprocessable(
                f"problem {problem_id}'s rule {problem.rule!r} names no Jira project",
                ["rules.yaml: give the problem rule a jira: {project: ...} target, or link an issue by hand"],
            )
        queue(conn, store, EnsureIssue(problem_id, store.first_priority(conn, problem_id)), now)
        record_action(
            conn,
            store,
            at=now,
            actor=actor,
            kind="issue_requested",
            detail=f"Jira issue requested in {rule.jira.project}",
            problem_id=problem_id,
        )
        return rule.jira.project

    return store.run(work)


def unlink_issue(store: Store, problem_id: int, actor: str, now: datetime) -> dict[str, Any]:
    """Forget a problem's Jira issue (the issue itself is left alone); unlinking an unlinked problem changes nothing.

    Raises:
        NotFound: no such problem.
    """

    def work(conn: Connection) -> None:
        problem = _live_problem(conn, store, problem_id)
        if problem.jira_key is None:
            return
        store.save_problem(conn, problem, problem.unlink())
        # A link-back job queued when the issue was linked would otherwise file a new issue for the problem.
        store.cancel_pending(conn, EnsureIssue.KIND, problem_id, f"{problem.jira_key} unlinked", now)
        record_action(
            conn,
            store,
            at=now,
            actor=actor,
            kind="unlinked",
            detail=f"{problem.jira_key} unlinked",
            problem_id=problem_id,
        )

    store.run(work)
    found = store.get_problem(problem_id)
    assert found is not None
    return found


def record_job_retry(store: Store, job: dict[str, Any], actor: str, now: datetime) -> None:
    """An outbox retry by hand, in the history of the job's problem (a job without one leaves only the log)."""
    log.info("outbox job retried by hand", extra={"job_id": job["id"], "actor": actor})
    if job["problem_id"] is None:
        return
    store.run(
        lambda conn: record_action(
            conn,
            store,
            at=now,
            actor=actor,
            kind="job_retried",
            detail=f"outbox job {job['id']} ({job['kind']}) retried",
            problem_id=job["problem_id"],
        )
    )
