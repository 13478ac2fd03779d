"""Ingest: a webhook body becomes incident changes, problem decisions and kept refusals, in one transaction.

The hot path: parse and route outside the transaction, then one set-based write per
group of notifications (see `write_deliveries`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import orjson

from adapters import PARSERS
from bridge.domain.incidents import (
    Alert,
    AlertResult,
    AlertStatus,
    IncidentState,
    Outcome,
    ParsedNotification,
    RejectedAlert,
    Routing,
)
from bridge.domain.lifecycle import (
    Acknowledgement,
    apply_notifications,
    mark_acknowledged,
    plain_repeat_heads,
    repeat_candidates,
)
from bridge.domain.rules import Rules, route_alert
from bridge.errors import BadPayload, BridgeError, DataRefused, NotFound
from bridge.ingest.holds import hold_events, hold_opened
from bridge.outbox.notify import Announcer, announce_incidents
from bridge.problems.actions import acknowledge_in
from bridge.problems.grouping import assign_problems, join_open_problems, set_problem_keys
from bridge.storage.engine import Connection
from bridge.storage.store import Store
from bridge.validation import nesting_depth_exceeds

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """What one accepted notification did."""

    notification_id: int
    parsed: ParsedNotification
    results: list[AlertResult]
    regressions: int = 0
    # Incidents this notification acknowledged (a PagerDuty acknowledge, a Zabbix acknowledgement).
    acknowledgements: tuple[Acknowledgement, ...] = ()

    @property
    def incident_ids(self) -> list[int]:
        seen: dict[int, None] = {}
        for result in self.results:
            if result.incident_id is not None:
                seen.setdefault(result.incident_id, None)
        return list(seen)

    @property
    def outcomes(self) -> dict[str, int]:
        return dict(Counter(result.outcome.value for result in self.results))


def body_text(body: bytes) -> str:
    """The raw body as storable text: invalid UTF-8 and NUL bytes become U+FFFD."""
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def parse_body(source: str, body: bytes, max_depth: int = 32, max_alerts: int = 5000) -> ParsedNotification:
    """Decode JSON and run the source's adapter, within the configured limits.

    Raises:
        NotFound: unknown source.
        BadPayload: not JSON, nested too deep, too many alerts, not a usable notification, or
            the adapter failed on it (logged with its traceback).
    """
    parser = PARSERS.get(source)
    if parser is None:
        raise NotFound(f"unknown source {source!r}", [f"source: expected one of {', '.join(PARSERS)}"])
    if not body.strip():
        raise BadPayload("empty body; expected a JSON object")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPayload("body is not valid JSON", [f"body: {exc}"]) from exc
    if nesting_depth_exceeds(body, max_depth):
        raise BadPayload("JSON nested too deep", [f"body: more than {max_depth} levels of objects and arrays"])
    alerts = payload.get("alerts") if isinstance(payload, dict) else None
    if isinstance(alerts, list) and len(alerts) > max_alerts:
        raise BadPayload(
            "too many alerts in one notification",
            [
                f"alerts: {len(alerts)} alerts, at most {max_alerts} (BRIDGE_MAX_ALERTS; "
                "Alertmanager's max_alerts can cap it)"
            ],
        )
    try:
        return parser(payload)
    except BadPayload:
        raise
    except Exception as exc:
        # A parser bug must cost one refused (and kept) payload, not a 500 that Alertmanager retries.
        log.exception("adapter failed on a payload; refused", extra={"source": source})
        raise BadPayload(
            f"the {source} adapter could not read this payload",
            [f"body: unexpected {type(exc).__name__} while parsing; the bridge log has the details"],
        ) from exc


def keep_refused(
    store: Store,
    source: str,
    received_at: datetime,
    refusal: BridgeError,
    *,
    body: str,
    content_type: str | None,
    body_limit: int,
) -> None:
    """Keep a notification refused as a whole (400, 413, 415) with its reason, for the operator to read.

    Raises:
        StoreUnavailable: the database is down, so not even the refusal could be kept.
    """
    store.run(
        lambda conn: store.add_rejected(
            conn,
            source,
            received_at,
            reason=refusal.message,
            errors=refusal.errors,
            body=body,
            content_type=content_type,
            partial=False,
            body_limit=body_limit,
        )
    )
    log.info("payload rejected", extra={"source": source, "reason": refusal.message, "status": refusal.status})


@dataclass(frozen=True)
class Delivery:
    """A parsed, routed notification waiting for the transaction that writes it."""

    source: str
    text: str
    parsed: ParsedNotification
    routings: list[Routing]
    received_at: datetime
    content_type: str | None = None
    # Alerts that are heartbeat pings (never incidents): (position in parsed.alerts, heartbeat name).
    pings: tuple[tuple[int, str], ...] = ()

    def lifecycle_input(self) -> tuple[Sequence[Alert], Sequence[Routing], datetime]:
        """The alerts and routings the incident lifecycle sees: a ping as the resolve of its own key, so an
        incident it opened before its heartbeat was configured resolves, and none is ever opened."""
        if not self.pings:
            return self.parsed.alerts, self.routings, self.received_at
        alerts = list(self.parsed.alerts)
        for position, _ in self.pings:
            alerts[position] = replace(
                alerts[position], status=AlertStatus.RESOLVED, starts_at=None, ends_at=None, note_only=False
            )
        return alerts, self.routings, self.received_at

    def with_pings(self, own: list[AlertResult]) -> list[AlertResult]:
        """The results as the sender is answered: each ping a `ping` outcome."""
        if not self.pings:
            return own
        pinged = dict(self.pings)
        return [
            AlertResult(self.parsed.alerts[position], result.routing, Outcome.PING, None)
            if position in pinged
            else result
            for position, result in enumerate(own)
        ]


def heartbeat_pings(rules: Rules, parsed: ParsedNotification) -> tuple[tuple[int, str], ...]:
    """The alerts of a notification that ping a heartbeat (the Watchdog), with the heartbeat each pings."""
    if not rules.watches_pings_from(parsed.source):
        return ()
    found = []
    for position, alert in enumerate(parsed.alerts):
        heartbeat = rules.heartbeat_pinged_by(alert)
        if heartbeat is not None:
            found.append((position, heartbeat.name))
    return tuple(found)


def prepare_delivery(
    store: Store,
    rules: Rules,
    source: str,
    body: bytes,
    now: datetime,
    content_type: str | None = None,
    rejected_body_limit: int = 1024 * 1024,
    max_depth: int = 32,
    max_alerts: int = 5000,
    complete: Callable[[ParsedNotification], ParsedNotification] | None = None,
) -> Delivery:
    """Parse and route a webhook body: the work that needs no transaction.

    A payload refused as a whole is kept in `rejected_payloads` before the error is raised.
    `complete` adds what the sender's credential says (Events v2: the routing key's name and
    default labels) before the alerts are routed.

    Raises:
        BadPayload, NotFound: the payload is refused (and recorded).
        StoreUnavailable: the database is down, so not even the refusal could be kept.
    """
    text = body_text(body)
    try:
        parsed = parse_body(source, body, max_depth, max_alerts)
    except BadPayload as exc:
        keep_refused(store, source, now, exc, body=text, content_type=content_type, body_limit=rejected_body_limit)
        raise
    if complete is not None:
        parsed = complete(parsed)
    if parsed.truncated_alerts:
        log.warning(
            "Alertmanager truncated alerts (max_alerts)",
            extra={"source": source, "truncated_alerts": parsed.truncated_alerts},
        )
    routings = [route_alert(rules, alert) for alert in parsed.alerts]
    return Delivery(source, text, parsed, routings, now, content_type, heartbeat_pings(rules, parsed))


def write_deliveries(
    store: Store, rules: Rules, deliveries: Sequence[Delivery], rejected_body_limit: int = 1024 * 1024
) -> list[IngestResult]:
    """Write several notifications in one transaction, in order, as if one by one.

    Set-based across the whole group: one insert of the raw bodies, one lookup of the
    current incidents, one write of the changed ones, one problem decision per key, taken
    at the time of the group's latest notification. The group's regressions are counted
    on its first result. A single notification the database refuses a value of is written
    without the alerts to blame (see `write_without_refused_alerts`).

    Raises:
        DataRefused: the database refused a value of the group (of more than one
            notification: the group commit then writes each alone), or of the notification
            as a whole (recorded in rejected_payloads).
        StoreUnavailable: the database is down; nothing was written.
    """
    try:
        return store.run(_write_work(store, rules, deliveries, rejected_body_limit))
    except DataRefused as exc:
        if len(deliveries) > 1:
            raise
        return [write_without_refused_alerts(store, rules, deliveries[0], exc, rejected_body_limit)]


def _write_work(
    store: Store, rules: Rules, deliveries: Sequence[Delivery], rejected_body_limit: int
) -> Callable[[Connection], list[IngestResult]]:
    """The transaction body that writes `deliveries` (run by `Store.run`, possibly more than once)."""

    def work(conn: Connection) -> list[IngestResult]:
        notification_ids = store.add_notifications(
            conn,
            [
                dict(
                    source=d.source,
                    received_at=d.received_at,
                    body=d.text,
                    alert_count=len(d.parsed.alerts),
                    rejected_count=len(d.parsed.rejected),
                    truncated_alerts=d.parsed.truncated_alerts,
                    group_key=d.parsed.group_key,
                )
                for d in deliveries
            ],
        )
        pinged = _latest_pings(deliveries)
        if pinged:  # before any incident key: every writer takes the heartbeat rows first
            store.record_pings(conn, pinged)
        notifications = [d.lifecycle_input() for d in deliveries]
        may_repeat = repeat_candidates(notifications)
        may_fire_again = {key for key, state in may_repeat.items() if state is IncidentState.FIRING}
        heads, live = store.live_heads(conn, may_fire_again, IncidentState.FIRING)
        plain = plain_repeat_heads(notifications, heads, rules.sla_policies)
        keys = {routing.dedup_key for _, routings, _ in notifications for routing in routings}
        # Read whole: keys that may not repeat a firing incident, and those that may with a live one
        # that does not (a key with none is new). A re-sent resolve is decoded as a head only.
        rows = store.live_rows(conn, (keys - may_fire_again) | (live - plain.keys()))
        resent = rows.heads(may_repeat.keys() - may_fire_again, IncidentState.RESOLVED)
        plain |= plain_repeat_heads(notifications, resent, rules.sla_policies)
        current = rows.incidents(rows.keys() - plain.keys())
        applied = apply_notifications(notifications, current, rules.sla_policies, plain)
        results = applied.results
        held = hold_opened(conn, store, results, [d.received_at for d in deliveries]) if applied.touched else []
        candidates = set_problem_keys(rules, [result for own in results for result in own])
        now = max(d.received_at for d in deliveries)
        pending = join_open_problems(conn, store, candidates, now)
        store.save_incidents(
            conn, [(incident, notification_ids[index]) for incident, index in applied.touched], current
        )
        if held:
            store.add_incident_events(conn, hold_events(held))
        acknowledged = [
            _acknowledge(conn, store, own, d.received_at) for d, own in zip(deliveries, results, strict=True)
        ]
        store.count_plain_repeats(
            conn, [(counted, notification_ids[counted.notification_index]) for counted in applied.repeats]
        )
        announcer = Announcer.of(store, rules)  # None without notify targets: the hot path skips events
        regressions = assign_problems(conn, store, pending, now, rules, announcer)
        announce_incidents(conn, announcer, results, now)
        for d in deliveries:
            if d.parsed.rejected:
                refused = len(d.parsed.rejected)
                store.add_rejected(
                    conn,
                    d.source,
                    d.received_at,
                    body=d.text,
                    content_type=d.content_type,
                    partial=True,
                    body_limit=rejected_body_limit,
                    reason=f"{refused} of {refused + len(d.parsed.alerts)} alerts refused",
                    errors=[line for item in d.parsed.rejected for line in item.errors],
                )
        per_notification = zip(notification_ids, deliveries, results, acknowledged, strict=True)
        return [
            IngestResult(notification_id, d.parsed, d.with_pings(own), regressions if index == 0 else 0, acks)
            for index, (notification_id, d, own, acks) in enumerate(per_notification)
        ]

    return work


def _acknowledge(
    conn: Connection, store: Store, results: Sequence[AlertResult], at: datetime
) -> tuple[Acknowledgement, ...]:
    """A source's acknowledgement of a firing incident, acknowledged as a person's is (acknowledge_in): the
    response clock stops and the histories say who (a PagerDuty routing key's name, the Zabbix user)."""
    done = []
    for result in results:
        actor, incident = result.alert.acknowledged_by, result.incident
        if actor and incident is not None and incident.id is not None and result.outcome is Outcome.UPDATED:
            acknowledged = acknowledge_in(conn, store, incident, actor, None, at)
            if acknowledged is not None:
                mark_acknowledged(incident, actor, at)
                done.append(acknowledged)
    return tuple(done)


def write_in(
    conn: Connection, store: Store, rules: Rules, deliveries: Sequence[Delivery], rejected_body_limit: int = 1024 * 1024
) -> list[IngestResult]:
    """Write deliveries in the caller's transaction: what the bridge itself notifies (a heartbeat's
    incident) commits with the change that causes it."""
    return _write_work(store, rules, deliveries, rejected_body_limit)(conn)


def _latest_pings(deliveries: Sequence[Delivery]) -> dict[str, datetime]:
    """Each heartbeat pinged in these notifications, with the latest moment it was heard. A resolved
    alert is no ping: Alertmanager resolves its Watchdog when Prometheus stopped sending it."""
    latest: dict[str, datetime] = {}
    for d in deliveries:
        for position, name in d.pings:
            firing = d.parsed.alerts[position].status is AlertStatus.FIRING
            if firing and (name not in latest or latest[name] < d.received_at):
                latest[name] = d.received_at
    return latest


def _without_alerts(delivery: Delivery, refused: Mapping[int, DataRefused]) -> Delivery:
    """The delivery without the alerts at these positions, each reported in `rejected` with the database's reason."""
    indexes = delivery.parsed.payload_indexes()
    kept = [position for position in range(len(delivery.parsed.alerts)) if position not in refused]
    rejected = [
        *delivery.parsed.rejected,
        *(
            RejectedAlert(indexes[position], tuple(f"alerts[{indexes[position]}]: {line}" for line in exc.errors))
            for position, exc in refused.items()
        ),
    ]
    parsed = replace(
        delivery.parsed,
        alerts=tuple(delivery.parsed.alerts[position] for position in kept),
        rejected=tuple(sorted(rejected, key=lambda item: item.index)),
    )
    renumbered = {old: new for new, old in enumerate(kept)}
    pings = tuple((renumbered[position], name) for position, name in delivery.pings if position in renumbered)
    return replace(delivery, parsed=parsed, routings=[delivery.routings[position] for position in kept], pings=pings)


def _refused_positions(
    attempt: Callable[[list[int]], DataRefused | None], positions: list[int], refusal: DataRefused
) -> dict[int, DataRefused]:
    """The alerts among `positions` (which the database refuses together) that it refuses alone.

    Halving finds each bad alert in a few rolled-back probes, even in a notification of
    thousands of alerts. Empty when only a combination is refused.
    """
    if len(positions) == 1:
        return {positions[0]: refusal}
    found: dict[int, DataRefused] = {}
    half = len(positions) // 2
    for part in (positions[:half], positions[half:]):
        part_refusal = attempt(part)
        if part_refusal is not None:
            found.update(_refused_positions(attempt, part, part_refusal))
    return found


def write_without_refused_alerts(
    store: Store, rules: Rules, delivery: Delivery, refusal: DataRefused, rejected_body_limit: int = 1024 * 1024
) -> IngestResult:
    """Write a notification the database refused a value of, without the alerts to blame.

    One oversized or out-of-range value must not cost its neighbours (Alertmanager would
    retry the whole group forever): the alerts the database refuses alone are found in
    rolled-back probes, reported in `rejected` and kept in rejected_payloads with the good
    alerts written. Only on this rare path.

    Raises:
        DataRefused: no alert alone is to blame (the notification's own fields, or a
            combination): the notification is refused as a whole and recorded.
    """

    def attempt(positions: list[int]) -> DataRefused | None:
        subset = _without_alerts(
            delivery, {p: refusal for p in range(len(delivery.parsed.alerts)) if p not in positions}
        )
        return store.refusal(_write_work(store, rules, [subset], rejected_body_limit))

    everything = list(range(len(delivery.parsed.alerts)))
    envelope_refusal = attempt([])
    if envelope_refusal is not None:
        refusal, refused = envelope_refusal, {}
    else:
        refused = _refused_positions(attempt, everything, refusal)
    if refused and len(refused) < len(everything):
        try:
            [result] = store.run(_write_work(store, rules, [_without_alerts(delivery, refused)], rejected_body_limit))
        except DataRefused as exc:
            refusal, refused = exc, {}
        else:
            log.warning(
                "alerts refused by the database; the rest of the notification was written",
                extra={"source": delivery.source, "refused": len(refused)},
            )
            return result
    if refused:
        errors = [line for item in _without_alerts(delivery, refused).parsed.rejected for line in item.errors]
    else:
        errors = refusal.errors
    refused_whole = DataRefused("notification refused by the database", errors)
    keep_refused(
        store,
        delivery.source,
        delivery.received_at,
        refused_whole,
        body=delivery.text,
        content_type=delivery.content_type,
        body_limit=rejected_body_limit,
    )
    raise refused_whole from refusal
