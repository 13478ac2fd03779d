"""A problem's history grows with what changed, not with how often it was said, and is read a page at a time;
on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bridge.storage.engine import _alembic_config, make_engine, migrate
from bridge.storage.schema import incidents, metadata, problem_events, problem_tickets
from bridge.storage.store import Store
from tests.conftest import ingest, new_pg_database
from tests.integration import test_releases
from tests.integration.test_outcomes import Bridge
from tests.integration.test_problems import firing, rows
from tests.integration.test_release_health import ship
from tests.integration.test_releases import RELEASED, fire, problem_by_key
from tests.jira_memory import MemoryJira

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
# The release tests' world: problems with issues, ready to be released.
fakes = test_releases.fakes
world = test_releases.world


def a_problem(store: Store, rules) -> int:
    """A problem of two incidents; its history holds the "opened" event."""
    for n in (1, 2):
        ingest(store, rules, "alertmanager", firing(f"{n:016x}", alertname="Paged"), T0)
    [problem] = [p for p in store.list_problems(None, None, 10, None).items if p["problem_key"] == "Paged/lkk"]
    return int(problem["id"])


def add(store: Store, *events: dict) -> None:
    store.run(lambda conn: store.add_problem_events(conn, list(events)))


def history(store: Store, problem_id: int) -> list[tuple[str, str, int]]:
    return [(e["kind"], e["detail"], e["repeat_count"]) for e in store.problem_history(problem_id)]


def test_an_event_repeating_the_latest_one_counts_in_its_row(store: Store, example_rules):
    problem_id = a_problem(store, example_rules)
    said = dict(problem_id=problem_id, kind="ticket", detail="itsm: SR-1 already resolved")
    for n in range(100):
        add(store, dict(said, at=T0 + timedelta(seconds=n)))
    add(store, dict(said, at=T0 + timedelta(seconds=100)), dict(said, at=T0 + timedelta(seconds=101)))
    [opened, repeated] = store.problem_history(problem_id)
    assert opened["repeat_count"] == 1 and opened["last_at"] is None
    assert (repeated["repeat_count"], repeated["at"], repeated["last_at"]) == (
        102,
        T0,
        T0 + timedelta(seconds=101),
    )
    add(store, dict(said, actor="Ann", at=T0 + timedelta(minutes=5)))  # someone else said it: another entry
    add(store, dict(said, detail="itsm: SR-2 already resolved", at=T0 + timedelta(minutes=6)))
    add(store, dict(said, at=T0 + timedelta(minutes=7)))  # the same as before, but not the latest any more
    assert [count for _, _, count in history(store, problem_id)] == [1, 102, 1, 1, 1]


def test_incidents_where_the_fix_is_not_deployed_yet_are_one_entry_however_many(world):
    """The flood a fleet on an old version makes: every new incident joined the closed problem with a row."""
    store, example_rules, *_ = world
    rules = dataclasses.replace(example_rules, environment_label="env")
    alpha = problem_by_key(store, "Alpha/lkk")
    ship(world, [alpha["jira_key"]], ["staging"], rules)
    for n in range(100):
        fire(store, rules, "Alpha", 100 + n, RELEASED + timedelta(minutes=10 + n), env="prod")
    waiting = [e for e in store.problem_history(alpha["id"]) if e["kind"] == "not_deployed"]
    assert [(e["repeat_count"], e["last_at"]) for e in waiting] == [(100, RELEASED + timedelta(minutes=109))]
    assert waiting[0]["detail"].startswith("incidents in prod, where the fix in 2026.11.2 is not deployed yet")
    newest = max(i["id"] for i in rows(store, incidents) if i["problem_id"] == alpha["id"])
    assert waiting[0]["incident_id"] == newest, "the entry names the latest incident"


def test_a_hundred_identical_jira_status_webhooks_leave_one_history_entry(store: Store, example_rules):
    bridge = Bridge(store, example_rules, MemoryJira())
    problem_id, key = bridge.open_problem("A")
    bridge.jira.resolve(key, "Fixed")
    before = len(store.problem_history(problem_id))
    for _ in range(100):
        bridge.sync(key)
    after = store.problem_history(problem_id)
    assert len(after) == before + 1 and after[-1]["kind"] == "outcome"


def test_history_pages_read_every_entry_once_newest_first_even_at_equal_times(store: Store, example_rules):
    problem_id = a_problem(store, example_rules)
    # Ten entries share each instant; ids break the tie.
    add(
        store,
        *(
            dict(problem_id=problem_id, at=T0 + timedelta(seconds=n // 10), kind="note", detail=f"note {n}")
            for n in range(237)
        ),
    )
    expected = sorted(((e["at"], e["id"]) for e in store.problem_history(problem_id)), reverse=True)
    read: list[tuple[datetime, int]] = []
    after = None
    while True:
        page = store.history_page(problem_id, 25, after)
        assert len(page.items) <= 25
        read += [(e["at"], e["id"]) for e in page.items]
        if page.next_key is None:
            break
        after = page.next_key
    assert read == expected and len(read) == 238
    notes = store.history_page(problem_id, 500, None, "note").items
    assert len(notes) == 237 and {e["kind"] for e in notes} == {"note"}


def test_ticket_pages_read_each_reported_and_linked_ticket_once(store: Store, example_rules):
    problem_id = a_problem(store, example_rules)
    for n in range(3, 23):
        ingest(store, example_rules, "alertmanager", firing(f"{n:016x}", alertname="Paged"), T0)
    members = [i["id"] for i in rows(store, incidents) if i["problem_id"] == problem_id]
    with store.engine.begin() as conn:
        for n, incident_id in enumerate(members):  # reported tickets, all at T0
            conn.execute(
                incidents.update()
                .where(incidents.c.id == incident_id)
                .values(source="ticket", annotations={"ticket_system": "itsm", "ticket_id": f"SR-{n}"})
            )
        conn.execute(
            problem_tickets.insert(),
            [
                dict(
                    problem_id=problem_id,
                    system="itsm",
                    ticket_id=f"SR-{17 + n}",  # SR-17 to SR-21 are reported too: they count once
                    summary=f"ticket {n}",
                    state="open",
                    linked_at=T0 + timedelta(seconds=n % 3),
                )
                for n in range(25)
            ],
        )
    whole = {(t["ticket_id"], t["linked_by"]) for t in store.problem_tickets(problem_id)}
    assert len(whole) == 22 + 20
    read, after = [], None
    while True:
        page = store.ticket_page(problem_id, 7, after)
        read += [(t["ticket_id"], t["linked_by"], t["linked_at"]) for t in page.items]
        if page.next_key is None:
            break
        after = page.next_key
    assert len(read) == len(whole) and {(t, by) for t, by, _ in read} == whole
    assert [at for _, _, at in read] == sorted((at for _, _, at in read), reverse=True)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0020_goes_down_and_up_and_counts_each_past_event_once(backend: str, tmp_path: Path):
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'steps.db'}" if backend == "sqlite" else stack.enter_context(new_pg_database())
        migrate(url)
        alembic_command.downgrade(_alembic_config(url), "0019")
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO problem_events (problem_id, at, kind, detail) VALUES (7, :at, 'note', 'before')"),
                {"at": T0.replace(tzinfo=None) if backend == "sqlite" else T0},
            )
        engine.dispose()
        migrate(url)
        engine = make_engine(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            found = conn.execute(sa.select(problem_events)).mappings().all()
        engine.dispose()
    assert [d for d in diff if d[0] != "remove_table"] == []
    assert [(row["detail"], row["repeat_count"], row["last_at"]) for row in found] == [("before", 1, None)]
