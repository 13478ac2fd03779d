"""What a person does by hand to problems and incidents, each recorded with who did it.

Use cases in the style of bridge/problems/grouping.py: they take the store and the actor's name,
decide, and write the change and its history in one transaction. The HTTP edge (API and
pages) finds the actor (bridge/web/actors.py); these functions never look at a request.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bridge import metrics
from bridge.domain.incidents import Incident, IncidentState
from bridge.domain.lifecycle import Acknowledgement, mark_acknowledged
from bridge.domain.problems import JIRA_KEY, Problem, ProblemState
from bridge.domain.rules import Rules
from bridge.errors import BadPayload, Conflict, NotFound, Unprocessable, UpstreamError
from bridge.outbox.jobs import EnsureIssue, SyncIssue, queue
from bridge.outbox.notify import Announcer
from bridge.problems.closing import close_and_tell
from bridge.storage.engine import Connection
from bridge.storage.store import Store
from jira_link.client import JiraError
from jira_link.linker import LinkOptions
from jira_link.port import JiraPort

log = logging.getLogger(__name__)


# The kind of history entry a person's note on a problem or incident is.
NOTE = "note"


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

    def work(conn: Connection) -> Acknowledgement:
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
        acknowledged = acknowledge_in(conn, store, incident, actor, note, now)
        if acknowledged is None:
            raise Conflict(f"incident {incident_id} was acknowledged by someone else meanwhile")
        return acknowledged

    metrics.record_acknowledgement(store.run(work))
    found = store.get_incident(incident_id)
    assert found is not None
    return found


def acknowledge_in(
    conn: Connection, store: Store, incident: Incident, actor: str, note: str | None, now: datetime
) -> Acknowledgement | None:
    """The one acknowledgement, in the caller's transaction: a person's (the API, the pages) or the source's
    (a PagerDuty acknowledge, a Zabbix acknowledgement). The response clock stops, a late one records the
    breach, and the incident's and problem's histories say who. None when it was acknowledged already (the
    first stands); the caller counts what it returns once committed (metrics.record_acknowledgement).
    """
    after = incident.copy()
    if not mark_acknowledged(after, actor, now):
        return None
    late = after.response_breached and not incident.response_breached
    if not store.record_acknowledgement(
        conn, incident.stored_id, actor, now, after.response_breached_at if late else None
    ):
        return None
    detail = f"incident {incident.stored_id} acknowledged" + (f": {note}" if note else "")
    record_action(
        conn,
        store,
        at=now,
        actor=actor,
        kind="acknowledged",
        detail=detail,
        problem_id=incident.problem_id,
        incident_id=incident.stored_id,
    )
    response = max(0.0, (now - incident.first_seen).total_seconds())
    return Acknowledgement(incident.stored_id, incident.priority, response, late)


def add_problem_note(store: Store, problem_id: int, actor: str, text: str, now: datetime) -> None:
    """A note in the problem's history: what was tried, who was called.

    Raises:
        NotFound: no such problem.
    """

    def work(conn: Connection) -> None:
        _live_problem(conn, store, problem_id)
        record_action(conn, store, at=now, actor=actor, kind=NOTE, detail=text, problem_id=problem_id)

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


def link_problem(
    store: Store,
    jira: JiraPort | None,
    options: LinkOptions,
    problem_id: int,
    key: str,
    now: datetime,
    actor: str | None = None,
    announcer: Announcer | None = None,
) -> dict[str, Any]:
    """Link an existing Jira issue to a problem by hand, after checking the issue exists.

    Raises:
        BadPayload: not a Jira key. NotFound: no such problem. Conflict: closed problem,
        another issue already linked, or the issue is linked to another problem.
        Unprocessable: the issue does not exist. UpstreamError: Jira failed.
    """
    if not JIRA_KEY.fullmatch(key):
        raise BadPayload("invalid Jira key", [f"jira_key: expected a key like LKK-123, got {key!r}"])
    problem = store.get_problem(problem_id)
    if problem is None:
        raise NotFound(f"no problem {problem_id}")
    if problem["state"] == ProblemState.CLOSED:
        raise Conflict(f"problem {problem_id} is closed")
    if problem["jira_key"] == key:
        return problem
    if problem["jira_key"] is not None:
        raise Conflict(f"problem {problem_id} is already linked to {problem['jira_key']}; unlink it first")
    others = [p.id for p in store.live_problems_for_issue(key) if p.id != problem_id]
    if others:
        raise Conflict(f"{key} is already linked to problem {others[0]}")
    if jira is None:
        raise Conflict("Jira is not configured on this bridge (BRIDGE_JIRA_URL)")
    try:
        issue = jira.get_issue(key)
    except JiraError as exc:
        raise UpstreamError(f"could not check {key} in Jira: {exc.message}", exc.retryable) from exc
    if issue is None:
        raise Unprocessable(
            f"Jira issue {key} does not exist or is not visible to the bridge", [f"jira_key: {key} not found in Jira"]
        )
    # Jira answers a moved issue's old key with the issue as it is now: link its current key and its id.
    current = issue.key or key
    if current != key and any(p.id != problem_id for p in store.live_problems_for_issue(current)):
        raise Conflict(f"{key} is now {current}, already linked to another problem")
    url = jira.issue_url(current)
    detail = f"linked to {key} by hand" + (f" (now {current})" if current != key else "")

    def work(conn: Connection) -> dict[str, Any]:
        # Link, history and sync job commit together: a crash never leaves a link nobody syncs.
        store.link_issue(conn, problem_id, current, url, "manual", issue.id)
        store.add_problem_events(conn, [dict(problem_id=problem_id, at=now, kind="linked", detail=detail, actor=actor)])
        queue(conn, store, EnsureIssue(problem_id), now)
        queue_issue_sync(conn, store, current, now)
        if announcer is not None:
            announcer.announce_problem(conn, "problem.linked", now, problem_id, link={"jira_key": current})
        updated = store.get_problem(problem_id, conn)
        assert updated is not None
        return updated

    return store.run(work)


def queue_issue_sync(conn: Connection, store: Store, key: str, now: datetime) -> None:
    """Ask the worker to read an issue's conclusion (webhook and periodic sync share this)."""
    queue(conn, store, SyncIssue(key), now)


def close_problem_by_hand(
    store: Store, problem_id: int, reason: str, now: datetime, rules: Rules, actor: str | None = None
) -> None:
    """Close a problem and its incidents for a case the pipeline missed; Zabbix hears of its events too,
    and its tickets' systems and the notify targets (bridge.problems.tickets.after_close).

    Each incident's close reason names who closed it.

    Raises:
        NotFound: no such problem. Conflict: already closed.
    """

    def work(conn: Connection) -> None:
        problem = store.find_problem(conn, problem_id)
        if problem is None:
            raise NotFound(f"no problem {problem_id}")
        if problem.is_closed:
            raise Conflict(f"problem {problem_id} is already closed")
        by = f" by {actor}" if actor else ""
        count, _ = close_and_tell(
            conn,
            store,
            rules,
            problem_id,
            now,
            f"problem closed by hand{by}: {reason}",
            f"problem closed by hand: {reason}",
        )
        closed[:] = [count]
        store.add_problem_events(
            conn,
            [
                dict(
                    problem_id=problem_id,
                    at=now,
                    kind="closed",
                    detail=f"by hand: {reason} ({count} incidents closed)",
                    actor=actor,
                )
            ],
        )

    closed: list[int] = []
    store.run(work)
    metrics.labelled(metrics.CLOSED, "manual").inc(sum(closed))


def reopen_problem_by_hand(store: Store, problem_id: int, reason: str, now: datetime, actor: str | None = None) -> None:
    """Reopen a closed problem (its closed incidents stay closed; new ones will join it).

    Raises:
        NotFound: no such problem. Conflict: not closed, or another problem is open for the key.
    """

    def work(conn: Connection) -> None:
        problem = store.find_problem(conn, problem_id)
        if problem is None:
            raise NotFound(f"no problem {problem_id}")
        if not problem.is_closed:
            raise Conflict(f"problem {problem_id} is not closed")
        # The key's lock before the row's, in the order grouping takes them: no deadlock with a webhook.
        store.lock_problem_key(conn, problem.problem_key)
        other = store.open_problem(conn, problem.problem_key)
        if other is not None:
            raise Conflict(f"problem {other.id} is already open for {problem.problem_key!r}")
        store.change_problem(conn, problem_id, lambda closed: closed.reopen(regression=False))
        store.add_problem_events(
            conn, [dict(problem_id=problem_id, at=now, kind="reopened", detail=f"by hand: {reason}", actor=actor)]
        )

    store.run(work)
