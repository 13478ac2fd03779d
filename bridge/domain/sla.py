"""Business-time arithmetic for SLA clocks: 24x7, or working hours in a time zone.

Pure standard library (zoneinfo); the holidays arrive as a set of dates from the rules
loader. Working hours are wall-clock intervals per weekday; each day's intervals are
turned into real instants in the calendar's zone, so nights, weekends, holidays and DST
changes all come out right (a working day that loses an hour to DST has one hour less).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

# A calendar without any working time would make `add` search forever.
MAX_DAYS_SEARCHED = 3 * 366
# Days whose working intervals a calendar keeps (about 27 years' worth; then it starts again).
MAX_CACHED_DAYS = 10_000
# Sums (`add`) a calendar keeps: a repeat checks its incident's targets, the same sums each time.
MAX_CACHED_SUMS = 20_000

Interval = tuple[time, time | None]  # end None means midnight at the end of the day


@dataclass(frozen=True)
class Calendar:
    """When the SLA clock runs. `always` (24x7) ignores hours and holidays."""

    name: str
    always: bool = False
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    weekly: Mapping[int, tuple[Interval, ...]] = field(default_factory=dict)  # 0 = Monday
    holidays: frozenset[date] = frozenset()
    working_days: frozenset[date] = frozenset()  # e.g. a Saturday declared working
    working_day_hours: tuple[Interval, ...] = ()  # hours of such days
    # What a calendar has worked out, kept: each day's intervals (their zone conversions were
    # most of an `add`, 16-22 µs on a business calendar), and the sums themselves (a new
    # incident asks two, its resolution and response targets; each repeat asks them again).
    _days: dict[date, tuple[tuple[datetime, datetime], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _sums: dict[tuple[datetime, Any, float], datetime] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def working_intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The day's working time as real (UTC) instants."""
        intervals = self._days.get(day)
        if intervals is None:
            if len(self._days) >= MAX_CACHED_DAYS:
                self._days.clear()
            intervals = self._days[day] = self._intervals_of(day)
        return intervals

    def _intervals_of(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        if day in self.working_days:
            hours = self.working_day_hours
        elif day in self.holidays:
            return ()
        else:
            hours = self.weekly.get(day.weekday(), ())
        intervals = []
        for start, end in hours:
            begin = datetime.combine(day, start, tzinfo=self.zone).astimezone(UTC)
            finish = (
                datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
                if end is None
                else datetime.combine(day, end, tzinfo=self.zone)
            ).astimezone(UTC)
            if finish > begin:
                intervals.append((begin, finish))
        return tuple(intervals)

    def local_day(self, instant: datetime) -> date:
        """The calendar day an instant falls on in the calendar's zone."""
        return instant.astimezone(self.zone).date()

    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant when `seconds` of working time have passed since `start`.

        Raises:
            ValueError: the calendar has no working time for years.
        """
        if self.always:
            return start + timedelta(seconds=seconds)
        if seconds <= 0:
            return start
        key = (start, start.tzinfo, seconds)  # equal instants in other zones are other answers
        found = self._sums.get(key)
        if found is None:
            if len(self._sums) >= MAX_CACHED_SUMS:
                self._sums.clear()
            found = self._sums[key] = self._add(start, seconds)
        return found

    def _add(self, start: datetime, seconds: float) -> datetime:
        remaining = timedelta(seconds=seconds)
        day = self.local_day(start)
        for _ in range(MAX_DAYS_SEARCHED):
            for begin, finish in self.working_intervals(day):
                if finish <= start:
                    continue
                begin = max(begin, start)
                available = finish - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
            day += timedelta(days=1)
        raise ValueError(f"calendar {self.name!r} has no working time within {MAX_DAYS_SEARCHED} days")

    def seconds_between(self, start: datetime, end: datetime) -> float:
        """Working seconds in [start, end); 0 when end is not after start."""
        if end <= start:
            return 0.0
        if self.always:
            return (end - start).total_seconds()
        total = timedelta()
        day, last = self.local_day(start), self.local_day(end)
        while day <= last:
            for begin, finish in self.working_intervals(day):
                overlap = min(finish, end) - max(begin, start)
                if overlap > timedelta():
                    total += overlap
            day += timedelta(days=1)
        return total.total_seconds()


TWENTY_FOUR_SEVEN = Calendar(name="24x7", always=True)


@dataclass(frozen=True)
class SlaPolicy:
    """A priority's resolution target, and optionally its response target, on a calendar."""

    priority: str
    resolution: timedelta
    calendar: Calendar
    comment_on_breach: bool = False
    response: timedelta | None = None


def response_due_at(policy: SlaPolicy, opened_at: datetime) -> datetime | None:
    """When an incident opened at `opened_at` must be acknowledged (None without a response target).

    The response clock runs on the policy's calendar from the incident's first sighting until
    someone acknowledges it; it does not pause while the incident is resolved.
    """
    if policy.response is None:
        return None
    return policy.calendar.add(opened_at, policy.response.total_seconds())


@dataclass(frozen=True)
class SlaClock:
    """An incident's clock: business seconds used in finished segments, and the running segment."""

    elapsed_seconds: float
    running_since: datetime | None


def due_at(policy: SlaPolicy, clock: SlaClock) -> datetime | None:
    """When the resolution target is reached, while the clock runs (None while stopped)."""
    if clock.running_since is None:
        return None
    return policy.calendar.add(clock.running_since, policy.resolution.total_seconds() - clock.elapsed_seconds)


def remaining_seconds(policy: SlaPolicy, clock: SlaClock, now: datetime) -> float:
    """Business seconds left (negative once breached) at `now`."""
    used = clock.elapsed_seconds
    if clock.running_since is not None:
        used += policy.calendar.seconds_between(clock.running_since, now)
    return policy.resolution.total_seconds() - used


def stop(policy: SlaPolicy, clock: SlaClock, at: datetime) -> SlaClock:
    """Resolution stops the clock, keeping the business time used."""
    if clock.running_since is None:
        return clock
    return SlaClock(clock.elapsed_seconds + policy.calendar.seconds_between(clock.running_since, at), None)


def restart(clock: SlaClock, at: datetime) -> SlaClock:
    """A reopen restarts the clock where it stopped."""
    return clock if clock.running_since is not None else SlaClock(clock.elapsed_seconds, at)
