"""The service report on SQLite and PostgreSQL: a month built through the API, its figures worked out by hand.

The timeline is tests/e2e/report_data.py's; each expected figure below says which incidents
make it. Times are working time on the priority's calendar: P1 round the clock, P2 and P3 on
Moscow's business hours (09:00-18:00, Monday to Friday).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Clock
from tests.e2e.report_data import API, REPORT_NOW, ReportSite, build_timeline, report_site, utc
from tests.fakes import FakeJira

H = 3600


@pytest.fixture
def site(database_url: str) -> Iterator[ReportSite]:
    with FakeJira() as jira:
        jira.add_issue("LKK-1")
        jira.add_issue("LKK-2")
        built = build_timeline(report_site(database_url, jira.url, Clock(utc(9, 1, 0))))
        yield built
        built.store.engine.dispose()


def by(entries: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {entry[key]: entry for entry in entries}


def test_october_in_moscow_adds_up_to_the_figures_worked_out_by_hand(site: ReportSite):
    report = site.report("from=2026-10-01&to=2026-10-31")
    assert report["timezone"] == "Europe/Moscow" and report["empty"] is False
    assert report["period"] == {
        "from": "2026-10-01",
        "to": "2026-10-31",
        "days": 31,
        "starts_at": "2026-09-30T21:00:00Z",
        "ends_at": "2026-10-31T21:00:00Z",
    }
    assert (report["previous_period"]["from"], report["previous_period"]["to"]) == ("2026-09-01", "2026-09-30")
    now = report["current"]
    # am-1 (00:30 MSK on the 1st, September in UTC) counts; am-3 (00:30 MSK on November 1st) and am-2 do not.
    assert now["incidents"] == {
        "total": 12,
        "monitoring": 8,
        "people": 4,
        "monitoring_share": 0.6667,
        "people_share": 0.3333,
    }
    assert [(c["channel"], c["kind"], c["incidents"], c["share"]) for c in now["channels"]] == [
        ("alertmanager", "monitoring", 6, 0.5),
        ("zabbix", "monitoring", 2, 0.1667),
        ("grafana", "monitoring", 0, 0.0),
        ("events", "monitoring", 0, 0.0),
        ("heartbeat", "monitoring", 0, 0.0),
        ("ticket:itsm", "people", 1, 0.0833),
        ("ticket:portal", "people", 3, 0.25),
    ]
    assert [(p["priority"], p["incidents"]) for p in now["priorities"]] == [
        ("P1", 6),
        ("P2", 2),
        ("P3", 3),
        ("P4", 0),
        ("P5", 1),
    ]


def test_sla_is_judged_on_each_priority_s_calendar(site: ReportSite):
    sla = by(site.report("month=2026-10")["current"]["sla"], "priority")
    # P1, 4 h round the clock, response 15 min: am-1 (1 h), am-6 (30 min), am-8 (2 h) met; am-4 (5 h) and am-5
    # (closed by release 1.5 eight days on) breached; am-7 still fires. Acknowledged: am-1 10 min, am-4 20 min
    # (late), am-6 5 min, am-8 3 min; am-5 and am-7 never (both past due while firing).
    assert sla["P1"]["calendar"] == "24x7"
    assert sla["P1"]["incidents"] == 6
    assert sla["P1"]["resolution"] == {"met": 3, "breached": 2, "open_past_due": 1, "open": 0, "met_share": 0.5}
    assert sla["P1"]["response"] == {"met": 3, "breached": 3, "not_acknowledged": 0, "met_share": 0.5}
    assert sla["P1"]["time_to_acknowledge"] == {"count": 4, "median_seconds": 300.0, "p90_seconds": 1200.0}
    # Resolve, sorted: am-6 1800, am-1 3600, am-8 7200, am-4 18000, am-5 191 h: nearest-rank median the 3rd, p90 the 5th.
    assert sla["P1"]["time_to_resolve"] == {"count": 5, "median_seconds": 7200.0, "p90_seconds": 191 * H}
    # P2, 4 working hours, response 30 min: zbx-1 from Friday 17:00 MSK to Monday 10:00 is 2 working hours
    # (65 on the wall), acknowledged at 17:20; zbx-2 took 6 h (09:00-15:00) and was acknowledged after an hour.
    assert sla["P2"]["calendar"] == "business-moscow"
    assert sla["P2"]["resolution"] == {"met": 1, "breached": 1, "open_past_due": 0, "open": 0, "met_share": 0.5}
    assert sla["P2"]["response"] == {"met": 1, "breached": 1, "not_acknowledged": 0, "met_share": 0.5}
    assert sla["P2"]["time_to_acknowledge"] == {"count": 2, "median_seconds": 1200.0, "p90_seconds": 3600.0}
    assert sla["P2"]["time_to_resolve"] == {"count": 2, "median_seconds": 2 * H, "p90_seconds": 6 * H}
    # P3, 16 working hours, response 2 h: T-1 (Monday 12:00 MSK) closed by hand Thursday 13:00, 28 working hours
    # on, past its Wednesday 10:00 due time; P-1 and P-2 still fire past theirs; only P-2 was acknowledged (30 min).
    assert sla["P3"]["resolution"] == {"met": 0, "breached": 1, "open_past_due": 2, "open": 0, "met_share": 0.0}
    assert sla["P3"]["response"] == {"met": 1, "breached": 2, "not_acknowledged": 0, "met_share": 0.3333}
    assert sla["P3"]["time_to_acknowledge"] == {"count": 1, "median_seconds": 1800.0, "p90_seconds": 1800.0}
    assert sla["P3"]["time_to_resolve"] == {"count": 1, "median_seconds": 28 * H, "p90_seconds": 28 * H}
    # P4 has a target and no incident; P5 (80 working hours, no response target): P-3 is within its target.
    assert sla["P4"]["incidents"] == 0 and sla["P4"]["resolution"]["met_share"] is None
    assert sla["P4"]["response"] is None
    assert sla["P5"]["resolution"] == {"met": 0, "breached": 0, "open_past_due": 0, "open": 1, "met_share": None}
    assert sla["P5"]["response"] is None
    assert sla["P5"]["time_to_resolve"] == {"count": 0, "median_seconds": None, "p90_seconds": None}


def test_time_to_resolve_distribution_problems_releases_and_the_days(site: ReportSite):
    report = site.report("month=2026-10")
    now = report["current"]
    # 1800 | 3600, 7200, 7200 | 18000, 21600 | 100800 | 191 h
    assert [b["incidents"] for b in now["time_to_resolve_distribution"]] == [0, 1, 3, 2, 0, 1, 1]
    assert now["problems"] == {
        "opened": 7,  # all but DiskFull/billing (23:30 MSK on September 30th)
        "known_errors": 2,  # LKK-1 and LKK-2 linked
        "closed_by_release": 2,
        "closed_by_hand": 1,
        "wont_do": 0,
        "merged": 1,
        "regressions": 1,  # am-6; am-3's (November in Moscow) is not October's
    }
    assert now["releases"] == [
        {
            "project": "LKK",
            "version": "1.4",
            "released_at": "2026-10-15T12:00:00Z",
            "problems_closed": 1,
            "incidents_closed": 2,
            "regressions": 1,
            "tickets_told": 0,
        },
        {
            "project": "LKK",
            "version": "1.5",
            "released_at": "2026-10-28T09:00:00Z",
            "problems_closed": 1,
            "incidents_closed": 1,
            "regressions": 1,  # am-3, after the report's month: a release's regressions are all it caused
            "tickets_told": 0,
        },
    ]
    busy = {day["date"]: day["incidents"] for day in now["daily"] if day["incidents"]}
    assert busy == {f"2026-10-{d:02d}": 1 for d in (1, 5, 6, 7, 9, 12, 13, 20, 22, 25, 26, 30)}
    assert {day["date"]: day["releases"] for day in now["daily"] if day["releases"]} == {
        "2026-10-15": ["LKK 1.4"],
        "2026-10-28": ["LKK 1.5"],
    }
    assert len(now["daily"]) == 31
    ids = site.problems
    assert [(p["id"], p["incidents"], p["jira_key"], p["state"]) for p in report["top_problems"]] == [
        (ids["Api5xx/checkout"], 3, "LKK-1", "known_error"),
        (ids["tickets/billing"], 3, None, "open"),
        (ids["zabbix-trigger/23133"], 2, None, "open"),
        (ids["Queue/mail"], 2, None, "open"),
        (ids["tickets/checkout"], 1, None, "closed"),
        (ids["Latency/search"], 1, "LKK-2", "known_error"),
    ]


def test_the_period_before_stands_beside_it(site: ReportSite):
    before = site.report("month=2026-10")["previous"]
    # am-2 only: resolved in 30 min, nobody acknowledged it within 15.
    assert before["incidents"]["total"] == 1
    p1 = by(before["sla"], "priority")["P1"]
    assert p1["resolution"]["met"] == 1 and p1["response"]["breached"] == 1
    assert p1["time_to_resolve"] == {"count": 1, "median_seconds": 1800.0, "p90_seconds": 1800.0}
    assert before["problems"]["opened"] == 1
    assert [(r["version"], r["problems_closed"]) for r in before["releases"]] == [("1.3", 0)]
    assert {d["date"]: d["incidents"] for d in before["daily"] if d["incidents"]} == {"2026-09-30": 1}


def test_a_project_narrows_the_report_to_its_problems_and_releases(site: ReportSite):
    lkk = site.report("month=2026-10&project=LKK")["current"]
    # The alerts' and Zabbix's problems are filed in LKK; the tickets' rule names no Jira project.
    assert (lkk["incidents"]["total"], lkk["incidents"]["people"]) == (8, 0)
    assert [r["version"] for r in lkk["releases"]] == ["1.4", "1.5"]
    other = site.report("month=2026-10&project=OPS")
    assert other["empty"] is True and other["current"]["releases"] == []


def test_an_empty_month_is_a_friendly_empty_report(site: ReportSite):
    report = site.report("month=2026-08")
    assert report["empty"] is True
    assert report["current"]["incidents"]["total"] == 0
    assert all(p["time_to_resolve"]["median_seconds"] is None for p in report["current"]["sla"])
    assert report["current"]["incidents"]["people_share"] is None
    page = site.page("/ui/reports?month=2026-08")
    assert page.status_code == 200 and b'id="empty-report"' in page.data


def _csv(site: ReportSite, path: str) -> list[dict[str, str]]:
    site.clock.value = REPORT_NOW
    answer = site.client.get(path, headers=API)
    assert answer.status_code == 200, answer.data[:300]
    assert answer.content_type == "text/csv; charset=utf-8"
    assert answer.headers["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))


def test_the_incidents_csv_parses_and_agrees_with_the_json(site: ReportSite):
    report = site.report("month=2026-10")
    rows = _csv(site, "/api/v1/reports/incidents.csv?from=2026-10-01&to=2026-10-31")
    names = {incident_id: name for name, incident_id in site.incidents.items()}
    assert sorted(names[int(row["id"])] for row in rows) == sorted(
        ["am-1", "am-4", "am-5", "am-6", "am-7", "am-8", "zbx-1", "zbx-2", "T-1", "P-1", "P-2", "P-3"]
    )
    assert [row["opened"] for row in rows] == sorted(row["opened"] for row in rows), "oldest first"
    channels = Counter(f"{r['source']}:{r['system']}" if r["system"] else r["source"] for r in rows)
    assert channels == {c["channel"]: c["incidents"] for c in report["current"]["channels"] if c["incidents"]}
    for entry in report["current"]["sla"]:
        mine = [row for row in rows if row["priority"] == entry["priority"]]
        assert len(mine) == entry["incidents"]
        if entry["resolution"] is not None:
            resolution = entry["resolution"]
            assert (
                Counter(row["met"] for row in mine)
                == Counter(
                    {
                        "yes": resolution["met"],
                        "no": resolution["breached"] + resolution["open_past_due"],
                        "": resolution["open"],
                    }
                )
                - Counter()
            )
        if entry["response"] is not None:
            assert sum(row["response_met"] == "yes" for row in mine) == entry["response"]["met"]
            assert sum(row["response_met"] == "no" for row in mine) == entry["response"]["breached"]
    row_of = {names[int(row["id"])]: row for row in rows}
    assert [name for name, row in row_of.items() if row["regression"] == "yes"] == ["am-6"]
    assert {name: (row["jira_key"], row["fixed_in"]) for name, row in row_of.items() if row["jira_key"]} == {
        "am-1": ("LKK-1", "1.4"),
        "am-4": ("LKK-1", "1.4"),
        "am-6": ("LKK-1", "1.4"),
        "am-5": ("LKK-2", "1.5"),
    }
    assert (
        row_of["am-1"]["opened"] == "2026-09-30T21:30:00Z" and row_of["am-1"]["acknowledged"] == "2026-09-30T21:40:00Z"
    )
    assert row_of["T-1"]["system"] == "itsm" and row_of["T-1"]["closed"] == "2026-10-08T10:00:00Z"


def _json_figure(report: dict[str, Any], period: str, section: str, item: str, figure: str) -> Any:
    """What the JSON says for one row of the summary CSV."""
    data = report[period]
    if section == "period":
        return report["period" if period == "current" else "previous_period"][figure]
    if section in ("incidents", "problems"):
        return data[section][figure]
    if section in ("channel", "priority"):
        return by(data["channels" if section == "channel" else "priorities"], section).get(item, {}).get(figure)
    if section == "time_to_resolve":
        return by(data["time_to_resolve_distribution"], "bucket")[item][figure]
    if section == "release":
        return next((r[figure] for r in data["releases"] if f"{r['project']} {r['version']}" == item), None)
    if section == "day":
        return by(data["daily"], "date").get(item, {}).get(figure)
    if section == "top_problem":
        return next((p[figure] for p in report["top_problems"] if f"#{p['id']} {p['summary']}" == item), None)
    entry = by(data["sla"], "priority").get(item)
    if entry is None:
        return None
    part, _, name = figure.partition("_")
    if figure == "incidents":
        return entry["incidents"]
    if part in ("resolution", "response"):
        return (entry[part] or {}).get(name)
    return entry[{"acknowledge": "time_to_acknowledge", "resolve": "time_to_resolve"}[part]][name]


def test_the_summary_csv_parses_and_agrees_with_the_json(site: ReportSite):
    report = site.report("month=2026-10")
    rows = _csv(site, "/api/v1/reports/service.csv?month=2026-10")
    assert len(rows) > 100
    for row in rows:
        for period in ("current", "previous"):
            if period == "previous" and row["section"] == "top_problem":
                continue
            expected = _json_figure(report, period, row["section"], row["item"], row["figure"])
            assert row[period] == ("" if expected is None else str(expected)), (row, period)
    figures = {(r["section"], r["item"], r["figure"]): r for r in rows}
    assert figures[("sla", "P2", "resolve_median_seconds")]["current"] == "7200.0"
    assert figures[("channel", "ticket:portal", "incidents")]["current"] == "3"


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("from=2026-02-30&to=2026-03-01", "from"),
        ("from=yesterday&to=2026-03-01", "from"),
        ("from=2026-10-01", "to"),
        ("to=2026-10-31", "from"),
        ("from=2026-10-31&to=2026-10-01", "to"),
        ("from=2025-01-01&to=2026-12-31", "to"),
        ("month=2026-13", "month"),
        ("month=October", "month"),
        ("month=2026-10&from=2026-10-01&to=2026-10-31", "month"),
        ("month=0001-01", "month"),
        ("project=lkk", "project"),
    ],
)
def test_bad_dates_get_a_400_naming_the_parameter(site: ReportSite, query: str, parameter: str):
    for path in ("/api/v1/reports/service", "/api/v1/reports/service.csv", "/api/v1/reports/incidents.csv"):
        answer = site.client.get(f"{path}?{query}", headers=API)
        assert answer.status_code == 400, (path, query)
        assert answer.json["message"].endswith(parameter) and answer.json["errors"][0].startswith(f"{parameter}: ")
    page = site.page(f"/ui/reports?{query}")
    assert page.status_code == 400 and f"{parameter}: ".encode() in page.data


def test_the_report_needs_the_read_token(site: ReportSite):
    for path in ("/api/v1/reports/service", "/api/v1/reports/service.csv", "/api/v1/reports/incidents.csv"):
        assert site.client.get(path).status_code == 401
        assert site.client.get(path, headers={"Authorization": "Bearer report-operate"}).status_code == 401
    assert site.client.get("/ui/reports").status_code == 302  # to the sign-in page


def test_without_dates_the_report_is_of_the_last_full_month(site: ReportSite):
    assert site.report("")["period"]["from"] == "2026-10-01"  # read on November 3rd
