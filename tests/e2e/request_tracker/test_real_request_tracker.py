"""A real Request Tracker 5 (Debian packages, REST2 on loopback): tickets created in RT, reported to the
bridge and linked to a problem are resolved in RT, with a comment, by the release that closes the problem.

rt-env.sh installs RT and starts its standalone server (conftest.py); it is stopped afterwards.
"""

from __future__ import annotations

import uuid

import requests

from adapters.request_tracker import RtClient
from tests.e2e import test_tickets
from tests.e2e.test_tickets import API, OPERATE

bridge_with = test_tickets.bridge_with  # the same bridge, receivers and worker as the webhook tests
RT_SYSTEM = {
    "kind": "rt",
    "url": "${TEST_RT_URL}",
    "username_env": "TEST_RT_USER",
    "password_env": "TEST_RT_PASSWORD",
    "queue": "General",
}


def comments_of(rt: RtClient, ticket_id: str) -> list[str]:
    """The text of every comment on an RT ticket, read through REST2 as a person's script would."""
    auth = ("root", "password")
    history = requests.get(f"{rt.url}/REST/2.0/ticket/{ticket_id}/history?fields=Type", auth=auth, timeout=10).json()
    texts = []
    for item in history["items"]:
        if item["Type"] == "Comment":
            found = requests.get(
                f"{rt.url}/REST/2.0/transaction/{item['id']}/attachments?fields=Content", auth=auth, timeout=10
            ).json()
            texts.extend(str(attachment["Content"]) for attachment in found["items"])
    return texts


def test_a_release_resolves_the_rt_tickets_of_the_problem_it_closes(bridge_with, rt, rt_url):
    bridge = bridge_with(
        chat_events=["ticket.close"],
        systems={"rt": RT_SYSTEM},
        env={"TEST_RT_URL": rt_url, "TEST_RT_USER": "root", "TEST_RT_PASSWORD": "password"},
    )
    run = uuid.uuid4().hex[:8]
    reported = rt.create_ticket("General", f"checkout fails for a customer ({run})", "Customer called: checkout fails.")
    linked = rt.create_ticket("General", f"checkout error page ({run})", "Mail: error page on checkout.")
    already = rt.create_ticket("General", f"checkout slow ({run})", "Portal: slow checkout.")
    rt.set_status(already, "resolved")
    rt.create_queue(f"Other-{run}")
    elsewhere = rt.create_ticket(f"Other-{run}", f"not ours ({run})", "Another team's ticket.")
    bridge.alert("checkout")
    answer = bridge.report(reported, system="rt", url=f"{rt_url}/Ticket/Display.html?id={reported}")
    assert answer.status_code == 201, answer.json
    problem_id = bridge.problem_of("checkout")["id"]
    assert answer.json["problem_id"] == problem_id
    for ticket_id in (linked, already, elsewhere, "999999"):
        link = bridge.client.post(
            f"/api/v1/problems/{problem_id}/tickets", json={"system": "rt", "ticket_id": ticket_id}, headers=OPERATE
        )
        assert link.status_code == 201, link.json
    bridge.link_jira(problem_id, "LKK-21")
    summary = bridge.release(f"2026.11.{run}", "LKK-21")
    assert summary["tickets_told"] == 5
    bridge.work(2)

    for ticket_id in (reported, linked):
        assert rt.get_ticket(ticket_id)["Status"] == "resolved"
        [comment] = comments_of(rt, ticket_id)
        assert f"release 2026.11.{run}" in comment and f"problem #{problem_id}" in comment
    assert comments_of(rt, already) == []  # already resolved: reported, not touched
    assert comments_of(rt, elsewhere) == [] and rt.get_ticket(elsewhere)["Status"] == "new"  # not the queue
    jobs = bridge.client.get("/api/v1/outbox", headers=API).json["items"]
    rt_jobs = [job for job in jobs if job["kind"] == "rt.close_ticket"]
    assert len(rt_jobs) == 5 and {job["state"] for job in rt_jobs} == {"done"}
    history = [event["detail"] for event in bridge.problem_of("checkout")["history"] if event["kind"] == "ticket"]
    assert f"rt: RT ticket {already} was already resolved; not changed" in history
    assert "rt: RT ticket 999999 does not exist (deleted, or never created); not changed" in history
    assert f"rt: RT ticket {elsewhere} is in queue Other-{run}, not General; not changed" in history
    assert sum(f"rt: RT ticket {t} resolved" in " ".join(history) for t in (reported, linked)) == 2
    assert len(bridge.chat.of_event("ticket.close")) == 5 and all(i.signature_valid for i in bridge.chat.received)


def test_closing_again_neither_comments_twice_nor_fails(rt):
    ticket_id = rt.create_ticket("General", f"retry check {uuid.uuid4().hex[:8]}", "x")
    rt.comment(ticket_id, "Closed by incident-bridge: test")  # a close that died before its resolve
    report = rt.close(ticket_id, "Closed by incident-bridge: test")
    assert report.closed and rt.get_ticket(ticket_id)["Status"] == "resolved"
    assert comments_of(rt, ticket_id) == ["Closed by incident-bridge: test"]
    assert not rt.close(ticket_id, "Closed by incident-bridge: test").closed
