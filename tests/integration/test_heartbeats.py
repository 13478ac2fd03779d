"""Heartbeats on SQLite and PostgreSQL: silence becomes one incident, pings resolve it, removed ones never fire."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bridge.domain.heartbeats import HeartbeatState
from bridge.domain.incidents import Outcome
from bridge.storage.schema import heartbeats, incident_events, incidents
from bridge.storage.store import Store
from bridge.watch.heartbeats import check_heartbeats, heartbeat_views
from bridge.watch.windows import make_window
from tests.conftest import example_rules_with, ingest, payload, payload_bytes

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
HEARTBEATS = [
    {
        "name": "prometheus-watchdog",
        "source": "alertmanager",
        "match": {"labels": {"alertname": "Watchdog"}},
        "interval": "5m",
        "grace": "1m",
        "impact": "high",
        "urgency": "high",
    },
    {"name": "zabbix-server", "source": "zabbix", "interval": "30m"},
    {"name": "nightly-export", "interval": "25h"},
]


RULES = example_rules_with(heartbeats=HEARTBEATS)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def watchdog_and(other: bool = True) -> bytes:
    """A notification carrying the Watchdog (and, with `other`, a real alert beside it)."""
    body = payload("alertmanager-0.25-two-firing.json")
    watchdog = dict(body["alerts"][0], fingerprint="00000000000000ww")
    watchdog["labels"] = {"alertname": "Watchdog", "severity": "none"}
    body["alerts"] = [watchdog, *body["alerts"][:1]] if other else [watchdog]
    return json.dumps(body).encode()


def heartbeat_incidents(store: Store) -> list[dict]:
    query = sa.select(incidents).where(incidents.c.source == "heartbeat").order_by(incidents.c.id)
    return store.read(lambda conn: [dict(row) for row in conn.execute(query).mappings()])


def states(store: Store) -> dict[str, str]:
    return store.read(lambda conn: dict(conn.execute(sa.select(heartbeats.c.name, heartbeats.c.state)).all()))


def test_configured_heartbeats_are_armed_waiting_by_the_first_pass(store: Store):
    check_heartbeats(store, RULES, T0)
    assert states(store) == {name: "waiting" for name in ("prometheus-watchdog", "zabbix-server", "nightly-export")}
    assert heartbeat_incidents(store) == []


def test_a_configured_heartbeat_that_never_hears_anything_expires_into_one_incident(store: Store):
    check_heartbeats(store, RULES, T0)
    check_heartbeats(store, RULES, T0 + minutes(6))
    assert heartbeat_incidents(store) == []
    changed = check_heartbeats(store, RULES, T0 + minutes(6) + timedelta(seconds=1))
    assert [t.name for t in changed] == ["prometheus-watchdog"]
    [incident] = heartbeat_incidents(store)
    assert (incident["dedup_key"], incident["state"], incident["priority"]) == (
        "heartbeat:prometheus-watchdog",
        "firing",
        "P1",
    ), "the heartbeat's own impact and urgency (high, high) over its route's"
    assert "never heard from alertmanager (matching alerts)" in incident["summary"]
    assert incident["labels"] == {"heartbeat": "prometheus-watchdog", "heartbeat_source": "alertmanager"}
    assert incident["sla_due"] is not None, "an ordinary incident: its SLA clock runs"
    for later in (10, 60, 600):
        check_heartbeats(store, RULES, T0 + minutes(later))
    assert len([i for i in heartbeat_incidents(store) if i["dedup_key"] == "heartbeat:prometheus-watchdog"]) == 1
    assert states(store)["zabbix-server"] == "expired"  # 30 minutes of silence since it was armed


def test_the_watchdog_alert_is_a_ping_not_an_incident_and_keeps_its_heartbeat_ok(store: Store):
    check_heartbeats(store, RULES, T0)
    result = ingest(store, RULES, "alertmanager", watchdog_and(), T0 + minutes(4))
    assert [r.outcome for r in result.results] == [Outcome.PING, Outcome.CREATED]
    assert result.incident_ids and all(
        incident["labels"]["alertname"] != "Watchdog"
        for incident in store.read(lambda conn: [dict(r) for r in conn.execute(sa.select(incidents)).mappings()])
    )
    check_heartbeats(store, RULES, T0 + minutes(9))
    assert states(store)["prometheus-watchdog"] == "ok"
    ingest(store, RULES, "alertmanager", watchdog_and(other=False), T0 + minutes(9))
    check_heartbeats(store, RULES, T0 + minutes(14))
    assert states(store)["prometheus-watchdog"] == "ok"
    assert [i["dedup_key"] for i in heartbeat_incidents(store)] == []


def test_a_watchdog_incident_from_before_its_heartbeat_is_resolved_by_the_first_ping(store: Store, example_rules):
    ingest(store, example_rules, "alertmanager", watchdog_and(other=False), T0)
    [before] = store.read(lambda conn: [dict(r) for r in conn.execute(sa.select(incidents)).mappings()])
    assert before["state"] == "firing" and before["labels"]["alertname"] == "Watchdog"
    result = ingest(store, RULES, "alertmanager", watchdog_and(other=False), T0 + minutes(1))
    assert [r.outcome for r in result.results] == [Outcome.PING]
    [after] = store.read(lambda conn: [dict(r) for r in conn.execute(sa.select(incidents)).mappings()])
    assert (after["id"], after["state"]) == (before["id"], "resolved")
    ingest(store, RULES, "alertmanager", watchdog_and(other=False), T0 + minutes(2))
    assert store.read(lambda conn: conn.execute(sa.select(sa.func.count()).select_from(incidents)).scalar_one()) == 1


def test_a_resolved_watchdog_is_no_ping_and_no_incident(store: Store):
    """Alertmanager resolves its Watchdog once Prometheus stops sending it: the chain is broken."""
    check_heartbeats(store, RULES, T0)
    body = json.loads(watchdog_and(other=False))
    body["status"] = body["alerts"][0]["status"] = "resolved"
    body["alerts"][0]["endsAt"] = "2026-11-23T19:03:00Z"
    result = ingest(store, RULES, "alertmanager", json.dumps(body).encode(), T0 + minutes(3))
    assert [r.outcome for r in result.results] == [Outcome.PING]
    check_heartbeats(store, RULES, T0 + minutes(4))
    assert states(store)["prometheus-watchdog"] == "waiting"
    assert store.read(lambda conn: conn.execute(sa.select(sa.func.count()).select_from(incidents)).scalar_one()) == 0


def test_a_ping_before_the_worker_armed_its_heartbeat_is_kept(store: Store):
    ingest(store, RULES, "alertmanager", watchdog_and(other=False), T0)
    check_heartbeats(store, RULES, T0 + minutes(1))
    assert states(store)["prometheus-watchdog"] == "ok"


def test_pings_resuming_resolve_the_heartbeat_incident(store: Store):
    check_heartbeats(store, RULES, T0)
    check_heartbeats(store, RULES, T0 + minutes(7))
    assert heartbeat_incidents(store)[0]["state"] == "firing"
    ingest(store, RULES, "alertmanager", watchdog_and(other=False), T0 + minutes(8))
    check_heartbeats(store, RULES, T0 + minutes(8) + timedelta(seconds=5))
    [incident] = [i for i in heartbeat_incidents(store) if i["dedup_key"] == "heartbeat:prometheus-watchdog"]
    assert incident["state"] == "resolved"
    assert states(store)["prometheus-watchdog"] == "ok"
    check_heartbeats(store, RULES, T0 + minutes(15) + timedelta(seconds=6))  # silent again past interval + grace
    [incident] = [i for i in heartbeat_incidents(store) if i["dedup_key"] == "heartbeat:prometheus-watchdog"]
    assert (incident["state"], incident["reopen_count"]) == ("firing", 1), "the same incident, reopened"


def test_any_notification_of_its_source_pings_a_source_heartbeat(store: Store):
    check_heartbeats(store, RULES, T0)
    ingest(store, RULES, "zabbix", payload_bytes("zabbix-6.0.14-problem.json"), T0 + minutes(5))
    check_heartbeats(store, RULES, T0 + minutes(31))
    assert states(store)["zabbix-server"] == "ok"
    check_heartbeats(store, RULES, T0 + minutes(36))
    assert states(store)["zabbix-server"] == "expired"
    [incident] = [i for i in heartbeat_incidents(store) if i["dedup_key"] == "heartbeat:zabbix-server"]
    assert incident["summary"] == "Heartbeat zabbix-server: nothing heard from zabbix since 2026-11-23 19:05:00 UTC"


def test_a_removed_heartbeat_never_fires_and_resolves_its_incident(store: Store):
    check_heartbeats(store, RULES, T0)
    check_heartbeats(store, RULES, T0 + minutes(7))
    fewer = example_rules_with(heartbeats=[HEARTBEATS[2]])
    check_heartbeats(store, fewer, T0 + minutes(8))
    assert states(store) == {
        "prometheus-watchdog": "disabled",
        "zabbix-server": "disabled",
        "nightly-export": "waiting",
    }
    assert [i["state"] for i in heartbeat_incidents(store)] == ["resolved"]
    check_heartbeats(store, fewer, T0 + timedelta(days=30))
    assert [i["dedup_key"] for i in heartbeat_incidents(store) if i["state"] == "firing"] == [
        "heartbeat:nightly-export"
    ]
    views = {view.name: view for view in heartbeat_views(store, fewer)}
    assert (
        views["prometheus-watchdog"].state is HeartbeatState.DISABLED and views["prometheus-watchdog"].heartbeat is None
    )


def test_the_ping_endpoint_use_case_keeps_a_pinged_heartbeat_ok(store: Store):
    from bridge.watch.heartbeats import ping_heartbeat

    check_heartbeats(store, RULES, T0)
    record = ping_heartbeat(store, RULES, "nightly-export", T0 + timedelta(hours=24))
    assert record.last_seen == T0 + timedelta(hours=24)
    check_heartbeats(store, RULES, T0 + timedelta(hours=26))
    assert states(store)["nightly-export"] == "ok"


def test_a_heartbeat_incident_under_a_maintenance_window_is_held(store: Store):
    make_window(
        store,
        name="zabbix upgrade",
        reason="upgrading the Zabbix server",
        match={"source": "heartbeat", "labels": {"heartbeat": "zabbix-server"}},
        starts_at=T0,
        ends_at=T0 + timedelta(hours=2),
        now=T0,
        longest=timedelta(days=7),
        actor="ann",
    )
    check_heartbeats(store, RULES, T0)
    check_heartbeats(store, RULES, T0 + minutes(31))
    [incident] = [i for i in heartbeat_incidents(store) if i["dedup_key"] == "heartbeat:zabbix-server"]
    assert incident["held"] and incident["hold_window"]["name"] == "zabbix upgrade" and incident["sla_due"] is None
    history = store.read(
        lambda conn: [
            r.detail
            for r in conn.execute(sa.select(incident_events).where(incident_events.c.incident_id == incident["id"]))
        ]
    )
    assert history and "held by maintenance window" in history[0]


def test_two_workers_checking_at_once_raise_exactly_one_incident(database_url: str):
    """Each worker with its own engine, as two bridges on one database: one wins each change."""
    stores = [Store.from_url(database_url) for _ in range(2)]
    try:
        check_heartbeats(stores[0], RULES, T0)
        start = threading.Barrier(2)
        won: list[list[str]] = [[], []]
        errors: list[BaseException] = []

        def check(index: int) -> None:
            try:
                start.wait()
                won[index] = [t.name for t in check_heartbeats(stores[index], RULES, T0 + minutes(31))]
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=check, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sorted(won[0] + won[1]) == ["prometheus-watchdog", "zabbix-server"], "each change made once"
        keys = sorted(i["dedup_key"] for i in heartbeat_incidents(stores[0]))
        assert keys == ["heartbeat:prometheus-watchdog", "heartbeat:zabbix-server"]
    finally:
        for store in stores:
            store.engine.dispose()
