"""What the linked tickets hear of their problem: the workaround people set and the conclusion Jira gives.

So the first line can answer callers before the fix ships. Whenever either text is set or
changed, and whenever a ticket joins a problem that has them, each open ticket of the
problem is told, in the transaction that made the change: an RT comment, a Jira Service
Management comment, or a signed `ticket.update` for webhook systems. `ticket_notices`
holds each text told to each ticket by digest, so the same text never reaches a ticket
twice however often it is set, synced or retried; a changed text is a new one and is told.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from bridge.domain.rules import Rules
from bridge.domain.tickets import TicketSystem
from bridge.errors import NotFound
from bridge.outbox.jobs import JsmComment, RtComment, queue
from bridge.outbox.notify import Announcer, queue_delivery
from bridge.shapes import problem_shape, ticket_shape
from bridge.storage.engine import Connection
from bridge.storage.store import Store
from jira_link.linker import conclusion_detail

log = logging.getLogger(__name__)


def notice_digest(what: str, text: str) -> str:
    """What makes two notices the same: the kind of text and the text itself."""
    return hashlib.sha256(f"{what}\n{text.strip()}".encode()).hexdigest()


def set_workaround(
    store: Store, rules: Rules, problem_id: int, text: str | None, actor: str, now: datetime
) -> tuple[int, int]:
    """Set (or, with None, clear) a problem's workaround, and tell its open tickets a new text.

    Returns (problem id, tickets told). Setting the same text again changes nothing and tells nobody.

    Raises:
        NotFound: no such problem.
    """
    wanted = text.strip() if text else None

    def work(conn: Connection) -> tuple[int, int]:
        problem = store.find_problem(conn, problem_id, for_update=True)
        if problem is None:
            raise NotFound(f"no problem {problem_id}")
        if problem.workaround == wanted:
            return problem_id, 0
        store.save_problem(
            conn, problem, replace(problem, workaround=wanted, workaround_updated_at=now, workaround_by=actor)
        )
        detail = f"workaround set: {wanted}" if wanted else "workaround cleared"
        event = dict(problem_id=problem_id, at=now, kind="workaround", detail=detail, actor=actor)
        store.add_problem_events(conn, [event])
        return problem_id, tell_tickets(conn, store, rules, [problem_id], now)

    return store.run(work)


def tell_tickets(
    conn: Connection,
    store: Store,
    rules: Rules,
    problem_ids: Sequence[int],
    now: datetime,
    only: tuple[str, str] | None = None,
) -> int:
    """Queue, in the caller's transaction, the workaround and conclusion for each open ticket of the problems
    (or only the ticket `(system, ticket id)`) that has not been told that text yet; returns how many
    notices were queued."""
    told = 0
    announcer = Announcer.of(store, rules)
    for problem_id in sorted(set(problem_ids)):
        problem = store.find_problem(conn, problem_id)
        if problem is None or problem.is_closed:
            continue
        texts = [
            (what, text)
            for what, text in (
                ("workaround", problem.workaround),
                ("conclusion", conclusion_detail(problem.conclusion)),
            )
            if text
        ]
        if not texts:
            continue
        for ticket in store.tickets_of_problems(conn, [problem_id]):
            system = rules.ticket_systems.get(ticket["system"])
            if ticket["state"] != "open" or system is None:
                continue
            if only is not None and only != (ticket["system"], ticket["ticket_id"]):
                continue
            for what, text in texts:
                digest = notice_digest(what, text)
                if not store.claim_notice(conn, system.name, ticket["ticket_id"], digest, what, problem_id, now):
                    continue
                subject = {
                    "ticket": ticket_shape(ticket),
                    "problem": problem_shape(problem),
                    "update": what,
                    "text": text,
                }
                _queue_notice(conn, store, system, ticket["ticket_id"], what, text, digest, problem_id, subject, now)
                if announcer is not None:
                    announcer.announce(conn, "ticket.update", now, subject, problem_id)
                told += 1
    return told


def _queue_notice(
    conn: Connection,
    store: Store,
    system: TicketSystem,
    ticket_id: str,
    what: str,
    text: str,
    digest: str,
    problem_id: int,
    subject: Mapping[str, Any],
    now: datetime,
) -> None:
    """The outbox row that tells one ticket one text, in its system's way."""
    if system.kind == "rt":
        queue(conn, store, RtComment(system.name, ticket_id, what, text, problem_id, digest), now)
    elif system.kind == "jira":
        queue(conn, store, JsmComment(system.name, ticket_id, what, text, problem_id, digest), now)
    else:
        queue_delivery(conn, store, f"ticket:{system.name}", "ticket.update", now, subject, problem_id)
    log.info(
        "ticket told", extra={"system": system.name, "ticket_id": ticket_id, "what": what, "problem_id": problem_id}
    )
