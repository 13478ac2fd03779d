"""Correcting grouping: merge one problem into another, move one incident to another problem.

Rules never group perfectly, and problem management expects people to correct them; Jira
corrects them too when an issue is resolved as a duplicate of another (bridge.jira.outcomes).
Each correction is one transaction that re-checks the problems' states under their locks,
so two people merging the same problems at once leave one consistent result.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bridge import metrics
from bridge.domain.problems import MergeRefused
from bridge.errors import Conflict, NotFound, Unprocessable
from bridge.outbox.jobs import CommentIncidents, EnsureIssue, SyncIssue, queue
from bridge.storage.engine import Connection
from bridge.storage.store import Store

# Who acted when the caller names nobody (an API call without a person behind a trusted header).
DEFAULT_ACTOR = "api"


@dataclass(frozen=True)
class MergeResult:
    """What a merge did: incidents moved, and what became of the Jira link."""

    source_id: int
    into_id: int
    incidents_moved: int
    jira_key: str | None
    jira_moved: str | None = None
    jira_conflict: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "merged": self.source_id,
            "into": self.into_id,
            "incidents_moved": self.incidents_moved,
            "jira_key": self.jira_key,
            "jira_moved": self.jira_moved,
            "jira_conflict": self.jira_conflict,
        }


def merge_problems(
    store: Store, source_id: int, into_id: int, actor: str | None, reason: str | None, now: datetime
) -> MergeResult:
    """Merge problem `source_id` into `into_id`: its incidents gathered there, the source closed as merged.

    History stays where it was, and both problems record the merge. The Jira link is kept
    (see `Problem.merge_into`): a link that moves is synced and linked back to its new problem.

    Raises:
        NotFound: no problem `source_id`. Unprocessable: into itself, or no problem `into_id`.
        Conflict: either problem is closed or merged (a concurrent merge that won, too).
    """
    who = actor or DEFAULT_ACTOR
    if source_id == into_id:
        raise Unprocessable(f"problem {source_id} cannot be merged into itself", ["into: must be another problem"])

    def work(conn: Connection) -> MergeResult:
        for key in store.problem_keys(conn, [source_id, into_id]):
            store.lock_problem_key(conn, key)
        found = store.lock_problems(conn, [source_id, into_id])
        source, into = found.get(source_id), found.get(into_id)
        if source is None:
            raise NotFound(f"no problem {source_id}")
        if into is None:
            raise Unprocessable(f"no problem {into_id} to merge into", [f"into: problem {into_id} does not exist"])
        try:
            merged, target, moved, conflict = source.merge_into(into, now)
        except MergeRefused as exc:
            raise (Unprocessable if exc.invalid else Conflict)(str(exc)) from exc
        store.save_problem(conn, source, merged)
        count = store.move_all_incidents(conn, source_id, into_id)
        store.move_ticket_links(conn, source_id, into_id)
        # The issue `into` ends with hears of the incidents new to it: its own when the issue moved, else the source's.
        target = target.told_later(into.incident_count if moved else count, now)
        store.save_problem(conn, into, target)
        because = f": {reason}" if reason else ""
        link_note = f"; {moved} moved to problem {into_id}" if moved else f"; {conflict}" if conflict else ""
        store.add_problem_events(
            conn,
            [
                dict(
                    problem_id=source_id,
                    at=now,
                    kind="merged",
                    detail=f"merged into problem {into_id} by {who}{because} ({count} incidents moved{link_note})",
                    actor=who,
                ),
                dict(
                    problem_id=into_id,
                    at=now,
                    kind="merged",
                    detail=f"problem {source_id} merged here by {who}{because} ({count} incidents gathered{link_note})",
                    actor=who,
                ),
            ],
        )
        if moved is not None:
            # The issue now belongs to `into`: link it back there and read its conclusion for it.
            queue(conn, store, EnsureIssue(into_id), now)
            queue(conn, store, SyncIssue(moved), now)
        if target.comment_pending > into.comment_pending:
            queue(conn, store, CommentIncidents(into_id), now)
        return MergeResult(source_id, into_id, count, target.jira_key, moved, conflict)

    result = store.run(work)
    metrics.PROBLEM_MERGES.inc()
    return result


def move_incident(store: Store, incident_id: int, problem_id: int, actor: str | None, now: datetime) -> int | None:
    """Move one incident to another live problem; returns the problem it left (None if it had none).

    Both problems and the incident record the move.

    Raises:
        NotFound: no incident `incident_id`. Unprocessable: no problem `problem_id`.
        Conflict: the problem is closed or merged, or the incident is already in it.
    """
    who = actor or DEFAULT_ACTOR

    def work(conn: Connection) -> int | None:
        incident = store.lock_incident(conn, incident_id)
        if incident is None:
            raise NotFound(f"no incident {incident_id}")
        previous = incident.problem_id
        if previous == problem_id:
            raise Conflict(f"incident {incident_id} is already in problem {problem_id}")
        found = store.lock_problems(conn, [problem_id] if previous is None else [problem_id, previous])
        target = found.get(problem_id)
        if target is None:
            raise Unprocessable(
                f"no problem {problem_id} to move into", [f"problem_id: problem {problem_id} does not exist"]
            )
        if target.merged_into is not None:
            raise Conflict(f"problem {problem_id} is merged into problem {target.merged_into}; move the incident there")
        if target.is_closed:
            raise Conflict(f"problem {problem_id} is closed; move the incident to an open problem")
        store.set_incident_problem(conn, incident_id, problem_id)
        store.recount(conn, problem_id)
        origin = f" from problem {previous}" if previous is not None else ""
        events = [
            dict(
                problem_id=problem_id,
                at=now,
                kind="incident_moved",
                detail=f"incident {incident_id} moved here{origin} by {who}",
                actor=who,
            )
        ]
        if previous is not None:
            store.recount(conn, previous)
            events.insert(
                0,
                dict(
                    problem_id=previous,
                    at=now,
                    kind="incident_moved",
                    detail=f"incident {incident_id} moved to problem {problem_id} by {who}",
                    actor=who,
                ),
            )
        store.add_problem_events(conn, events)
        store.add_incident_events(
            conn,
            [
                dict(
                    incident_id=incident_id,
                    at=now,
                    kind="moved",
                    detail=f"moved{origin} to problem {problem_id}",
                    actor=who,
                )
            ],
        )
        return previous

    return store.run(work)
