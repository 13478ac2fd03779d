"""The service report's pure parts: periods in a zone, percentiles, working times, chart geometry, CSV cells."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bridge.config import SettingsError, load_settings
from bridge.domain.reports import (
    MAX_DAYS,
    Period,
    WorkingTime,
    bucket_counts,
    last_full_month,
    month_period,
    nearest_rank,
    period_problem,
    working_seconds_to_acknowledge,
    working_seconds_to_resolve,
)
from bridge.domain.sla import TWENTY_FOUR_SEVEN, Calendar, SlaClock, SlaPolicy, stop
from bridge.reports.charts import daily_chart, nice_step, sla_chart
from bridge.reports.exports import cell, incident_row

MOSCOW = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # UTC+5:45
BUSINESS = Calendar(
    name="business",
    zone=MOSCOW,
    weekly={day: ((time(9), time(18)),) for day in range(5)},
    holidays=frozenset({date(2026, 11, 4)}),
)


def test_a_month_begins_and_ends_at_the_zone_s_midnights():
    october = month_period(2026, 10, MOSCOW)
    assert (october.first_day, october.last_day, october.days) == (date(2026, 10, 1), date(2026, 10, 31), 31)
    assert october.starts_at == datetime(2026, 9, 30, 21, tzinfo=UTC)
    assert october.ends_at == datetime(2026, 10, 31, 21, tzinfo=UTC)
    assert month_period(2026, 12, MOSCOW).last_day == date(2026, 12, 31)
    assert month_period(2028, 2, MOSCOW).days == 29


def test_days_follow_dst_and_fractional_offsets():
    october = month_period(2026, 10, BERLIN)  # summer time ends on the 25th: that day has 25 hours
    lengths = {day: end - start for day, start, end in october.day_bounds()}
    assert lengths[date(2026, 10, 25)] == timedelta(hours=25)
    assert lengths[date(2026, 10, 24)] == timedelta(hours=24)
    assert sum(lengths.values(), timedelta()) == october.ends_at - october.starts_at
    day = Period(date(2026, 10, 1), date(2026, 10, 1), KATHMANDU)
    assert day.starts_at == datetime(2026, 9, 30, 18, 15, tzinfo=UTC)


def test_the_period_before_is_the_months_before_a_month_else_the_days_before():
    assert month_period(2026, 10, MOSCOW).previous() == month_period(2026, 9, MOSCOW)
    assert month_period(2026, 3, MOSCOW).previous() == month_period(2026, 2, MOSCOW)
    assert month_period(2026, 1, MOSCOW).previous() == month_period(2025, 12, MOSCOW)
    quarter = Period(date(2026, 10, 1), date(2026, 12, 31), MOSCOW)
    assert quarter.previous() == Period(date(2026, 7, 1), date(2026, 9, 30), MOSCOW)
    week = Period(date(2026, 10, 5), date(2026, 10, 11), MOSCOW)
    assert week.previous() == Period(date(2026, 9, 28), date(2026, 10, 4), MOSCOW)


def test_the_last_full_month_is_counted_in_the_report_s_zone():
    # 22:00 UTC on October 31st is already November 1st in Moscow: its last full month is October.
    assert last_full_month(datetime(2026, 10, 31, 22, tzinfo=UTC), MOSCOW) == month_period(2026, 10, MOSCOW)
    assert last_full_month(datetime(2026, 10, 31, 20, tzinfo=UTC), MOSCOW) == month_period(2026, 9, MOSCOW)
    assert last_full_month(datetime(2026, 1, 15, tzinfo=UTC), MOSCOW) == month_period(2025, 12, MOSCOW)


@pytest.mark.parametrize(
    ("first", "last", "blamed"),
    [
        (date(2026, 10, 2), date(2026, 10, 1), "to"),
        (date(2026, 1, 1), date(2026, 1, 1) + timedelta(days=MAX_DAYS), "to"),
        (date(1, 1, 1), date(2026, 1, 1), "from"),
        (date(2026, 1, 1), date(9999, 1, 1), "to"),
    ],
)
def test_an_unusable_period_names_the_parameter_to_blame(first, last, blamed):
    problem = period_problem(first, last)
    assert problem is not None and problem[0] == blamed


def test_a_usable_period_has_no_problem():
    assert period_problem(date(2026, 1, 1), date(2026, 12, 31)) is None
    assert period_problem(date(2026, 10, 1), date(2026, 10, 1)) is None


def test_nearest_rank_percentiles_are_values_that_occurred():
    assert nearest_rank([], 0.5) is None
    assert nearest_rank([7.0], 0.9) == 7.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0  # the lower middle: the 2nd of 4
    assert nearest_rank([1.0, 2.0, 3.0, 4.0, 5.0], 0.5) == 3.0
    values = [float(n) for n in range(1, 11)]
    assert nearest_rank(values, 0.9) == 9.0 and nearest_rank(values, 0.91) == 10.0


def test_buckets_end_before_their_edge():
    assert bucket_counts([0.0, 899.0, 900.0, 3599.0, 3600.0, 3 * 86400.0, 10**9]) == [2, 2, 1, 0, 0, 0, 2]


def test_working_time_to_acknowledge_runs_on_the_policy_s_calendar():
    friday_1750 = datetime(2026, 10, 9, 17, 50, tzinfo=MOSCOW)
    monday_0915 = datetime(2026, 10, 12, 9, 15, tzinfo=MOSCOW)
    clock = WorkingTime(BUSINESS, friday_1750, monday_0915)
    opened, acknowledged = friday_1750.timestamp(), monday_0915.timestamp()
    assert working_seconds_to_acknowledge(clock, opened, acknowledged) == 25 * 60
    assert working_seconds_to_acknowledge(None, opened, acknowledged) == (monday_0915 - friday_1750).total_seconds()


def test_working_time_to_resolve_is_what_the_sla_clock_used():
    policy = SlaPolicy("P2", timedelta(hours=4), BUSINESS)
    opened = datetime(2026, 10, 9, 17, tzinfo=MOSCOW)
    closed = datetime(2026, 10, 12, 10, tzinfo=MOSCOW)
    clock = WorkingTime(BUSINESS, opened, closed)
    # Resolved (clock stopped): the business seconds the clock kept, reopened episodes included.
    assert working_seconds_to_resolve(clock, opened.timestamp(), closed.timestamp(), 5400.0, None) == 5400.0
    # Closed while the clock ran (a release closed it firing): what sla.stop counts until then.
    ran = working_seconds_to_resolve(clock, opened.timestamp(), closed.timestamp(), 60.0, opened.timestamp())
    assert ran == stop(policy, SlaClock(60.0, opened), closed).elapsed_seconds == 60 + 2 * 3600
    round_the_clock = WorkingTime(TWENTY_FOUR_SEVEN, opened, closed)
    assert (
        working_seconds_to_resolve(round_the_clock, opened.timestamp(), closed.timestamp(), 0.0, opened.timestamp())
        == 65 * 3600
    )
    assert working_seconds_to_resolve(None, opened.timestamp(), closed.timestamp(), 0.0, None) == 65 * 3600


SPLIT = Calendar(
    name="split",
    zone=BERLIN,
    weekly={day: ((time(13), time(18)), (time(8), time(12))) for day in range(6)},  # listed out of order
    holidays=frozenset({date(2026, 10, 3)}),
    working_days=frozenset({date(2026, 10, 25)}),
    working_day_hours=((time(10), None),),
)


@pytest.mark.parametrize("calendar", [BUSINESS, SPLIT, TWENTY_FOUR_SEVEN], ids=lambda c: c.name)
def test_working_time_agrees_with_the_calendar_s_own_count(calendar):
    """Across weekends, holidays, a working Sunday, DST's end and instants inside and outside working hours."""
    first, last = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC)
    clock = WorkingTime(calendar, first, last)
    instants = [first + timedelta(minutes=617 * n + 7 * (n % 5)) for n in range(90)]
    for a in instants:
        for b in instants[::7]:
            expected = calendar.seconds_between(a, b)
            assert clock.between(a.timestamp(), b.timestamp()) == pytest.approx(expected, abs=1e-6), (a, b)
    beyond = last + timedelta(days=40)  # outside the days laid out: the calendar counts
    assert clock.between(first.timestamp(), beyond.timestamp()) == pytest.approx(
        calendar.seconds_between(first, beyond)
    )


def test_bridge_timezone_takes_an_iana_zone_and_refuses_others():
    assert load_settings({}).timezone == ZoneInfo("UTC")
    assert load_settings({"BRIDGE_TIMEZONE": "Europe/Moscow"}).timezone == MOSCOW
    for bad in ("Mars/Olympus", "", "../../etc/passwd", "+03:00"):
        with pytest.raises(SettingsError, match="BRIDGE_TIMEZONE"):
            load_settings({"BRIDGE_TIMEZONE": bad})


def test_axis_steps_are_round_numbers():
    assert [nice_step(n) for n in (0, 3, 9, 40, 130, 999, 12_000)] == [1, 1, 5, 10, 50, 500, 5000]


def test_the_daily_chart_has_a_bar_per_day_and_a_marker_per_release_day():
    daily = [
        {"date": f"2026-10-{d:02d}", "incidents": d % 3, "releases": ["LKK 1.4"] if d == 15 else []}
        for d in range(1, 32)
    ]
    chart = daily_chart(daily)
    assert len(chart.bars) == 31 and len(chart.markers) == 1 and chart.markers[0].label == "LKK 1.4"
    tallest = max(chart.bars, key=lambda bar: bar.height)
    assert tallest.y >= chart.plot_top and tallest.y + tallest.height == pytest.approx(chart.plot_bottom)
    assert all(bar.height == 0 for bar, day in zip(chart.bars, daily, strict=True) if day["incidents"] == 0)
    assert chart.y_ticks[-1].label == "2"


def test_the_sla_chart_stacks_shares_to_the_full_width():
    sla = [
        {"priority": "P1", "resolution": {"met": 3, "breached": 1, "open_past_due": 0, "open": 0}},
        {"priority": "P4", "resolution": {"met": 0, "breached": 0, "open_past_due": 0, "open": 0}},
        {"priority": "P9", "resolution": None},
    ]
    chart = sla_chart(sla)
    assert [row.label for row in chart.rows] == ["P1"], "only priorities with a target and incidents"
    assert sum(bar.width for bar in chart.bars) == pytest.approx(chart.plot_right - chart.plot_left)
    assert [bar.label for bar in chart.bars] == ["met", "breached"]


@pytest.mark.parametrize("formula", ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(formula):
    assert cell(formula) == "'" + formula


def test_csv_cells_keep_numbers_and_plain_text():
    assert (cell(12), cell(0.25), cell(None), cell(True), cell("alertmanager:fp1")) == (
        12,
        0.25,
        "",
        "yes",
        "alertmanager:fp1",
    )


def test_an_incident_row_says_met_only_where_the_target_is_decided():
    row = {
        "id": 1,
        "source": "ticket",
        "system": "itsm",
        "dedup_key": "ticket:itsm:=cmd",
        "priority": "P3",
        "line": "L3",
        "route": "default",
        "state": "firing",
        "first_seen": datetime(2026, 10, 1, tzinfo=UTC),
        "acknowledged_at": None,
        "resolved_at": None,
        "closed_at": None,
        "sla_due": datetime(2026, 10, 2, tzinfo=UTC),
        "resolution": "open",
        "response": "no_target",
        "problem_id": None,
        "jira_key": None,
        "fixed_in": None,
        "regression": 0,
    }
    values = incident_row(row)
    assert values[8] == "2026-10-01T00:00:00Z" and values[13:15] == ["", ""] and values[-1] == "no"
    assert values[3] == "ticket:itsm:=cmd" and incident_row({**row, "route": "=cmd"})[6] == "'=cmd"
    assert incident_row({**row, "resolution": "open_past_due", "response": "met"})[13:15] == ["no", "yes"]
