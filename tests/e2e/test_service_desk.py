"""Jira Service Management as a ticket system, against the fake Jira held to Atlassian's OpenAPI document,
Cloud (REST v3, ADF) and Data Center (REST v2, wiki markup), on SQLite and PostgreSQL.

A request of the service project reaches the bridge through Jira's webhook (the worker reads
it; the webhook's answer calls nobody), joins the problem its field names, is closed by the
release through the system's transition (read back) and hears the workaround once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from jira_link.client import CLOUD, DATACENTER, JiraClient, adf_text
from tests.e2e import test_tickets
from tests.e2e.test_tickets import API, OPERATE, Bridge
from tests.fakes import FakeJira

bridge_with = test_tickets.bridge_with
PROBLEM_FIELD = "customfield_10050"
HOOK = "/api/v1/jira/webhook?secret=hook-secret"


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    with FakeJira() as jira:
        yield jira


@pytest.fixture(params=[CLOUD, DATACENTER])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def service_desk(bridge_with: Any, fake_jira: FakeJira, flavour: str) -> Bridge:
    system: dict[str, Any] = {
        "kind": "jira",
        "url": "${TEST_SD_URL}",
        "project": "SD",
        "flavour": flavour,
        "token_env": "TEST_SD_TOKEN",
        "close_transition": "Close Issue",
        "problem_field": PROBLEM_FIELD,
    }
    env = {"TEST_SD_URL": fake_jira.url, "TEST_SD_TOKEN": "jira-pat" if flavour == DATACENTER else "jira-token"}
    if flavour == CLOUD:
        system["username_env"] = "TEST_SD_EMAIL"
        env["TEST_SD_EMAIL"] = "bot@example.com"
    return bridge_with(
        chat_events=["release.received"],
        systems={"sd": system},
        env=env,
        settings_env={"BRIDGE_JIRA_WEBHOOK_SECRET": "hook-secret"},
    )


def customer(fake_jira: FakeJira, flavour: str) -> JiraClient:
    """The portal filing requests in the service project, as the customer's agent would."""
    if flavour == CLOUD:
        return JiraClient.basic(requests.Session(), fake_jira.url, "bot@example.com", "jira-token")
    return JiraClient.bearer(requests.Session(), fake_jira.url, "jira-pat")


def file_request(fake_jira: FakeJira, flavour: str, summary: str, problem: str | None = None) -> str:
    fields: dict[str, Any] = {"project": {"key": "SD"}, "issuetype": {"name": "Incident"}, "summary": summary}
    if problem is not None:
        fields[PROBLEM_FIELD] = problem
    return customer(fake_jira, flavour).create_issue(fields)


def webhook(bridge: Bridge, fake_jira: FakeJira, key: str, event: str = "jira:issue_updated") -> dict[str, Any]:
    issue = fake_jira.issue(key)
    body = {
        "webhookEvent": event,
        "issue": {"id": issue["id"], "key": key, "self": f"{fake_jira.url}/rest/api/2/issue/{issue['id']}"},
    }
    calls = len(fake_jira.state.calls)
    answer = bridge.client.post(HOOK, json=body)
    assert answer.status_code == 202, answer.json
    assert len(fake_jira.state.calls) == calls  # the webhook's request calls nobody: the worker reads it
    return answer.json


def incident_of(bridge: Bridge, key: str) -> dict[str, Any] | None:
    found = [
        i
        for i in bridge.client.get("/api/v1/incidents?source=ticket", headers=API).json["items"]
        if i["dedup_key"] == f"ticket:sd:{key}"
    ]
    assert len(found) <= 1
    return found[0] if found else None


def comment_texts(fake_jira: FakeJira, key: str) -> list[str]:
    """Comments as people read them: ADF on Cloud, wiki markup (escaped) on Data Center."""
    return [adf_text(comment["body"]) for comment in fake_jira.comments(key)]


def linked_request(bridge: Bridge, fake_jira: FakeJira, flavour: str) -> tuple[int, str]:
    """A problem linked to LKK-21, and a request whose field names LKK-21, read through its webhook."""
    bridge.alert("checkout")
    problem_id = bridge.problem_of("checkout")["id"]
    bridge.link_jira(problem_id, "LKK-21")
    key = file_request(fake_jira, flavour, "Cannot pay at checkout", problem="LKK-21")
    answer = webhook(bridge, fake_jira, key, "jira:issue_created")
    assert (answer["action"], answer["systems"]) == ("ticket_read_queued", ["sd"])
    bridge.work()
    return problem_id, key


def test_a_request_named_by_jiras_webhook_joins_the_problem_its_field_names(bridge_with, fake_jira, flavour):
    bridge = service_desk(bridge_with, fake_jira, flavour)
    problem_id, key = linked_request(bridge, fake_jira, flavour)
    incident = incident_of(bridge, key)
    assert incident is not None and incident["problem_id"] == problem_id
    assert incident["summary"] == "Cannot pay at checkout"
    assert incident["labels"] == {
        "project": "SD",
        "status": "To Do",
        "issue_type": "Incident",
        "ticket_system": "sd",
    }
    assert incident["annotations"]["ticket_url"] == f"{fake_jira.url}/browse/{key}"
    assert [t["ticket_id"] for t in bridge.problem_of("checkout")["tickets"]] == [key]
    webhook(bridge, fake_jira, key)  # the same request again: nothing new
    bridge.work()
    assert len(bridge.client.get("/api/v1/incidents?source=ticket", headers=API).json["items"]) == 1
    assert fake_jira.state.schema_violations == []


def test_the_release_closes_a_request_through_its_transition_and_does_not_read_it_back(bridge_with, fake_jira, flavour):
    bridge = service_desk(bridge_with, fake_jira, flavour)
    problem_id, key = linked_request(bridge, fake_jira, flavour)
    summary = bridge.release("2026.12.1", "LKK-21")
    assert summary["tickets_told"] == 1
    bridge.work(2)
    assert fake_jira.issue(key)["fields"]["status"]["name"] == "Done"
    [comment] = comment_texts(fake_jira, key)
    assert "release 2026.12.1" in comment and f"problem #{problem_id}" in comment
    assert [c.body["transition"]["id"] for c in fake_jira.calls("POST", rf"/issue/{key}/transitions$")] == ["31"]
    webhook(bridge, fake_jira, key)  # Jira tells of the bridge's own transition
    bridge.work()
    incident = incident_of(bridge, key)
    assert incident["state"] == "closed" and incident["close_reason"] == "released in 2026.12.1"
    history = bridge.problem_of("checkout")["history"]
    assert [e["detail"] for e in history if e["kind"] == "ticket"] == [
        f"sd: Jira request {key} closed through 'Close Issue'"
    ]
    assert not [e for e in history if e["kind"] in ("ticket_closed", "reopened_by_ticket")]
    assert fake_jira.state.schema_violations == []


def test_a_request_resolved_and_reopened_in_jira_closes_and_reopens_its_incident(bridge_with, fake_jira, flavour):
    bridge = service_desk(bridge_with, fake_jira, flavour)
    problem_id, key = linked_request(bridge, fake_jira, flavour)
    fake_jira.resolve(key, "Done")
    webhook(bridge, fake_jira, key)
    bridge.work()
    incident = incident_of(bridge, key)
    assert (incident["state"], incident["close_reason"]) == ("closed", f"ticket {key} Done in sd")
    [closed] = [e for e in bridge.problem_of("checkout")["history"] if e["kind"] == "ticket_closed"]
    assert closed["actor"] == "jsm"
    fake_jira.reopen(key)
    webhook(bridge, fake_jira, key)
    bridge.work()
    assert incident_of(bridge, key)["state"] == "firing"
    detail = bridge.problem_of("checkout")
    assert detail["reopened_by_ticket"] == 0  # the problem is open: no fix failed anyone
    kinds = [e["kind"] for e in detail["history"] if e["actor"] == "jsm"]
    assert kinds == ["incident_moved", "ticket_closed", "ticket_reopened"]  # moved in by its problem field first
    assert incident_of(bridge, key)["problem_id"] == problem_id


def test_the_workaround_reaches_a_request_as_one_comment(bridge_with, fake_jira, flavour):
    bridge = service_desk(bridge_with, fake_jira, flavour)
    problem_id, key = linked_request(bridge, fake_jira, flavour)
    path = f"/api/v1/problems/{problem_id}/workaround"
    for _ in range(2):
        answer = bridge.client.post(path, json={"text": "Pay by invoice until the fix ships"}, headers=OPERATE)
        assert answer.status_code == 200, answer.json
        bridge.work()
        webhook(bridge, fake_jira, key, "comment_created")  # Jira tells of the bridge's own comment
        bridge.work()
    [comment] = comment_texts(fake_jira, key)
    assert "Pay by invoice until the fix ships" in comment and f"/ui/problems/{problem_id}" in comment
    bridge.client.post(path, json={"text": "Use the old checkout"}, headers=OPERATE)
    bridge.work()
    assert len(comment_texts(fake_jira, key)) == 2
    assert fake_jira.state.schema_violations == []
