"""The `sla` section of rules.yaml: calendars (working hours, holidays, working weekends) and policies."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import Field

from bridge.domain.sla import TWENTY_FOUR_SEVEN, Calendar, Interval, SlaPolicy
from bridge.validation import StrictModel, parse_duration

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")
HOLIDAY_YEARS = range(2020, 2041)


class HolidaysModel(StrictModel):
    country: str = Field(min_length=2, max_length=3)
    subdivision: str | None = None


class CalendarModel(StrictModel):
    timezone: str
    hours: dict[str, str | list[str]]
    holidays: HolidaysModel | None = None
    extra_holidays: list[date] = []
    working_days: list[date] = []
    working_day_hours: str | list[str] | None = None


class PolicyModel(StrictModel):
    resolution: str
    response: str | None = None
    calendar: str = "24x7"
    comment_on_breach: bool = False


class SlaModel(StrictModel):
    calendars: dict[str, CalendarModel] = {}
    policies: dict[str, PolicyModel] = {}


def _intervals(where: str, value: str | list[str], problems: list[str]) -> tuple[Interval, ...]:
    intervals = []
    for text in [value] if isinstance(value, str) else value:
        match = _HOURS.fullmatch(text)
        if match is None:
            problems.append(f"{where}: {text!r} is not HH:MM-HH:MM")
            continue
        start = time(int(match.group(1)), int(match.group(2)))
        end = None if match.group(3) == "24" else time(int(match.group(3)), int(match.group(4)))
        if end is not None and end <= start:
            problems.append(f"{where}: {text!r} ends before it starts")
            continue
        intervals.append((start, end))
    return tuple(intervals)


def _build_calendar(name: str, model: CalendarModel, problems: list[str]) -> Calendar | None:
    where = f'sla calendar "{name}"'
    try:
        zone = ZoneInfo(model.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"{where} key timezone: unknown IANA time zone {model.timezone!r}")
        return None
    weekly = {}
    for day, hours in model.hours.items():
        if day not in _WEEKDAYS:
            problems.append(f"{where} key hours.{day}: not a weekday ({', '.join(_WEEKDAYS)})")
            continue
        weekly[_WEEKDAYS.index(day)] = _intervals(f"{where} key hours.{day}", hours, problems)
    if not any(weekly.values()):
        problems.append(f"{where} key hours: no working hours at all")
    public: set[date] = set()
    if model.holidays is not None:
        try:
            public = set(
                holidays.country_holidays(
                    model.holidays.country, subdiv=model.holidays.subdivision, years=HOLIDAY_YEARS
                )
            )
        except NotImplementedError:
            problems.append(f"{where} key holidays.country: no holidays known for {model.holidays.country!r}")
    default_hours = next((weekly[d] for d in range(7) if weekly.get(d)), ())
    day_hours = (
        _intervals(f"{where} key working_day_hours", model.working_day_hours, problems)
        if model.working_day_hours is not None
        else default_hours
    )
    return Calendar(
        name=name,
        zone=zone,
        weekly=weekly,
        holidays=frozenset(public | set(model.extra_holidays)),
        working_days=frozenset(model.working_days),
        working_day_hours=day_hours,
    )


def build_sla(model: SlaModel, priorities: set[str], problems: list[str]) -> dict[str, SlaPolicy]:
    calendars: dict[str, Calendar] = {"24x7": TWENTY_FOUR_SEVEN}
    for name, calendar_model in model.calendars.items():
        if name == "24x7":
            problems.append('sla calendar "24x7": the name is reserved for the built-in round-the-clock calendar')
            continue
        calendar = _build_calendar(name, calendar_model, problems)
        if calendar is not None:
            calendars[name] = calendar
    policies = {}
    for priority, policy in model.policies.items():
        where = f'sla policy "{priority}"'
        if priority not in priorities:
            problems.append(f"{where}: {priority!r} is not a priority of priority_matrix")
        if policy.calendar not in calendars:
            problems.append(f"{where} key calendar: unknown calendar {policy.calendar!r}")
            continue
        try:
            resolution = parse_duration(policy.resolution)
        except ValueError as exc:
            problems.append(f"{where} key resolution: {exc}")
            continue
        try:
            response = parse_duration(policy.response) if policy.response is not None else None
        except ValueError as exc:
            problems.append(f"{where} key response: {exc}")
            continue
        if response is not None and response <= timedelta(0):
            problems.append(f"{where} key response: must be a positive duration such as 15m")
            continue
        policies[priority] = SlaPolicy(
            priority, resolution, calendars[policy.calendar], policy.comment_on_breach, response
        )
    return policies
