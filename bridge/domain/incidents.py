"""Incidents: normalised alerts, routing, dedup keys and the incident lifecycle."""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bridge.sla import SlaClock, SlaPolicy, due_at, remaining_seconds, response_due_at, restart, stop

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


@dataclass(frozen=True)
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
    # Who acknowledged the problem in the source (a Zabbix acknowledgement update): it stops the response clock.
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
        if self.source is not None and alert.source != self.source:
            return False
        for name, value in self.labels.items():
            if alert.labels.get(name) != value:
                return False
        for name, pattern in self.labels_regex.items():
            if pattern.fullmatch(alert.labels.get(name, "")) is None:
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


@dataclass(frozen=True)
class Routing:
    """The decision for one alert, with the reasons `explain` prints."""

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


@dataclass(frozen=True)
class AlertResult:
    """The outcome of one alert and the incident it touched (None when it touched none)."""

    alert: Alert
    routing: Routing
    outcome: Outcome
    incident: Incident | None


def _refresh_details(incident: Incident, alert: Alert, routing: Routing, now: datetime) -> None:
    """Latest labels, summary and routing win: a Zabbix severity change re-prioritises. Notes stay."""
    incident.labels = dict(alert.labels)
    notes = {name: incident.annotations[name] for name in NOTE_ANNOTATIONS if name in incident.annotations}
    incident.annotations = {**notes, **alert.annotations}
    if alert.summary:
        incident.summary = alert.summary
    incident.line = routing.line
    incident.impact = routing.impact
    incident.urgency = routing.urgency
    incident.priority = routing.priority
    incident.route = routing.route.name
    incident.last_seen = now


def open_incident(alert: Alert, routing: Routing, now: datetime) -> Incident:
    """A new firing incident for an alert."""
    return Incident(
        id=None,
        dedup_key=routing.dedup_key,
        source=alert.source,
        state=IncidentState.FIRING,
        line=routing.line,
        impact=routing.impact,
        urgency=routing.urgency,
        priority=routing.priority,
        route=routing.route.name,
        summary=alert.summary,
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        occurrences=1,
        reopen_count=0,
        first_seen=now,
        last_seen=now,
        episode_started_at=alert.starts_at,
    )


def _is_older_episode(alert: Alert, incident: Incident) -> bool:
    return (
        alert.starts_at is not None
        and incident.episode_started_at is not None
        and alert.starts_at < incident.episode_started_at
    )


def _is_newer_episode(alert: Alert, incident: Incident) -> bool:
    return (
        alert.starts_at is not None
        and incident.episode_started_at is not None
        and alert.starts_at > incident.episode_started_at
    )


def remember_source_id(incident: Incident, source_id: str) -> None:
    """Keep the source's id of an event the incident gathered, the newest MAX_SOURCE_IDS of them.

    Closing in the source needs its own ids (Zabbix event ids), which a key made of labels
    does not hold. A known id changes nothing, so a repeat does not rewrite the column.
    """
    known = incident.source_ids or []
    if source_id in known:
        return
    incident.source_ids = [*known, source_id][-MAX_SOURCE_IDS:]


def apply_alert(
    current: Incident | None, alert: Alert, routing: Routing, now: datetime
) -> tuple[Outcome, Incident | None]:
    """Apply one alert to the key's current incident (firing or resolved, never closed).

    Returns the outcome and the incident to write: `current` changed in place, a new
    incident (id None), or None when nothing is to be written. Stale deliveries (an HA
    peer's older snapshot arriving after a newer one) never change state: a firing alert
    only reopens a resolved incident when it belongs to a newer episode. The incident to
    write remembers the alert's source id.
    """
    outcome, incident = _next_state(current, alert, routing, now)
    if incident is not None:
        remember_source_id(incident, alert.source_id)
    return outcome, incident


def _next_state(
    current: Incident | None, alert: Alert, routing: Routing, now: datetime
) -> tuple[Outcome, Incident | None]:
    if alert.note_only:
        if current is None or current.state is not IncidentState.FIRING:
            return Outcome.STALE, None  # PagerDuty drops an acknowledge of no open alert too
        current.annotations = {**current.annotations, **alert.annotations}
        current.last_seen = now
        return Outcome.UPDATED, current
    if current is None:
        if alert.status is AlertStatus.RESOLVED:
            return Outcome.UNKNOWN_RESOLVED, None
        return Outcome.CREATED, open_incident(alert, routing, now)

    if current.state is IncidentState.FIRING:
        if alert.status is AlertStatus.FIRING:
            _refresh_details(current, alert, routing, now)
            if alert.is_update:
                if alert.acknowledged_by:
                    mark_acknowledged(current, alert.acknowledged_by, now)
                return Outcome.UPDATED, current
            if alert.repeat_counts:
                current.occurrences += 1
            if _is_newer_episode(alert, current):
                current.episode_started_at = alert.starts_at
            return Outcome.REPEATED, current
        if _is_older_episode(alert, current):
            return Outcome.STALE, None
        current.state = IncidentState.RESOLVED
        current.last_seen = now
        ended = alert.ends_at if alert.ends_at is not None and alert.ends_at <= now else now
        current.resolved_at = max(ended, current.first_seen)
        current.auto_close_at = current.resolved_at + routing.route.auto_close_after
        return Outcome.RESOLVED, current

    # current is resolved
    if alert.status is AlertStatus.RESOLVED:
        current.last_seen = now
        return Outcome.REPEATED, current
    if not _is_newer_episode(alert, current):
        return Outcome.STALE, None
    assert current.resolved_at is not None
    if now - current.resolved_at > routing.route.reopen_window:
        return Outcome.CREATED, open_incident(alert, routing, now)
    _refresh_details(current, alert, routing, now)
    # A new episode: no longer acknowledged.
    current.annotations = {name: value for name, value in current.annotations.items() if name not in NOTE_ANNOTATIONS}
    current.state = IncidentState.FIRING
    current.occurrences += 1
    current.reopen_count += 1
    current.episode_started_at = alert.starts_at
    current.resolved_at = None
    current.auto_close_at = None
    return Outcome.REOPENED, current


def mark_acknowledged(incident: Incident, actor: str, at: datetime) -> bool:
    """Someone has the incident in hand: the response clock stops; past its due time the breach is recorded.

    Returns False when it was already acknowledged (the first acknowledgement stands).
    """
    if incident.acknowledged_at is not None:
        return False
    incident.acknowledged_at, incident.acknowledged_by = at, actor
    due = incident.response_due
    if due is not None and at > due and not incident.response_breached:
        incident.response_breached, incident.response_breached_at = True, due
    return True


def update_sla(incident: Incident, outcome: Outcome, policy: SlaPolicy | None, now: datetime) -> None:
    """Keep the incident's SLA clock in step with its lifecycle.

    The clock starts with the incident, stops while it is resolved (keeping the business
    time used) and restarts where it stopped on reopen; a priority change re-targets it.
    A resolve after the due time records the breach the worker may not have seen yet.
    The response target (until someone acknowledges) follows the priority too.
    """
    if policy is None:
        incident.sla_running_since = incident.sla_due = None
        if incident.acknowledged_at is None:
            incident.response_due = None
        return
    if incident.acknowledged_at is None:
        incident.response_due = response_due_at(policy, incident.first_seen)
    clock = SlaClock(incident.sla_elapsed_seconds, incident.sla_running_since)
    if outcome is Outcome.CREATED:
        clock = SlaClock(0.0, incident.first_seen)
    elif outcome is Outcome.RESOLVED:
        assert incident.resolved_at is not None
        if not incident.sla_breached and remaining_seconds(policy, clock, incident.resolved_at) < 0:
            incident.sla_breached, incident.sla_breached_at = True, due_at(policy, clock)
        clock = stop(policy, clock, incident.resolved_at)
    elif outcome is Outcome.REOPENED:
        clock = restart(clock, now)
    incident.sla_elapsed_seconds, incident.sla_running_since = clock.elapsed_seconds, clock.running_since
    incident.sla_due = due_at(policy, clock)


def apply_notifications(
    notifications: Sequence[tuple[Sequence[Alert], Sequence[Routing], datetime]],
    current: Mapping[str, Incident],
    sla_policies: Mapping[str, SlaPolicy] | None = None,
) -> tuple[list[list[AlertResult]], list[tuple[Incident, int]]]:
    """Apply several notifications, in arrival order, as if one after the other.

    Group commit writes a few notifications in one transaction; a later one sees what an
    earlier one did to a shared key. Returns the results per notification and the distinct
    incidents to write, each with the index of the last notification that touched it.
    `current` is not changed.
    """
    live: dict[str, Incident | None] = {key: inc.copy() for key, inc in current.items()}
    results: list[list[AlertResult]] = []
    touched: dict[int, tuple[Incident, int]] = {}
    for index, (alerts, routings, now) in enumerate(notifications):
        own: list[AlertResult] = []
        for alert, routing in zip(alerts, routings, strict=True):
            outcome, incident = apply_alert(live.get(routing.dedup_key), alert, routing, now)
            if incident is not None:
                if sla_policies is not None:
                    update_sla(incident, outcome, sla_policies.get(incident.priority), now)
                live[routing.dedup_key] = incident
                touched[id(incident)] = (incident, index)
            own.append(AlertResult(alert, routing, outcome, incident))
        results.append(own)
    return results, list(touched.values())


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
