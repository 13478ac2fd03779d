"""A ticket becomes or updates its incident: the one path `POST /api/v1/tickets` and every ticket sync take,
and, once in a problem, hears what its problem's tickets hear.

A ticket's body is parsed and routed as the endpoint's (adapters/tickets.py): its system must
be one rules.yaml names, and its own impact and urgency, when given, win over its route's.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from adapters import tickets as ticket_adapter
from bridge.domain.incidents import ParsedNotification
from bridge.domain.rules import Rules
from bridge.errors import BadPayload
from bridge.ingest.deliveries import Delivery, IngestResult, body_text, keep_refused, prepare_delivery
from bridge.problems.notices import tell_tickets
from bridge.problems.tickets import check_ticket_id, reported_priority, system_of
from bridge.storage.store import Store

SOURCE = ticket_adapter.SOURCE


def _known_system(rules: Rules, parsed: ParsedNotification) -> ParsedNotification:
    """Refuse a ticket of a system rules.yaml does not name (422), or whose id that system cannot issue (400),
    before anything is written."""
    for alert in parsed.alerts:
        system = system_of(rules, alert.annotations["ticket_system"])
        check_ticket_id(system, alert.annotations["ticket_id"])
    return parsed


def with_ticket_priority(rules: Rules, delivery: Delivery) -> Delivery:
    """The delivery routed as a ticket is: its own impact and urgency win."""
    routings = [reported_priority(rules, a, r) for a, r in zip(delivery.parsed.alerts, delivery.routings, strict=True)]
    return replace(delivery, routings=routings)


def prepare_ticket(
    store: Store,
    rules: Rules,
    body: bytes,
    now: datetime,
    *,
    content_type: str | None = "application/json",
    rejected_body_limit: int = 1024 * 1024,
    max_depth: int = 32,
) -> Delivery:
    """Parse and route one ticket's body, ready to be written (a refused body is kept, then raised).

    Raises:
        BadPayload: not a valid ticket, or an id its system cannot issue (kept in rejected_payloads).
        Unprocessable: unknown system.
    """

    def complete(parsed: ParsedNotification) -> ParsedNotification:
        try:
            return _known_system(rules, parsed)
        except BadPayload as exc:  # kept as a refused body is
            keep_refused(
                store, SOURCE, now, exc, body=body_text(body), content_type=content_type, body_limit=rejected_body_limit
            )
            raise

    delivery = prepare_delivery(
        store,
        rules,
        SOURCE,
        body,
        now,
        content_type=content_type,
        rejected_body_limit=rejected_body_limit,
        max_depth=max_depth,
        complete=complete,
    )
    return with_ticket_priority(rules, delivery)


def tell_reported(store: Store, rules: Rules, result: IngestResult, now: datetime) -> int:
    """A reported ticket that is in a problem hears the problem's workaround and conclusion (once each).

    In a transaction of its own after the ticket's: the ingest's shared transaction stays
    as lean as an alert's. A crash between the two leaves the notice to the ticket's next
    report or the text's next change.
    """
    joined = [
        (item.problem_id, (item.alert.annotations["ticket_system"], item.alert.annotations["ticket_id"]))
        for item in result.results
        if item.problem_id is not None and item.incident_id is not None
    ]
    if not joined:
        return 0
    return store.run(
        lambda conn: sum(
            tell_tickets(conn, store, rules, [problem_id], now, only=ticket) for problem_id, ticket in joined
        )
    )
