"""Jira Service Management as a ticket system: its requests read on their webhook, closed through a transition.

A `kind: jira` ticket system is a service project (`project`) on a Jira site, the bridge's
own or another, with credentials of its own. Jira's webhook (bridge/jira/webhook.py) names
a request of that project; the worker reads it (`read_request`) and applies it as any
ticket (bridge/tickets/sync.py). Closing a request is a comment naming the release and the
problem, then the system's `close_transition` (or the first transition to a done status),
read back (`close_request`); the workaround and the conclusion are comments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from adapters import tickets as ticket_adapter
from bridge import metrics
from bridge.domain.rules import Rules
from bridge.domain.ticket_sync import TicketSnapshot, TicketState, ticket_labels, ticket_text
from bridge.domain.tickets import TicketSystem
from bridge.storage.store import Store
from bridge.tickets.sync import Applied, apply_ticket
from jira_link.client import DATACENTER, JiraClient, JiraIssue
from jira_link.linker import comment_unless_repeated, move_issue
from jira_link.port import JiraPort

FIELDS = ("summary", "status", "resolution", "priority", "issuetype", "project", "updated")


def service_desk_client(system: TicketSystem, session: requests.Session | None = None) -> JiraClient:
    """A Jira client with the system's own site and credentials (Cloud: email and API token; Data Center: a PAT)."""
    assert system.token is not None
    session = session or requests.Session()
    if system.flavour == DATACENTER:
        return JiraClient.bearer(session, system.url, system.token, observe=metrics.observe_jira)
    assert system.username is not None
    return JiraClient.basic(session, system.url, system.username, system.token, observe=metrics.observe_jira)


def _name(value: Any) -> str:
    """A field's value as text: a string or number, or the `value`/`name`/`key` of an option, user or list."""
    if isinstance(value, list):
        return _name(value[0]) if value else ""
    if isinstance(value, Mapping):
        return next((str(value[k]) for k in ("value", "name", "key") if isinstance(value.get(k), str | int)), "")
    return str(value).strip() if isinstance(value, str | int | float) and not isinstance(value, bool) else ""


def request_snapshot(system: TicketSystem, key: str, issue: JiraIssue | None, url: str) -> TicketSnapshot:
    """A request as Jira shows it (None: deleted, or no longer visible to the bridge) in every reader's shape."""
    if issue is None:
        return TicketSnapshot(system.name, key, "gone", TicketState.GONE, f"Jira request {key}", url=url)
    fields = issue.fields or {}
    labels = {
        "project": _name(fields.get("project")) or key.rsplit("-", 1)[0],
        "status": issue.status or "",
        "priority": _name(fields.get("priority")),
        "issue_type": _name(fields.get("issuetype")),
    }
    summary = ticket_text(fields.get("summary") or "", ticket_adapter.MAX_SUMMARY_LENGTH) or f"Jira request {key}"
    return TicketSnapshot(
        system=system.name,
        ticket_id=key,
        status=ticket_text(issue.status or "", 64),
        state=TicketState.DONE if issue.status_category == "done" else TicketState.ACTIVE,
        summary=summary,
        labels=ticket_labels(labels),
        url=url,
        problem_ref=ticket_text(_name(fields.get(system.problem_field)), 200) if system.problem_field else "",
        version=_name(fields.get("updated")),
    )


def read_request(store: Store, rules: Rules, system: TicketSystem, jira: JiraPort, key: str, now: Any) -> Applied:
    """Read a request from its site and apply it to its incident.

    Raises:
        JiraError: the site failed (the job is retried) or refused.
    """
    wanted = (*FIELDS, system.problem_field) if system.problem_field else FIELDS
    issue = jira.get_issue(key, fields=wanted)
    return apply_ticket(store, rules, system, request_snapshot(system, key, issue, jira.issue_url(key)), now)


def close_request(jira: JiraPort, system: TicketSystem, key: str, text: str) -> str:
    """Comment (once, however often retried), then move the request to done and read it back; what it did.

    Raises:
        JiraError: no fitting transition, a screen field missing, or the site failed.
    """
    comment_unless_repeated(jira, key, text)
    taken = move_issue(jira, key, name=system.close_transition, to_categories=("done",))
    return f"Jira request {key} closed through {taken!r}" if taken else f"Jira request {key} was already done"
