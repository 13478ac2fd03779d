"""Business-time arithmetic: the source's hard cases, and hypothesis against a slow reference."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.domain.sla import TWENTY_FOUR_SEVEN, Calendar

MOSCOW = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = {d: ((time(9), time(18)),) for d in range(5)}
RUSSIAN_HOLIDAYS = frozenset(holidays.country_holidays("RU", years=range(2025, 2029)))
MOSCOW_BUSINESS = Calendar(
    "moscow", zone=MOSCOW, weekly=OFFICE, holidays=RUSSIAN_HOLIDAYS, working_day_hours=((time(9), time(18)),)
)
BERLIN_BUSINESS = Calendar(
    "berlin",
    zone=BERLIN,
    weekly={**OFFICE, 6: ((time(0), time(6)),)},
    holidays=frozenset({date(2026, 12, 25)}),
    working_days=frozenset({date(2026, 3, 28)}),
    working_day_hours=((time(1), time(4)),),
)
FOUR_HOURS = 4 * 3600


def moscow(*args: int) -> datetime:
    return datetime(*args, tzinfo=MOSCOW)


def test_p2_opened_friday_evening_moscow_is_due_monday_midday():
    assert MOSCOW_BUSINESS.add(moscow(2026, 11, 27, 17, 30), FOUR_HOURS) == moscow(2026, 11, 30, 12, 30)


def test_holidays_are_skipped():
    # 2026-11-04 (Unity Day) is a Russian public holiday, a Wednesday.
    assert date(2026, 11, 4) in RUSSIAN_HOLIDAYS
    assert MOSCOW_BUSINESS.add(moscow(2026, 11, 3, 16, 0), FOUR_HOURS) == moscow(2026, 11, 5, 11, 0)
    # New Year: 31 December 2026 and 1-8 January 2027 are days off; opened 30 December 17:00,
    # one hour that day, three on Monday 11 January.
    assert {date(2026, 12, 31), date(2027, 1, 8)} <= RUSSIAN_HOLIDAYS
    assert MOSCOW_BUSINESS.add(moscow(2026, 12, 30, 17, 0), FOUR_HOURS) == moscow(2027, 1, 11, 12, 0)


def test_24x7_ignores_nights_weekends_and_holidays():
    start = moscow(2026, 11, 27, 17, 30)
    assert TWENTY_FOUR_SEVEN.add(start, FOUR_HOURS) == moscow(2026, 11, 27, 21, 30)
    assert TWENTY_FOUR_SEVEN.seconds_between(start, start + timedelta(days=3)) == 3 * 86400


def test_working_time_across_dst_changes():
    # Berlin 2026-03-29 (Sunday) springs forward at 02:00: Sunday 00:00-06:00 wall is 5 real hours.
    sunday = datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
    assert BERLIN_BUSINESS.seconds_between(sunday, sunday + timedelta(hours=12)) == 5 * 3600
    # 2026-10-25 falls back: the same wall hours are 7 real hours.
    autumn = datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN)
    assert BERLIN_BUSINESS.seconds_between(autumn, autumn + timedelta(hours=12)) == 7 * 3600


def test_a_working_saturday_counts_with_its_own_hours():
    saturday = datetime(2026, 3, 28, 0, 0, tzinfo=BERLIN)
    assert BERLIN_BUSINESS.seconds_between(saturday, saturday + timedelta(days=1)) == 3 * 3600


def is_working_minute(calendar: Calendar, instant: datetime) -> bool:
    if calendar.always:
        return True
    local = instant.astimezone(calendar.zone)
    day = local.date()
    if day in calendar.working_days:
        hours = calendar.working_day_hours
    elif day in calendar.holidays:
        return False
    else:
        hours = calendar.weekly.get(day.weekday(), ())
    wall = local.time().replace(tzinfo=None)
    return any(start <= wall and (end is None or wall < end) for start, end in hours)


def last_working_minute_end(calendar: Calendar, start: datetime, minutes: int) -> datetime:
    """The slow reference: step minute by minute, asking the wall clock whether each minute is
    working time; the result is the end of the minute that completes the target."""
    current, counted = start, 0
    while True:
        if is_working_minute(calendar, current):
            counted += 1
            if counted == minutes:
                return current + timedelta(minutes=1)
        current += timedelta(minutes=1)


starts = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)).map(
    lambda d: d.replace(second=0, microsecond=0)
)
calendars = st.sampled_from([MOSCOW_BUSINESS, BERLIN_BUSINESS, TWENTY_FOUR_SEVEN])


@settings(max_examples=80, deadline=None)
@given(calendar=calendars, start=starts, minutes=st.integers(min_value=1, max_value=1500))
def test_add_matches_the_minute_by_minute_reference(calendar, start, minutes):
    assert calendar.add(start, minutes * 60) == last_working_minute_end(calendar, start, minutes)


@settings(max_examples=80, deadline=None)
@given(calendar=calendars, start=starts, minutes=st.integers(min_value=0, max_value=20000))
def test_seconds_between_counts_working_minutes(calendar, start, minutes):
    end = start + timedelta(minutes=minutes)
    expected = sum(60 for m in range(minutes) if is_working_minute(calendar, start + timedelta(minutes=m)))
    assert calendar.seconds_between(start, end) == expected


@settings(max_examples=80, deadline=None)
@given(calendar=calendars, start=starts, seconds=st.integers(min_value=1, max_value=200_000))
def test_add_and_seconds_between_are_inverse(calendar, start, seconds):
    assert calendar.seconds_between(start, calendar.add(start, seconds)) == seconds


def test_a_calendar_that_keeps_few_days_gives_the_same_instants(monkeypatch):
    """The days' intervals and the sums are kept per calendar up to a bound, then made anew: the answers
    never change."""
    start = moscow(2026, 12, 25, 17, 0)
    expected = [MOSCOW_BUSINESS.add(start, hours * 3600) for hours in range(1, 60, 7)]
    monkeypatch.setattr("bridge.domain.sla.MAX_CACHED_DAYS", 3)
    monkeypatch.setattr("bridge.domain.sla.MAX_CACHED_SUMS", 2)
    small = Calendar(
        "moscow", zone=MOSCOW, weekly=OFFICE, holidays=RUSSIAN_HOLIDAYS, working_day_hours=((time(9), time(18)),)
    )
    assert [small.add(start, hours * 3600) for hours in range(1, 60, 7)] == expected
    assert len(small._days) <= 3 and len(small._sums) <= 2
    assert small == MOSCOW_BUSINESS, "what a calendar keeps is not part of what it is"


def test_a_kept_sum_is_given_in_the_zone_it_is_asked_in():
    """The same instant asked in another zone is another question: each answer keeps its own zone."""
    in_moscow = moscow(2026, 12, 7, 10, 0)
    in_utc = in_moscow.astimezone(UTC)
    first, second = MOSCOW_BUSINESS.add(in_moscow, 3600), MOSCOW_BUSINESS.add(in_utc, 3600)
    assert first == second == moscow(2026, 12, 7, 11, 0)
    assert first.tzinfo is MOSCOW and second.tzinfo is UTC
