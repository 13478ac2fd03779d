"""Ticket ids people supply never steer the bridge's calls to a ticket system, on SQLite and PostgreSQL.

An id a system of that kind cannot have issued is refused where it comes in (400 naming the field)
and dead-lettered, not sent, should a queued job hold one anyway; every path segment the RT and
Jira clients build is encoded; and only tickets of an RT system's configured queues are changed.
A fake RT (tests/fake_rt.py) records each request's path as it arrived on the wire.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from adapters.request_tracker import RtClient, RtError
from bridge.domain.tickets import ticket_id_refusal
from bridge.outbox import jobs
from jira_link.client import JiraClient
from tests.e2e import test_tickets
from tests.e2e.test_tickets import API, OPERATE
from tests.fake_rt import FakeRt

bridge_with = test_tickets.bridge_with
BAD_RT_IDS = ["..", "1/../2", "%2e%2e", "12a", "", "1" * 30]
# An RT whose sync reads General and which names no `queue` of its own: General is its only queue.
RT_SYSTEM = {
    "kind": "rt",
    "url": "${TEST_RT_URL}",
    "token_env": "TEST_RT_TOKEN",
    "sync": {"interval": "1h", "queues": ["General"]},
}


@pytest.fixture
def fake_rt() -> Iterator[FakeRt]:
    with FakeRt() as rt:
        yield rt


@pytest.fixture
def rt_bridge(bridge_with, fake_rt: FakeRt):
    return bridge_with(systems={"rt": RT_SYSTEM}, env={"TEST_RT_URL": fake_rt.url, "TEST_RT_TOKEN": "t"})


def ticket_calls(rt: FakeRt) -> list[str]:
    """What was asked of RT about tickets (the sync's searches aside)."""
    return [path for path in rt.paths() if not path.startswith("/REST/2.0/tickets?")]


@pytest.mark.parametrize("ticket_id", BAD_RT_IDS)
def test_an_id_rt_cannot_have_issued_is_refused_where_it_comes_in(rt_bridge, fake_rt, ticket_id):
    rt_bridge.alert("checkout")
    problem_id = rt_bridge.problem_of("checkout")["id"]
    reported = rt_bridge.report(ticket_id, system="rt")
    assert reported.status_code == 400, reported.json
    assert reported.json["errors"][0].startswith("ticket_id:")
    linked = rt_bridge.client.post(
        f"/api/v1/problems/{problem_id}/tickets", json={"system": "rt", "ticket_id": ticket_id}, headers=OPERATE
    )
    assert linked.status_code == 400, linked.json
    assert linked.json["errors"][0].startswith("ticket_id:")
    assert rt_bridge.problem_of("checkout")["tickets"] == []
    assert [i["source"] for i in rt_bridge.client.get("/api/v1/incidents", headers=API).json["items"]] == [
        "alertmanager"
    ]
    assert ticket_calls(fake_rt) == []


def test_an_rt_number_is_reported_and_a_refused_id_is_kept_with_its_reason(rt_bridge):
    assert rt_bridge.report("42", system="rt").status_code == 201
    refused = rt_bridge.report("..", system="rt")
    assert refused.json["errors"] == [
        "ticket_id: '..' is not a ticket id of a rt system: expected RT ticket numbers are digits only (at most 18)"
    ]
    [kept] = rt_bridge.client.get("/api/v1/rejected?source=ticket", headers=API).json["items"]
    assert kept["reason"] == "invalid ticket id for ticket system 'rt'"


@pytest.mark.parametrize("ticket_id, refused", [("..", True), ("%2e%2e", True), (".x", True), ("SR-1.2", False)])
def test_a_webhook_systems_ids_are_safe_printable_text(bridge_with, ticket_id, refused):
    answer = bridge_with().report(ticket_id)
    assert answer.status_code == (400 if refused else 201), answer.json


def test_ids_per_kind_of_system():
    assert ticket_id_refusal("rt", "123") is None and ticket_id_refusal("rt", "0123") is not None
    assert ticket_id_refusal("jira", "SD-7") is None
    assert ticket_id_refusal("jira", "SD-7\n") is not None and ticket_id_refusal("jira", "../SD-7") is not None
    assert ticket_id_refusal("webhook", "INC#12:a@b+c") is None and ticket_id_refusal("webhook", "a b") is not None


def test_a_queued_job_with_an_id_that_is_somehow_bad_is_dead_lettered_not_sent(rt_bridge, fake_rt):
    store, now = rt_bridge.store, rt_bridge.clock()
    store.run(lambda conn: jobs.queue(conn, store, jobs.RtClose("rt", "..", "closed", None), now))
    store.run(lambda conn: jobs.queue(conn, store, jobs.RtComment("rt", "1/../2", "workaround", "w", None, "d"), now))
    rt_bridge.work(1)
    rt_jobs = [j for j in rt_bridge.client.get("/api/v1/outbox", headers=API).json["items"] if j["kind"][:3] == "rt."]
    assert [job["state"] for job in rt_jobs] == ["dead", "dead"]
    assert all("ticket_id:" in job["last_error"] for job in rt_jobs)
    assert ticket_calls(fake_rt) == []


def test_the_rt_client_refuses_a_bad_ticket_id_before_any_call(fake_rt):
    client = RtClient(requests.Session(), fake_rt.url)
    for ticket_id in BAD_RT_IDS:
        with pytest.raises(RtError, match="ticket_id:") as refused:
            client.close(ticket_id, "closed")
        assert refused.value.retryable is False
    assert fake_rt.paths() == []


def test_the_rt_client_encodes_every_segment_it_did_not_choose(fake_rt):
    """RT's own answers name other resources (a queue, a transaction): a hostile one stays in its segment."""
    fake_rt.add("5", queue_reference="../ticket/6")
    fake_rt.add("6")
    client = RtClient(requests.Session(), fake_rt.url, ("General",))
    with pytest.raises(RtError, match="read queue"):
        client.close("5", "closed")
    assert fake_rt.paths() == ["/REST/2.0/ticket/5", "/REST/2.0/queue/..%2Fticket%2F6"]
    assert RtClient.path("transaction", "..", "attachments") == "transaction/%2E%2E/attachments"
    assert fake_rt.tickets["6"]["Status"] == "new"


def test_the_jira_client_encodes_keys_into_one_segment():
    jira = JiraClient.bearer(requests.Session(), "https://jira.example", "pat")
    assert jira._issue_path("../../myself") == f"{jira.api}/issue/..%2F..%2Fmyself"
    assert jira._issue_path("..", "comment") == f"{jira.api}/issue/%2E%2E/comment"
    assert jira.issue_url("SD-1") == "https://jira.example/browse/SD-1"


def test_only_tickets_of_the_systems_queues_are_changed(rt_bridge, fake_rt):
    fake_rt.add("7", queue="Other")
    fake_rt.add("8", queue="General")
    rt_bridge.alert("checkout")
    problem_id = rt_bridge.problem_of("checkout")["id"]
    for ticket_id in ("7", "8"):
        linked = rt_bridge.client.post(
            f"/api/v1/problems/{problem_id}/tickets", json={"system": "rt", "ticket_id": ticket_id}, headers=OPERATE
        )
        assert linked.status_code == 201, linked.json
    closed = rt_bridge.client.post(f"/api/v1/problems/{problem_id}/close", json={"reason": "fixed"}, headers=OPERATE)
    assert closed.status_code == 200, closed.json
    rt_bridge.work(2)
    assert (fake_rt.tickets["7"]["Status"], fake_rt.tickets["8"]["Status"]) == ("new", "resolved")
    assert fake_rt.comments["7"] == [] and len(fake_rt.comments["8"]) == 1
    assert "/REST/2.0/ticket/7" not in fake_rt.paths("PUT")
    history = [e["detail"] for e in rt_bridge.problem_of("checkout")["history"] if e["kind"] == "ticket"]
    assert "rt: RT ticket 7 is in queue Other, not General; not changed" in history
