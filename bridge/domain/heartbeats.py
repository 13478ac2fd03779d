"""Heartbeats: a sender's silence becomes an incident, armed by configuration, never by a first ping.

A heartbeat is configured in rules.yaml and heard in one of three ways: alerts its matcher
selects (an Alertmanager's Watchdog: pings, never incidents), any notification of its source,
or `POST /api/v1/heartbeats/<name>/ping`. `step` decides, without I/O, what a heartbeat becomes
from what the store holds of it, when it was last heard and the time; the store applies each
change as a conditional update that one process wins, together with the incident it raises
or resolves, so several bridges on one database raise once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from bridge.domain.incidents import Alert, Matcher

# The source of heartbeat incidents (key `heartbeat:<name>`): the bridge itself speaks for the silent sender.
HEARTBEAT_SOURCE = "heartbeat"
NAME_PATTERN = r"^[A-Za-z0-9._-]{1,100}$"


class HeartbeatState(enum.StrEnum):
    WAITING = "waiting"  # configured, not heard since it was armed
    OK = "ok"
    EXPIRED = "expired"  # silent longer than interval + grace: its incident fires
    DISABLED = "disabled"  # removed from the rules: gone, never firing


class IncidentChange(enum.StrEnum):
    """What a change of state does to the heartbeat's incident."""

    NONE = "none"
    RAISE = "raise"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class Heartbeat:
    """A heartbeat as rules.yaml configures it.

    With a `source` and a `matcher`, the alerts the matcher selects are its pings; with a
    source alone, any notification of that source is; without a source, the ping endpoint is.
    `impact` and `urgency`, when given, win over its incident's route.
    """

    name: str
    interval: timedelta
    grace: timedelta = timedelta(0)
    source: str | None = None
    matcher: Matcher | None = None
    impact: str | None = None
    urgency: str | None = None

    @property
    def allowed_silence(self) -> timedelta:
        return self.interval + self.grace

    @property
    def pinged_by_endpoint(self) -> bool:
        """Only a heartbeat without a source takes pings from the endpoint: a script pinging for a
        sender would hide that sender's silence."""
        return self.source is None

    @property
    def pinged_by_notifications(self) -> bool:
        """Any notification of its source is a ping (no matcher singles some alerts out)."""
        return self.source is not None and self.matcher is None

    def pinged_by(self, alert: Alert) -> bool:
        """Whether this alert is one of its pings (never an incident)."""
        return self.matcher is not None and self.matcher.fits(alert.source, alert.labels)

    def who(self) -> str:
        """The silent party, as an incident names it."""
        if self.source is None:
            return "its pinger (POST /api/v1/heartbeats/<name>/ping)"
        return f"{self.source} (matching alerts)" if self.matcher is not None else self.source


def pinged_heartbeat(heartbeats: Iterable[Heartbeat], alert: Alert) -> Heartbeat | None:
    """The first heartbeat this alert pings, if any."""
    return next((heartbeat for heartbeat in heartbeats if heartbeat.pinged_by(alert)), None)


@dataclass(frozen=True)
class HeartbeatRecord:
    """What the store keeps of a heartbeat: its state, when it was armed and changed, and the last ping written."""

    name: str
    state: HeartbeatState
    armed_at: datetime
    changed_at: datetime
    last_seen: datetime | None = None


def last_heard(record: HeartbeatRecord | None, source_heard: datetime | None) -> datetime | None:
    """The later of its last written ping and its source's newest notification (either may be unknown)."""
    heard = [moment for moment in (record.last_seen if record else None, source_heard) if moment is not None]
    return max(heard) if heard else None


def deadline(heartbeat: Heartbeat, record: HeartbeatRecord, heard: datetime | None) -> datetime:
    """When silence raises: interval + grace after the later of its arming and its last ping.

    Counting from the arming too, a heartbeat configured for a sender that never came expires
    after one interval, and one configured for a sender heard last month gets an interval first.
    """
    start = record.armed_at if heard is None else max(record.armed_at, heard)
    return start + heartbeat.allowed_silence


@dataclass(frozen=True)
class Transition:
    """One change of a heartbeat's state: `before` None when it is armed for the first time."""

    before: HeartbeatRecord | None
    after: HeartbeatRecord
    incident: IncidentChange = IncidentChange.NONE

    @property
    def name(self) -> str:
        return self.after.name


def _armed(name: str, heartbeat: Heartbeat, heard: datetime | None, now: datetime) -> HeartbeatRecord:
    fresh = heard is not None and now - heard <= heartbeat.allowed_silence
    state = HeartbeatState.OK if fresh else HeartbeatState.WAITING
    return HeartbeatRecord(name, state, now, now, heard)


def step(
    name: str, heartbeat: Heartbeat | None, record: HeartbeatRecord | None, heard: datetime | None, now: datetime
) -> Transition | None:
    """What the heartbeat `name` becomes at `now`, or None when it stays as it is.

    `heartbeat` is its configuration (None once removed from the rules), `record` what the
    store holds (None before it was ever armed), `heard` when it was last heard (`last_heard`).
    """
    if heartbeat is None:
        if record is None or record.state is HeartbeatState.DISABLED:
            return None
        change = IncidentChange.RESOLVE if record.state is HeartbeatState.EXPIRED else IncidentChange.NONE
        return Transition(
            record, replace(record, state=HeartbeatState.DISABLED, changed_at=now, last_seen=heard), change
        )
    if record is None or record.state is HeartbeatState.DISABLED:
        return Transition(record, _armed(name, heartbeat, heard, now))
    if record.state is HeartbeatState.EXPIRED:
        if heard is not None and heard > record.changed_at:
            after = replace(record, state=HeartbeatState.OK, changed_at=now, last_seen=heard)
            return Transition(record, after, IncidentChange.RESOLVE)
        return None
    if now > deadline(heartbeat, record, heard):
        after = replace(record, state=HeartbeatState.EXPIRED, changed_at=now, last_seen=heard)
        return Transition(record, after, IncidentChange.RAISE)
    if record.state is HeartbeatState.WAITING and heard is not None and heard >= record.armed_at:
        return Transition(record, replace(record, state=HeartbeatState.OK, changed_at=now, last_seen=heard))
    return None


def duration_text(value: timedelta) -> str:
    """`1d2h`, `5m`, `90s` style text (the rules file's own syntax)."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def signal_body(heartbeat: Heartbeat | None, transition: Transition, now: datetime) -> dict[str, Any]:
    """The notification the bridge writes for a heartbeat's incident (adapters/heartbeats.py reads it back):
    it goes through ingest like a sender's, routed, prioritised and grouped like any other."""
    after = transition.after
    body: dict[str, Any] = {
        "heartbeat": after.name,
        "state": after.state.value,
        "at": now.isoformat(),
        "armed_at": after.armed_at.isoformat(),
        "last_heard": after.last_seen.isoformat() if after.last_seen else None,
    }
    if heartbeat is not None:
        body.update(
            source=heartbeat.source,
            silent=heartbeat.who(),
            interval=duration_text(heartbeat.interval),
            grace=duration_text(heartbeat.grace),
        )
    return body
