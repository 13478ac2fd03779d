"""A problem's link to its Jira issue that survives moves, a lagging search index and twins.

Jira's id never changes; its key does when an issue moves to another project. The link
keeps both: the worker addresses the issue by id once known and follows a new key
(recording a "jira_moved" event); webhooks match by id first. Creates wait for the index
(jira_link.identity) and, should twins appear anyway, the problem is linked to the oldest
only (a "jira_twin" event) and the others are marked as its duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bridge import metrics
from bridge.domain.problems import JiraTarget
from bridge.outbox.notify import Announcer
from bridge.storage.engine import Connection
from bridge.storage.store import Store
from jira_link.client import JiraIssue
from jira_link.identity import MARKER_FIELDS, FoundIssues, find_or_create_settled, issues_with_marker, mark_twins
from jira_link.linker import LinkOptions, link_back
from jira_link.port import JiraPort

log = logging.getLogger(__name__)


def ensure_linked_issue(
    store: Store,
    jira: JiraPort,
    options: LinkOptions,
    problem: Mapping[str, Any],
    target: JiraTarget,
    priority: str | None,
    now: datetime,
    announcer: Announcer | None = None,
) -> str | None:
    """Find (or, once the index has settled, create) the problem's issue and link the oldest;
    the notify targets hear of the link (problem.linked) in the same transaction.

    Returns the key the problem is linked to, or None when it lost its link meanwhile (unlinked).

    Raises:
        SearchNotSettled: retry later, an earlier create may not be searchable yet. JiraError: Jira failed.
    """
    problem_id = int(problem["id"])
    found = find_or_create_settled(
        jira, problem, target, options, priority, now, lambda at: store.note_create_attempt(problem_id, at)
    )
    key = found.keep.key
    if not store.run(_record_link(store, problem_id, found, jira.issue_url(key), now, announcer)):
        linked = store.get_problem(problem_id)
        return None if linked is None or linked["jira_key"] is None else str(linked["jira_key"])
    _settle(jira, found.keep, found.twins, problem_id, "create")
    return key


def _record_link(
    store: Store, problem_id: int, found: FoundIssues, url: str, now: datetime, announcer: Announcer | None
) -> Any:
    """The link to the issue found or created, and its history, in one transaction; False if already linked."""
    key = found.keep.key

    def work(conn: Connection) -> bool:
        linked = store.link_issue(conn, problem_id, key, url, "bridge", found.keep.id)
        if linked:
            how = "created by the bridge" if found.created else "found by its marker (created by the bridge)"
            store.add_problem_events(conn, [dict(problem_id=problem_id, at=now, kind="linked", detail=f"{key} {how}")])
            if announcer is not None:
                announcer.announce_problem(conn, "problem.linked", now, problem_id, link={"jira_key": key})
        return linked

    return work


def check_twins(
    store: Store, jira: JiraPort, options: LinkOptions, problem: Mapping[str, Any], now: datetime, found_at: str
) -> str:
    """Look for twins of a bridge-created issue by marker; link the problem to the oldest; returns its key.

    The linked issue counts even when the lagging search does not show it yet.
    """
    problem_id = int(problem["id"])
    held = str(problem["jira_key"])
    found = issues_with_marker(jira, options, problem_id)
    if not any(_same(issue, problem) for issue in found):
        linked = jira.get_issue(problem["jira_issue_id"] or held, fields=MARKER_FIELDS)
        if linked is not None:
            found = sorted([*found, linked], key=lambda issue: issue.numeric_id)
    if len(found) < 2:
        return held
    keep, twins = found[0], found[1:]
    if not _same(keep, problem):
        described = ", ".join(f"{twin.key} duplicates {keep.key}" for twin in twins)
        relinked = store.run(
            lambda conn: store.relink_to_oldest(
                conn, problem_id, keep.key, jira.issue_url(keep.key), keep.id, described, now
            )
        )
        if relinked:
            log.warning(
                "problem relinked to the oldest of its twin issues", extra={"problem_id": problem_id, "key": keep.key}
            )
            link_back(jira, keep.key, problem, options)
    _settle(jira, keep, twins, problem_id, found_at)
    return keep.key


def _same(issue: JiraIssue, problem: Mapping[str, Any]) -> bool:
    """Whether the issue is the one the problem holds: by id once known, else by key."""
    held_id = problem.get("jira_issue_id")
    if held_id and issue.id:
        return issue.id == str(held_id)
    return issue.key == str(problem["jira_key"])


def _settle(jira: JiraPort, keep: JiraIssue, twins: list[JiraIssue], problem_id: int, found_at: str) -> None:
    if twins:
        marked = mark_twins(jira, keep, twins, problem_id)
        metrics.labelled(metrics.JIRA_TWINS, found_at).inc(len(marked))


def issue_ref(store: Store, key: str) -> str:
    """How to address a linked issue: by its immutable id once known (a moved key still resolves, but need not)."""
    ids = {p.jira_issue_id for p in store.live_problems_for_issue(key) if p.jira_issue_id}
    return ids.pop() if len(ids) == 1 else key


def follow_move(store: Store, jira: JiraPort, held_key: str, issue: JiraIssue, now: datetime) -> list[int]:
    """Jira answered for `held_key` with an issue whose key differs: it moved. Problems follow; returns them."""
    url = jira.issue_url(issue.key)
    moved = store.run(lambda conn: store.follow_issue_move(conn, held_key, issue.key, url, issue.id, now))
    if moved:
        metrics.JIRA_MOVES.inc()
        log.info("linked Jira issue moved; link follows", extra={"from": held_key, "to": issue.key, "problems": moved})
    return moved
