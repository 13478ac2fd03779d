"""HTTP endpoints of tickets: people's tickets in (token group `tickets`), linking them to problems (`operate`), and
how the ticket systems' syncs go (`api`)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, jsonify, request

from adapters import tickets as ticket_adapter
from bridge.api.bodies import LinkTicketRequest
from bridge.domain.incidents import Outcome
from bridge.errors import NotFound
from bridge.ingest.deliveries import IngestResult
from bridge.ingest.measured import measured_ingest
from bridge.problems.tickets import link_ticket, unlink_ticket
from bridge.shapes import ticket_sync_shape
from bridge.tickets.reports import prepare_ticket, tell_reported
from bridge.web.actors import request_actor
from bridge.web.answers import problem_tickets_json
from bridge.web.context import bridge
from bridge.web.cursors import keyset_args
from bridge.web.edge import (
    check_bearer,
    json_writes,
    problem_or_404,
    read_body,
    requires_token,
    validated_body,
)

tickets = json_writes(Blueprint("tickets", __name__))
SOURCE = ticket_adapter.SOURCE


@tickets.post("/api/v1/tickets")
def report_ticket():  # type: ignore[no-untyped-def]
    """A ticket a person reported: recorded as an incident (source ticket), 201 when new, 200 when updated."""
    ctx = bridge()

    def write() -> IngestResult:
        check_bearer("tickets")
        delivery = prepare_ticket(
            ctx.store,
            ctx.rules,
            read_body(),
            ctx.now(),
            content_type=request.content_type,
            rejected_body_limit=ctx.settings.rejected_body_limit,
            max_depth=ctx.settings.max_json_depth,
        )
        return ctx.write(delivery)

    result = measured_ingest(SOURCE, write)
    tell_reported(ctx.store, ctx.rules, result, ctx.now())
    [outcome] = result.results
    return jsonify(
        {
            "status": "ok",
            "incident": outcome.incident_id,
            "outcome": outcome.outcome.value,
            "problem_id": outcome.problem_id,
            "priority": outcome.routing.priority,
        }
    ), (201 if outcome.outcome is Outcome.CREATED else 200)


@tickets.get("/api/v1/tickets/sync")
@requires_token("api")
def sync_states():  # type: ignore[no-untyped-def]
    """Each ticket system the bridge reads by itself: its last successful sync, its failures and their cause."""
    ctx = bridge()
    states = {state["system"]: state for state in ctx.store.sync_states()}
    items = [
        ticket_sync_shape(system, states.get(name))
        for name, system in sorted(ctx.rules.ticket_systems.items())
        if system.sync is not None
    ]
    return jsonify({"items": items})


@tickets.get("/api/v1/problems/<int:problem_id>/tickets")
@requires_token("api")
def problem_tickets(problem_id: int):  # type: ignore[no-untyped-def]
    """The problem's tickets, reported or linked by hand, newest first, a page at a time."""
    limit, after = keyset_args(parts=3)
    problem_or_404(problem_id)
    return jsonify(problem_tickets_json(problem_id, limit, after))


def _tickets_answer(problem_id: int) -> dict[str, Any]:
    """What a link or an unlink answers: the problem's newest tickets, oldest first, and the cursor to the rest."""
    page = problem_tickets_json(problem_id)
    return {"problem_id": problem_id, "tickets": page["items"][::-1], "tickets_next_cursor": page["next_cursor"]}


@tickets.post("/api/v1/problems/<int:problem_id>/tickets")
@requires_token("operate")
def link(problem_id: int):  # type: ignore[no-untyped-def]
    """Link a ticket by hand: 201 when new, 200 when already linked, 422 for an unknown system."""
    wanted = validated_body(LinkTicketRequest)
    ctx = bridge()
    created = link_ticket(
        ctx.store,
        ctx.rules,
        problem_id,
        wanted.system,
        wanted.ticket_id,
        ctx.now(),
        url=wanted.url,
        summary=wanted.summary,
        actor=request_actor(),
    )
    return jsonify(_tickets_answer(problem_id)), (201 if created else 200)


@tickets.delete("/api/v1/problems/<int:problem_id>/tickets/<system>/<ticket_id>")
@requires_token("operate")
def unlink(problem_id: int, system: str, ticket_id: str):  # type: ignore[no-untyped-def]
    """Unlink a ticket linked by hand (404 when it was not); the ticket itself is untouched."""
    ctx = bridge()
    # A name no ticket can have (a NUL, a space) is not linked: never sent to the database.
    readable = re.fullmatch(ticket_adapter.SYSTEM_PATTERN, system) and re.fullmatch(
        ticket_adapter.TICKET_ID_PATTERN, ticket_id
    )
    if not readable or not unlink_ticket(ctx.store, problem_id, system, ticket_id, ctx.now(), request_actor()):
        raise NotFound(f"ticket {system} {ticket_id} is not linked to problem {problem_id} by hand")
    return jsonify(_tickets_answer(problem_id))
