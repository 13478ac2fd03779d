"""Tickets people reported (phone, mail, portals) to domain alerts: a ticket is an incident from a people source.

`POST /api/v1/tickets` carries one ticket: its system (rules.yaml `ticket_systems`), its id
there, a summary and labels. It becomes one firing alert whose source id is system and id,
so a re-send updates the same incident instead of counting a repeat. The endpoint
(bridge/problems/tickets.py) checks the system against the rules and applies the ticket's own impact
and urgency, when given, over its route's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.domain.incidents import Alert, AlertStatus, ParsedNotification
from bridge.domain.tickets import TICKET_SOURCE, labels_of_ticket, ticket_source_id
from bridge.errors import BadPayload
from bridge.validation import LabelMap, SafeStr, describe

SOURCE = TICKET_SOURCE
MAX_TICKET_ID_LENGTH = 128
MAX_SUMMARY_LENGTH = 2000
# A system name is a rules.yaml key and travels in dedup keys and URLs.
SYSTEM_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
TICKET_ID_PATTERN = r"^[^/\s\x00]{1,128}$"
# Shown as a link on the problem page: http(s) only, never javascript: or data:.
URL_PATTERN = r"^https?://[^\s\x00]{1,1990}$"
LEVELS = ("high", "medium", "low")

PAYLOAD_SCHEMA = {
    "type": "object",
    "required": ["system", "ticket_id", "summary"],
    "additionalProperties": False,
    "properties": {
        "system": {"type": "string", "pattern": SYSTEM_PATTERN},
        "ticket_id": {"type": "string", "minLength": 1, "maxLength": MAX_TICKET_ID_LENGTH},
        "summary": {"type": "string", "minLength": 1, "maxLength": MAX_SUMMARY_LENGTH},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "url": {"type": "string", "pattern": URL_PATTERN},
        "impact": {"enum": list(LEVELS)},
        "urgency": {"enum": list(LEVELS)},
    },
}


class TicketReport(BaseModel):
    """One ticket as its system (or a person's script) reports it."""

    model_config = ConfigDict(extra="forbid")

    system: str = Field(pattern=SYSTEM_PATTERN)
    ticket_id: str = Field(pattern=TICKET_ID_PATTERN)
    summary: SafeStr = Field(min_length=1, max_length=MAX_SUMMARY_LENGTH)
    labels: LabelMap = {}
    url: str | None = Field(default=None, pattern=URL_PATTERN)
    impact: Literal["high", "medium", "low"] | None = None
    urgency: Literal["high", "medium", "low"] | None = None


def read_report(payload: Any) -> TicketReport:
    """Validate a ticket body.

    Raises:
        BadPayload: not an object, or a field is wrong (each finding names it).
    """
    if not isinstance(payload, Mapping):
        raise BadPayload("ticket must be a JSON object")
    try:
        return TicketReport.model_validate(payload)
    except ValidationError as exc:
        raise BadPayload("invalid ticket", describe(exc)) from exc


def parse(payload: Any) -> ParsedNotification:
    """One ticket -> one firing alert keyed by system and ticket id (a re-send is an update, not a repeat).

    Raises:
        BadPayload: not a valid ticket.
    """
    report = read_report(payload)
    annotations = {"ticket_system": report.system, "ticket_id": report.ticket_id}
    if report.url:
        annotations["ticket_url"] = report.url
    for level in ("impact", "urgency"):
        if getattr(report, level) is not None:
            annotations[f"ticket_{level}"] = getattr(report, level)
    alert = Alert(
        source=SOURCE,
        status=AlertStatus.FIRING,
        source_id=ticket_source_id(report.system, report.ticket_id),
        labels=labels_of_ticket(report.system, report.labels),
        annotations=annotations,
        summary=report.summary,
        is_update=True,
        repeat_counts=False,
    )
    return ParsedNotification(source=SOURCE, alerts=(alert,))
