"""The monthly service report: a period's figures beside those of the period before, from the store's totals.

What the database grouped (bridge.storage.report_model) becomes the report management reads:
channels and their shares, SLA compliance per priority, working times to acknowledge and to
resolve on each priority's calendar (bridge.domain.reports, reusing the clocks' own
arithmetic), problems, releases and the daily count against the release cadence. The JSON
API, the CSV summary and the page all show this one dictionary.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from adapters import SOURCES
from bridge.domain.reports import (
    RESOLVE_BUCKETS,
    Period,
    Resolution,
    Response,
    WorkingTime,
    bucket_counts,
    nearest_rank,
    working_seconds_to_acknowledge,
    working_seconds_to_resolve,
)
from bridge.domain.rules import Rules
from bridge.domain.sla import SlaPolicy
from bridge.domain.tickets import TICKET_SOURCE
from bridge.shapes import iso
from bridge.storage.report_model import ReportScope
from bridge.storage.store import Store

MONITORING, PEOPLE = "monitoring", "people"
PROBLEM_FIGURES = ("opened", "known_errors", "closed_by_release", "closed_by_hand", "wont_do", "merged", "regressions")
RESOLUTION_COUNTED = (Resolution.MET, Resolution.BREACHED, Resolution.OPEN_PAST_DUE, Resolution.OPEN)
RESPONSE_COUNTED = (Response.MET, Response.BREACHED, Response.NOT_ACKNOWLEDGED)


def report_scope(period: Period, now: datetime, rules: Rules, project: str | None) -> ReportScope:
    """What the store reads for a period and the one before it."""
    return ReportScope(
        previous_start=period.previous().starts_at,
        starts_at=period.starts_at,
        ends_at=period.ends_at,
        now=now,
        sla_priorities=frozenset(rules.sla_policies),
        project=project,
    )


def share(part: int, whole: int) -> float | None:
    """A fraction rounded to four places; None of nothing."""
    return round(part / whole, 4) if whole else None


def service_report(
    store: Store, rules: Rules, period: Period, now: datetime, project: str | None = None
) -> dict[str, Any]:
    """The report of `period` and, side by side, of the period before it, judged at `now`."""
    previous = period.previous()
    scope = report_scope(period, now, rules, project)
    totals = store.incident_totals(scope)
    times = _working_times(store.clock_rows(scope), rules.sla_policies, scope)
    problems = store.problem_totals(scope)
    releases = [_release(row) for row in store.releases_between(scope)]
    bounds = previous.day_bounds() + period.day_bounds()
    daily = store.daily_counts(scope, bounds)
    figures = {
        key: _figures(
            which,
            [row for row in totals if bool(row["current"]) is key],
            times[key],
            {name: counts.get(key, 0) for name, counts in problems.items()},
            [r for r in releases if which.starts_at <= r["at"] < which.ends_at],
            daily,
            rules,
        )
        for key, which in ((True, period), (False, previous))
    }
    current = figures[True]
    return {
        "timezone": period.zone.key,
        "project": project,
        "generated_at": iso(now),
        "period": _period(period),
        "previous_period": _period(previous),
        "empty": not (current["incidents"]["total"] or current["releases"] or any(current["problems"].values())),
        "current": current,
        "previous": figures[False],
        "top_problems": [_top_problem(row) for row in store.top_problems(scope)],
    }


def _period(period: Period) -> dict[str, Any]:
    return {
        "from": period.first_day.isoformat(),
        "to": period.last_day.isoformat(),
        "days": period.days,
        "starts_at": iso(period.starts_at),
        "ends_at": iso(period.ends_at),
    }


def _release(row: Mapping[str, Any]) -> dict[str, Any]:
    summary = row["summary"] or {}
    return {
        "at": row["released_at"],
        "project": row["project"],
        "version": row["version"],
        "released_at": iso(row["released_at"]),
        "problems_closed": len(summary.get("closed_problems", ())),
        "incidents_closed": int(summary.get("closed_incidents", 0)),
        "regressions": int(row["regressions"]),
        "tickets_told": int(summary.get("tickets_told", 0)),
    }


def _top_problem(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "summary": row["summary"],
        "state": row["state"],
        "jira_key": row["jira_key"],
        "jira_url": row["jira_url"],
        "incidents": int(row["incidents"]),
    }


def _working_times(
    rows: Iterable[Any], policies: Mapping[str, SlaPolicy], scope: ReportScope
) -> dict[bool, dict[str, dict[str, list[float]]]]:
    """Per period and priority, the sorted working seconds to acknowledge and to resolve."""
    times: dict[bool, dict[str, dict[str, list[float]]]] = {
        True: defaultdict(lambda: {"acknowledge": [], "resolve": []}),
        False: defaultdict(lambda: {"acknowledge": [], "resolve": []}),
    }
    last = max(scope.now, scope.ends_at)
    calendars = {policy.calendar.name: policy.calendar for policy in policies.values()}
    working = {name: WorkingTime(calendar, scope.previous_start, last) for name, calendar in calendars.items()}
    clocks = {priority: working[policy.calendar.name] for priority, policy in policies.items()}
    for current, priority, first_seen, acknowledged_at, ended, elapsed, running_since in rows:
        clock = clocks.get(priority)
        own = times[bool(current)][priority]
        if acknowledged_at is not None:
            own["acknowledge"].append(working_seconds_to_acknowledge(clock, first_seen, acknowledged_at))
        if ended is not None:
            own["resolve"].append(working_seconds_to_resolve(clock, first_seen, ended, elapsed, running_since))
    for per_priority in times.values():
        for lists in per_priority.values():
            lists["acknowledge"].sort()
            lists["resolve"].sort()
    return times


def _spread(ordered: list[float]) -> dict[str, Any]:
    median, p90 = nearest_rank(ordered, 0.5), nearest_rank(ordered, 0.9)
    return {
        "count": len(ordered),
        "median_seconds": round(median, 3) if median is not None else None,
        "p90_seconds": round(p90, 3) if p90 is not None else None,
    }


def _channels(rows: list[Mapping[str, Any]], rules: Rules, total: int) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str | None], int] = defaultdict(int)
    for row in rows:
        counts[(row["source"], row["system"] if row["source"] == TICKET_SOURCE else None)] += int(row["count"])
    known: list[tuple[str, str | None]] = [(name, None) for name in SOURCES if name != TICKET_SOURCE]
    known += [(TICKET_SOURCE, system) for system in sorted(rules.ticket_systems)]
    seen = sorted((key for key in counts if key not in known), key=lambda key: (key[0], key[1] or ""))
    return [
        {
            "channel": f"{source}:{system}" if system else source,
            "source": source,
            "system": system,
            "kind": PEOPLE if source == TICKET_SOURCE else MONITORING,
            "incidents": counts.get((source, system), 0),
            "share": share(counts.get((source, system), 0), total),
        }
        for source, system in known + seen
    ]


def _sla(
    rows: list[Mapping[str, Any]], times: Mapping[str, dict[str, list[float]]], rules: Rules
) -> list[dict[str, Any]]:
    incidents: dict[str, int] = defaultdict(int)
    resolution: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    response: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        incidents[row["priority"]] += int(row["count"])
        resolution[row["priority"]][row["resolution"]] += int(row["count"])
        response[row["priority"]][row["response"]] += int(row["count"])
    answer = []
    for priority in sorted({*rules.sla_policies, *incidents}):
        policy = rules.sla_policies.get(priority)
        decided = sum(resolution[priority][c] for c in (Resolution.MET, Resolution.BREACHED, Resolution.OPEN_PAST_DUE))
        answered = sum(response[priority][c] for c in (Response.MET, Response.BREACHED))
        has_response = policy is not None and policy.response is not None
        answer.append(
            {
                "priority": priority,
                "calendar": policy.calendar.name if policy is not None else None,
                "resolution_target_seconds": policy.resolution.total_seconds() if policy is not None else None,
                "response_target_seconds": (
                    policy.response.total_seconds() if policy is not None and policy.response is not None else None
                ),
                "incidents": incidents[priority],
                "resolution": (
                    {
                        **{c.value: resolution[priority][c] for c in RESOLUTION_COUNTED},
                        "met_share": share(resolution[priority][Resolution.MET], decided),
                    }
                    if policy is not None
                    else None
                ),
                "response": (
                    {
                        **{c.value: response[priority][c] for c in RESPONSE_COUNTED},
                        "met_share": share(response[priority][Response.MET], answered),
                    }
                    if has_response or any(response[priority][c] for c in RESPONSE_COUNTED)
                    else None
                ),
                "time_to_acknowledge": _spread(times.get(priority, {}).get("acknowledge", [])),
                "time_to_resolve": _spread(times.get(priority, {}).get("resolve", [])),
            }
        )
    return answer


def _figures(
    period: Period,
    rows: list[Mapping[str, Any]],
    times: Mapping[str, dict[str, list[float]]],
    problems: Mapping[str, int],
    releases: list[dict[str, Any]],
    daily: Mapping[Any, int],
    rules: Rules,
) -> dict[str, Any]:
    total = sum(int(row["count"]) for row in rows)
    people = sum(int(row["count"]) for row in rows if row["source"] == TICKET_SOURCE)
    by_priority: dict[str, int] = defaultdict(int)
    for row in rows:
        by_priority[row["priority"]] += int(row["count"])
    released_on: dict[Any, list[str]] = defaultdict(list)
    for release in releases:
        released_on[period.local_day(release["at"])].append(f"{release['project']} {release['version']}")
    resolve_times = [value for lists in times.values() for value in lists["resolve"]]
    return {
        "incidents": {
            "total": total,
            MONITORING: total - people,
            PEOPLE: people,
            "monitoring_share": share(total - people, total),
            "people_share": share(people, total),
        },
        "channels": _channels(rows, rules, total),
        "priorities": [
            {
                "priority": priority,
                "incidents": by_priority.get(priority, 0),
                "share": share(by_priority[priority], total),
            }
            for priority in sorted({*rules.priorities, *by_priority})
        ],
        "sla": _sla(rows, times, rules),
        "time_to_resolve_distribution": [
            {"bucket": label, "incidents": count}
            for (label, _), count in zip(RESOLVE_BUCKETS, bucket_counts(resolve_times), strict=True)
        ],
        "problems": {name: problems.get(name, 0) for name in PROBLEM_FIGURES},
        "releases": [{key: value for key, value in release.items() if key != "at"} for release in releases],
        "daily": [
            {"date": day.isoformat(), "incidents": daily.get(day, 0), "releases": released_on.get(day, [])}
            for day, _, _ in period.day_bounds()
        ],
    }
