"""Hold windows: planned work whose alerts are recorded, but whose side effects and clocks wait for its end.

A window (a maintenance window made by a person or recurring from rules.yaml, or the deploy
window of a deploy in progress, bridge/domain/deploys.py) covers the alerts its matcher
selects from its start until its end. An incident opened (created or reopened) while a window
that holds covers it is held: marked with the window, in no problem, with no side effect
queued and no clock running (a deploy window of a project that holds nothing only marks).
When the window ends, what it held is released once: resolved incidents close quietly;
firing ones become ordinary as of the window's end (clocks from then, problems open or
join, side effects go out once).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bridge.domain.incidents import Incident, IncidentState, Matcher
from bridge.domain.sla import SlaClock, SlaPolicy, due_at, response_due_at, restart

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EVERY = re.compile(r"^\s*(?P<days>[a-z,\s]+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$")
# The close reason of a held incident that resolved inside its window.
QUIET_CLOSE = "resolved_in_window"


class WindowKind(enum.StrEnum):
    MAINTENANCE = "maintenance"
    DEPLOY = "deploy"


class WindowState(enum.StrEnum):
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    ENDED = "ended"


@dataclass(frozen=True)
class Window:
    """A stored window: what it covers and when. `ended_at` is set when it was ended before its `ends_at`."""

    id: int
    kind: WindowKind
    name: str
    matcher: Matcher
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None = None
    # Whether it holds what opens under it (a deploy window of a project with `hold: none` only marks).
    holds: bool = True
    # A deploy window's deploy, as alerts opened under it carry it ({id, project, version, environment}).
    deploy: Mapping[str, Any] | None = None

    @property
    def end(self) -> datetime:
        """When it stops covering: its planned end, or earlier when it was ended by hand."""
        return min(self.ends_at, self.ended_at) if self.ended_at is not None else self.ends_at

    def state(self, now: datetime) -> WindowState:
        if now >= self.end:
            return WindowState.ENDED
        return WindowState.ACTIVE if now >= self.starts_at else WindowState.SCHEDULED

    def covers(self, source: str, labels: Any, at: datetime) -> bool:
        return self.starts_at <= at < self.end and self.matcher.fits(source, labels)

    def mark(self) -> dict[str, Any]:
        """What a held incident carries of its window (the API, the pages, outbound payloads)."""
        return {"id": self.id, "kind": self.kind.value, "name": self.name}


def covering(windows: Iterable[Window], source: str, labels: Any, at: datetime) -> Window | None:
    """The window that holds what opens now from this source with these labels: of those that hold and
    cover it, the one ending last (the planned work is not over before it)."""
    found = [window for window in windows if window.holds and window.covers(source, labels, at)]
    return max(found, key=lambda window: (window.end, window.id)) if found else None


def deploy_covering(windows: Iterable[Window], source: str, labels: Any, at: datetime) -> Window | None:
    """The deploy window whose deploy what opens now happens during: of those covering it, the one that
    started last (the newest deploy is the likeliest cause)."""
    found = [window for window in windows if window.deploy is not None and window.covers(source, labels, at)]
    return max(found, key=lambda window: (window.starts_at, window.id)) if found else None


def hold(incident: Incident, window: Window) -> None:
    """Hold an incident that just opened: marked with its window, its clocks stopped (the time used kept)."""
    incident.held = True
    incident.hold_window_id = window.id
    incident.hold_window = window.mark()
    stop_clocks(incident)


def stop_clocks(incident: Incident) -> None:
    """No SLA or response clock runs while an incident is held."""
    incident.sla_running_since = incident.sla_due = None
    if incident.acknowledged_at is None:
        incident.response_due = None


class Released(enum.StrEnum):
    """What the end of its window did to a held incident."""

    CLOSED = "closed"  # it resolved inside the window: closed quietly
    ORDINARY = "ordinary"  # still firing: handled as if it opened when the window ended
    GONE = "gone"  # closed meanwhile by someone: only the hold ends


def release(incident: Incident, policy: SlaPolicy | None, end: datetime, now: datetime) -> Released:
    """End an incident's hold. A firing one's clocks start at the window's `end` (its SLA clock where it
    stopped, its response target counted from then); a resolved one closes quietly at `now`."""
    incident.held = False
    if incident.state is IncidentState.CLOSED:
        return Released.GONE
    if incident.state is IncidentState.RESOLVED:
        incident.state, incident.closed_at, incident.close_reason = IncidentState.CLOSED, now, QUIET_CLOSE
        incident.auto_close_at = None
        return Released.CLOSED
    incident.clocks_from = max(end, incident.first_seen)
    if policy is not None:
        clock = restart(SlaClock(incident.sla_elapsed_seconds, None), incident.clocks_from)
        incident.sla_elapsed_seconds, incident.sla_running_since = clock.elapsed_seconds, clock.running_since
        incident.sla_due = due_at(policy, clock)
        if incident.acknowledged_at is None:
            incident.response_due = response_due_at(policy, incident.clocks_from)
    return Released.ORDINARY


@dataclass(frozen=True)
class Recurrence:
    """`sun 02:00-04:00` in a time zone: the days and wall-clock hours a recurring window covers.

    An end at or before the start falls on the next day (`sat 22:00-02:00`). Hours are wall
    clock in `zone`, so a window keeps its local hours across daylight-saving changes: on the
    night the clocks go back, `02:00-04:00` covers the repeated hour too (three hours); on the
    night they go forward, it starts when the clocks jump to 03:00 (one hour).
    """

    text: str
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, every: str, timezone: str) -> Recurrence:
        """Parse `sun 02:00-04:00`, `mon,thu 22:00-01:30` or `daily 03:00-03:30`.

        Raises:
            ValueError: naming what is wrong (a day, an hour, the zone).
        """
        try:
            zone = ZoneInfo(timezone)
        except (ValueError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ValueError(f"unknown time zone {timezone!r}; use an IANA name such as Europe/Berlin") from exc
        found = _EVERY.match(every.lower()) if isinstance(every, str) else None
        if found is None:
            raise ValueError(f"{every!r}: expected days and hours such as 'sun 02:00-04:00' or 'daily 03:00-03:30'")
        names = [name.strip() for name in found["days"].split(",") if name.strip()]
        unknown = [name for name in names if name not in (*WEEKDAYS, "daily")]
        if unknown or not names:
            raise ValueError(f"{every!r}: unknown day {', '.join(unknown) or '(none)'}; use mon..sun or daily")
        days = frozenset(range(7)) if "daily" in names else frozenset(WEEKDAYS.index(name) for name in names)
        start, end = _clock_time(found["start"], every), _clock_time(found["end"], every)
        if start == end:
            raise ValueError(f"{every!r}: starts and ends at the same time")
        return cls(every.strip(), days, start, end, zone)

    @property
    def longest(self) -> timedelta:
        """The wall-clock length of one occurrence (an hour more or less across a DST change)."""
        start, end = (datetime.combine(date(2000, 1, 1), moment) for moment in (self.start, self.end))
        return end - start if end > start else end + timedelta(days=1) - start

    def occurrence(self, now: datetime) -> tuple[datetime, datetime]:
        """The occurrence in progress at `now`, or else the next one, in UTC."""
        today = now.astimezone(self.zone).date()
        for offset in range(-1, 9):
            day = today + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            starts, ends = self.on(day)
            if ends > now:
                return starts, ends
        raise AssertionError("a recurrence on at least one weekday has an occurrence within nine days")

    def on(self, day: date) -> tuple[datetime, datetime]:
        """The occurrence that starts on this local day, in UTC: an ambiguous start is its first instant and
        an ambiguous end its last, so the window covers every moment the wall clock shows those hours;
        a time the clocks skip is read with the offset before the jump (02:30 becomes 03:30)."""
        end_day = day if self.end > self.start else day + timedelta(days=1)
        starts = datetime.combine(day, self.start, tzinfo=self.zone).astimezone(UTC)
        ends = datetime.combine(end_day, self.end, tzinfo=self.zone)
        return starts, max(ends.astimezone(UTC), ends.replace(fold=1).astimezone(UTC))


def _clock_time(text: str, every: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    if hours > 23 or minutes > 59:
        raise ValueError(f"{every!r}: {text} is not a time of day (00:00 to 23:59)")
    return time(hours, minutes)


@dataclass(frozen=True)
class RecurringWindow:
    """A maintenance window of rules.yaml that comes back (`every`), stored occurrence by occurrence."""

    name: str
    recurrence: Recurrence
    matcher: Matcher
    reason: str

    def next_occurrence(self, now: datetime) -> tuple[datetime, datetime]:
        return self.recurrence.occurrence(now)


def matcher_is_selective(matcher: Matcher) -> bool:
    """A window must name a source or a label: one over everything would hide the bridge's own alarms too."""
    return matcher.source is not None or bool(matcher.labels) or bool(matcher.labels_regex)


def match_of(matcher: Matcher) -> dict[str, Any]:
    """A matcher as a window stores it: `{source?, labels?, labels_regex?}` (patterns as text)."""
    match: dict[str, Any] = {}
    if matcher.source is not None:
        match["source"] = matcher.source
    if matcher.labels:
        match["labels"] = dict(matcher.labels)
    if matcher.labels_regex:
        match["labels_regex"] = {name: pattern.pattern for name, pattern in matcher.labels_regex.items()}
    return match


def matcher_of_match(match: Mapping[str, Any]) -> Matcher:
    """A stored (or requested) `{source?, labels?, labels_regex?}` as a matcher: `match_of` read back."""
    return Matcher(
        source=match.get("source"),
        labels=dict(match.get("labels") or {}),
        labels_regex={name: re.compile(pattern) for name, pattern in (match.get("labels_regex") or {}).items()},
    )
