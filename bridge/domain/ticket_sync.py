"""A ticket read from its system, and what reading it means for its incident: pure decisions.

The bridge keeps, per ticket, what it last saw there (or last wrote there itself). A change
is a difference from that record, never from the incident alone: a ticket the bridge closed
and resolved in its system is not read back as a person's change, and a ticket still open
in its system while the bridge's close waits in the outbox is not reopened.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from bridge.domain.incidents import Incident, IncidentState
from bridge.domain.problems import JIRA_KEY
from bridge.domain.sla import SlaClock, SlaPolicy, stop

# A problem field's value naming a problem by its number (`42`, `#42`).
_PROBLEM_NUMBER = re.compile(r"^#?([1-9][0-9]{0,17})$")
# What a ticket's labels may hold: far below the ticket endpoint's limits, so a ticket with a huge
# custom field still becomes its incident (with that value cut) instead of being refused whole.
MAX_TICKET_LABELS = 64
MAX_TICKET_LABEL_LENGTH = 1000


class TicketState(enum.StrEnum):
    """Where a ticket stands in its system, whatever its workflow calls the status."""

    ACTIVE = "active"  # new, open, stalled, waiting: someone is still affected
    DONE = "done"  # resolved or rejected
    GONE = "gone"  # deleted, or no longer visible to the bridge


class TicketStep(enum.StrEnum):
    """What a reading of a ticket does to its incident."""

    CREATE = "create"  # a new ticket: its incident opens
    CREATE_CLOSED = "create_closed"  # a ticket first seen already done: its incident opens and closes
    UPDATE = "update"  # the incident follows the ticket's summary and labels
    CLOSE = "close"  # done in its system: the incident closes
    REOPEN = "reopen"  # done there before, active again: the incident reopens
    NOTHING = "nothing"


@dataclass(frozen=True)
class TicketSnapshot:
    """A ticket as its system shows it now, in the shape every system's reader gives.

    `version` changes whenever the ticket does (RT's LastUpdated, Jira's updated); a
    reading of the same version is skipped.
    """

    system: str
    ticket_id: str
    status: str
    state: TicketState
    summary: str
    labels: Mapping[str, str] = field(default_factory=dict)
    url: str | None = None
    problem_ref: str = ""
    version: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class SeenTicket:
    """What the bridge last saw of a ticket in its system, or last wrote there itself."""

    state: TicketState
    status: str
    version: str
    problem_ref: str | None
    fingerprint: str

    def unchanged(self, snapshot: TicketSnapshot, fingerprint: str) -> bool:
        """The same reading again (an overlapping sync, a webhook repeated): nothing to do.

        The version alone does not tell: RT's LastUpdated is whole seconds, so a ticket changed
        again within the second it was read keeps its version; what it says (`fingerprint`) differs.
        """
        return (
            bool(snapshot.version)
            and self.version == snapshot.version
            and self.state is snapshot.state
            and self.problem_ref == snapshot.problem_ref
            and self.fingerprint == fingerprint
        )


def ticket_text(value: object, limit: int) -> str:
    """Text from a ticket's system, fit for an incident: NUL (which no database column holds) replaced, cut to `limit`."""
    return str(value).replace("\x00", "\ufffd").strip()[:limit]


def ticket_labels(labels: Mapping[str, object]) -> dict[str, str]:
    """A ticket's labels within bounds: empty values left out, NULs replaced, long values cut, at most 64."""
    cleaned = {ticket_text(name, 200): ticket_text(value, MAX_TICKET_LABEL_LENGTH) for name, value in labels.items()}
    return dict(list((name, value) for name, value in cleaned.items() if name and value)[:MAX_TICKET_LABELS])


def ticket_step(seen: TicketState | None, incident: IncidentState | None, now: TicketState) -> TicketStep:
    """What the incident of a ticket must do, given what was seen of the ticket before and how it stands now.

    An incident closed by the bridge (a release, a hand) is only reopened by a ticket its
    system had marked done before and shows active again: the customer reopened it.
    """
    if incident is None:
        if now is TicketState.ACTIVE:
            return TicketStep.CREATE
        return TicketStep.CREATE_CLOSED if now is TicketState.DONE else TicketStep.NOTHING
    if incident is not IncidentState.CLOSED:
        return TicketStep.UPDATE if now is TicketState.ACTIVE else TicketStep.CLOSE
    if now is TicketState.ACTIVE and seen is TicketState.DONE:
        return TicketStep.REOPEN
    return TicketStep.NOTHING


@dataclass(frozen=True)
class LinkChange:
    """The problem field changed: link to the problem `ref` names, or (`unlink`) leave the one it named."""

    ref: str
    unlink: bool = False


def link_change(seen_ref: str | None, now_ref: str) -> LinkChange | None:
    """How a ticket's problem field moved since it was last read; None when it did not.

    Only a change acts: a person who moves the incident by hand in the bridge is not
    overruled by the next reading of an unchanged field.
    """
    if (seen_ref or "") == now_ref:
        return None
    if now_ref:
        return LinkChange(now_ref)
    assert seen_ref is not None
    return LinkChange(seen_ref, unlink=True)


@dataclass(frozen=True)
class ProblemRef:
    """What a problem field names: a problem by number, or the Jira issue a problem is linked to."""

    problem_id: int | None = None
    jira_key: str | None = None


def problem_reference(value: str) -> ProblemRef | None:
    """Read a problem field (`42`, `#42`, `LKK-7`); None when it names nothing the bridge knows how to find."""
    text = value.strip()
    number = _PROBLEM_NUMBER.match(text)
    if number is not None:
        return ProblemRef(problem_id=int(number.group(1)))
    upper = text.upper()
    return ProblemRef(jira_key=upper) if JIRA_KEY.match(upper) else None


def closed_by_ticket(incident: Incident, now: datetime, reason: str, policy: SlaPolicy | None) -> Incident:
    """The incident closed because its ticket was resolved (or deleted) in its system; its SLA clock stops
    there, so a reopen restarts it where it stood."""
    closed = incident.copy()
    closed.state = IncidentState.CLOSED
    closed.closed_at, closed.close_reason = now, reason
    closed.auto_close_at = None
    if policy is not None:
        clock = stop(policy, SlaClock(incident.sla_elapsed_seconds, incident.sla_running_since), now)
        closed.sla_elapsed_seconds, closed.sla_running_since, closed.sla_due = clock.elapsed_seconds, None, None
    return closed


def reopened_by_ticket(incident: Incident, now: datetime) -> Incident:
    """The incident firing again because its ticket was reopened: a new episode of the same ticket.

    The caller restarts its SLA clock (`update_sla` with Outcome.REOPENED).
    """
    return replace(
        incident.copy(),
        state=IncidentState.FIRING,
        closed_at=None,
        close_reason=None,
        resolved_at=None,
        auto_close_at=None,
        reopen_count=incident.reopen_count + 1,
        occurrences=incident.occurrences + 1,
        last_seen=now,
    )
