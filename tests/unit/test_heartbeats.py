"""The heartbeat state machine (bridge/domain/heartbeats.py), without I/O: armed by configuration, never by a ping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain.heartbeats import (
    Heartbeat,
    HeartbeatRecord,
    HeartbeatState,
    IncidentChange,
    deadline,
    duration_text,
    last_heard,
    step,
)
from bridge.domain.incidents import Alert, AlertStatus, Matcher

T0 = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
WATCHDOG = Heartbeat(
    "prometheus-watchdog",
    timedelta(minutes=5),
    timedelta(minutes=1),
    "alertmanager",
    Matcher(source="alertmanager", labels={"alertname": "Watchdog"}),
)
ZABBIX = Heartbeat("zabbix-server", timedelta(minutes=30), source="zabbix")
EXPORT = Heartbeat("nightly-export", timedelta(hours=25))


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def record(state: HeartbeatState, armed: datetime = T0, changed: datetime = T0, seen: datetime | None = None):
    return HeartbeatRecord(WATCHDOG.name, state, armed, changed, seen)


def test_a_configured_heartbeat_is_armed_waiting_without_any_ping():
    transition = step(WATCHDOG.name, WATCHDOG, None, None, T0)
    assert transition is not None and transition.before is None
    assert (transition.after.state, transition.after.armed_at, transition.incident) == (
        HeartbeatState.WAITING,
        T0,
        IncidentChange.NONE,
    )


def test_a_heartbeat_armed_while_its_source_speaks_is_ok_at_once():
    transition = step(ZABBIX.name, ZABBIX, None, T0 - minutes(2), T0)
    assert transition is not None and transition.after.state is HeartbeatState.OK


def test_a_sender_that_never_came_expires_one_interval_and_grace_after_arming():
    waiting = record(HeartbeatState.WAITING)
    assert step(WATCHDOG.name, WATCHDOG, waiting, None, T0 + minutes(6)) is None  # exactly interval + grace: not yet
    transition = step(WATCHDOG.name, WATCHDOG, waiting, None, T0 + minutes(6) + timedelta(seconds=1))
    assert transition is not None
    assert (transition.after.state, transition.incident) == (HeartbeatState.EXPIRED, IncidentChange.RAISE)


def test_a_ping_after_arming_makes_a_waiting_heartbeat_ok_and_moves_its_deadline():
    waiting = record(HeartbeatState.WAITING)
    heard = T0 + minutes(4)
    transition = step(WATCHDOG.name, WATCHDOG, waiting, heard, T0 + minutes(5))
    assert transition is not None and transition.after.state is HeartbeatState.OK
    assert transition.incident is IncidentChange.NONE and transition.after.last_seen == heard
    assert deadline(WATCHDOG, transition.after, heard) == heard + minutes(6)


def test_a_ping_heard_before_arming_gives_a_full_interval_from_arming():
    """Configured for a sender heard last month: it gets an interval first, not an alarm at start-up."""
    waiting = record(HeartbeatState.WAITING, armed=T0)
    assert deadline(WATCHDOG, waiting, T0 - timedelta(days=30)) == T0 + minutes(6)
    assert step(WATCHDOG.name, WATCHDOG, waiting, T0 - timedelta(days=30), T0 + minutes(5)) is None


def test_silence_longer_than_interval_and_grace_expires_an_ok_heartbeat_once():
    ok = record(HeartbeatState.OK, seen=T0)
    assert step(WATCHDOG.name, WATCHDOG, ok, T0, T0 + minutes(5)) is None
    transition = step(WATCHDOG.name, WATCHDOG, ok, T0, T0 + minutes(7))
    assert transition is not None and transition.incident is IncidentChange.RAISE
    expired = transition.after
    assert expired.changed_at == T0 + minutes(7)
    assert step(WATCHDOG.name, WATCHDOG, expired, T0, T0 + minutes(60)) is None, "raised once, not every pass"


def test_pings_resuming_resolve_an_expired_heartbeat():
    expired = record(HeartbeatState.EXPIRED, changed=T0 + minutes(7), seen=T0)
    assert step(WATCHDOG.name, WATCHDOG, expired, T0, T0 + minutes(8)) is None
    transition = step(WATCHDOG.name, WATCHDOG, expired, T0 + minutes(9), T0 + minutes(9))
    assert transition is not None
    assert (transition.after.state, transition.incident) == (HeartbeatState.OK, IncidentChange.RESOLVE)


def test_a_removed_heartbeat_is_disabled_resolving_its_incident_and_never_fires():
    expired = record(HeartbeatState.EXPIRED, changed=T0)
    transition = step(WATCHDOG.name, None, expired, None, T0 + minutes(1))
    assert transition is not None
    assert (transition.after.state, transition.incident) == (HeartbeatState.DISABLED, IncidentChange.RESOLVE)
    disabled = transition.after
    assert step(WATCHDOG.name, None, disabled, None, T0 + timedelta(days=365)) is None


def test_a_removed_heartbeat_that_was_ok_is_disabled_without_touching_any_incident():
    transition = step(WATCHDOG.name, None, record(HeartbeatState.OK, seen=T0), T0, T0 + minutes(1))
    assert transition is not None and transition.incident is IncidentChange.NONE


def test_a_heartbeat_back_in_the_rules_is_armed_again_from_then():
    disabled = record(HeartbeatState.DISABLED, armed=T0 - timedelta(days=9), changed=T0 - timedelta(days=8))
    transition = step(WATCHDOG.name, WATCHDOG, disabled, T0 - timedelta(days=8), T0)
    assert transition is not None
    assert (transition.after.state, transition.after.armed_at) == (HeartbeatState.WAITING, T0)


def test_never_stored_and_never_configured_is_nothing():
    assert step("gone", None, None, None, T0) is None


def test_last_heard_is_the_later_of_the_written_ping_and_the_source():
    assert last_heard(None, None) is None
    assert last_heard(record(HeartbeatState.OK, seen=T0), None) == T0
    assert last_heard(record(HeartbeatState.OK, seen=T0), T0 + minutes(1)) == T0 + minutes(1)
    assert last_heard(None, T0) == T0


@pytest.mark.parametrize(
    "labels, pings",
    [({"alertname": "Watchdog", "severity": "none"}, True), ({"alertname": "HighErrorRate"}, False)],
)
def test_only_the_alerts_the_matcher_selects_are_pings(labels, pings):
    alert = Alert("alertmanager", AlertStatus.FIRING, "fp", labels)
    assert WATCHDOG.pinged_by(alert) is pings
    assert not ZABBIX.pinged_by(Alert("zabbix", AlertStatus.FIRING, "1", {}))


def test_who_may_ping_by_the_endpoint():
    assert EXPORT.pinged_by_endpoint and not WATCHDOG.pinged_by_endpoint and not ZABBIX.pinged_by_endpoint
    assert ZABBIX.pinged_by_notifications and not WATCHDOG.pinged_by_notifications


def test_durations_are_written_as_the_rules_file_writes_them():
    assert [duration_text(d) for d in (minutes(5), timedelta(hours=25), timedelta(seconds=90), timedelta(0))] == [
        "5m",
        "1d1h",
        "1m30s",
        "0s",
    ]
