"""The response clock: due on the policy's calendar, stopped by an acknowledgement, breached once.

Through real ingest, the acknowledge use case and the worker, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from bridge import metrics
from bridge.errors import Conflict
from bridge.problems.actions import acknowledge_incident
from bridge.storage.store import Store
from bridge.worker import run_once
from tests.conftest import ingest
from tests.integration.test_sla_clock import FRIDAY_1730, MOSCOW, am, only, zabbix


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_p2_response_due_counts_business_time_only(store: Store, example_rules):
    """30 business minutes from Friday 17:50 Moscow: 10 on Friday, 20 on Monday morning."""
    ingest(store, example_rules, "zabbix", zabbix(), FRIDAY_1730 + timedelta(minutes=20))
    incident = only(store)
    assert incident.priority == "P2"
    assert incident.response_due == datetime(2026, 11, 30, 9, 20, tzinfo=MOSCOW)
    assert (incident.acknowledged_at, incident.response_breached) == (None, False)


def test_p1_response_runs_round_the_clock(store: Store, example_rules):
    start = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)  # a Saturday night
    ingest(store, example_rules, "alertmanager", am("firing", start - timedelta(minutes=1)), start)
    assert only(store).response_due == start + timedelta(minutes=15)


def test_acknowledging_stops_the_clock_so_the_worker_marks_nothing(store: Store, example_rules):
    ingest(store, example_rules, "zabbix", zabbix(), FRIDAY_1730)
    incident = only(store)
    before = sample("bridge_incident_response_seconds_count", priority="P2")
    acked = acknowledge_incident(store, incident.stored_id, "Ann", "on it", FRIDAY_1730 + timedelta(minutes=10))
    assert (acked.acknowledged_by, acked.acknowledged_at) == ("Ann", FRIDAY_1730 + timedelta(minutes=10))
    assert sample("bridge_incident_response_seconds_count", priority="P2") == before + 1
    run_once(store, incident.response_due + timedelta(hours=1))
    assert only(store).response_breached is False
    assert [(e["kind"], e["actor"], e["detail"]) for e in store.incident_history(incident.stored_id)] == [
        ("acknowledged", "Ann", f"incident {incident.id} acknowledged: on it")
    ]
    [event] = [e for e in store.problem_history(incident.problem_id) if e["kind"] == "acknowledged"]
    assert event["actor"] == "Ann"


def test_worker_marks_a_response_breach_once_and_counts_it(store: Store, example_rules):
    ingest(store, example_rules, "zabbix", zabbix(), FRIDAY_1730)
    due = only(store).response_due
    before = sample("bridge_response_breaches_total", priority="P2")
    run_once(store, due - timedelta(seconds=1))
    assert only(store).response_breached is False
    run_once(store, due + timedelta(seconds=1))
    breached = only(store)
    assert (breached.response_breached, breached.response_breached_at) == (True, due)
    run_once(store, due + timedelta(hours=2))
    assert sample("bridge_response_breaches_total", priority="P2") == before + 1, "once per incident"


def test_a_late_acknowledgement_records_the_breach_the_worker_had_not_seen(store: Store, example_rules):
    ingest(store, example_rules, "zabbix", zabbix(), FRIDAY_1730)
    due = only(store).response_due
    before = sample("bridge_response_breaches_total", priority="P2")
    acked = acknowledge_incident(store, only(store).stored_id, "Bob", None, due + timedelta(minutes=5))
    assert (acked.response_breached, acked.response_breached_at) == (True, due)
    assert sample("bridge_response_breaches_total", priority="P2") == before + 1
    assert store.mark_response_breaches(due + timedelta(hours=1)) == []


def test_a_second_acknowledgement_is_refused_naming_who_did(store: Store, example_rules):
    ingest(store, example_rules, "zabbix", zabbix(), FRIDAY_1730)
    incident_id = only(store).stored_id
    acknowledge_incident(store, incident_id, "Ann", None, FRIDAY_1730)
    with pytest.raises(Conflict, match="already acknowledged by Ann"):
        acknowledge_incident(store, incident_id, "Bob", None, FRIDAY_1730)


def test_two_people_acknowledging_at_once_leave_one_acknowledgement(database_url: str, example_rules):
    setup = Store.from_url(database_url)
    ingest(setup, example_rules, "zabbix", zabbix(), FRIDAY_1730)
    incident_id = only(setup).stored_id
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def ack(name: str) -> None:
        store = Store.from_url(database_url)
        try:
            start.wait()
            acknowledge_incident(store, incident_id, name, None, FRIDAY_1730)
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")
        finally:
            store.engine.dispose()

    threads = [threading.Thread(target=ack, args=(name,)) for name in ("Ann", "Bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    assert only(setup).acknowledged_by in ("Ann", "Bob")
    assert len(setup.incident_history(incident_id)) == 1
    setup.engine.dispose()


def test_overview_lists_unacknowledged_incidents_soonest_due_first(store: Store, example_rules):
    ingest(store, example_rules, "zabbix", zabbix(event_id="1"), FRIDAY_1730)
    ingest(store, example_rules, "zabbix", zabbix(event_id="2"), FRIDAY_1730 - timedelta(minutes=20))
    first, second = store.nearest_response(10)
    assert first.response_due < second.response_due
    acknowledge_incident(store, first.stored_id, "Ann", None, FRIDAY_1730)
    assert [i.id for i in store.nearest_response(10)] == [second.id]


def zabbix_update(action: str, user: str = "Ivan Petrov") -> bytes:
    body = json.loads(zabbix(update="1"))
    return json.dumps(dict(body, event_update_action=action, event_update_user=user)).encode()


@pytest.mark.parametrize(
    "action, acknowledged",
    [
        ("acknowledged", True),
        ("acknowledged, commented", True),
        ("commented and acknowledged", True),
        ("unacknowledged", False),
        ("commented", False),
        ("{EVENT.UPDATE.ACTION}", False),
    ],
)
def test_an_acknowledgement_in_zabbix_stops_the_response_clock(store: Store, example_rules, action, acknowledged):
    ingest(store, example_rules, "zabbix", zabbix(), FRIDAY_1730)
    ingest(store, example_rules, "zabbix", zabbix_update(action), FRIDAY_1730 + timedelta(minutes=5))
    incident = only(store)
    if acknowledged:
        assert (incident.acknowledged_by, incident.acknowledged_at) == (
            "Ivan Petrov (in Zabbix)",
            FRIDAY_1730 + timedelta(minutes=5),
        )
        assert store.mark_response_breaches(incident.response_due + timedelta(hours=1)) == []
    else:
        assert incident.acknowledged_at is None


def test_a_late_acknowledgement_in_zabbix_records_the_breach_and_a_later_one_changes_nothing(
    store: Store, example_rules
):
    ingest(store, example_rules, "zabbix", zabbix(), FRIDAY_1730)
    due = only(store).response_due
    ingest(store, example_rules, "zabbix", zabbix_update("acknowledged"), due + timedelta(minutes=1))
    ingest(store, example_rules, "zabbix", zabbix_update("acknowledged", "Other"), due + timedelta(minutes=2))
    incident = only(store)
    assert (incident.acknowledged_by, incident.response_breached, incident.response_breached_at) == (
        "Ivan Petrov (in Zabbix)",
        True,
        due,
    )


def test_a_zabbix_acknowledgement_is_acknowledged_as_the_apis_and_counted_once(store: Store, example_rules):
    ingest(store, example_rules, "zabbix", zabbix(), FRIDAY_1730)
    incident = only(store)
    before = sample("bridge_incident_response_seconds_count", priority="P2")
    acked = ingest(store, example_rules, "zabbix", zabbix_update("acknowledged"), FRIDAY_1730 + timedelta(minutes=5))
    metrics.record_ingest("zabbix", acked)  # as the receiver does once the notification is committed
    assert [(a.incident_id, a.response_seconds, a.late) for a in acked.acknowledgements] == [
        (incident.stored_id, 300.0, False)
    ]
    assert sample("bridge_incident_response_seconds_count", priority="P2") == before + 1
    again = ingest(store, example_rules, "zabbix", zabbix_update("acknowledged"), FRIDAY_1730 + timedelta(minutes=6))
    metrics.record_ingest("zabbix", again)
    assert again.acknowledgements == ()
    assert sample("bridge_incident_response_seconds_count", priority="P2") == before + 1
    assert [(e["kind"], e["actor"]) for e in store.incident_history(incident.stored_id)] == [
        ("acknowledged", "Ivan Petrov (in Zabbix)")
    ]
    [event] = [e for e in store.problem_history(incident.problem_id) if e["kind"] == "acknowledged"]
    assert event["actor"] == "Ivan Petrov (in Zabbix)"
    with pytest.raises(Conflict, match=r"already acknowledged by Ivan Petrov \(in Zabbix\)"):
        acknowledge_incident(store, incident.stored_id, "Ann", None, FRIDAY_1730 + timedelta(minutes=7))
