"""The ticket sync's storage and idempotence on SQLite and PostgreSQL: one lease holder, each text told once,
and the same readings applied by two workers at once, or again after a restart, writing nothing twice."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from bridge.domain.ticket_sync import TicketSnapshot, TicketState
from bridge.rules.load import parse_rules
from bridge.storage.read_models import IncidentFilter
from bridge.storage.schema import incidents, problem_events, synced_tickets
from bridge.storage.store import Store
from bridge.tickets.pull import rt_snapshot
from bridge.tickets.sync import apply_ticket
from tests.conftest import ROOT, run_concurrently

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def rules() -> Any:
    raw = yaml.safe_load((ROOT / "rules.yaml").read_text())
    raw["ticket_systems"] = {
        "rt": {
            "kind": "rt",
            "url": "http://rt.test",
            "token_env": "RT_TOKEN",
            "sync": {"interval": "1m", "queues": ["General"], "problem_field": "Problem"},
        }
    }
    return parse_rules(raw, environ={"RT_TOKEN": "t"})


def reading(ticket_id: str, status: str = "new", version: str = "2026-12-07T08:59:00Z") -> TicketSnapshot:
    state = TicketState.DONE if status == "resolved" else TicketState.ACTIVE
    labels = {"queue": "General", "status": status, "priority": "0"}
    return TicketSnapshot("rt", ticket_id, status, state, f"ticket {ticket_id}", labels, None, "", version)


def count(store: Store, table: sa.Table, *where: Any) -> int:
    return store.read(lambda conn: conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar())


def test_one_worker_at_a_time_holds_a_systems_sync(store):
    store.sync_state("rt", NOW)
    assert store.take_sync_lease("rt", "a", NOW, NOW + timedelta(minutes=5))
    assert not store.take_sync_lease("rt", "b", NOW, NOW + timedelta(minutes=5))
    assert store.renew_sync_lease("rt", "a", NOW, NOW + timedelta(minutes=10))
    later = NOW + timedelta(minutes=11)  # a's worker died: its lease runs out
    assert store.take_sync_lease("rt", "b", later, later + timedelta(minutes=5))
    assert not store.renew_sync_lease("rt", "a", later, later + timedelta(minutes=5))
    store.finish_sync("rt", "a", later, NOW, later, 9)  # too late: b holds it, nothing of a's is kept
    state = store.sync_state("rt", later)
    assert (state["lease_owner"], state["watermark"], state["tickets_read"]) == ("b", None, 0)
    store.finish_sync("rt", "b", later, NOW, later + timedelta(minutes=1), 3)
    state = store.sync_state("rt", later)
    assert (state["lease_owner"], state["watermark"], state["tickets_read"]) == (None, NOW, 3)


def test_many_workers_asking_at_once_get_one_lease(database_url):
    Store.from_url(database_url).sync_state("rt", NOW)
    held: list[int] = []

    def ask(n: int) -> Callable[[Store], None]:
        def take(store: Store) -> None:
            if store.take_sync_lease("rt", f"w{n}", NOW, NOW + timedelta(minutes=5)):
                held.append(n)

        return take

    run_concurrently(database_url, [ask(n) for n in range(6)])
    assert len(held) == 1


def test_a_text_is_told_to_a_ticket_once_however_many_ask_at_once(database_url):
    told: list[bool] = []

    def claim(store: Store) -> None:
        told.append(store.run(lambda conn: store.claim_notice(conn, "rt", "7", "d1", "workaround", 1, NOW)))

    run_concurrently(database_url, [claim] * 6)
    assert sorted(told) == [False] * 5 + [True]
    store = Store.from_url(database_url)
    assert store.run(lambda conn: store.claim_notice(conn, "rt", "7", "d2", "workaround", 1, NOW))  # a new text
    assert store.run(lambda conn: store.claim_notice(conn, "rt", "8", "d1", "workaround", 1, NOW))  # another ticket
    store.engine.dispose()


def test_two_workers_applying_the_same_readings_at_once_create_nothing_twice(database_url, rules):
    readings = [reading(str(n)) for n in range(1, 21)]

    def sync(store: Store) -> None:
        for one in readings:
            apply_ticket(store, rules, rules.ticket_systems["rt"], one, NOW)

    run_concurrently(database_url, [sync, sync])
    store = Store.from_url(database_url)
    keys = store.read(lambda conn: list(conn.execute(sa.select(incidents.c.dedup_key)).scalars()))
    assert sorted(keys) == sorted(f"ticket:rt:{n}" for n in range(1, 21))
    assert count(store, synced_tickets) == 20
    store.engine.dispose()


def test_readings_applied_again_after_a_restart_change_nothing(store, rules):
    system = rules.ticket_systems["rt"]
    first = [apply_ticket(store, rules, system, reading(str(n)), NOW) for n in (1, 2)]
    resolved = apply_ticket(store, rules, system, reading("2", "resolved", "2026-12-07T08:59:30Z"), NOW)
    events = count(store, problem_events) + count(store, incidents)
    again = [apply_ticket(store, rules, system, reading(str(n)), NOW) for n in (1,)]
    again.append(apply_ticket(store, rules, system, reading("2", "resolved", "2026-12-07T08:59:30Z"), NOW))
    assert [a.step.value for a in first] == ["create", "create"] and resolved.step.value == "close"
    assert [(a.step.value, a.note) for a in again] == [("nothing", "unchanged"), ("nothing", "unchanged")]
    assert count(store, problem_events) + count(store, incidents) == events
    # The sync's own record lost (a restored database): the incidents still stand for the tickets.
    store.run(lambda conn: conn.execute(synced_tickets.delete()))
    replayed = [apply_ticket(store, rules, system, reading("1"), NOW)]
    replayed.append(apply_ticket(store, rules, system, reading("2", "resolved", "2026-12-07T08:59:30Z"), NOW))
    assert [a.step.value for a in replayed] == ["update", "nothing"]
    assert count(store, incidents) == 2
    assert count(store, incidents, incidents.c.state == "closed") == 1


def test_a_hostile_ticket_becomes_its_incident_within_bounds(store, rules):
    system = rules.ticket_systems["rt"]
    item = {
        "id": "66",
        "Subject": "<script>alert(1)</script>\x00" + "x" * 5000,
        "Status": "new\x00",
        "LastUpdated": "2026-12-07T08:59:00Z",
        "Queue": {"id": "1", "Name": "General"},
        "CustomFields": [
            {"name": "Problem", "values": ["'; DROP TABLE problems; --\x00"]},
            *({"name": f"F{n}", "values": ["y\x00" * 10_000]} for n in range(300)),
        ],
    }
    applied = apply_ticket(
        store, rules, system, rt_snapshot(system, item, "http://rt.test/Ticket/Display.html?id=66"), NOW
    )
    assert applied.step.value == "create"
    [incident] = store.list_incidents(IncidentFilter(source="ticket"), 10, None).items
    assert incident.summary.startswith("<script>alert(1)</script>\ufffd") and len(incident.summary) == 2000
    assert len(incident.labels) <= 65 and incident.problem_id is None
    assert count(store, synced_tickets) == 1
