"""Incidents: normalised alerts, routing, dedup keys, and the incident as the lifecycle (`lifecycle.py`) changes it."""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

IMPACT_LEVELS = ("high", "medium", "low")
URGENCY_LEVELS = ("high", "medium", "low")

# Dedup and problem keys are indexed; PostgreSQL b-tree entries must stay well under 2.7 kB
# (200 characters are at most 800 bytes of UTF-8).
MAX_READABLE_KEY_LENGTH = 200
# Source ids kept per incident: the newest, so a key gathering events for months stays a small row.
MAX_SOURCE_IDS = 100


class AlertStatus(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class IncidentState(enum.StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Outcome(enum.StrEnum):
    """What one alert did to the incidents; reported per notification."""

    CREATED = "created"
    REPEATED = "repeated"
    UPDATED = "updated"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    STALE = "stale"
    UNKNOWN_RESOLVED = "unknown_resolved"
    PING = "ping"  # a heartbeat's ping (bridge/domain/heartbeats.py): counted there, never an incident


@dataclass(slots=True)
class Alert:
    """One alert from any source, normalised by an adapter.

    `source_id` is the source's own identity for the failing thing (Alertmanager's
    fingerprint, Zabbix's problem event id). `starts_at` marks the firing episode: a
    later value means the failure stopped and started again. `is_update` marks
    notifications that change an incident's details without being a repeat (Zabbix
    acknowledgements, severity changes). `repeat_counts` says whether receiving the alert
    again is another occurrence (Alertmanager re-sends: yes) or only a redelivery of the
    same event (Zabbix retries and escalation re-sends: no). `note_only` marks a note on
    the key's firing incident (a PagerDuty acknowledge, which carries no details): its
    annotations are added and nothing else changes; it never opens or reopens an incident.

    Read-only by convention, not frozen (`dataclasses.replace` makes a changed copy): a
    frozen dataclass sets each field through object.__setattr__, 1.1 µs more per alert, and
    a storm makes ten alerts, ten routings and ten results per notification.
    """

    source: str
    status: AlertStatus
    source_id: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    summary: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    is_update: bool = False
    repeat_counts: bool = True
    note_only: bool = False
    # Who acknowledged the problem in the source (a Zabbix acknowledgement update, a PagerDuty acknowledge's
    # routing key): ingest acknowledges the firing incident as a person would, stopping its response clock.
    acknowledged_by: str | None = None


# Annotations a note adds that later details keep while the incident fires: an acknowledgement
# stands until the incident resolves, whatever the sender re-sends meanwhile.
NOTE_ANNOTATIONS = ("acknowledged_at", "acknowledged_by")


@dataclass(frozen=True)
class EventRoutingKey:
    """A routing key the PagerDuty Events v2 endpoint accepts (rules.yaml `events.routing_keys`).

    Only the key's SHA-256 is held, so no repr, log or traceback can show the key; its name
    is what incidents and logs carry.
    """

    name: str
    key_sha256: bytes = field(repr=False)
    labels: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, key: str, labels: Mapping[str, str]) -> EventRoutingKey:
        return cls(name, hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest(), dict(labels))

    def matches(self, given: str) -> bool:
        """Compare in constant time, so response timing reveals nothing of the key."""
        return hmac.compare_digest(hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest(), self.key_sha256)


@dataclass(frozen=True)
class Matcher:
    """Selects alerts by source and labels (exact values and full-match regexes)."""

    source: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    labels_regex: Mapping[str, re.Pattern[str]] = field(default_factory=dict)

    def matches(self, alert: Alert) -> bool:
        return self.fits(alert.source, alert.labels)

    def fits(self, source: str, labels: Mapping[str, str]) -> bool:
        """Whether something from this source with these labels is selected (an alert, or an incident)."""
        if self.source is not None and source != self.source:
            return False
        for name, value in self.labels.items():
            if labels.get(name) != value:
                return False
        for name, pattern in self.labels_regex.items():
            if pattern.fullmatch(labels.get(name, "")) is None:
                return False
        return True


@dataclass(frozen=True)
class Route:
    """A routing rule: which line gets matching alerts, with what impact and urgency."""

    name: str
    matcher: Matcher
    line: str
    impact: str
    urgency: str
    reopen_window: timedelta
    auto_close_after: timedelta
    dedup_labels: tuple[str, ...] | None = None


@dataclass(slots=True)
class Routing:
    """The decision for one alert, with the reasons `explain` prints. Read-only by convention, as `Alert`."""

    dedup_key: str
    route: Route
    priority: str
    reasons: tuple[str, ...]

    @property
    def line(self) -> str:
        return self.route.line

    @property
    def impact(self) -> str:
        return self.route.impact

    @property
    def urgency(self) -> str:
        return self.route.urgency


def label_set_key(labels: Mapping[str, str], names: Iterable[str]) -> str:
    """Canonical text for a subset of labels, `{a="x", b="y"}` in name order."""
    parts = [f'{name}="{_escape(labels.get(name, ""))}"' for name in sorted(names)]
    return "{" + ", ".join(parts) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def bounded_key(text: str, limit: int = MAX_READABLE_KEY_LENGTH) -> str:
    """`text` itself when short; else a readable prefix and the SHA-256 of the whole text, `limit` long.

    Keys built from what senders choose (label values, rendered templates) are indexed;
    an unbounded one fails its whole transaction on PostgreSQL's index row limit.
    """
    if len(text) <= limit:
        return text
    suffix = "…sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return text[: limit - len(suffix)] + suffix


def dedup_key(alert: Alert, route: Route) -> str:
    """The incident key: the source's own id, or the route's label set when it names one."""
    if route.dedup_labels:
        body = "labels:" + label_set_key(alert.labels, route.dedup_labels)
    else:
        body = alert.source_id
    return f"{alert.source}:{bounded_key(body)}"


@dataclass
class Incident:
    """One occurrence of a failure on a support line; mutable while the domain decides."""

    id: int | None
    dedup_key: str
    source: str
    state: IncidentState
    line: str
    impact: str
    urgency: str
    priority: str
    route: str
    summary: str
    labels: dict[str, str]
    annotations: dict[str, str]
    occurrences: int
    reopen_count: int
    first_seen: datetime
    last_seen: datetime
    episode_started_at: datetime | None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    problem_id: int | None = None
    auto_close_at: datetime | None = None
    problem_key: str | None = None
    sla_elapsed_seconds: float = 0.0
    sla_running_since: datetime | None = None
    sla_due: datetime | None = None
    sla_breached: bool = False
    sla_breached_at: datetime | None = None
    source_ids: list[str] | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    response_due: datetime | None = None
    response_breached: bool = False
    response_breached_at: datetime | None = None
    # Hold windows (bridge/domain/windows.py): the window that held it (kept once released, with its
    # mark {id, kind, name}), whether it holds it still, and when its clocks started when that was
    # the window's end rather than its first sighting.
    hold_window_id: int | None = None
    hold_window: dict[str, Any] | None = None
    held: bool = False
    clocks_from: datetime | None = None
    # The deploy in progress when it last opened (bridge/domain/deploys.py): {id, project, version,
    # environment}, and that deploy's id apart (release health counts by it).
    during_deploy: dict[str, Any] | None = None
    deploy_id: int | None = None

    @property
    def stored_id(self) -> int:
        """The id of an incident the store has written (every one a use case reads back has it)."""
        if self.id is None:
            raise ValueError("an incident not written yet has no id")
        return self.id

    @classmethod
    def from_fields(cls, values: dict[str, Any]) -> Incident:
        """An incident from every field's value, as read back by the store (the dict is taken, not copied).

        Skips the generated __init__'s 30 keyword arguments: the webhook path builds one per
        incident it touches.
        """
        incident = cls.__new__(cls)
        incident.__dict__.update(values)
        return incident

    def copy(self) -> Incident:
        """A shallow twin: the lifecycle below replaces labels, annotations and source_ids, never changes them in place."""
        return Incident.from_fields(dict(self.__dict__))


@dataclass(slots=True)
class IncidentHead:
    """A key's live incident (firing or resolved) as far as a plain repeat needs it (see `is_plain_repeat`).

    A storm is mostly repeats, and re-sends of its resolves: the store decodes these fields,
    not the whole row, for keys whose alerts may all be plain repeats, and writes only the
    count and last sighting. Read-only by convention, not frozen: a frozen dataclass sets
    each field through object.__setattr__, 1.5 µs more per head.
    """

    id: int
    state: IncidentState
    problem_id: int | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    summary: str
    line: str
    impact: str
    urgency: str
    priority: str
    route: str
    episode_started_at: datetime | None
    source_ids: Sequence[str] | None
    first_seen: datetime
    acknowledged_at: datetime | None
    response_due: datetime | None
    sla_elapsed_seconds: float
    sla_running_since: datetime | None
    sla_due: datetime | None
    held: bool
    clocks_from: datetime | None

    @classmethod
    def of(cls, incident: Incident) -> IncidentHead:
        """The head of an incident held whole (tests compare the fast path with the lifecycle through it)."""
        return cls(incident.stored_id, *(getattr(incident, name) for name in HEAD_FIELDS[1:]))


HEAD_FIELDS = tuple(column.name for column in fields(IncidentHead))


@dataclass(slots=True)
class AlertResult:
    """The outcome of one alert and the incident it touched. Read-only by convention, as `Alert`.

    `incident` is the incident as the lifecycle left it (None when the alert touched none,
    or was a plain repeat). A plain repeat holds the firing incident's head in `repeated`
    instead: only its occurrences and last sighting changed (see `PlainRepeats`).
    """

    alert: Alert
    routing: Routing
    outcome: Outcome
    incident: Incident | None
    repeated: IncidentHead | None = None

    @property
    def incident_id(self) -> int | None:
        """The touched incident's id (None when none was touched, or for a new one not written yet)."""
        if self.incident is not None:
            return self.incident.id
        return self.repeated.id if self.repeated is not None else None

    @property
    def problem_id(self) -> int | None:
        if self.incident is not None:
            return self.incident.problem_id
        return self.repeated.problem_id if self.repeated is not None else None


@dataclass(frozen=True)
class RejectedAlert:
    """An alert refused inside an otherwise usable notification, with the reasons."""

    index: int
    errors: tuple[str, ...]


@dataclass(frozen=True)
class ParsedNotification:
    """What an adapter made of one webhook: usable alerts, refused ones and notes."""

    source: str
    alerts: tuple[Alert, ...]
    rejected: tuple[RejectedAlert, ...] = ()
    truncated_alerts: int = 0
    group_key: str | None = None

    def payload_indexes(self) -> list[int]:
        """Where each alert stood in the payload: adapters put every payload item in `alerts` or `rejected`."""
        refused = {item.index for item in self.rejected}
        return [index for index in range(len(self.alerts) + len(self.rejected)) if index not in refused]
