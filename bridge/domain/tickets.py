"""Tickets people reported, the systems that hold them, and who hears of lifecycle events.

A ticket is an incident from a people source (`source` = `ticket`): grouped and routed like
alerts. Its system is told when the problem it belongs to closes; notify targets hear of
the lifecycle events they ask for. Pure data and decisions: the outbox carries the calls.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from bridge.domain.problems import JIRA_KEY, Renderer

TICKET_SOURCE = "ticket"
# What tickets hear of their problem (each text once per ticket): people's workaround, Jira's conclusion.
NOTICE_KINDS = ("workaround", "conclusion")

# Every lifecycle event a notify target may ask for (docs/how-to/outbound-webhooks.md).
EVENTS = (
    "incident.opened",
    "incident.resolved",
    "incident.closed",
    "problem.opened",
    "problem.linked",
    "problem.closed",
    "problem.regressed",
    "release.received",
    "ticket.close",
    "ticket.update",
)


@dataclass(frozen=True)
class TicketSync:
    """How the bridge reads a Request Tracker's tickets by itself (rules.yaml `sync:`).

    Every `interval`, the tickets of `queues` changed since the last read (less `overlap`:
    RT's times are whole seconds) become or update their incidents; `problem_field` is the
    custom field naming a ticket's problem.
    """

    interval: timedelta
    queues: tuple[str, ...]
    problem_field: str | None = None
    overlap: timedelta = timedelta(minutes=1)


@dataclass(frozen=True)
class TicketSystem:
    """A system people's tickets live in (rules.yaml `ticket_systems`), with what it takes to tell it.

    `kind` is `webhook` (a receiver of the operator's own, sent signed JSON), `rt` (Request
    Tracker 5's REST2; `queue`, when set, is the only queue whose tickets the bridge changes;
    `sync`, when set, has the bridge read its tickets) or `jira` (a Jira Service Management
    `project` on a Jira site of `flavour` cloud or datacenter: closed through
    `close_transition`, linked to problems through `problem_field`).

    `secret` signs webhook deliveries; `token`, or `username` and `password`, are RT's
    credentials (for Jira: the account's email and API token on Cloud, a personal access
    token on Data Center), read from the environment at start-up. None of them shows in a repr.
    """

    name: str
    kind: str
    url: str
    secret: str | None = field(default=None, repr=False)
    close_on_release: bool = True
    queue: str | None = None
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    sync: TicketSync | None = None
    project: str | None = None
    close_transition: str | None = None
    problem_field: str | None = None
    flavour: str = "cloud"

    @property
    def field_of_problem(self) -> str | None:
        """The field of a ticket that names its problem (RT's custom field, or Jira's field id), if any."""
        return self.sync.problem_field if self.sync is not None else self.problem_field


@dataclass(frozen=True)
class NotifyTarget:
    """An outbound webhook (rules.yaml `notify`): where lifecycle events go, signed with its secret."""

    name: str
    url: str
    secret: str = field(repr=False)
    events: frozenset[str]
    body_template: Renderer | None = None

    def wants(self, event: str) -> bool:
        return event in self.events


# What a ticket id may be in each kind of system: ids travel into URL paths (RT's REST2, Jira's REST), so
# only what that system itself issues. RT numbers its tickets; Jira keys them; a webhook receiver's ids are
# its own, held to a safe printable set (no slash, percent sign, dot-only or blank id).
TICKET_IDS = {
    "rt": (re.compile(r"[1-9][0-9]{0,17}"), "RT ticket numbers are digits only (at most 18)"),
    "jira": (JIRA_KEY, "a Jira key like SD-123"),
}
OTHER_TICKET_IDS = (
    re.compile(r"[A-Za-z0-9][A-Za-z0-9._:#@+-]{0,127}"),
    "letters, digits and . _ : # @ + - (at most 128, starting with a letter or digit)",
)


def ticket_id_refusal(kind: str, ticket_id: str) -> str | None:
    """Why a ticket id cannot be one of a system of this kind (a finding naming `ticket_id`), None when it can."""
    pattern, expected = TICKET_IDS.get(kind, OTHER_TICKET_IDS)
    if pattern.fullmatch(ticket_id):
        return None
    return f"ticket_id: {ticket_id[:40]!r} is not a ticket id of a {kind} system: expected {expected}"


def ticket_source_id(system: str, ticket_id: str) -> str:
    """The source id of a ticket's incident: its system and its id in that system."""
    return f"{system}:{ticket_id}"


def ticket_close_text(ticket_id: str, problem_id: int, summary: str, release: str | None, reason: str) -> str:
    """What the ticket's system is told when its problem closes: which problem, and which release or reason."""
    because = f"the fix shipped in release {release}" if release else reason
    return f"incident-bridge closed ticket {ticket_id}: problem #{problem_id} ({summary}) is closed, {because}."


def ticket_notice_text(what: str, problem_id: int, text: str, link: str) -> str:
    """What a ticket hears of its problem's workaround or conclusion: the text and where to read more."""
    heading = "Workaround" if what == "workaround" else "Conclusion from the developers"
    return f"incident-bridge, problem #{problem_id}: {heading}\n\n{text}\n\nProblem: {link}"


def targets_wanting(targets: tuple[NotifyTarget, ...], event: str) -> list[NotifyTarget]:
    """The notify targets that asked for this event (none: nothing is queued)."""
    return [target for target in targets if target.wants(event)]


def wanted_events(targets: tuple[NotifyTarget, ...]) -> frozenset[str]:
    """Every event at least one target asked for: the hot path checks this before building anything."""
    return frozenset(event for target in targets for event in target.events)


def labels_of_ticket(system: str, labels: Mapping[str, str]) -> dict[str, str]:
    """A ticket's labels with its system, so routes and problem rules can match per system."""
    return {**labels, "ticket_system": system}
