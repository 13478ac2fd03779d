"""Heartbeats as a feature: the worker's check, the incident each change raises or resolves, the ping, the readings.

What a heartbeat becomes is decided by `bridge.domain.heartbeats.step`; here each change is
applied as a conditional update in one transaction with the incident it raises or resolves,
written through ingest like a sender's notification (routed, prioritised, grouped, held by a
window that covers it). Two workers on one database: one wins each change, one incident.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from bridge import metrics
from bridge.domain.heartbeats import (
    HEARTBEAT_SOURCE,
    Heartbeat,
    HeartbeatRecord,
    HeartbeatState,
    IncidentChange,
    Transition,
    deadline,
    duration_text,
    last_heard,
    signal_body,
    step,
)
from bridge.domain.incidents import Alert, Routing
from bridge.domain.rules import Rules, route_alert, with_priority
from bridge.domain.windows import match_of
from bridge.errors import Conflict, NotFound
from bridge.ingest.deliveries import Delivery, IngestResult, parse_body, write_in
from bridge.shapes import iso
from bridge.storage.engine import Connection
from bridge.storage.store import Store

log = logging.getLogger(__name__)


def heartbeat_routing(rules: Rules, heartbeat: Heartbeat | None, alert: Alert) -> Routing:
    """A heartbeat incident's routing: its route's, with the heartbeat's own impact and urgency when set."""
    routing = route_alert(rules, alert)
    if heartbeat is None or (heartbeat.impact is None and heartbeat.urgency is None):
        return routing
    impact, urgency = heartbeat.impact or routing.impact, heartbeat.urgency or routing.urgency
    return with_priority(rules, routing, impact, urgency, f"heartbeat {heartbeat.name}")


def signal_delivery(rules: Rules, heartbeat: Heartbeat | None, transition: Transition, now: datetime) -> Delivery:
    """The notification of a heartbeat's change, parsed and routed as ingest takes a sender's."""
    body = orjson.dumps(signal_body(heartbeat, transition, now))
    parsed = parse_body(HEARTBEAT_SOURCE, body)
    routings = [heartbeat_routing(rules, heartbeat, alert) for alert in parsed.alerts]
    return Delivery(HEARTBEAT_SOURCE, body.decode(), parsed, routings, now, "application/json")


def _sources_heard(store: Store, rules: Rules) -> dict[str, datetime | None]:
    sources = {heartbeat.source for heartbeat in rules.heartbeats if heartbeat.pinged_by_notifications}
    return store.read_sources_last_heard({source for source in sources if source is not None})


def _heard(
    heartbeat: Heartbeat | None, record: HeartbeatRecord | None, sources: dict[str, datetime | None]
) -> datetime | None:
    source_heard = None
    if heartbeat is not None and heartbeat.pinged_by_notifications and heartbeat.source is not None:
        source_heard = sources.get(heartbeat.source)
    return last_heard(record, source_heard)


def check_heartbeats(store: Store, rules: Rules, now: datetime) -> list[Transition]:
    """Decide every heartbeat, configured or stored, and apply each change that this process wins."""
    records = store.read_heartbeat_records()
    sources = _sources_heard(store, rules)
    configured = {heartbeat.name: heartbeat for heartbeat in rules.heartbeats}
    applied = []
    for name in sorted(configured.keys() | records.keys()):
        heartbeat, record = configured.get(name), records.get(name)
        transition = step(name, heartbeat, record, _heard(heartbeat, record, sources), now)
        if transition is None:
            continue
        result = store.run(
            functools.partial(_apply, store=store, rules=rules, heartbeat=heartbeat, transition=transition, now=now)
        )
        if result is False:
            continue  # another process made this change first
        applied.append(transition)
        _log(transition)
        if isinstance(result, IngestResult):
            metrics.record_ingest(HEARTBEAT_SOURCE, result)
    return applied


def _apply(
    conn: Connection, store: Store, rules: Rules, heartbeat: Heartbeat | None, transition: Transition, now: datetime
) -> IngestResult | bool:
    """The change and its incident in one transaction; False when another process changed the heartbeat first."""
    if not store.apply_heartbeat_transition(conn, transition):
        return False
    if transition.incident is IncidentChange.NONE:
        return True
    [result] = write_in(conn, store, rules, [signal_delivery(rules, heartbeat, transition, now)])
    return result


def _log(transition: Transition) -> None:
    about = {"heartbeat": transition.name, "state": transition.after.state.value}
    if transition.incident is IncidentChange.RAISE:
        log.warning("heartbeat expired: its sender is silent; incident raised", extra=about)
    elif transition.incident is IncidentChange.RESOLVE:
        log.info("heartbeat heard again (or removed); its incident resolved", extra=about)
    else:
        log.info("heartbeat changed state", extra=about)


def ping_heartbeat(store: Store, rules: Rules, name: str, now: datetime) -> HeartbeatRecord:
    """A ping from the endpoint: the heartbeat as it is once the ping is written.

    Raises:
        NotFound: rules.yaml has no such heartbeat (removed ones take no pings).
        Conflict: the heartbeat is heard from its source, so a ping here would hide that sender's silence.
    """
    heartbeat = rules.heartbeat(name)
    if heartbeat is None:
        known = ", ".join(h.name for h in rules.heartbeats if h.pinged_by_endpoint) or "none (rules.yaml heartbeats)"
        raise NotFound(f"no heartbeat {name!r} in the rules", [f"name: heartbeats pinged here: {known}"])
    if not heartbeat.pinged_by_endpoint:
        raise Conflict(
            f"heartbeat {name!r} is heard from {heartbeat.who()}, not pinged",
            ["name: only a heartbeat without a source takes pings here"],
        )
    return store.record_ping(name, now)


@dataclass(frozen=True)
class HeartbeatView:
    """A heartbeat as the API, the pages and the metrics show it."""

    name: str
    state: HeartbeatState
    heartbeat: Heartbeat | None  # None once removed from the rules
    armed_at: datetime | None
    changed_at: datetime | None
    last_heard: datetime | None
    expires_at: datetime | None  # when silence raises, while it is waiting or ok


def heartbeat_views(store: Store, rules: Rules) -> list[HeartbeatView]:
    """Every heartbeat, configured (those the worker has not armed yet are waiting) or removed (disabled)."""
    records = store.read_heartbeat_records()
    sources = _sources_heard(store, rules)
    configured = {heartbeat.name: heartbeat for heartbeat in rules.heartbeats}
    views = []
    for name in [*configured, *sorted(records.keys() - configured.keys())]:
        heartbeat, record = configured.get(name), records.get(name)
        heard = _heard(heartbeat, record, sources)
        if heartbeat is None:
            state = HeartbeatState.DISABLED
        else:
            state = (
                record.state
                if record is not None and record.state is not HeartbeatState.DISABLED
                else HeartbeatState.WAITING
            )
        expires = None
        if heartbeat is not None and record is not None and state in (HeartbeatState.WAITING, HeartbeatState.OK):
            expires = deadline(heartbeat, record, heard)
        views.append(
            HeartbeatView(
                name,
                state,
                heartbeat,
                record.armed_at if record else None,
                record.changed_at if record else None,
                heard,
                expires,
            )
        )
    return views


def heartbeat_json(view: HeartbeatView) -> dict[str, Any]:
    """A heartbeat as the API lists it."""
    heartbeat = view.heartbeat
    pinged_by = None
    if heartbeat is not None:
        pinged_by = "endpoint" if heartbeat.pinged_by_endpoint else "notifications"
        if heartbeat.matcher is not None:
            pinged_by = "alerts"
    return {
        "name": view.name,
        "state": view.state.value,
        "source": heartbeat.source if heartbeat else None,
        "pinged_by": pinged_by,
        "match": match_of(heartbeat.matcher) if heartbeat and heartbeat.matcher else None,
        "interval": duration_text(heartbeat.interval) if heartbeat else None,
        "grace": duration_text(heartbeat.grace) if heartbeat else None,
        "armed_at": iso(view.armed_at),
        "changed_at": iso(view.changed_at),
        "last_heard": iso(view.last_heard),
        "expires_at": iso(view.expires_at),
        "incident_key": f"{HEARTBEAT_SOURCE}:{view.name}",
    }
