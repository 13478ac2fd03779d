"""Jira's webhooks: an updated issue gets its conclusion and outcome re-read, a released version closes what it fixed.

A request of a Jira Service Management ticket system (its project) is a ticket instead: the
worker reads it and applies it to its incident (bridge/tickets/service_desk.py).

Issues are matched by Jira's immutable id first, then by key, so a moved issue's webhook
(new key, same id) still finds its problem; the worker then reads the issue by that id and
the link follows the key Jira answers (a signed body alone never relinks a problem). An issue
carrying a problem's marker label that is not the issue that problem holds may be a twin:
the problem's issue is checked again (jira.ensure_issue). Problems that won't do closed still
concern their issue: worked on again, they reopen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from bridge.domain.problems import JIRA_KEY
from bridge.domain.rules import Rules
from bridge.errors import BadPayload
from bridge.outbox import jobs
from bridge.problems.actions import queue_issue_sync
from bridge.problems.releases import release_from_jira_version
from bridge.storage.engine import Connection
from bridge.storage.store import Store
from jira_link.port import JiraPort

ISSUE_ID = re.compile(r"^[1-9][0-9]{0,17}$")
ISSUE_EVENTS = ("jira:issue_created", "jira:issue_updated", "comment_created", "comment_updated")


def handle_jira_webhook(
    store: Store, jira: JiraPort | None, rules: Rules, body: bytes, now: datetime, marker_prefix: str | None = None
) -> dict[str, Any]:
    """React to a Jira webhook: an updated issue linked to a live problem (or to one won't do closed, which
    reopens if the issue is worked on again) gets its conclusion and outcome re-read;
    a released version runs the release close path.

    Raises:
        BadPayload: not a JSON object with a webhookEvent.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPayload("body is not valid JSON", [f"body: {exc}"]) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("webhookEvent"), str):
        raise BadPayload("not a Jira webhook", ["webhookEvent: required field is missing"])
    event = payload["webhookEvent"]
    if event == "jira:version_released":
        return {
            "event": event,
            "action": "release_closed",
            **release_from_jira_version(store, jira, rules, payload.get("version"), now),
        }
    if event not in (*ISSUE_EVENTS, "jira:issue_deleted"):
        return {"event": event, "action": "ignored"}
    issue = payload.get("issue")
    key = issue.get("key") if isinstance(issue, dict) else None
    if not isinstance(key, str) or not JIRA_KEY.fullmatch(key):
        raise BadPayload("Jira webhook without an issue key", ["issue.key: expected a Jira key"])
    desks = service_desks_of(rules, key, issue if isinstance(issue, dict) else {})
    if desks:

        def read_later(conn: Connection) -> None:
            for desk in desks:
                jobs.queue(conn, store, jobs.JsmRead(desk, key), now)

        store.run(read_later)
        return {"event": event, "action": "ticket_read_queued", "jira_key": key, "systems": desks}
    if event not in ISSUE_EVENTS:
        return {"event": event, "action": "ignored", "jira_key": key}
    issue_id = issue.get("id") if isinstance(issue, dict) else None
    issue_id = str(issue_id) if isinstance(issue_id, str | int) and ISSUE_ID.fullmatch(str(issue_id)) else None
    twin_checks = _marked_problems(store, issue if isinstance(issue, dict) else {}, issue_id, key, marker_prefix)
    by_id = store.live_problems_for_issue_id(issue_id) if issue_id is not None else []
    # The body only says which issue to read again: the sync of a held key reads it by its id and
    # relinks from what Jira answers (jira_identity.follow_move), never from the body's word.
    moved_from = next((p.jira_key for p in by_id if p.jira_key is not None and p.jira_key != key), None)
    concerned = store.issue_concerns_problems(key) or (bool(by_id) and moved_from is None)
    if not concerned and not twin_checks and moved_from is None:
        return {"event": event, "action": "ignored", "jira_key": key}

    def work(conn: Connection) -> None:
        for problem_id in twin_checks:
            jobs.queue(conn, store, jobs.EnsureIssue(problem_id), now)
        if moved_from is not None:
            queue_issue_sync(conn, store, moved_from, now)
        if concerned:
            queue_issue_sync(conn, store, key, now)

    store.run(work)
    answer: dict[str, Any] = {"event": event, "action": "sync_queued", "jira_key": key}
    if moved_from is not None:
        answer["move_read_queued"] = moved_from
    if twin_checks:
        answer["twin_checks"] = twin_checks
    return answer


def service_desks_of(rules: Rules, key: str, issue: Mapping[str, Any]) -> list[str]:
    """The Jira Service Management ticket systems an issue belongs to: those of its project, narrowed to
    the site its `self` link names when several systems share a project key on different sites."""
    project = key.rsplit("-", 1)[0]
    desks = [s for s in rules.ticket_systems.values() if s.kind == "jira" and s.project == project]
    link = issue.get("self")
    if len(desks) > 1 and isinstance(link, str):
        desks = [s for s in desks if link.startswith(s.url + "/")] or desks
    return [desk.name for desk in desks]


def _marked_problems(
    store: Store, issue: Mapping[str, Any], issue_id: str | None, key: str, marker_prefix: str | None
) -> list[int]:
    """Live problems whose marker label the issue carries but which hold another issue (or none yet)."""
    fields = issue.get("fields")
    labels = fields.get("labels") if isinstance(fields, dict) else None
    if marker_prefix is None or not isinstance(labels, list):
        return []
    marker = re.compile(rf"^{re.escape(marker_prefix)}-problem-([1-9][0-9]{{0,17}})$")
    wanted = [int(m.group(1)) for label in labels if isinstance(label, str) and (m := marker.fullmatch(label))]
    checks = []
    for problem_id in wanted:
        problem = store.get_problem(problem_id)
        if problem is None or problem["state"] == "closed":
            continue
        holds_it = problem["jira_issue_id"] == issue_id if problem["jira_issue_id"] else problem["jira_key"] == key
        if not holds_it:
            checks.append(problem_id)
    return checks
