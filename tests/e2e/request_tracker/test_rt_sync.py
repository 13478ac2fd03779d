"""Tickets arrive by themselves from a real Request Tracker 5 (REST2 on loopback), on SQLite and PostgreSQL.

The bridge reads RT's queue on its own: new tickets become incidents, the `Problem` custom
field links them to problems, resolving and reopening in RT closes and reopens their
incidents (a reopen after the release flags the problem), the workaround reaches every open
linked ticket once per text, and neither two workers, the watermark's own second nor RT
being down loses or doubles anything. Each test reads a queue of its own.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client import REGISTRY

from adapters import request_tracker
from adapters.request_tracker import RtClient
from bridge.storage.read_models import IncidentFilter
from bridge.storage.store import Store
from tests.conftest import ROOT, wait_for
from tests.e2e import test_tickets
from tests.e2e.request_tracker.test_real_request_tracker import comments_of
from tests.e2e.test_tickets import API, OPERATE, Bridge, rules_with

bridge_with = test_tickets.bridge_with
AUTH = ("root", "password")
RT_ENV = {"TEST_RT_USER": "root", "TEST_RT_PASSWORD": "password"}


@pytest.fixture(scope="module", autouse=True)
def problem_field(rt_server) -> None:
    """The `Problem` custom field, applied to every queue (an RT administrator's one-time set-up)."""
    rt_server.custom_field("Problem")


@pytest.fixture
def queue(rt: RtClient) -> str:
    """A queue of this test's own: other tests (and other runs sharing RT's database) file elsewhere."""
    name = f"Sync-{uuid.uuid4().hex[:10]}"
    rt.create_queue(name)
    return name


def rt_system(queue: str, **sync: Any) -> dict[str, Any]:
    return {
        "kind": "rt",
        "url": "${TEST_RT_URL}",
        "username_env": "TEST_RT_USER",
        "password_env": "TEST_RT_PASSWORD",
        "sync": {"interval": "1m", "queues": [queue], "problem_field": "Problem", **sync},
    }


def syncing(bridge_with: Callable[..., Bridge], rt_url: str, queue: str, **sync: Any) -> Bridge:
    """A bridge that reads `queue` of the RT at `rt_url` every minute (of its test clock)."""
    return bridge_with(
        chat_events=["release.received"],
        systems={"rt": rt_system(queue, **sync)},
        env={"TEST_RT_URL": rt_url, **RT_ENV},
    )


def file_ticket(rt_url: str, queue: str, subject: str, problem: str | None = None) -> str:
    """A ticket as a customer's request becomes one in RT (REST2), with its Problem field when given."""
    body: dict[str, Any] = {"Queue": queue, "Subject": subject, "Content": "Customer called."}
    if problem is not None:
        body["CustomFields"] = {"Problem": problem}
    answer = requests.post(f"{rt_url}/REST/2.0/ticket", json=body, auth=AUTH, timeout=10)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def set_problem_field(rt_url: str, ticket_id: str, value: str) -> None:
    answer = requests.put(
        f"{rt_url}/REST/2.0/ticket/{ticket_id}", json={"CustomFields": {"Problem": value}}, auth=AUTH, timeout=10
    )
    assert answer.status_code == 200, answer.text


def last_updated(rt: RtClient, ticket_id: str) -> str:
    ticket = rt.get_ticket(ticket_id)
    assert ticket is not None
    return str(ticket["LastUpdated"])


def incident_of(bridge: Bridge, ticket_id: str) -> dict[str, Any] | None:
    """The ticket's incident as the API shows it (at most one may exist)."""
    found = [
        incident
        for incident in bridge.client.get("/api/v1/incidents?source=ticket&limit=500", headers=API).json["items"]
        if incident["dedup_key"] == f"ticket:rt:{ticket_id}"
    ]
    assert len(found) <= 1, found
    return found[0] if found else None


def sample(name: str, **labels: str) -> float:
    """A counter of this process (the bridge under test runs in it), to compare before and after."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def ticket_incidents(bridge: Bridge) -> list[dict[str, Any]]:
    return bridge.client.get("/api/v1/incidents?source=ticket&limit=500", headers=API).json["items"]


def test_tickets_filed_in_the_queue_become_incidents_within_one_interval(bridge_with, rt, rt_url, queue, monkeypatch):
    monkeypatch.setattr(request_tracker, "SEARCH_PAGE_SIZE", 2)  # five tickets: three pages
    bridge = syncing(bridge_with, rt_url, queue)
    successes = sample("bridge_ticket_sync_total", system="rt", outcome="success")
    filed = [file_ticket(rt_url, queue, f"portal login fails #{n}") for n in range(5)]
    elsewhere = file_ticket(rt_url, "General", "not a synced queue")
    bridge.work()
    for n, ticket_id in enumerate(filed):
        incident = incident_of(bridge, ticket_id)
        assert incident is not None, f"ticket {ticket_id} not synced"
        assert incident["summary"] == f"portal login fails #{n}" and incident["state"] == "firing"
        assert incident["labels"] == {"queue": queue, "status": "new", "priority": "0", "ticket_system": "rt"}
        assert incident["annotations"]["ticket_url"] == f"{rt_url}/Ticket/Display.html?id={ticket_id}"
    assert incident_of(bridge, elsewhere) is None
    bridge.work(2)  # later passes read the overlap again: nothing is created twice
    assert len(ticket_incidents(bridge)) == 5
    [state] = bridge.client.get("/api/v1/tickets/sync", headers=API).json["items"]
    assert (state["system"], state["queues"], state["failures"]) == ("rt", [queue], 0)
    assert state["last_success_at"] is not None and state["tickets_read"] >= 5
    assert sample("bridge_ticket_sync_total", system="rt", outcome="success") == successes + 3
    assert 'bridge_ticket_sync_lag_seconds{system="rt"}' in bridge.client.get("/metrics").get_data(as_text=True)


def test_the_problem_field_links_a_ticket_and_clearing_it_unlinks(bridge_with, rt_url, queue):
    bridge = syncing(bridge_with, rt_url, queue)
    bridge.alert("checkout")
    problem_id = bridge.problem_of("checkout")["id"]
    bridge.link_jira(problem_id, "LKK-21")
    by_key = file_ticket(rt_url, queue, "checkout error page", problem="LKK-21")
    by_number = file_ticket(rt_url, queue, "checkout slow", problem=f"#{problem_id}")
    nowhere = file_ticket(rt_url, queue, "checkout odd", problem="no such problem")
    bridge.work()
    assert incident_of(bridge, by_key)["problem_id"] == problem_id
    assert incident_of(bridge, by_number)["problem_id"] == problem_id
    assert incident_of(bridge, nowhere)["problem_id"] is None
    tickets = {t["ticket_id"]: t for t in bridge.problem_of("checkout")["tickets"]}
    assert set(tickets) == {by_key, by_number} and tickets[by_key]["state"] == "open"

    set_problem_field(rt_url, by_key, "")
    bridge.work()
    assert incident_of(bridge, by_key)["problem_id"] is None
    detail = bridge.problem_of("checkout")
    assert [t["ticket_id"] for t in detail["tickets"]] == [by_number]
    [unlinked] = [e for e in detail["history"] if e["kind"] == "ticket_unlinked"]
    assert unlinked["actor"] == "rt" and f"ticket {by_key} unlinked" in unlinked["detail"]


def test_resolving_a_ticket_in_rt_closes_its_incident(bridge_with, rt, rt_url, queue):
    bridge = syncing(bridge_with, rt_url, queue)
    bridge.alert("checkout")
    problem_id = bridge.problem_of("checkout")["id"]
    ticket_id = file_ticket(rt_url, queue, "checkout fails", problem=str(problem_id))
    bridge.work()
    rt.set_status(ticket_id, "resolved")
    bridge.work()
    incident = incident_of(bridge, ticket_id)
    assert (incident["state"], incident["close_reason"]) == ("closed", f"ticket {ticket_id} resolved in rt")
    detail = bridge.problem_of("checkout")
    assert detail["state"] != "closed"  # one ticket resolved is no fix
    assert [(t["ticket_id"], t["state"]) for t in detail["tickets"]] == [(ticket_id, "closed")]
    [closed] = [e for e in detail["history"] if e["kind"] == "ticket_closed"]
    assert closed["actor"] == "rt" and f"incident {incident['id']} closed" in closed["detail"]
    history = bridge.client.get(f"/api/v1/incidents/{incident['id']}", headers=API).json["history"]
    assert [(e["kind"], e["actor"]) for e in history if e["kind"] == "ticket_closed"] == [("ticket_closed", "rt")]


def test_a_ticket_reopened_after_the_release_reopens_its_incident_and_flags_the_problem(bridge_with, rt, rt_url, queue):
    bridge = syncing(bridge_with, rt_url, queue)
    bridge.alert("checkout")
    problem_id = bridge.problem_of("checkout")["id"]
    bridge.link_jira(problem_id, "LKK-31")
    ticket_id = file_ticket(rt_url, queue, "checkout fails again", problem="LKK-31")
    bridge.work()
    summary = bridge.release(f"2026.12.{uuid.uuid4().hex[:6]}", "LKK-31")
    assert summary["tickets_told"] == 1
    bridge.work(2)  # the release's close resolves the ticket in RT; the sync reads that back
    assert rt.get_ticket(ticket_id)["Status"] == "resolved"
    incident = incident_of(bridge, ticket_id)
    assert incident["state"] == "closed" and incident["close_reason"].startswith("released in 2026.12.")
    before = bridge.problem_of("checkout")
    assert not [e for e in before["history"] if e["kind"] == "ticket_closed"]  # the bridge's own close, not a change
    assert before["reopened_by_ticket"] == 0

    flagged = sample("bridge_problems_reopened_by_ticket_total")
    rt.set_status(ticket_id, "open")  # the customer: the fix did not help
    bridge.work()
    incident = incident_of(bridge, ticket_id)
    assert (incident["state"], incident["reopen_count"]) == ("firing", 1)
    after = bridge.problem_of("checkout")
    assert (after["state"], after["reopened_by_ticket"]) == ("closed", 1)
    [flag] = [e for e in after["history"] if e["kind"] == "reopened_by_ticket"]
    assert flag["actor"] == "rt" and "the fix did not help" in flag["detail"]
    bridge.work()  # read again: no second flag
    assert bridge.problem_of("checkout")["reopened_by_ticket"] == 1
    assert sample("bridge_problems_reopened_by_ticket_total") == flagged + 1
    bridge.client.post("/ui/login", data={"token": "api-token"})
    page = bridge.client.get(f"/ui/problems/{problem_id}").get_data(as_text=True)
    assert 'id="reopened-flag"' in page


def test_the_workaround_comments_once_on_every_open_linked_ticket_and_again_when_changed(
    bridge_with, rt, rt_url, queue
):
    bridge = syncing(bridge_with, rt_url, queue)
    bridge.alert("checkout")
    problem_id = bridge.problem_of("checkout")["id"]
    first, second = (file_ticket(rt_url, queue, f"checkout {n}", problem=str(problem_id)) for n in (1, 2))
    done = file_ticket(rt_url, queue, "checkout 3", problem=str(problem_id))
    rt.set_status(done, "resolved")
    bridge.work()
    path = f"/api/v1/problems/{problem_id}/workaround"
    assert bridge.client.post(path, json={"text": "Use the old checkout"}, headers=API).status_code == 401
    answer = bridge.client.post(path, json={"text": "Use the old checkout at /legacy"}, headers=OPERATE)
    assert answer.status_code == 200, answer.json
    assert (answer.json["tickets_told"], answer.json["workaround_by"]) == (2, "Ann")
    bridge.work(3)  # the comments bump the tickets' LastUpdated: the sync reads them back, and tells nothing again
    again = bridge.client.post(path, json={"text": "Use the old checkout at /legacy"}, headers=OPERATE)
    assert again.json["tickets_told"] == 0
    bridge.work()
    for ticket_id in (first, second):
        [comment] = comments_of(rt, ticket_id)
        assert "Use the old checkout at /legacy" in comment and f"/ui/problems/{problem_id}" in comment
    assert comments_of(rt, done) == []

    changed = bridge.client.post(path, json={"text": "Pay by invoice instead"}, headers=OPERATE)
    assert changed.json["tickets_told"] == 2
    bridge.work(2)
    for ticket_id in (first, second):
        comments = comments_of(rt, ticket_id)
        assert len(comments) == 2 and "Pay by invoice instead" in comments[1]
    [event, *_] = [e for e in bridge.problem_of("checkout")["history"] if e["kind"] == "workaround"]
    assert event["actor"] == "Ann"


def test_a_ticket_updated_in_the_watermarks_second_is_not_missed(bridge_with, rt, rt_server, rt_url, queue):
    bridge = syncing(bridge_with, rt_url, queue, overlap="0s")  # only `>=` stands between it and a miss
    updated = file_ticket(rt_url, queue, "checkout slow")
    bridge.work()
    newest = file_ticket(rt_url, queue, "portal down")
    second = last_updated(rt, newest)
    rt_server.backdate(updated, second)  # both changed in the second the next pass reads: the worst case
    bridge.work()
    [state] = bridge.client.get("/api/v1/tickets/sync", headers=API).json["items"]
    assert state["watermark"] == second
    # Someone changes the older ticket in that same second, and RT commits it after the pass read:
    changed = requests.put(
        f"{rt_url}/REST/2.0/ticket/{updated}", json={"Subject": "checkout slow for everyone"}, auth=AUTH, timeout=10
    )
    assert changed.status_code == 200, changed.text
    rt_server.backdate(updated, second)
    assert last_updated(rt, updated) == second
    bridge.work()
    assert incident_of(bridge, updated)["summary"] == "checkout slow for everyone"


def test_rt_down_during_a_sync_is_logged_shown_retried_and_loses_nothing(bridge_with, rt_server, rt_url, queue, caplog):
    bridge = syncing(bridge_with, rt_url, queue)
    before = file_ticket(rt_url, queue, "filed before RT went down")
    bridge.work()
    while_down = file_ticket(rt_url, queue, "filed just before RT went down")
    failures = sample("bridge_ticket_sync_total", system="rt", outcome="failure")
    rt_server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="bridge.tickets.pull"):
            bridge.work()
        [failed] = [r for r in caplog.records if r.getMessage().startswith("ticket sync failed")]
        assert failed.system == "rt" and "cannot reach RT" in failed.error  # type: ignore[attr-defined]
        [state] = bridge.client.get("/api/v1/tickets/sync", headers=API).json["items"]
        assert state["failures"] == 1 and "cannot reach RT" in state["last_error"]
        bridge.client.post("/ui/login", data={"token": "api-token"})
        assert "failing (1 in a row): cannot reach RT" in bridge.client.get("/ui/").get_data(as_text=True)
        assert bridge.alert("billing")["status"] == "ok"  # webhooks never wait for the sync
        assert sample("bridge_ticket_sync_total", system="rt", outcome="failure") == failures + 1
    finally:
        rt_server.start()
    bridge.work()
    assert incident_of(bridge, before) is not None and incident_of(bridge, while_down) is not None
    [state] = bridge.client.get("/api/v1/tickets/sync", headers=API).json["items"]
    assert (state["failures"], state["last_error"]) == (0, None)


def test_two_bridge_workers_syncing_at_once_create_nothing_twice(rt_url, queue, database_url, tmp_path):
    rules = rules_with(["release.received"], {"rt": rt_system(queue, interval="1s")})
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump(rules))
    env = {
        **os.environ,
        "BRIDGE_DATABASE_URL": database_url,
        "BRIDGE_RULES": str(rules_path),
        "BRIDGE_WORKER_INTERVAL_SECONDS": "0.2",
        "TEST_RT_URL": rt_url,
        "TEST_ITSM_URL": "http://127.0.0.1:9/itsm",
        "TEST_CHAT_URL": "http://127.0.0.1:9/chat",
        "TEST_ITSM_SECRET": "s",
        "TEST_CHAT_SECRET": "s",
        **RT_ENV,
    }
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bridge", "worker"],
            env=env,
            cwd=ROOT,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for log in logs
    ]
    store = Store.from_url(database_url)
    try:
        filed = []
        for n in range(6):
            filed.append(file_ticket(rt_url, queue, f"filed while two workers sync #{n}"))
            time.sleep(0.4)
        wanted = {f"ticket:rt:{ticket_id}" for ticket_id in filed}

        def synced() -> bool:
            return wanted <= {
                i.dedup_key for i in store.list_incidents(IncidentFilter(source="ticket"), 500, None).items
            }

        wait_for(synced, 60, "every ticket synced by one of the two workers")
        time.sleep(2)  # both keep syncing the overlap a while longer
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
    keys = [i.dedup_key for i in store.list_incidents(IncidentFilter(source="ticket"), 500, None).items]
    store.engine.dispose()
    assert sorted(keys) == sorted(wanted), "\n".join(Path(log).read_text()[-2000:] for log in logs)
    output = [log.read_text() for log in logs]
    assert all("Traceback" not in text for text in output), output
