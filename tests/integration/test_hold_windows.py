"""Hold windows on SQLite and PostgreSQL: planned work is recorded, holds its side effects and clocks, and is
settled once when its window ends."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from bridge.errors import BadPayload, Conflict
from bridge.storage.schema import hold_windows, incident_events, incidents, outbox, problems
from bridge.storage.store import Store
from bridge.watch.windows import end_window, make_window, release_due, sync_recurring
from bridge.worker import OutboxRunner, run_once
from jira_link.client import JiraClient
from jira_link.linker import LinkOptions
from tests.conftest import example_rules_with, ingest, payload
from tests.fakes import FakeJira
from tests.receiver import Receiver

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
CHAT = {"CHAT_SECRET": "s3cret"}  # the notify target's secret_env
LKK = {"source": "alertmanager", "labels": {"service": "lkk"}}
NOTIFY = [
    {
        "name": "ops-chat",
        "url": "http://127.0.0.1:9/hook",
        "secret_env": "CHAT_SECRET",
        "events": ["incident.opened", "incident.closed", "problem.opened"],
    }
]


RULES = example_rules_with(CHAT, notify=NOTIFY)


def alert(fingerprint: str, *, resolved: bool = False, service: str = "lkk") -> bytes:
    body = payload("alertmanager-0.25-two-firing.json")
    one = dict(body["alerts"][0], fingerprint=fingerprint, status="resolved" if resolved else "firing")
    one["labels"] = dict(one["labels"], instance=fingerprint, service=service)
    if resolved:
        one["endsAt"] = "2026-11-23T19:20:00Z"
    body["alerts"], body["status"] = [one], one["status"]
    return json.dumps(body).encode()


def window(store: Store, starts: datetime = T0, hours: float = 2, match: dict = LKK, **more: Any) -> int:
    made = make_window(
        store,
        name=more.get("name", "db migration"),
        reason="migrating the portal's database",
        match=match,
        starts_at=starts,
        ends_at=starts + timedelta(hours=hours),
        now=more.get("now", starts),
        longest=timedelta(days=7),
        actor="ann",
    )
    return int(made["id"])


def rows(store: Store, table: sa.Table) -> list[dict]:
    return store.read(
        lambda conn: [dict(row) for row in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]
    )


def outbox_kinds(store: Store) -> list[tuple[str, str | None]]:
    return [(job["kind"], job["payload"].get("event")) for job in rows(store, outbox)]


def test_alerts_inside_a_window_make_incidents_with_no_problem_no_outbox_row_and_no_clock(store: Store):
    window(store)
    for n in range(1, 4):
        ingest(store, RULES, "alertmanager", alert(f"{n:016x}"), T0 + timedelta(minutes=n))
    held = rows(store, incidents)
    assert len(held) == 3
    assert all(i["held"] and i["hold_window"] == {"id": 1, "kind": "maintenance", "name": "db migration"} for i in held)
    assert [(i["problem_id"], i["sla_due"], i["sla_running_since"], i["response_due"]) for i in held] == [
        (None, None, None, None)
    ] * 3
    assert rows(store, problems) == [] and rows(store, outbox) == []
    run_once(store, T0 + timedelta(hours=1), rules=RULES)  # the worker finds no breach to mark meanwhile
    assert not any(i["sla_breached"] or i["response_breached"] for i in rows(store, incidents))
    history = [event["detail"] for event in rows(store, incident_events)]
    assert (
        history == ["held by maintenance window #1 'db migration': no problem, side effect or clock until it ends"] * 3
    )


def test_an_alert_outside_the_window_is_handled_as_ever(store: Store):
    window(store, match={"source": "alertmanager", "labels": {"service": "billing"}})
    ingest(store, RULES, "alertmanager", alert("0000000000000001"), T0 + timedelta(minutes=1))
    ingest(store, RULES, "alertmanager", alert("0000000000000002"), T0 + timedelta(minutes=2))
    assert not any(i["held"] for i in rows(store, incidents))
    assert len(rows(store, problems)) == 1
    assert ("webhook.deliver", "incident.opened") in outbox_kinds(store)


def test_ending_the_window_releases_what_still_fires_once_and_closes_the_resolved_quietly(store: Store):
    window_id = window(store)
    for n in range(1, 4):
        ingest(store, RULES, "alertmanager", alert(f"{n:016x}"), T0 + timedelta(minutes=n))
    ingest(store, RULES, "alertmanager", alert(f"{3:016x}", resolved=True), T0 + timedelta(minutes=20))
    ended_at = T0 + timedelta(minutes=30)
    released = end_window(store, RULES, window_id, ended_at, "bob")
    assert (released.ordinary, released.closed) == (2, 1)
    first, second, third = rows(store, incidents)
    for firing in (first, second):
        assert not firing["held"] and firing["state"] == "firing" and firing["problem_id"] is not None
        assert firing["clocks_from"] == ended_at and firing["sla_running_since"] == ended_at
        assert firing["sla_due"] == ended_at + timedelta(hours=4)  # P1: 4 hours on 24x7
        assert firing["response_due"] == ended_at + timedelta(minutes=15)
        assert firing["hold_window"]["name"] == "db migration", "the page and the API still say which window held it"
    assert (third["state"], third["close_reason"], third["problem_id"]) == ("closed", "resolved_in_window", None)
    assert sorted(outbox_kinds(store)) == [
        ("jira.ensure_issue", None),
        ("webhook.deliver", "incident.opened"),
        ("webhook.deliver", "incident.opened"),
        ("webhook.deliver", "problem.opened"),
    ], "one Jira create, one problem.opened, one incident.opened per firing incident, nothing for the quiet close"
    [stored] = rows(store, hold_windows)
    assert (stored["ended_at"], stored["ended_by"], stored["released_at"]) == (ended_at, "bob", ended_at)
    release_due(store, RULES, ended_at + timedelta(minutes=1))
    run_once(store, ended_at + timedelta(hours=1), rules=RULES)
    assert len(rows(store, outbox)) == 4, "released once"
    details = [e["detail"] for e in rows(store, incident_events) if e["kind"] == "released"]
    assert sorted(details) == [
        "closed quietly: resolved inside maintenance window #1 'db migration'",
        "released at the end of maintenance window #1 'db migration': handled as opened at 2026-11-23 19:30:00 UTC",
        "released at the end of maintenance window #1 'db migration': handled as opened at 2026-11-23 19:30:00 UTC",
    ]
    with pytest.raises(Conflict):
        end_window(store, RULES, window_id, ended_at + timedelta(minutes=2), "carol")


def test_the_worker_releases_a_window_when_its_time_is_up(store: Store):
    window(store, hours=1)
    ingest(store, RULES, "alertmanager", alert("0000000000000001"), T0 + timedelta(minutes=1))
    run_once(store, T0 + timedelta(minutes=59), rules=RULES)
    assert rows(store, incidents)[0]["held"]
    run_once(store, T0 + timedelta(hours=1, seconds=5), rules=RULES)
    [incident] = rows(store, incidents)
    assert not incident["held"] and incident["clocks_from"] == T0 + timedelta(hours=1)
    assert outbox_kinds(store) == [("webhook.deliver", "incident.opened")], "one incident waits for its problem"
    ingest(store, RULES, "alertmanager", alert("0000000000000002"), T0 + timedelta(hours=1, minutes=1))
    assert len(rows(store, problems)) == 1, "after the window, the released incident counts towards its problem"


def test_an_incident_held_while_its_window_was_being_released_is_released_after_it(store: Store):
    """A webhook that read the window before its end committed writes after the release: the worker's next
    pass releases it too (as the webhook's transaction here, held by hand after the release)."""
    window_id = window(store, hours=1)
    ingest(store, RULES, "alertmanager", alert("0000000000000001"), T0 + timedelta(minutes=1))
    run_once(store, T0 + timedelta(hours=1, seconds=1), rules=RULES)
    ingest(store, RULES, "alertmanager", alert("0000000000000002", service="web"), T0 + timedelta(hours=1, seconds=2))
    late = rows(store, incidents)[-1]["id"]
    store.run(
        lambda conn: conn.execute(
            incidents.update()
            .where(incidents.c.id == late)
            .values(held=True, hold_window_id=window_id, sla_due=None, sla_running_since=None, response_due=None)
        )
    )
    run_once(store, T0 + timedelta(hours=1, seconds=10), rules=RULES)
    assert not any(i["held"] for i in rows(store, incidents))
    assert rows(store, incidents)[-1]["clocks_from"] == T0 + timedelta(hours=1, seconds=2), "never before it opened"


def test_a_held_incident_resolved_is_not_auto_closed_before_its_window_ends(store: Store):
    window(store, hours=48)
    ingest(store, RULES, "alertmanager", alert("0000000000000001"), T0 + timedelta(minutes=1))
    ingest(store, RULES, "alertmanager", alert("0000000000000001", resolved=True), T0 + timedelta(minutes=20))
    run_once(store, T0 + timedelta(hours=30), rules=RULES)  # past auto_close_after (24h)
    [incident] = rows(store, incidents)
    assert (incident["state"], incident["held"]) == ("resolved", True)
    assert rows(store, outbox) == [], "no incident.closed while held"


def test_a_window_made_a_moment_ago_through_another_engine_holds(database_url: str):
    one, two = Store.from_url(database_url), Store.from_url(database_url)
    try:
        window(one, starts=T0)
        ingest(two, RULES, "alertmanager", alert("0000000000000001"), T0 + timedelta(seconds=1))
        assert rows(two, incidents)[0]["held"]
    finally:
        one.engine.dispose()
        two.engine.dispose()


def test_two_processes_ending_one_window_at_once_release_it_once(database_url: str):
    setup = Store.from_url(database_url)
    window_id = window(setup)
    for n in range(1, 4):
        ingest(setup, RULES, "alertmanager", alert(f"{n:016x}"), T0 + timedelta(minutes=n))
    setup.engine.dispose()
    stores = [Store.from_url(database_url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def end(store: Store) -> None:
        start.wait()
        try:
            released = end_window(store, RULES, window_id, T0 + timedelta(minutes=30), "ops")
            outcomes.append(f"released {released.ordinary}")
        except Conflict:
            outcomes.append("conflict")

    def worker(store: Store) -> None:
        start.wait()
        done = release_due(store, RULES, T0 + timedelta(minutes=31))
        outcomes.append(f"worker {sum(r.ordinary for r in done)}")

    threads = [threading.Thread(target=end, args=(s,)) for s in stores[:2]]
    threads += [threading.Thread(target=worker, args=(s,)) for s in stores[2:]]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ordinary = sum(int(o.split()[-1]) for o in outcomes if o != "conflict")
        assert ordinary == 3, outcomes
        assert sorted(kind for kind, _ in outbox_kinds(stores[0])).count("jira.ensure_issue") == 1
        assert outbox_kinds(stores[0]).count(("webhook.deliver", "incident.opened")) == 3
        assert outbox_kinds(stores[0]).count(("webhook.deliver", "problem.opened")) == 1
    finally:
        for store in stores:
            store.engine.dispose()


BERLIN_NIGHTS = example_rules_with(
    CHAT,
    maintenance=[
        {
            "name": "sunday-night",
            "every": "sun 02:00-04:00",
            "timezone": "Europe/Berlin",
            "match": {"source": "alertmanager", "labels": {"service": "lkk"}},
            "reason": "weekly database maintenance",
        }
    ],
)


def test_a_recurring_window_in_berlin_across_the_october_change_holds_its_three_hours(store: Store):
    """2026-10-25: local 02:00-04:00 runs from 00:00 to 03:00 UTC (the clocks go back at 01:00 UTC)."""
    sync_recurring(store, BERLIN_NIGHTS, datetime(2026, 10, 24, 12, tzinfo=UTC))
    [occurrence] = rows(store, hold_windows)
    assert (occurrence["starts_at"], occurrence["ends_at"], occurrence["rule"]) == (
        datetime(2026, 10, 25, 0, 0, tzinfo=UTC),
        datetime(2026, 10, 25, 3, 0, tzinfo=UTC),
        "sunday-night",
    )
    assert sync_recurring(store, BERLIN_NIGHTS, datetime(2026, 10, 24, 13, tzinfo=UTC)) == 0, "stored once"
    ingest(store, BERLIN_NIGHTS, "alertmanager", alert("0000000000000001"), datetime(2026, 10, 25, 2, 30, tzinfo=UTC))
    ingest(store, BERLIN_NIGHTS, "alertmanager", alert("0000000000000002"), datetime(2026, 10, 25, 3, 0, tzinfo=UTC))
    first, second = rows(store, incidents)
    assert first["held"], "03:30 CET, inside the window's second 02:00-03:00"
    assert not second["held"], "04:00 CET: the window has ended"
    run_once(store, datetime(2026, 10, 25, 3, 0, 5, tzinfo=UTC), rules=BERLIN_NIGHTS)
    assert not rows(store, incidents)[0]["held"]
    sync_recurring(store, BERLIN_NIGHTS, datetime(2026, 10, 25, 3, 0, 6, tzinfo=UTC))
    assert [(w["starts_at"], w["ends_at"]) for w in rows(store, hold_windows)][-1] == (
        datetime(2026, 11, 1, 1, 0, tzinfo=UTC),
        datetime(2026, 11, 1, 3, 0, tzinfo=UTC),
    )


def test_a_recurring_window_removed_from_the_rules_ends_and_its_next_occurrence_goes(store: Store):
    sync_recurring(store, BERLIN_NIGHTS, datetime(2026, 10, 24, 12, tzinfo=UTC))
    assert sync_recurring(store, RULES, datetime(2026, 10, 24, 13, tzinfo=UTC)) == 1
    assert rows(store, hold_windows) == []
    sync_recurring(store, BERLIN_NIGHTS, datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    sync_recurring(store, RULES, datetime(2026, 10, 25, 1, 0, tzinfo=UTC))
    [ended] = rows(store, hold_windows)
    assert (ended["ended_at"], ended["ended_by"]) == (datetime(2026, 10, 25, 1, 0, tzinfo=UTC), "rules.yaml")


@pytest.mark.parametrize(
    "starts, ends, match, said",
    [
        (T0, T0, LKK, "ends_at: must be after starts_at"),
        (T0 - timedelta(hours=3), T0 - timedelta(hours=1), LKK, "ends_at: is in the past"),
        (T0, T0 + timedelta(days=8), LKK, "longer than 7 days"),
        (T0, T0 + timedelta(hours=1), {}, "match: name a source or a label"),
    ],
)
def test_a_window_that_would_hold_forever_or_everything_is_refused(store: Store, starts, ends, match, said):
    with pytest.raises(BadPayload) as refused:
        make_window(
            store,
            name="w",
            reason="r",
            match=match,
            starts_at=starts,
            ends_at=ends,
            now=T0,
            longest=timedelta(days=7),
            actor="ann",
        )
    assert any(said in error for error in refused.value.errors), refused.value.errors
    assert rows(store, hold_windows) == []


def test_the_worker_files_one_jira_issue_and_sends_one_notify_only_after_the_window(store: Store):
    """Through the real outbox: nothing reaches Jira or the receiver while the window holds; at its end
    one issue is created and one problem.opened delivered, however many passes follow."""
    with FakeJira() as jira, Receiver("s3cret") as receiver:
        notify = [{**NOTIFY[0], "url": receiver.url, "events": ["problem.opened"]}]
        rules = example_rules_with(CHAT, notify=notify)
        client = JiraClient.basic(requests.Session(), jira.url, "bot@example.com", "jira-token", timeout=2.0)
        runner = OutboxRunner(
            store,
            rules,
            client,
            LinkOptions(marker_prefix="incident-bridge", public_url="http://bridge.test"),
            timedelta(hours=1),
            60,
        )
        window(store, hours=1)
        for n in range(1, 3):
            ingest(store, rules, "alertmanager", alert(f"{n:016x}"), T0 + timedelta(minutes=n))
        for minute in (5, 30, 59):
            run_once(store, T0 + timedelta(minutes=minute), runner)
        assert jira.issues() == [] and receiver.received == []
        for seconds in (5, 10, 20):
            run_once(store, T0 + timedelta(hours=1, seconds=seconds), runner)
        [issue] = jira.issues()
        assert len(jira.calls("POST", r"/rest/api/3/issue$")) == 1
        assert [item.event for item in receiver.received] == ["problem.opened"]
        assert (
            receiver.received[0].signature_valid and issue["fields"]["summary"] == "HighErrorRate keeps failing on lkk"
        )
