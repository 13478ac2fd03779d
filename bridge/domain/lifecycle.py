"""The incident lifecycle: what each alert does to its key's incident and SLA clock, and the plain
repeats a storm is made of (and the re-sends of its resolves), counted without decoding the incident whole."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from bridge.domain.incidents import (
    MAX_SOURCE_IDS,
    NOTE_ANNOTATIONS,
    Alert,
    AlertResult,
    AlertStatus,
    Incident,
    IncidentHead,
    IncidentState,
    Outcome,
    Routing,
)
from bridge.domain.sla import SlaClock, SlaPolicy, due_at, remaining_seconds, response_due_at, restart, stop


def _refresh_details(incident: Incident, alert: Alert, routing: Routing, now: datetime) -> None:
    """Latest labels, summary and routing win: a Zabbix severity change re-prioritises. Notes stay."""
    incident.labels = dict(alert.labels)
    incident.annotations = _refreshed_annotations(incident.annotations, alert.annotations)
    if alert.summary:
        incident.summary = alert.summary
    incident.line = routing.line
    incident.impact = routing.impact
    incident.urgency = routing.urgency
    incident.priority = routing.priority
    incident.route = routing.route.name
    incident.last_seen = now


def _refreshed_annotations(held: Mapping[str, str], sent: Mapping[str, str]) -> dict[str, str]:
    """The sender's annotations over the notes the incident keeps (an acknowledgement stands)."""
    notes = {name: held[name] for name in NOTE_ANNOTATIONS if name in held}
    return {**notes, **sent}


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


def _is_newer_episode(alert: Alert, incident: Incident | IncidentHead) -> bool:
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
            if alert.is_update:  # an acknowledgement in it is applied by ingest, as a person's (acknowledge_in)
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


@dataclass(frozen=True)
class Acknowledgement:
    """An incident acknowledged (by a person, or in its source): what the response metrics count of it."""

    incident_id: int
    priority: str
    response_seconds: float
    late: bool  # past its response due time: the breach is recorded with it


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
    The response target (until someone acknowledges) follows the priority too. No clock runs
    while a window holds the incident; released, they count from the window's end (`clocks_from`).
    """
    if policy is None or incident.held:  # a held incident's clocks wait for its window's end
        incident.sla_running_since = incident.sla_due = None
        if incident.acknowledged_at is None:
            incident.response_due = None
        return
    if incident.acknowledged_at is None:
        incident.response_due = response_due_at(policy, incident.clocks_from or incident.first_seen)
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


Notification = tuple[Sequence[Alert], Sequence[Routing], datetime]


def may_be_plain_repeat(alert: Alert) -> bool:
    """Whether an alert can be a plain repeat at all, whatever the incident: not an update or a note."""
    return not alert.is_update and not alert.note_only


def repeat_candidates(notifications: Sequence[Notification]) -> dict[str, IncidentState]:
    """Keys every alert of which may be a plain repeat, each with the state its live incident must be
    in for that (firing for firing alerts, resolved for resolved ones): only these heads are worth
    decoding. A key with alerts of both statuses is left out: it resolves or reopens."""
    candidates: dict[str, IncidentState] = {}
    others: set[str] = set()
    for alerts, routings, _ in notifications:
        for alert, routing in zip(alerts, routings, strict=True):
            key = routing.dedup_key
            if not may_be_plain_repeat(alert):
                others.add(key)
                continue
            state = IncidentState.FIRING if alert.status is AlertStatus.FIRING else IncidentState.RESOLVED
            if candidates.setdefault(key, state) is not state:
                others.add(key)
    for key in others:
        candidates.pop(key, None)
    return candidates


def is_plain_repeat(
    head: IncidentHead, alert: Alert, routing: Routing, sla_policies: Mapping[str, SlaPolicy] | None
) -> bool:
    """True when `apply_alert` and `update_sla` would change nothing on the live incident but its
    last sighting and, when it fires, its occurrences: a firing alert on the firing incident
    with the same details and routing and no newer episode, or a resolved alert on the
    resolved incident (a re-sent resolve, which the lifecycle only notes as seen); either with
    a known source id and the SLA targets the policy gives now. Checked field by field against
    what those functions write, so the fast path and the lifecycle cannot disagree
    (tests/unit/test_hot_path.py proves it on generated alerts).
    """
    if not may_be_plain_repeat(alert) or alert.source_id not in (head.source_ids or ()):
        return False
    if head.state is IncidentState.RESOLVED:
        if alert.status is not AlertStatus.RESOLVED:
            return False
    elif alert.status is not AlertStatus.FIRING or not _same_details(head, alert, routing):
        return False
    return _same_sla_targets(head, sla_policies)


def _same_details(head: IncidentHead, alert: Alert, routing: Routing) -> bool:
    """What `_refresh_details` would write on the firing incident is what it holds, and no newer episode starts."""
    route = routing.route
    if (head.line, head.impact, head.urgency, head.priority, head.route) != (
        route.line,
        route.impact,
        route.urgency,
        routing.priority,
        route.name,
    ):
        return False
    if alert.summary and alert.summary != head.summary:
        return False
    if _is_newer_episode(alert, head):
        return False
    return head.labels == alert.labels and head.annotations == _refreshed_annotations(
        head.annotations, alert.annotations
    )


def _same_sla_targets(head: IncidentHead, sla_policies: Mapping[str, SlaPolicy] | None) -> bool:
    """What `update_sla` would write for a repeat (the clock neither starts nor stops) is what the incident holds."""
    if sla_policies is None:
        return True
    policy = sla_policies.get(head.priority)
    if policy is None or head.held:  # update_sla clears the clock, and the response target unless acknowledged
        unacknowledged_target = head.acknowledged_at is None and head.response_due is not None
        return head.sla_running_since is None and head.sla_due is None and not unacknowledged_target
    if head.acknowledged_at is None and head.response_due != response_due_at(
        policy, head.clocks_from or head.first_seen
    ):
        return False
    return head.sla_due == due_at(policy, SlaClock(head.sla_elapsed_seconds, head.sla_running_since))


def plain_repeat_heads(
    notifications: Sequence[Notification],
    heads: Mapping[str, IncidentHead],
    sla_policies: Mapping[str, SlaPolicy] | None,
) -> dict[str, IncidentHead]:
    """The heads every alert of whose key in these notifications is a plain repeat.

    A plain repeat leaves the head as it was (but its count), so each alert of a key is
    checked against the same head, in any order.
    """
    plain = dict(heads)
    for alerts, routings, _ in notifications:
        for alert, routing in zip(alerts, routings, strict=True):
            head = plain.get(routing.dedup_key)
            if head is not None and not is_plain_repeat(head, alert, routing, sla_policies):
                del plain[routing.dedup_key]
    return plain


@dataclass
class PlainRepeats:
    """What plain repeats did to one live incident: occurrences added (a firing one's), and the last sighting."""

    head: IncidentHead
    added: int
    last_seen: datetime
    notification_index: int


@dataclass
class Applied:
    """What `apply_notifications` decided: results per notification, incidents to write, plain repeats to count."""

    results: list[list[AlertResult]]
    touched: list[tuple[Incident, int]]
    repeats: list[PlainRepeats]


def apply_notifications(
    notifications: Sequence[Notification],
    current: Mapping[str, Incident],
    sla_policies: Mapping[str, SlaPolicy] | None = None,
    plain: Mapping[str, IncidentHead] | None = None,
) -> Applied:
    """Apply several notifications, in arrival order, as if one after the other.

    Group commit writes a few notifications in one transaction; a later one sees what an
    earlier one did to a shared key. Returns the results per notification and the distinct
    incidents to write, each with the index of the last notification that touched it.
    Keys in `plain` (see `plain_repeat_heads`) are counted instead: their incidents were not
    read whole, and the lifecycle would only have counted them. `current` is not changed.
    """
    live: dict[str, Incident | None] = {key: inc.copy() for key, inc in current.items()}
    plain = plain or {}
    results: list[list[AlertResult]] = []
    touched: dict[int, tuple[Incident, int]] = {}
    repeats: dict[str, PlainRepeats] = {}
    for index, (alerts, routings, now) in enumerate(notifications):
        own: list[AlertResult] = []
        for alert, routing in zip(alerts, routings, strict=True):
            head = plain.get(routing.dedup_key)
            if head is not None:
                counted = repeats.get(routing.dedup_key)
                if counted is None:
                    counted = repeats[routing.dedup_key] = PlainRepeats(head, 0, now, index)
                counted.added += 1 if alert.repeat_counts and head.state is IncidentState.FIRING else 0
                counted.last_seen, counted.notification_index = now, index
                own.append(AlertResult(alert, routing, Outcome.REPEATED, None, head))
                continue
            outcome, incident = apply_alert(live.get(routing.dedup_key), alert, routing, now)
            if incident is not None:
                if sla_policies is not None:
                    update_sla(incident, outcome, sla_policies.get(incident.priority), now)
                live[routing.dedup_key] = incident
                touched[id(incident)] = (incident, index)
            own.append(AlertResult(alert, routing, outcome, incident))
        results.append(own)
    return Applied(results, list(touched.values()), list(repeats.values()))
