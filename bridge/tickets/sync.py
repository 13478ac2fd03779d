"""One ticket read from its system, applied to its incident: created, updated, closed, reopened, linked.

Every system's reader (the Request Tracker sync, a Jira Service Management webhook's job)
hands a `TicketSnapshot` to `apply_ticket`. What was seen of the ticket before
(`synced_tickets`) decides what its reading means (`bridge.domain.ticket_sync`), so a
reading repeated by an overlapping sync, a restart or two workers changes nothing twice:

- a new or changed ticket becomes or updates its incident through the ticket endpoint's
  path (bridge/tickets/reports.py), with its labels;
- done there (resolved, rejected, deleted): its incident closes, with the system as actor;
- active again after being done: its incident reopens, and a problem already closed with
  its fix is flagged `reopened_by_ticket` for the third line;
- its problem field, when it changes, moves the incident to the problem it names (a
  number, or the Jira key of a problem's issue), or out of it when cleared;
- an open ticket in a problem hears the problem's workaround and conclusion.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson

from bridge import metrics
from bridge.domain.incidents import Incident, IncidentState, Outcome
from bridge.domain.lifecycle import update_sla
from bridge.domain.rules import Rules
from bridge.domain.ticket_sync import (
    LinkChange,
    SeenTicket,
    TicketSnapshot,
    TicketStep,
    closed_by_ticket,
    link_change,
    problem_reference,
    reopened_by_ticket,
    ticket_step,
)
from bridge.domain.tickets import TicketSystem
from bridge.errors import BridgeError, Conflict, Unprocessable
from bridge.ingest.deliveries import write_deliveries
from bridge.ingest.measured import measured_ingest
from bridge.outbox.notify import Announcer
from bridge.problems.actions import record_action
from bridge.problems.corrections import move_incident
from bridge.problems.notices import tell_tickets
from bridge.shapes import incident_shape
from bridge.storage.engine import Connection
from bridge.storage.store import Store
from bridge.tickets.reports import SOURCE, prepare_ticket

log = logging.getLogger(__name__)

# Who the histories name when a ticket's system acted, by the system's kind.
ACTORS = {"rt": "rt", "jira": "jsm"}
# How far a merged problem is followed to the problem that gathered its incidents.
MAX_MERGE_HOPS = 10


@dataclass(frozen=True)
class Applied:
    """What reading one ticket did: its step, its incident, and why nothing happened when nothing did."""

    step: TicketStep
    incident_id: int | None = None
    note: str = ""


def actor_of(system: TicketSystem) -> str:
    return ACTORS.get(system.kind, system.name)


def report_body(snapshot: TicketSnapshot) -> bytes:
    """The ticket as `POST /api/v1/tickets` takes it (keys sorted: the same ticket, the same bytes)."""
    body: dict[str, Any] = {
        "system": snapshot.system,
        "ticket_id": snapshot.ticket_id,
        "summary": snapshot.summary,
        "labels": dict(snapshot.labels),
    }
    if snapshot.url:
        body["url"] = snapshot.url
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def apply_ticket(store: Store, rules: Rules, system: TicketSystem, snapshot: TicketSnapshot, now: datetime) -> Applied:
    """Apply one reading of a ticket to its incident (see the module's docstring); safe to repeat.

    Raises:
        StoreUnavailable: the database is down (nothing is recorded as seen: the next reading does it all).
    """
    known = store.read(lambda conn: store.seen_ticket(conn, system.name, snapshot.ticket_id))
    seen = known.seen if known is not None else None
    body = report_body(snapshot)
    fingerprint = hashlib.sha256(body).hexdigest()
    if seen is not None and seen.unchanged(snapshot, fingerprint):
        return Applied(TicketStep.NOTHING, known.incident_id if known else None, "unchanged")
    record = SeenTicket(snapshot.state, snapshot.status, snapshot.version, snapshot.problem_ref, fingerprint)
    try:
        delivery = prepare_ticket(store, rules, body, now)
    except BridgeError as exc:
        log.warning(
            "ticket refused; kept in the rejected payloads",
            extra={"system": system.name, "ticket_id": snapshot.ticket_id, "reason": exc.message},
        )
        store.run(lambda conn: store.record_seen_ticket(conn, system.name, snapshot.ticket_id, record, None, now))
        return Applied(TicketStep.NOTHING, note=exc.message)
    key = delivery.routings[0].dedup_key
    incident = store.read(lambda conn: store.ticket_incident(conn, key))
    step = ticket_step(seen.state if seen else None, incident.state if incident else None, snapshot.state)
    if step is TicketStep.UPDATE and seen is not None and seen.fingerprint == fingerprint:
        step = TicketStep.NOTHING  # the bridge's own comment, or a field the incident does not carry
    incident_id = incident.id if incident is not None else None
    acts = _Acts(store, rules, system, snapshot, now)
    if step is TicketStep.REOPEN and incident_id is not None:
        acts.reopen(incident_id)
    if step in (TicketStep.CREATE, TicketStep.CREATE_CLOSED, TicketStep.UPDATE, TicketStep.REOPEN):
        result = measured_ingest(SOURCE, lambda: write_deliveries(store, rules, [delivery])[0])
        incident_id = result.results[0].incident_id or incident_id
    change = link_change(seen.problem_ref if seen else None, snapshot.problem_ref)
    if change is not None and incident_id is not None and system.field_of_problem:
        acts.relink(incident_id, change)
    if step in (TicketStep.CLOSE, TicketStep.CREATE_CLOSED) and incident_id is not None:
        acts.close(incident_id)

    def remember(conn: Connection) -> None:
        current = store.find_incident(conn, incident_id) if incident_id is not None else None
        if current is not None and current.state is not IncidentState.CLOSED and current.problem_id is not None:
            tell_tickets(conn, store, rules, [current.problem_id], now, only=(system.name, snapshot.ticket_id))
        store.record_seen_ticket(conn, system.name, snapshot.ticket_id, record, incident_id, now)

    store.run(remember)
    return Applied(step, incident_id)


@dataclass(frozen=True)
class _Acts:
    """What one reading of a ticket does to its incident, each act in a transaction of its own that re-checks
    the incident's state under its lock (a repeated reading, or two workers, act once)."""

    store: Store
    rules: Rules
    system: TicketSystem
    snapshot: TicketSnapshot
    now: datetime

    @property
    def actor(self) -> str:
        return actor_of(self.system)

    def close(self, incident_id: int) -> None:
        """Close the incident of a ticket done in its system, and its hand links; its problem's history says why."""
        store, now = self.store, self.now
        what = f"ticket {self.snapshot.ticket_id} {self.snapshot.status} in {self.system.name}"

        def work(conn: Connection) -> bool:
            incident = store.find_incident(conn, incident_id, for_update=True)
            if incident is None or incident.state is IncidentState.CLOSED:
                return False
            closed = closed_by_ticket(incident, now, what, self.rules.sla_policies.get(incident.priority))
            store.save_ticket_incident(conn, incident, closed)
            store.set_hand_links_of_ticket(conn, self.system.name, self.snapshot.ticket_id, now, "closed")
            self._record(conn, closed, "ticket_closed", f"{what}: incident {incident_id} closed")
            return True

        if store.run(work):
            metrics.labelled(metrics.CLOSED, "ticket").inc()

    def reopen(self, incident_id: int) -> None:
        """Reopen the closed incident of a ticket its customer reopened; flag its problem when the fix had shipped."""
        store, now = self.store, self.now
        what = f"ticket {self.snapshot.ticket_id} reopened in {self.system.name}"

        def work(conn: Connection) -> bool:
            incident = store.find_incident(conn, incident_id, for_update=True)
            if incident is None or incident.state is not IncidentState.CLOSED:
                return False
            live = store.ticket_incident(conn, incident.dedup_key, for_update=True)
            if live is not None and live.id != incident_id:
                return False  # reported again meanwhile: that incident is the ticket's now
            reopened = reopened_by_ticket(incident, now)
            update_sla(reopened, Outcome.REOPENED, self.rules.sla_policies.get(reopened.priority), now)
            store.save_ticket_incident(conn, incident, reopened)
            store.set_hand_links_of_ticket(conn, self.system.name, self.snapshot.ticket_id, now, "open")
            problem = store.find_problem(conn, incident.problem_id, for_update=True) if incident.problem_id else None
            if problem is None or not problem.is_closed or problem.fixed_in is None:
                self._record(conn, reopened, "ticket_reopened", f"{what}: incident {incident_id} reopened")
                return False
            store.save_problem(conn, problem, replace(problem, reopened_by_ticket=problem.reopened_by_ticket + 1))
            detail = (
                f"{what} after the fix shipped in {problem.fixed_in}: incident {incident_id} reopened; "
                "the fix did not help this customer"
            )
            self._record(conn, reopened, "reopened_by_ticket", detail)
            return True

        if store.run(work):
            metrics.REOPENED_BY_TICKET.inc()

    def relink(self, incident_id: int, change: LinkChange) -> None:
        """Follow a changed problem field: into the problem it names now, or out of the one it named."""
        store, ticket_id = self.store, self.snapshot.ticket_id
        where = {"system": self.system.name, "ticket_id": ticket_id, "value": change.ref}
        problem_id = store.read(lambda conn: _problem_named(conn, store, change.ref))
        if problem_id is None:
            log.warning("the ticket's problem field names no problem the bridge knows; not linked", extra=where)
            return
        if change.unlink:

            def leave(conn: Connection) -> None:
                incident = store.find_incident(conn, incident_id, for_update=True)
                if incident is not None and store.detach_incident(conn, incident_id, problem_id):
                    detail = f"ticket {ticket_id} unlinked: its problem field was cleared in {self.system.name}"
                    record_action(
                        conn,
                        store,
                        at=self.now,
                        actor=self.actor,
                        kind="ticket_unlinked",
                        detail=detail,
                        problem_id=problem_id,
                        incident_id=incident_id,
                    )

            store.run(leave)
            return
        current = store.get_incident(incident_id)
        if current is None or current.problem_id == problem_id:
            return
        try:
            move_incident(store, incident_id, problem_id, self.actor, self.now)
        except (Conflict, Unprocessable) as exc:
            log.warning("ticket not linked to the problem its field names", extra={**where, "reason": exc.message})

    def _record(self, conn: Connection, incident: Incident, kind: str, detail: str) -> None:
        """What the ticket's system did, in the incident's and its problem's history, and to the notify targets."""
        problem_id = incident.problem_id
        record_action(
            conn,
            self.store,
            at=self.now,
            actor=self.actor,
            kind=kind,
            detail=detail,
            problem_id=problem_id,
            incident_id=incident.id,
        )
        event = "incident.closed" if incident.state is IncidentState.CLOSED else "incident.opened"
        announcer = Announcer.of(self.store, self.rules)
        if announcer is not None and announcer.wants(event):
            announcer.announce(conn, event, self.now, {"incident": incident_shape(incident)}, problem_id)


def _problem_named(conn: Connection, store: Store, value: str) -> int | None:
    """The problem a problem field names: by number (a merged one's successor), or by its Jira issue's key."""
    ref = problem_reference(value)
    if ref is None:
        return None
    if ref.jira_key is not None:
        key = store.current_keys(conn, [ref.jira_key])[ref.jira_key]
        live = store.live_problems_for_issue(key, conn)
        return live[0].stored_id if live else None
    assert ref.problem_id is not None
    problem = store.find_problem(conn, ref.problem_id)
    for _ in range(MAX_MERGE_HOPS):
        if problem is None or problem.merged_into is None:
            break
        problem = store.find_problem(conn, problem.merged_into)
    return problem.stored_id if problem is not None else None
