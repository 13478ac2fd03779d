"""SLA clocks through real ingest and the worker, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bridge.domain.incidents import IncidentState
from bridge.storage.read_models import IncidentFilter
from bridge.storage.store import Store
from bridge.worker import run_once
from tests.conftest import ingest, payload

MOSCOW = ZoneInfo("Europe/Moscow")
FRIDAY_1730 = datetime(2026, 11, 27, 17, 30, tzinfo=MOSCOW)


def zabbix(
    event_id: str = "1", severity: str = "High", nseverity: str = "4", update: str = "0", value: str = "1"
) -> bytes:
    return json.dumps(
        dict(
            payload("zabbix-6.0.14-problem.json"),
            event_id=event_id,
            severity=severity,
            nseverity=nseverity,
            event_update_status=update,
            event_value=value,
        )
    ).encode()


def am(status: str, starts_at: datetime, ends_at: datetime | None = None) -> bytes:
    body = payload("alertmanager-0.25-two-firing.json")
    alert = dict(
        body["alerts"][0],
        status=status,
        startsAt=starts_at.isoformat(),
        endsAt=(ends_at or datetime(1, 1, 1, tzinfo=UTC)).isoformat(),
    )
    body["alerts"] = [alert]
    return json.dumps(body).encode()


def only(store: Store):
    [incident] = store.list_incidents(IncidentFilter(), 10, None).items
    return incident


def test_p2_opened_friday_1730_moscow_is_due_monday_1230(store: Store, example_rules):
    ingest(store, example_rules, "zabbix", zabbix(), FRIDAY_1730)
    incident = only(store)
    assert incident.priority == "P2"
    assert incident.sla_due == datetime(2026, 11, 30, 12, 30, tzinfo=MOSCOW)


def test_resolved_time_stops_the_clock_and_reopen_restarts_it_where_it_stopped(store: Store, example_rules):
    start = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)  # a Saturday night: P1 runs 24x7
    episode = start - timedelta(minutes=1)
    ingest(store, example_rules, "alertmanager", am("firing", episode), start)
    assert only(store).sla_due == start + timedelta(hours=4)
    resolved_at = start + timedelta(hours=1)
    ingest(store, example_rules, "alertmanager", am("resolved", episode, resolved_at), resolved_at)
    paused = only(store)
    assert (paused.sla_due, paused.sla_elapsed_seconds, paused.sla_running_since) == (None, 3600.0, None)
    reopened_at = resolved_at + timedelta(minutes=20)
    ingest(store, example_rules, "alertmanager", am("firing", reopened_at - timedelta(seconds=5)), reopened_at)
    again = only(store)
    assert again.state is IncidentState.FIRING and again.reopen_count == 1
    assert again.sla_due == reopened_at + timedelta(hours=3), "3 h were left when it stopped"


def test_worker_marks_breaches_when_they_happen_once(store: Store, example_rules):
    ingest(store, example_rules, "zabbix", zabbix(), FRIDAY_1730)
    due = only(store).sla_due
    run_once(store, due - timedelta(seconds=1))
    assert only(store).sla_breached is False
    assert store.mark_sla_breaches(due + timedelta(seconds=1)) != []
    breached = only(store)
    assert (breached.sla_breached, breached.sla_breached_at) == (True, due)
    assert store.mark_sla_breaches(due + timedelta(hours=1)) == [], "once per incident"


def test_resolving_after_the_due_time_records_the_breach(store: Store, example_rules):
    ingest(store, example_rules, "zabbix", zabbix(), FRIDAY_1730)
    due = only(store).sla_due
    ingest(store, example_rules, "zabbix", zabbix(value="0"), due + timedelta(minutes=5))
    incident = only(store)
    assert (incident.state, incident.sla_breached, incident.sla_breached_at) == (IncidentState.RESOLVED, True, due)


def test_severity_change_reprioritises_and_recomputes_the_due_time(store: Store, example_rules):
    ingest(store, example_rules, "zabbix", zabbix(), FRIDAY_1730)
    ingest(
        store,
        example_rules,
        "zabbix",
        zabbix(severity="Disaster", nseverity="5", update="1"),
        FRIDAY_1730 + timedelta(minutes=10),
    )
    incident = only(store)
    assert incident.priority == "P1"
    assert incident.sla_due == FRIDAY_1730 + timedelta(hours=4), "24x7 from when it opened"
