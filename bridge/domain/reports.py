"""The arithmetic of the service report: periods in the report's time zone, percentiles, working times.

Pure standard library. A period is whole calendar days in one zone (a month is its first to
its last day), turned into real instants at the zone's midnights, so DST changes and zones a
fraction of an hour off UTC come out right. Working times are what the SLA and response
clocks count (bridge.domain.sla), never a second reckoning of them.
"""

from __future__ import annotations

import bisect
import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bridge.domain.sla import Calendar

# The longest period a report covers: a year (a leap year's days), so a daily chart stays readable
# and a CSV export of it stays one request's work.
MAX_DAYS = 366
# Years a report may name: the instants of its days and of the period before stay representable.
FIRST_YEAR, LAST_YEAR = 1971, 9998
# Time to resolve, in working seconds, as the distribution chart groups it: each bucket ends before its edge.
RESOLVE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("under 15 min", 15 * 60),
    ("15 min to 1 h", 3600),
    ("1 to 4 h", 4 * 3600),
    ("4 to 8 h", 8 * 3600),
    ("8 to 24 h", 24 * 3600),
    ("1 to 3 days", 3 * 24 * 3600),
    ("3 days or more", math.inf),
)


class Resolution(enum.StrEnum):
    """Where an incident stands against its priority's resolution target."""

    MET = "met"  # resolved or closed in time
    BREACHED = "breached"  # resolved or closed late
    OPEN_PAST_DUE = "open_past_due"  # still firing, past its due time
    OPEN = "open"  # still firing, within its target
    NO_TARGET = "no_target"  # its priority has no SLA policy


class Response(enum.StrEnum):
    """Where an incident stands against its response target (someone acknowledging it)."""

    MET = "met"
    BREACHED = "breached"
    NOT_ACKNOWLEDGED = "not_acknowledged"  # nobody acknowledged it, and it is not (or no longer) firing past due
    NO_TARGET = "no_target"


@dataclass(frozen=True)
class Period:
    """Whole calendar days, `first_day` to `last_day` inclusive, in `zone`."""

    first_day: date
    last_day: date
    zone: ZoneInfo

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def starts_at(self) -> datetime:
        """The instant the first day begins (its midnight in the zone), in UTC."""
        return midnight(self.first_day, self.zone)

    @property
    def ends_at(self) -> datetime:
        """The instant the day after the last begins: the period is [starts_at, ends_at)."""
        return midnight(self.last_day + timedelta(days=1), self.zone)

    @property
    def is_whole_months(self) -> bool:
        return self.first_day.day == 1 and (self.last_day + timedelta(days=1)).day == 1

    def day_bounds(self) -> list[tuple[date, datetime, datetime]]:
        """Each day of the period with the instants it begins and ends (a DST day is 23 or 25 hours)."""
        days = [self.first_day + timedelta(days=n) for n in range(self.days + 1)]
        instants = [midnight(day, self.zone) for day in days]
        return [(days[n], instants[n], instants[n + 1]) for n in range(self.days)]

    def local_day(self, instant: datetime) -> date:
        """The calendar day in the report's zone an instant falls on."""
        return instant.astimezone(self.zone).date()

    def previous(self) -> Period:
        """The period before, of the same length: the same number of whole months before a period of
        whole months (September before October), else the same number of days just before it."""
        if self.is_whole_months:
            months = (self.last_day.year - self.first_day.year) * 12 + self.last_day.month - self.first_day.month + 1
            first = _months_before(self.first_day, months)
            return Period(first, self.first_day - timedelta(days=1), self.zone)
        return Period(self.first_day - timedelta(days=self.days), self.first_day - timedelta(days=1), self.zone)


def midnight(day: date, zone: ZoneInfo) -> datetime:
    """When a calendar day begins in a zone, in UTC (where midnight is skipped by DST, the day begins
    at the transition)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _months_before(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 - months
    return date(index // 12, index % 12 + 1, 1)


def month_period(year: int, month: int, zone: ZoneInfo) -> Period:
    """One calendar month in a zone."""
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    return Period(first, following - timedelta(days=1), zone)


def last_full_month(now: datetime, zone: ZoneInfo) -> Period:
    """The month before the one `now` falls in, in the zone: what a monthly meeting looks back on."""
    today = now.astimezone(zone).date()
    previous = today.replace(day=1) - timedelta(days=1)
    return month_period(previous.year, previous.month, zone)


def period_problem(first_day: date, last_day: date) -> tuple[str, str] | None:
    """What is wrong with a period, as (the parameter to blame, why), or None when it is usable."""
    for name, day in (("from", first_day), ("to", last_day)):
        if not FIRST_YEAR <= day.year <= LAST_YEAR:
            return name, f"the year must be between {FIRST_YEAR} and {LAST_YEAR}"
    if last_day < first_day:
        return "to", f"{last_day.isoformat()} is before from ({first_day.isoformat()})"
    if (last_day - first_day).days + 1 > MAX_DAYS:
        return "to", f"a report covers at most {MAX_DAYS} days"
    return None


def nearest_rank(ordered: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of values sorted ascending: the smallest value with at least
    `fraction` of them at or below it (a value that occurred, as PostgreSQL's percentile_disc).
    None when there are no values."""
    if not ordered:
        return None
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def bucket_counts(values: Sequence[float]) -> list[int]:
    """How many values fall in each of RESOLVE_BUCKETS."""
    edges = [edge for _, edge in RESOLVE_BUCKETS]
    counts = [0] * len(RESOLVE_BUCKETS)
    for value in values:
        counts[bisect.bisect_right(edges, value)] += 1
    return counts


class WorkingTime:
    """Working seconds on a calendar between instants given as epoch seconds, as Calendar.seconds_between
    counts them, at a bisect per instant instead of a walk over days per pair.

    The calendar's own working intervals (Calendar.working_intervals) of every day from `first` to
    `last` are laid end to end once, each with the working time before it; the time between two
    instants is the difference of the working time before each. Outside those days, or on a calendar
    whose hours overlap within a day, it asks the calendar itself.
    """

    def __init__(self, calendar: Calendar, first: datetime, last: datetime) -> None:
        self.calendar = calendar
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.before: list[float] = []
        self.exact = True
        day, last_day = calendar.local_day(first) - timedelta(days=1), calendar.local_day(last) + timedelta(days=1)
        self.covers = (
            midnight(day, calendar.zone).timestamp(),
            midnight(last_day + timedelta(days=1), calendar.zone).timestamp(),
        )
        total = 0.0
        while not calendar.always and day <= last_day:
            for begin, finish in sorted(calendar.working_intervals(day)):
                start, end = begin.timestamp(), finish.timestamp()
                if self.ends and start < self.ends[-1]:
                    self.exact = False  # overlapping hours: seconds_between counts the overlap twice
                self.starts.append(start)
                self.ends.append(end)
                self.before.append(total)
                total += end - start
            day += timedelta(days=1)

    def _until(self, instant: float) -> float:
        n = bisect.bisect_right(self.starts, instant) - 1
        return 0.0 if n < 0 else self.before[n] + min(instant - self.starts[n], self.ends[n] - self.starts[n])

    def between(self, start: float, end: float) -> float:
        """Working seconds in [start, end); 0 when end is not after start."""
        if end <= start:
            return 0.0
        if self.calendar.always:
            return end - start
        if not self.exact or start < self.covers[0] or end > self.covers[1]:
            return self.calendar.seconds_between(datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC))
        return self._until(end) - self._until(start)


def working_seconds_to_acknowledge(clock: WorkingTime | None, opened: float, acknowledged: float) -> float:
    """Time from the first sighting to the acknowledgement as the response clock counts it: on the policy's
    calendar, never pausing; round the clock for a priority without a policy (`clock` None)."""
    if clock is None:
        return max(0.0, acknowledged - opened)
    return clock.between(opened, acknowledged)


def working_seconds_to_resolve(
    clock: WorkingTime | None, opened: float, ended: float, elapsed_seconds: float, running_since: float | None
) -> float:
    """Time to resolve as the SLA clock counts it (bridge.domain.sla.stop): the working time it used until it
    stopped (resolved time excluded, reopened episodes included), plus, for an incident closed while its
    clock ran, the time since it last started; round the clock from the first sighting for a priority
    without a policy (`clock` None)."""
    if clock is None:
        return max(0.0, ended - opened)
    if running_since is None:
        return elapsed_seconds
    return elapsed_seconds + clock.between(running_since, ended)
