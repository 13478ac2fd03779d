"""A fixed month of a small site, built through the bridge's own API, for the service report's tests.

The report is read in Europe/Moscow (UTC+3, no DST): October 2026 there runs from
2026-09-30T21:00Z to 2026-10-31T21:00Z. Every incident, acknowledgement, resolve, link,
release, merge and close goes through the HTTP API of an app on the test's database, with
the worker's breach marking run before each step as a running bridge would. The figures
the report must give are worked out by hand in tests/e2e/test_reports.py from the
timeline below (UTC; MSK is three hours later).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from bridge.app import create_app
from bridge.config import load_settings
from bridge.rules.load import parse_rules
from bridge.storage.store import Store
from bridge.worker import run_once
from tests.conftest import ROOT, Clock, payload

MOSCOW = "Europe/Moscow"
API = {"Authorization": "Bearer report-read"}
OPERATE = {"Authorization": "Bearer report-operate", "X-Bridge-Actor": "Ann"}
TICKETS = {"Authorization": "Bearer report-tickets"}
RELEASE = {"Authorization": "Bearer report-release"}
TOKENS = {
    "BRIDGE_TOKEN_API": "report-read",
    "BRIDGE_TOKEN_OPERATE": "report-operate",
    "BRIDGE_TOKEN_TICKETS": "report-tickets",
    "BRIDGE_TOKEN_RELEASE": "report-release",
}
RULES_ENV = {
    "REPORT_ITSM_URL": "http://127.0.0.1:9/itsm",
    "REPORT_PORTAL_URL": "http://127.0.0.1:9/portal",
    "REPORT_SECRET": "s",
}
# When the report is read: every October due time but the P5 ticket's has passed.
REPORT_NOW = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def report_rules() -> dict[str, Any]:
    """The example rules, with every alert grouping at once, and two ticket systems whose tickets group by service."""
    raw = yaml.safe_load((ROOT / "rules.yaml").read_text())
    raw["ticket_systems"] = {
        "itsm": {"url": "${REPORT_ITSM_URL}", "secret_env": "REPORT_SECRET"},
        "portal": {"url": "${REPORT_PORTAL_URL}", "secret_env": "REPORT_SECRET"},
    }
    for rule in raw["problems"]:
        if rule["name"] == "portal-errors":
            rule["open_after"] = 1
    raw["problems"].insert(
        0,
        {
            "name": "tickets",
            "match": {"source": "ticket", "labels_regex": {"service": ".+"}},
            "key": "tickets/{{ labels.service }}",
            "summary": "{{ labels.service }} tickets",
            "example_labels": {"service": "checkout"},
        },
    )
    return raw


@dataclass
class ReportSite:
    """The app on the test's database, its clock, and the ids of what the timeline made, by name."""

    client: Any
    store: Store
    clock: Clock
    incidents: dict[str, int] = field(default_factory=dict)
    problems: dict[str, int] = field(default_factory=dict)
    started: dict[str, str] = field(default_factory=dict)

    def at(self, when: datetime) -> None:
        """Time passes to `when`; the worker marks the breaches due meanwhile, as a running bridge does."""
        assert when >= self.clock.value, (when, self.clock.value)
        self.clock.value = when
        run_once(self.store, when)

    def post(self, path: str, body: Any, headers: dict[str, str], status: int = 200) -> Any:
        answer = self.client.post(path, json=body, headers=headers)
        assert answer.status_code == status, (path, answer.status_code, answer.json)
        return answer.json

    def alert(self, name: str, alertname: str, service: str, status: str = "firing") -> None:
        """An Alertmanager alert (severity critical: P1 on the 24x7 calendar), firing or resolved now."""
        now = self.clock.value.isoformat().replace("+00:00", "Z")
        started = self.started.setdefault(name, now)  # a resolve carries its episode's start
        body = payload("alertmanager-0.25-two-firing.json")  # a recorded notification, with one alert of ours
        alert = {
            **body["alerts"][0],
            "status": status,
            "labels": {"alertname": alertname, "service": service, "severity": "critical", "instance": name},
            "annotations": {"summary": f"{alertname} on {service}"},
            "startsAt": started,
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else now,
            "fingerprint": "fp" + name.replace("-", ""),
        }
        body.update(status=status, alerts=[alert])
        answer = self.post("/api/v1/alerts/alertmanager", body, {})
        if status == "firing":
            [self.incidents[name]] = answer["incidents"]

    def zabbix(self, name: str, event_id: str, value: str = "1") -> None:
        """A Zabbix problem of severity High (P2 on the Moscow business calendar), or its recovery (value 0)."""
        body = {
            "event_date": "{EVENT.DATE}",
            "event_time": "{EVENT.TIME}",
            "event_id": event_id,
            "event_value": value,
            "event_update_status": "0",
            "recovery_event_id": "{EVENT.RECOVERY.ID}",
            "recovery_date": "{EVENT.RECOVERY.DATE}",
            "recovery_time": "{EVENT.RECOVERY.TIME}",
            "event_name": "LKK API errors high on lkk-app-1",
            "severity": "High",
            "nseverity": "4",
            "trigger_id": "23133",
            "host": "lkk-app-1",
            "tags": [{"tag": "service", "value": "lkk"}],
            "zabbix_url": "http://127.0.0.1:8081",
        }
        answer = self.post("/api/v1/alerts/zabbix", body, {})
        if value == "1":
            [self.incidents[name]] = answer["incidents"]

    def ticket(self, name: str, system: str, service: str, **levels: str) -> None:
        body = {"system": system, "ticket_id": name, "summary": f"{service} is broken", "labels": {"service": service}}
        answer = self.post("/api/v1/tickets", {**body, **levels}, TICKETS, status=201)
        self.incidents[name] = answer["incident"]

    def ack(self, name: str) -> None:
        self.post(f"/api/v1/incidents/{self.incidents[name]}/ack", {}, OPERATE)

    def problem_of(self, name: str) -> int:
        found: int = self.client.get(f"/api/v1/incidents/{self.incidents[name]}", headers=API).json["problem_id"]
        return found

    def link(self, problem: str, key: str) -> None:
        self.post(f"/api/v1/problems/{self.problems[problem]}/jira", {"jira_key": key}, OPERATE)

    def release(self, version: str, issues: list[str]) -> None:
        when = self.clock.value.isoformat()
        self.post(
            "/api/v1/releases", {"project": "LKK", "version": version, "issues": issues, "released_at": when}, RELEASE
        )

    def page(self, path: str) -> Any:
        """A page as a person signed in with the read token sees it."""
        self.clock.value = REPORT_NOW
        signed = self.client.post("/ui/login", data={"token": TOKENS["BRIDGE_TOKEN_API"], "next": "/ui/"})
        assert signed.status_code == 302, signed.data[:300]
        return self.client.get(path)

    def report(self, query: str) -> Any:
        self.clock.value = REPORT_NOW
        answer = self.client.get(f"/api/v1/reports/service?{query}", headers=API)
        assert answer.status_code == 200, answer.json
        return answer.json


def report_site(database_url: str, jira_url: str, clock: Clock) -> ReportSite:
    """An app with the report's rules, tokens and zone on the test's database, Jira at `jira_url`."""
    rules = parse_rules(report_rules(), environ=RULES_ENV)
    settings = load_settings(
        {
            **TOKENS,
            "BRIDGE_TIMEZONE": MOSCOW,
            "BRIDGE_JIRA_URL": jira_url,
            "BRIDGE_JIRA_EMAIL": "bot@example.com",
            "BRIDGE_JIRA_API_TOKEN": "jira-token",
        },
        database_url=database_url,
    )
    store = Store.from_url(database_url)
    app = create_app(settings, rules=rules, store=store, now=clock)
    return ReportSite(app.test_client(), store, clock)


def build_timeline(site: ReportSite) -> ReportSite:
    """September's last evening, October in Moscow, and the first minutes of November there."""
    # September (Moscow): one P1 alert at 23:30 MSK on the 30th, resolved after 30 minutes nobody acknowledged.
    site.at(utc(9, 20, 10))
    site.release("1.3", ["LKK-99"])  # names no linked issue: closes nothing
    site.at(utc(9, 30, 20, 30))
    site.alert("am-2", "DiskFull", "billing")
    site.problems["DiskFull/billing"] = site.problem_of("am-2")
    site.at(utc(9, 30, 21, 0))
    site.alert("am-2", "DiskFull", "billing", "resolved")
    # October 1st, 00:30 MSK (still September in UTC): acknowledged after 10 min, resolved after an hour.
    site.at(utc(9, 30, 21, 30))
    site.alert("am-1", "Api5xx", "checkout")
    site.problems["Api5xx/checkout"] = site.problem_of("am-1")
    site.at(utc(9, 30, 21, 40))
    site.ack("am-1")
    site.at(utc(9, 30, 22, 30))
    site.alert("am-1", "Api5xx", "checkout", "resolved")
    # Tickets (P3: 16 working hours, response 2 h): itsm's on Monday the 5th at 12:00 MSK, portal's on the 6th and 7th.
    site.at(utc(10, 5, 9))
    site.ticket("T-1", "itsm", "checkout")
    site.problems["tickets/checkout"] = site.problem_of("T-1")
    site.at(utc(10, 6, 9))
    site.ticket("P-1", "portal", "billing")
    site.problems["tickets/billing"] = site.problem_of("P-1")
    site.at(utc(10, 7, 9))
    site.ticket("P-2", "portal", "billing")
    site.at(utc(10, 7, 9, 30))
    site.ack("P-2")
    # Thursday the 8th, 13:00 MSK: the checkout tickets' problem is closed by hand (T-1 was due Wednesday 10:00).
    site.at(utc(10, 8, 10))
    site.post(f"/api/v1/problems/{site.problems['tickets/checkout']}/close", {"reason": "fixed the form"}, OPERATE)
    # Zabbix (P2: 4 working hours, response 30 min): Friday the 9th 17:00 MSK, acknowledged 17:20, recovered Monday 10:00.
    site.at(utc(10, 9, 14))
    site.zabbix("zbx-1", "1")
    site.problems["zabbix-trigger/23133"] = site.problem_of("zbx-1")
    site.at(utc(10, 9, 14, 20))
    site.ack("zbx-1")
    site.at(utc(10, 12, 7))
    site.zabbix("zbx-1", "1", value="0")
    # Monday the 12th: a P1 acknowledged after 20 min (late), resolved after 5 h (late).
    site.at(utc(10, 12, 10))
    site.alert("am-4", "Api5xx", "checkout")
    site.at(utc(10, 12, 10, 20))
    site.ack("am-4")
    site.at(utc(10, 12, 15))
    site.alert("am-4", "Api5xx", "checkout", "resolved")
    # Tuesday the 13th: Zabbix at 09:00 MSK, acknowledged after an hour (late), recovered at 15:00 (6 working hours).
    site.at(utc(10, 13, 6))
    site.zabbix("zbx-2", "2")
    site.link("Api5xx/checkout", "LKK-1")
    site.at(utc(10, 13, 7))
    site.ack("zbx-2")
    site.at(utc(10, 13, 12))
    site.zabbix("zbx-2", "2", value="0")
    # Release 1.4 on the 15th closes the checkout errors' problem and its two incidents.
    site.at(utc(10, 15, 12))
    site.release("1.4", ["LKK-1"])
    # The 20th: a P1 nobody acknowledges; its problem is linked, and release 1.5 on the 28th closes it while it fires.
    site.at(utc(10, 20, 10))
    site.alert("am-5", "Latency", "search")
    site.problems["Latency/search"] = site.problem_of("am-5")
    site.at(utc(10, 21, 10))
    site.link("Latency/search", "LKK-2")
    # The 22nd: the checkout errors come back after the fix in 1.4, a regression; acknowledged in 5 min, resolved in 30.
    site.at(utc(10, 22, 10))
    site.alert("am-6", "Api5xx", "checkout")
    site.at(utc(10, 22, 10, 5))
    site.ack("am-6")
    site.at(utc(10, 22, 10, 30))
    site.alert("am-6", "Api5xx", "checkout", "resolved")
    # The 25th: a P1 that still fires, unacknowledged, when the report is read.
    site.at(utc(10, 25, 10))
    site.alert("am-7", "Queue", "mail")
    site.problems["Queue/mail"] = site.problem_of("am-7")
    # The 26th: a P1 acknowledged in 3 min, resolved in 2 h; its problem is merged into the mail queue's the next day.
    site.at(utc(10, 26, 10))
    site.alert("am-8", "Cache", "cart")
    site.problems["Cache/cart"] = site.problem_of("am-8")
    site.at(utc(10, 26, 10, 3))
    site.ack("am-8")
    site.at(utc(10, 26, 12))
    site.alert("am-8", "Cache", "cart", "resolved")
    site.at(utc(10, 27, 10))
    site.post(f"/api/v1/problems/{site.problems['Cache/cart']}/merge", {"into": site.problems["Queue/mail"]}, OPERATE)
    site.at(utc(10, 28, 9))
    site.release("1.5", ["LKK-2"])
    # Friday the 30th: a portal ticket of low impact and urgency (P5: 80 working hours, no response target).
    site.at(utc(10, 30, 9))
    site.ticket("P-3", "portal", "billing", impact="low", urgency="low")
    # November 1st, 00:30 MSK (still October in UTC): not October's.
    site.at(utc(10, 31, 21, 30))
    site.alert("am-3", "Latency", "search")
    site.at(REPORT_NOW - timedelta(hours=1))
    return site
