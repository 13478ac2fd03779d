"""Tickets as a feature: linking them to problems by hand, and telling their systems when the problem closes.

Reported tickets are incidents (adapters/tickets.py, the ticket endpoint in bridge/api/tickets.py)
and join problems through the same rules as alerts. Whatever closes a problem (a release,
a hand) calls `after_close` in its own transaction: every open ticket of the problem is
closed, its system gets a `ticket.close` (a signed webhook, Request Tracker's REST2, or a
Jira Service Management transition), and notify targets hear of the closed problem and
incidents. A ticket linked by hand hears the problem's workaround and conclusion at once
(bridge.problems.notices).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bridge.domain.incidents import Alert, Routing
from bridge.domain.rules import Rules, with_priority
from bridge.domain.tickets import TicketSystem, ticket_close_text, ticket_id_refusal
from bridge.errors import BadPayload, Conflict, NotFound, Unprocessable
from bridge.outbox.jobs import JsmClose, RtClose, queue
from bridge.outbox.notify import Announcer, queue_delivery
from bridge.problems.notices import tell_tickets
from bridge.shapes import incident_shape, problem_shape, ticket_shape
from bridge.storage.engine import Connection
from bridge.storage.store import Store

log = logging.getLogger(__name__)


def system_of(rules: Rules, name: str) -> TicketSystem:
    """The ticket system of this name in rules.yaml.

    Raises:
        Unprocessable: no such system (the 422 of the ticket endpoints).
    """
    system = rules.ticket_systems.get(name)
    if system is None:
        known = ", ".join(sorted(rules.ticket_systems)) or "none configured (rules.yaml ticket_systems)"
        raise Unprocessable(f"unknown ticket system {name!r}", [f"system: expected one of {known}"])
    return system


def check_ticket_id(system: TicketSystem, ticket_id: str) -> None:
    """Refuse an id the system cannot have issued: it would travel into the system's URLs.

    Raises:
        BadPayload: the finding names `ticket_id` and what the system's ids look like.
    """
    refusal = ticket_id_refusal(system.kind, ticket_id)
    if refusal is not None:
        raise BadPayload(f"invalid ticket id for ticket system {system.name!r}", [refusal])


def reported_priority(rules: Rules, alert: Alert, routing: Routing) -> Routing:
    """A ticket's own impact and urgency, when it gives them, over its route's (the person said how bad)."""
    impact = alert.annotations.get("ticket_impact", routing.impact)
    urgency = alert.annotations.get("ticket_urgency", routing.urgency)
    return with_priority(rules, routing, impact, urgency, "the ticket")


def link_ticket(
    store: Store,
    rules: Rules,
    problem_id: int,
    system: str,
    ticket_id: str,
    now: datetime,
    *,
    url: str | None = None,
    summary: str = "",
    actor: str | None = None,
) -> bool:
    """Link a ticket to a problem by hand; True when it is new (201), False when it already was (200).

    Raises:
        Unprocessable: unknown system. BadPayload: an id the system cannot have issued. NotFound: no such
        problem. Conflict: the problem is closed.
    """
    check_ticket_id(system_of(rules, system), ticket_id)
    announcer = Announcer.of(store, rules)

    def work(conn: Connection) -> bool:
        problem = store.find_problem(conn, problem_id, for_update=True)
        if problem is None:
            raise NotFound(f"no problem {problem_id}")
        if problem.is_closed:
            raise Conflict(
                f"problem {problem_id} is closed", ["reopen it first, or link the ticket to an open problem"]
            )
        if not store.link_ticket(conn, problem_id, system, ticket_id, url, summary, now):
            return False
        _record_ticket_event(store, conn, problem_id, now, f"ticket {system} {ticket_id} linked by hand", actor)
        tell_tickets(conn, store, rules, [problem_id], now)
        if announcer is not None and announcer.wants("problem.linked"):
            [ticket] = [
                t
                for t in store.tickets_of_problems(conn, [problem_id])
                if (t["system"], t["ticket_id"]) == (system, ticket_id)
            ]
            announcer.announce_problem(conn, "problem.linked", now, problem_id, ticket=ticket_shape(ticket))
        return True

    return store.run(work)


def unlink_ticket(
    store: Store, problem_id: int, system: str, ticket_id: str, now: datetime, actor: str | None = None
) -> bool:
    """Forget a hand link (the ticket itself is untouched); False when there was none.

    Raises:
        NotFound: no such problem.
    """

    def work(conn: Connection) -> bool:
        if store.find_problem(conn, problem_id) is None:
            raise NotFound(f"no problem {problem_id}")
        removed = store.unlink_ticket(conn, problem_id, system, ticket_id)
        if removed:
            _record_ticket_event(store, conn, problem_id, now, f"ticket {system} {ticket_id} unlinked", actor)
        return removed

    return store.run(work)


def after_close(
    conn: Connection,
    store: Store,
    rules: Rules,
    problem_ids: Sequence[int],
    now: datetime,
    reason: str,
    release: Mapping[str, str] | None = None,
) -> int:
    """What closing problems means beyond the bridge, in the transaction that closed them.

    Call after `close_problems_and_incidents` with its `now`. Every open ticket of the
    problems is closed and its system told (`ticket.close`), unless the system says
    `close_on_release: false` or is gone from rules.yaml; notify targets hear
    problem.closed, incident.closed and ticket.close as they asked. Returns the tickets told.
    """
    tickets = [
        ticket
        for ticket in store.tickets_of_problems(conn, problem_ids)
        if ticket["state"] == "open" or (ticket["incident_id"] is not None and ticket["closed_at"] == now)
    ]
    store.close_ticket_links(conn, problem_ids, now, reason)
    announcer = Announcer.of(store, rules)
    problems = {pid: store.find_problem(conn, pid) for pid in {ticket["problem_id"] for ticket in tickets}}
    told = 0
    for ticket in tickets:
        problem = problems.get(ticket["problem_id"])
        if problem is None:
            continue
        closed = {**ticket, "state": "closed", "closed_at": now}
        text = ticket_close_text(
            ticket["ticket_id"],
            problem.stored_id,
            problem.summary,
            release["version"] if release else None,
            reason,
        )
        subject: dict[str, Any] = {
            "ticket": ticket_shape(closed),
            "problem": problem_shape(problem),
            "release": dict(release) if release else None,
            "reason": reason,
            "text": text,
        }
        if announcer is not None:
            announcer.announce(conn, "ticket.close", now, subject, problem.stored_id)
        system = rules.ticket_systems.get(ticket["system"])
        if system is None or not system.close_on_release:
            log.info(
                "ticket closed here; its system is not told",
                extra={"system": ticket["system"], "ticket_id": ticket["ticket_id"], "configured": system is not None},
            )
            continue
        if system.kind == "rt":
            queue(conn, store, RtClose(system.name, ticket["ticket_id"], text, problem.stored_id), now)
        elif system.kind == "jira":
            queue(conn, store, JsmClose(system.name, ticket["ticket_id"], text, problem.stored_id), now)
        else:
            queue_delivery(conn, store, f"ticket:{system.name}", "ticket.close", now, subject, problem.stored_id)
        told += 1
    if announcer is not None:
        if announcer.wants("incident.closed"):
            for incident in store.incidents_closed_at(conn, problem_ids, now):
                announcer.announce(
                    conn, "incident.closed", now, {"incident": incident_shape(incident)}, incident.problem_id
                )
        for problem_id in problem_ids:
            announcer.announce_problem(conn, "problem.closed", now, problem_id, reason=reason, release=release)
    return told


def _record_ticket_event(
    store: Store, conn: Connection, problem_id: int, now: datetime, detail: str, actor: str | None
) -> None:
    """A hand link or unlink in the problem's history, with who did it."""
    store.add_problem_events(conn, [dict(problem_id=problem_id, at=now, kind="ticket", detail=detail, actor=actor)])
