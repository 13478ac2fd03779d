"""The workaround and the conclusion reach every open ticket of a problem, once per text, on SQLite and PostgreSQL.

A webhook ticket system hears them as signed `ticket.update` deliveries (Request Tracker and
Jira Service Management as comments: tests/e2e/request_tracker/, tests/e2e/test_service_desk.py).
"""

from __future__ import annotations

from typing import Any

from bridge.domain.outcomes import IssueReading
from bridge.jira.outcomes import apply_issue_reading
from tests.e2e import test_tickets
from tests.e2e.test_tickets import API, OPERATE, Bridge

bridge_with = test_tickets.bridge_with


def updates(bridge: Bridge) -> list[tuple[str, str, str]]:
    """(ticket, kind of text, text) of every ticket.update the ITSM receiver got, each signature checked."""
    received = bridge.itsm.of_event("ticket.update")
    assert all(item.signature_valid for item in received)
    return [(item.body["ticket"]["ticket_id"], item.body["update"], item.body["text"]) for item in received]


def set_workaround(bridge: Bridge, problem_id: int, text: str) -> Any:
    answer = bridge.client.post(f"/api/v1/problems/{problem_id}/workaround", json={"text": text}, headers=OPERATE)
    assert answer.status_code == 200, answer.json
    return answer.json


def conclude(bridge: Bridge, key: str, conclusion: str, status: str = "In Progress") -> None:
    """Jira's conclusion as the worker's sync of the issue mirrors it."""
    reading = IssueReading(key, status, "indeterminate", None, conclusion, ())
    apply_issue_reading(
        bridge.store, bridge.runner.rules, reading, lambda k: f"https://jira.example/browse/{k}", bridge.clock()
    )


def test_every_open_ticket_hears_the_workaround_once_and_a_changed_one_again(bridge_with):
    bridge = bridge_with(chat_events=["release.received"])
    bridge.alert("checkout")
    bridge.report("SR-1")
    problem_id = bridge.problem_of("checkout")["id"]
    link = {"system": "itsm", "ticket_id": "SR-2"}
    assert bridge.client.post(f"/api/v1/problems/{problem_id}/tickets", json=link, headers=OPERATE).status_code == 201
    answer = set_workaround(bridge, problem_id, "Pay by invoice")
    assert (answer["workaround"], answer["workaround_by"], answer["tickets_told"]) == ("Pay by invoice", "Ann", 2)
    assert set_workaround(bridge, problem_id, "Pay by invoice")["tickets_told"] == 0
    bridge.work(2)
    assert sorted(updates(bridge)) == [
        ("SR-1", "workaround", "Pay by invoice"),
        ("SR-2", "workaround", "Pay by invoice"),
    ]
    body = bridge.itsm.of_event("ticket.update")[0].body
    assert set(body) == {"event", "id", "occurred_at", "ticket", "problem", "update", "text"}
    assert body["problem"]["workaround"] == "Pay by invoice"

    assert set_workaround(bridge, problem_id, "Use the old checkout")["tickets_told"] == 2
    assert set_workaround(bridge, problem_id, "Pay by invoice")["tickets_told"] == 0  # told that text already
    bridge.work()
    assert len(updates(bridge)) == 4
    history = [e for e in bridge.problem_of("checkout")["history"] if e["kind"] == "workaround"]
    assert [(e["detail"], e["actor"]) for e in history] == [
        ("workaround set: Pay by invoice", "Ann"),
        ("workaround set: Use the old checkout", "Ann"),
        ("workaround set: Pay by invoice", "Ann"),
    ]


def test_a_ticket_joining_later_hears_the_current_workaround_at_once(bridge_with):
    bridge = bridge_with(chat_events=["release.received"])
    bridge.alert("checkout")
    problem_id = bridge.problem_of("checkout")["id"]
    set_workaround(bridge, problem_id, "Pay by invoice")
    bridge.report("SR-5")  # joins through the problem rule
    link = {"system": "itsm", "ticket_id": "SR-6"}
    bridge.client.post(f"/api/v1/problems/{problem_id}/tickets", json=link, headers=OPERATE)
    bridge.report("SR-5", summary="checkout still broken")  # re-sent: told already
    bridge.report("SR-7", service="billing")  # another problem, without a workaround
    bridge.work()
    assert sorted(updates(bridge)) == [
        ("SR-5", "workaround", "Pay by invoice"),
        ("SR-6", "workaround", "Pay by invoice"),
    ]


def test_the_conclusion_from_jira_reaches_open_tickets_once_and_status_moves_alone_tell_nothing(bridge_with):
    bridge = bridge_with(chat_events=["release.received"])
    bridge.alert("checkout")
    bridge.report("SR-1")
    problem_id = bridge.problem_of("checkout")["id"]
    bridge.link_jira(problem_id, "LKK-5")
    conclude(bridge, "LKK-5", "Status: To Do")  # no conclusion written yet: nothing to tell
    conclude(bridge, "LKK-5", "Status: In Progress\nA restart of the payment pod recovers it")
    conclude(bridge, "LKK-5", "Status: In Review\nA restart of the payment pod recovers it")  # status only
    bridge.work()
    assert updates(bridge) == [("SR-1", "conclusion", "A restart of the payment pod recovers it")]
    conclude(bridge, "LKK-5", "Status: In Review\nFixed in 2.4; until then restart the payment pod")
    bridge.work()
    assert [text for _, _, text in updates(bridge)][1] == "Fixed in 2.4; until then restart the payment pod"


def test_a_closed_problem_tells_nobody_and_bad_workarounds_are_refused(bridge_with):
    bridge = bridge_with(chat_events=["release.received"])
    bridge.alert("checkout")
    bridge.report("SR-1")
    problem_id = bridge.problem_of("checkout")["id"]
    path = f"/api/v1/problems/{problem_id}/workaround"
    empty = bridge.client.post(path, json={"text": ""}, headers=OPERATE)
    assert empty.status_code == 400 and empty.json["errors"][0].startswith("text:")
    assert bridge.client.post(path, json={"text": "x", "more": 1}, headers=OPERATE).status_code == 400
    assert bridge.client.post(path, json={"text": "a\x00b"}, headers=OPERATE).status_code == 400
    assert bridge.client.post(path, json={"text": "x" * 10_001}, headers=OPERATE).status_code == 400
    assert bridge.client.post(path, data="text=x", headers={**OPERATE, "Content-Type": "text/plain"}).status_code == 415
    assert bridge.client.post(path, json={"text": "x"}, headers=API).status_code == 401
    missing = bridge.client.post("/api/v1/problems/999999/workaround", json={"text": "x"}, headers=OPERATE)
    assert missing.status_code == 404
    closed = bridge.client.post(f"/api/v1/problems/{problem_id}/close", json={"reason": "fixed"}, headers=OPERATE)
    assert closed.status_code == 200
    assert set_workaround(bridge, problem_id, "Pay by invoice")["tickets_told"] == 0
    cleared = bridge.client.delete(path, headers=OPERATE)
    assert cleared.status_code == 200 and cleared.json["workaround"] is None
    bridge.work()
    assert updates(bridge) == []


def test_the_problem_page_shows_and_sets_the_workaround(bridge_with):
    bridge = bridge_with(chat_events=["release.received"])
    bridge.alert("checkout")
    bridge.report("SR-1")
    problem_id = bridge.problem_of("checkout")["id"]
    bridge.client.post("/ui/login", data={"token": "operate-token", "name": "Bea"})
    page = bridge.client.get(f"/ui/problems/{problem_id}").get_data(as_text=True)
    assert 'id="workaround-form"' in page
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    script = "<script>alert(1)</script> then pay by invoice"
    done = bridge.client.post(
        f"/ui/problems/{problem_id}/workaround", data={"csrf_token": csrf, "text": script}, follow_redirects=True
    )
    shown = done.get_data(as_text=True)
    assert "Workaround of problem" in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "<script>alert(1)" not in shown
    forged = bridge.client.post(f"/ui/problems/{problem_id}/workaround", data={"csrf_token": "guess", "text": "x"})
    assert forged.status_code == 400
    assert bridge.problem_of("checkout")["workaround_by"] == "Bea"
    bridge.work()
    assert updates(bridge) == [("SR-1", "workaround", script)]
