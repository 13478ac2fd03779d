"""Hold windows in the domain (bridge/domain/windows.py), without I/O: covering, holding, releasing, recurring."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain.incidents import Incident, IncidentState, Matcher
from bridge.domain.sla import Calendar, SlaPolicy
from bridge.domain.windows import (
    QUIET_CLOSE,
    Recurrence,
    Released,
    Window,
    WindowKind,
    WindowState,
    covering,
    hold,
    match_of,
    matcher_is_selective,
    release,
)

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
DATABASE = Matcher(source="zabbix", labels={"service": "db"})
POLICY = SlaPolicy("P2", timedelta(hours=4), Calendar("24x7", always=True), response=timedelta(minutes=30))


def window(window_id: int = 1, starts: datetime = T0, hours: float = 2, matcher: Matcher = DATABASE, **more) -> Window:
    return Window(
        window_id, WindowKind.MAINTENANCE, f"w{window_id}", matcher, starts, starts + timedelta(hours=hours), **more
    )


def incident(state: IncidentState = IncidentState.FIRING, **more) -> Incident:
    values = dict(
        id=7,
        dedup_key="zabbix:1",
        source="zabbix",
        state=state,
        line="L3",
        impact="high",
        urgency="medium",
        priority="P2",
        route="r",
        summary="db down",
        labels={"service": "db"},
        annotations={},
        occurrences=1,
        reopen_count=0,
        first_seen=T0 + timedelta(minutes=10),
        last_seen=T0 + timedelta(minutes=10),
        episode_started_at=None,
        sla_running_since=T0 + timedelta(minutes=10),
        sla_due=T0 + timedelta(hours=4, minutes=10),
        response_due=T0 + timedelta(minutes=40),
    )
    values.update(more)
    return Incident(**values)


def test_a_window_covers_its_matches_from_its_start_until_its_end():
    w = window()
    assert w.covers("zabbix", {"service": "db"}, T0)
    assert w.covers("zabbix", {"service": "db", "host": "x"}, T0 + timedelta(hours=1, minutes=59))
    assert not w.covers("zabbix", {"service": "db"}, T0 + timedelta(hours=2))
    assert not w.covers("zabbix", {"service": "db"}, T0 - timedelta(seconds=1))
    assert not w.covers("zabbix", {"service": "web"}, T0)
    assert not w.covers("alertmanager", {"service": "db"}, T0)


def test_a_window_ended_by_hand_stops_covering_then():
    w = window(ended_at=T0 + timedelta(minutes=30))
    assert w.end == T0 + timedelta(minutes=30)
    assert not w.covers("zabbix", {"service": "db"}, T0 + timedelta(minutes=31))
    assert w.state(T0 + timedelta(minutes=31)) is WindowState.ENDED
    assert [window().state(moment) for moment in (T0 - timedelta(1), T0, T0 + timedelta(hours=3))] == [
        WindowState.SCHEDULED,
        WindowState.ACTIVE,
        WindowState.ENDED,
    ]


def test_of_several_windows_the_one_ending_last_holds():
    short, long = window(1, hours=1), window(2, hours=5)
    assert covering([short, long], "zabbix", {"service": "db"}, T0) is long
    assert covering([short, long], "zabbix", {"service": "web"}, T0) is None


def test_held_an_incident_carries_its_window_and_no_clock():
    held = incident()
    hold(held, window(3))
    assert held.held and held.hold_window_id == 3
    assert held.hold_window == {"id": 3, "kind": "maintenance", "name": "w3"}
    assert (held.sla_running_since, held.sla_due, held.response_due) == (None, None, None)


def test_a_held_incident_still_firing_at_the_end_runs_its_clocks_from_the_window_end():
    held = incident()
    hold(held, window())
    end = T0 + timedelta(hours=2)
    assert release(held, POLICY, end, end + timedelta(seconds=3)) is Released.ORDINARY
    assert not held.held and held.hold_window_id == 1, "the mark stays: which window held it"
    assert held.clocks_from == end and held.sla_running_since == end
    assert held.sla_due == end + timedelta(hours=4)
    assert held.response_due == end + timedelta(minutes=30)
    assert held.state is IncidentState.FIRING


def test_a_reopened_incident_released_keeps_the_sla_time_it_used_before():
    held = incident(sla_elapsed_seconds=3600.0)
    hold(held, window())
    end = T0 + timedelta(hours=2)
    release(held, POLICY, end, end)
    assert held.sla_due == end + timedelta(hours=3)


def test_an_acknowledged_incident_keeps_its_response_as_it_was():
    held = incident(acknowledged_at=T0 + timedelta(minutes=11), acknowledged_by="ann", response_due=None)
    hold(held, window())
    release(held, POLICY, T0 + timedelta(hours=2), T0 + timedelta(hours=2))
    assert held.response_due is None


def test_a_held_incident_that_resolved_inside_its_window_closes_quietly():
    held = incident(IncidentState.RESOLVED, resolved_at=T0 + timedelta(minutes=20))
    hold(held, window())
    now = T0 + timedelta(hours=2, seconds=5)
    assert release(held, POLICY, T0 + timedelta(hours=2), now) is Released.CLOSED
    assert (held.state, held.closed_at, held.close_reason) == (IncidentState.CLOSED, now, QUIET_CLOSE)
    assert held.sla_due is None and held.clocks_from is None


def test_a_held_incident_closed_meanwhile_only_loses_its_hold():
    held = incident(IncidentState.CLOSED, close_reason="manual")
    hold(held, window())
    assert release(held, POLICY, T0, T0) is Released.GONE
    assert not held.held and held.close_reason == "manual"


def test_a_window_must_select_something():
    assert not matcher_is_selective(Matcher())
    assert matcher_is_selective(Matcher(source="zabbix"))
    assert matcher_is_selective(Matcher(labels_regex={"service": re.compile("db.*")}))


def test_a_match_is_stored_as_text_the_matcher_is_rebuilt_from():
    matcher = Matcher(source="zabbix", labels={"a": "b"}, labels_regex={"c": re.compile("d.+")})
    assert match_of(matcher) == {"source": "zabbix", "labels": {"a": "b"}, "labels_regex": {"c": "d.+"}}
    assert match_of(Matcher(labels={"a": "b"})) == {"labels": {"a": "b"}}


BERLIN = Recurrence.parse("sun 02:00-04:00", "Europe/Berlin")


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_a_recurring_window_in_berlin_across_the_october_change_covers_the_repeated_hour():
    """2026-10-25: at 03:00 CEST the clocks go back to 02:00 CET, so local 02:00-04:00 lasts three hours."""
    assert BERLIN.occurrence(utc(2026, 10, 20, 12)) == (utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 3, 0))
    assert BERLIN.occurrence(utc(2026, 10, 18, 0, 30)) == (utc(2026, 10, 18, 0, 0), utc(2026, 10, 18, 2, 0))
    assert BERLIN.occurrence(utc(2026, 10, 25, 3, 0)) == (utc(2026, 11, 1, 1, 0), utc(2026, 11, 1, 3, 0))
    assert BERLIN.occurrence(utc(2026, 10, 25, 2, 59)) == (utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 3, 0))


def test_a_recurring_window_in_berlin_across_the_march_change_starts_when_the_clocks_jump():
    assert BERLIN.occurrence(utc(2026, 3, 27)) == (utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0))


def test_a_recurring_window_past_midnight_and_on_several_days():
    nights = Recurrence.parse("fri, sat 22:00-01:30", "Europe/Moscow")
    assert nights.occurrence(utc(2026, 11, 23)) == (utc(2026, 11, 27, 19, 0), utc(2026, 11, 27, 22, 30))
    assert nights.occurrence(utc(2026, 11, 27, 22, 0)) == (utc(2026, 11, 27, 19, 0), utc(2026, 11, 27, 22, 30))
    assert nights.occurrence(utc(2026, 11, 27, 22, 30)) == (utc(2026, 11, 28, 19, 0), utc(2026, 11, 28, 22, 30))
    daily = Recurrence.parse("daily 03:00-03:30", "UTC")
    assert daily.occurrence(utc(2026, 11, 23, 4)) == (utc(2026, 11, 24, 3, 0), utc(2026, 11, 24, 3, 30))
    assert nights.longest == timedelta(hours=3, minutes=30)


@pytest.mark.parametrize(
    "every, zone, said",
    [
        ("sun 02:00", "UTC", "expected days and hours"),
        ("someday 02:00-03:00", "UTC", "unknown day someday"),
        ("sun 25:00-26:00", "UTC", "not a time of day"),
        ("sun 02:00-02:00", "UTC", "same time"),
        ("sun 02:00-03:00", "Mars/Olympus", "unknown time zone"),
    ],
)
def test_a_recurrence_it_cannot_read_is_refused_saying_why(every, zone, said):
    with pytest.raises(ValueError, match=said):
        Recurrence.parse(every, zone)
