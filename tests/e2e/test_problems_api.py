"""Problems over HTTP: listing, linking an existing Jira issue, the Jira webhook and the sync."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.worker import OutboxRunner
from tests.conftest import Clock, build_app, payload
from tests.fakes import FakeJira

API = {"Authorization": "Bearer api-token"}
JSON = {"Content-Type": "application/json"}
OPERATE = {"Authorization": "Bearer operate-token", **JSON}
SECRET = "hook-secret"


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    with FakeJira() as jira:
        yield jira


@pytest.fixture
def app(tmp_path: Path, clock: Clock, fake_jira: FakeJira):
    return build_app(
        tmp_path,
        {
            "BRIDGE_TOKEN_API": "api-token",
            "BRIDGE_TOKEN_OPERATE": "operate-token",
            "BRIDGE_JIRA_URL": fake_jira.url,
            "BRIDGE_JIRA_EMAIL": "bot@example.com",
            "BRIDGE_JIRA_API_TOKEN": "jira-token",
            "BRIDGE_JIRA_WEBHOOK_SECRET": SECRET,
            "BRIDGE_PUBLIC_URL": "http://bridge.test",
            "BRIDGE_TOKEN_RELEASE": "release-token",
        },
        clock,
    )


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app) -> OutboxRunner:
    ctx = app.extensions["bridge"]
    return OutboxRunner.from_settings(ctx.store, ctx.rules, ctx.settings)


def open_zabbix_problem(client) -> int:
    """The zabbix-trigger rule opens a problem at once and does not create a Jira issue itself."""
    client.post("/api/v1/alerts/zabbix", json=payload("zabbix-6.0.14-problem.json"))
    [problem] = client.get("/api/v1/problems", headers=API).json["items"]
    return problem["id"]


def webhook(client, body: dict, *, signed: bool = True, query: str = ""):
    raw = json.dumps(body).encode()
    headers = (
        {"X-Hub-Signature": "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()} if signed else {}
    )
    return client.post(f"/api/v1/jira/webhook{query}", data=raw, headers=headers, content_type="application/json")


def test_problem_detail_lists_its_incidents(client):
    problem_id = open_zabbix_problem(client)
    detail = client.get(f"/api/v1/problems/{problem_id}", headers=API).json
    assert set(detail) >= {
        "id",
        "problem_key",
        "state",
        "summary",
        "jira_key",
        "jira_url",
        "incident_count",
        "opened_at",
        "closed_at",
        "fixed_in",
        "regressions",
        "conclusion",
        "incidents",
    }
    assert (detail["state"], detail["incident_count"], detail["problem_key"]) == ("open", 1, "zabbix-trigger/23133")
    assert [i["dedup_key"] for i in detail["incidents"]] == ["zabbix:1"]
    assert client.get("/api/v1/problems?state=open", headers=API).json["items"][0]["id"] == problem_id
    assert client.get("/api/v1/problems/999", headers=API).status_code == 404
    assert client.get("/api/v1/problems?state=bogus", headers=API).status_code == 400


def test_link_existing_issue_checks_jira_then_links_back(client, runner, fake_jira, clock):
    fake_jira.add_issue("LKK-42", "Errors on the portal API")
    problem_id = open_zabbix_problem(client)
    response = client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-42"}, headers=OPERATE)
    assert response.status_code == 200
    assert (response.json["jira_key"], response.json["state"]) == ("LKK-42", "known_error")
    assert response.json["jira_url"] == f"{fake_jira.url}/browse/LKK-42"
    runner.run_due(clock())
    [link] = fake_jira.remote_links("LKK-42").values()
    assert link["object"]["url"] == f"http://bridge.test/api/v1/problems/{problem_id}"
    assert len(fake_jira.issues()) == 1, "linking never creates an issue"
    again = client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-42"}, headers=OPERATE)
    assert again.status_code == 200, "linking the same issue twice is harmless"


def test_linking_a_nonexistent_issue_is_refused_clearly(client):
    problem_id = open_zabbix_problem(client)
    response = client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-999"}, headers=OPERATE)
    assert response.status_code == 422
    assert response.json["message"] == "Jira issue LKK-999 does not exist or is not visible to the bridge"
    assert client.get(f"/api/v1/problems/{problem_id}", headers=API).json["jira_key"] is None


@pytest.mark.parametrize(
    "body, status, error",
    [
        ({"jira_key": "lkk 42"}, 400, "jira_key: expected a key like LKK-123"),
        ({"jira_key": "LKK-1\n"}, 400, "jira_key: expected a key like LKK-123"),
        ({"key": "LKK-1"}, 400, "jira_key: required string"),
    ],
)
def test_link_request_shape_is_checked(client, body, status, error):
    problem_id = open_zabbix_problem(client)
    response = client.post(f"/api/v1/problems/{problem_id}/jira", json=body, headers=OPERATE)
    assert response.status_code == status and response.json["errors"][0].startswith(error)


def test_jira_down_while_linking_is_503(client, fake_jira):
    fake_jira.fail("GET", r"/issue/LKK-42", status=503)
    problem_id = open_zabbix_problem(client)
    response = client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-42"}, headers=OPERATE)
    assert response.status_code == 503 and "could not check LKK-42" in response.json["message"]


def test_unlink_returns_problem_to_open(client, fake_jira):
    fake_jira.add_issue("LKK-7")
    problem_id = open_zabbix_problem(client)
    client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-7"}, headers=OPERATE)
    response = client.delete(f"/api/v1/problems/{problem_id}/jira", headers=OPERATE)
    assert (response.json["jira_key"], response.json["state"]) == (None, "open")


def test_conclusion_arrives_after_webhook(client, runner, fake_jira, clock):
    fake_jira.add_issue("LKK-5")
    problem_id = open_zabbix_problem(client)
    client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-5"}, headers=OPERATE)
    runner.run_due(clock())
    fake_jira.resolve("LKK-5", "Fixed", comment="Conclusion: connection pool too small; raised to 50 in 2026.11.2")
    clock.advance(minutes=1)
    response = webhook(client, {"webhookEvent": "jira:issue_updated", "issue": {"key": "LKK-5"}})
    assert response.status_code == 202 and response.json["action"] == "sync_queued"
    runner.run_due(clock())
    conclusion = client.get(f"/api/v1/problems/{problem_id}", headers=API).json["conclusion"]
    assert conclusion == "Status: Done\nResolution: Fixed\nconnection pool too small; raised to 50 in 2026.11.2"


def test_conclusion_arrives_by_periodic_sync_without_webhook(client, runner, fake_jira, clock):
    fake_jira.add_issue("LKK-6")
    problem_id = open_zabbix_problem(client)
    client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-6"}, headers=OPERATE)
    runner.run_due(clock())
    fake_jira.resolve("LKK-6", "Won't Fix")
    clock.advance(minutes=5)
    runner.run_due(clock())
    assert client.get(f"/api/v1/problems/{problem_id}", headers=API).json["conclusion"] == "Status: To Do"
    clock.advance(minutes=10)
    runner.run_due(clock())
    runner.run_due(clock())
    assert (
        client.get(f"/api/v1/problems/{problem_id}", headers=API).json["conclusion"]
        == "Status: Done\nResolution: Won't Fix"
    )


def test_webhook_accepts_url_secret_and_refuses_bad_signatures(client):
    body = {"webhookEvent": "jira:issue_updated", "issue": {"key": "LKK-1"}}
    assert webhook(client, body, signed=False, query=f"?secret={SECRET}").status_code == 202
    assert webhook(client, body, signed=False, query="?secret=wrong").status_code == 401
    assert webhook(client, body, signed=False).status_code == 401
    raw = json.dumps(body).encode()
    forged = client.post(
        "/api/v1/jira/webhook",
        data=raw,
        headers={"X-Hub-Signature": "sha256=" + "0" * 64},
        content_type="application/json",
    )
    assert forged.status_code == 401


def test_webhook_for_unlinked_issue_or_other_event_is_ignored(client):
    assert (
        webhook(client, {"webhookEvent": "jira:issue_updated", "issue": {"key": "LKK-1"}}).json["action"] == "ignored"
    )
    assert webhook(client, {"webhookEvent": "jira:worklog_updated"}).json["action"] == "ignored"
    assert webhook(client, {"nothing": 1}).status_code == 400


def test_dead_jobs_are_visible_with_their_reason(client, runner, fake_jira, clock):
    fake_jira.add_issue("LKK-8")
    problem_id = open_zabbix_problem(client)
    client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-8"}, headers=OPERATE)
    fake_jira.fail("POST", r"/remotelink", status=403, times=5)
    runner.run_due(clock())
    [dead] = client.get("/api/v1/outbox?state=dead", headers=API).json["items"]
    assert dead["kind"] == "jira.ensure_issue" and "HTTP 403" in dead["last_error"]


def test_dead_job_is_retried_by_hand_once_jira_accepts_again(client, runner, fake_jira, clock):
    fake_jira.add_issue("LKK-8")
    problem_id = open_zabbix_problem(client)
    client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-8"}, headers=OPERATE)
    fake_jira.fail("POST", r"/remotelink", status=403, times=1)
    runner.run_due(clock())
    [dead] = client.get("/api/v1/outbox?state=dead", headers=API).json["items"]
    assert client.post(f"/api/v1/outbox/{dead['id']}/retry", json=None, headers=JSON).status_code == 401
    retried = client.post(f"/api/v1/outbox/{dead['id']}/retry", headers=OPERATE)
    assert retried.status_code == 200
    assert (retried.json["state"], retried.json["attempts"]) == ("pending", 0)
    again = client.post(f"/api/v1/outbox/{dead['id']}/retry", headers=OPERATE)
    assert again.status_code == 409 and again.json["message"] == f"outbox job {dead['id']} is pending, not dead"
    assert client.post("/api/v1/outbox/999/retry", headers=OPERATE).json["message"] == "no outbox job 999"
    runner.run_due(clock())
    assert dead["id"] in [job["id"] for job in client.get("/api/v1/outbox?state=done", headers=API).json["items"]]
    assert fake_jira.remote_links("LKK-8"), "the retried job linked the issue back"


RELEASE = {"Authorization": "Bearer release-token"}


def test_release_hook_over_http_closes_and_replays(client, fake_jira):
    fake_jira.add_issue("LKK-9")
    problem_id = open_zabbix_problem(client)
    client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-9"}, headers=OPERATE)
    body = {
        "version": "2026.11.2",
        "project": "LKK",
        "issues": ["LKK-9", "LKK-10"],
        "released_at": "2026-11-25T10:00:00Z",
    }
    assert client.post("/api/v1/releases", json=body, headers=API).status_code == 401, (
        "the release hook has its own token"
    )
    first = client.post("/api/v1/releases", json=body, headers=RELEASE)
    assert first.status_code == 200
    assert (first.json["closed_problems"], first.json["closed_incidents"], first.json["unmatched_issues"]) == (
        [problem_id],
        1,
        ["LKK-10"],
    )
    again = client.post("/api/v1/releases", json=body, headers=RELEASE).json
    assert (again["replay"], again["closed_problems"]) == (True, [])
    assert again["already_processed_issues"] == ["LKK-10", "LKK-9"]
    detail = client.get(f"/api/v1/problems/{problem_id}", headers=API).json
    assert (detail["state"], detail["fixed_in"]) == ("closed", "2026.11.2")
    assert detail["incidents"][0]["close_reason"] == "released in 2026.11.2"
    assert [h["kind"] for h in detail["history"]] == ["opened", "linked", "released"]
    [listed] = client.get("/api/v1/releases", headers=API).json["items"]
    assert (listed["version"], listed["summary"]["closed_problems"]) == ("2026.11.2", [problem_id])


def open_linked_zabbix_problem(client, fake_jira, key: str, trigger_id: str) -> int:
    """A problem of its own (one per trigger) linked to an existing issue."""
    fake_jira.add_issue(key)
    client.post(
        "/api/v1/alerts/zabbix",
        json=dict(payload("zabbix-6.0.14-problem.json"), event_id=trigger_id, trigger_id=trigger_id),
    )
    [problem] = [
        p
        for p in client.get("/api/v1/problems", headers=API).json["items"]
        if p["problem_key"] == f"zabbix-trigger/{trigger_id}"
    ]
    client.post(f"/api/v1/problems/{problem['id']}/jira", json={"jira_key": key}, headers=OPERATE)
    return problem["id"]


def test_release_hook_closes_a_hotfix_issue_added_to_a_shipped_version(client, fake_jira):
    first_id = open_linked_zabbix_problem(client, fake_jira, "LKK-9", "23301")
    hotfix_id = open_linked_zabbix_problem(client, fake_jira, "LKK-12", "23302")
    body = {"version": "2026.11.2", "project": "LKK", "issues": ["LKK-9"]}
    assert client.post("/api/v1/releases", json=body, headers=RELEASE).json["closed_problems"] == [first_id]
    hotfix = client.post("/api/v1/releases", json=dict(body, issues=["LKK-9", "LKK-12"]), headers=RELEASE).json
    assert (hotfix["replay"], hotfix["closed_problems"], hotfix["closed_incidents"]) == (False, [hotfix_id], 1)
    assert hotfix["already_processed_issues"] == ["LKK-9"]
    assert client.get(f"/api/v1/problems/{hotfix_id}", headers=API).json["fixed_in"] == "2026.11.2"
    [listed] = client.get("/api/v1/releases", headers=API).json["items"]
    assert (listed["summary"]["closed_problems"], listed["summary"]["closed_incidents"]) == ([first_id, hotfix_id], 2)


@pytest.mark.parametrize(
    "body, error",
    [
        ({"project": "LKK"}, "version: required field is missing"),
        ({"version": "1", "project": "lkk"}, "project: String should match pattern"),
        ({"version": "1", "project": "LKK", "issues": ["not a key"]}, "issues[0]: String should match pattern"),
        (
            {"version": "1", "project": "LKK", "released_at": "2026-11-25T10:00:00"},
            "released_at: Input should have timezone info",
        ),
        ({"version": "1", "project": "LKK", "extra": 1}, "extra: unknown key"),
    ],
)
def test_release_body_is_validated(client, body, error):
    response = client.post("/api/v1/releases", json=body, headers=RELEASE)
    assert response.status_code == 400 and any(e.startswith(error) for e in response.json["errors"]), response.json


def test_jira_version_released_webhook_runs_the_close_path(client, fake_jira):
    fake_jira.add_issue("LKK-11", fix_versions=["2026.12.0"])
    problem_id = open_zabbix_problem(client)
    client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-11"}, headers=OPERATE)
    fake_jira.issue("LKK-11")["fields"]["fixVersions"] = [{"name": "2026.12.0", "id": "10020"}]
    response = webhook(
        client,
        {
            "webhookEvent": "jira:version_released",
            "version": {"id": "10020", "name": "2026.12.0", "projectId": 10000, "released": True},
        },
    )
    assert response.status_code == 202 and response.json["action"] == "release_closed"
    assert response.json["closed_problems"] == [problem_id]
    assert client.get(f"/api/v1/problems/{problem_id}", headers=API).json["fixed_in"] == "2026.12.0"


def test_jira_version_released_again_closes_the_issues_added_since(client, fake_jira):
    first_id = open_linked_zabbix_problem(client, fake_jira, "LKK-11", "23301")
    added_id = open_linked_zabbix_problem(client, fake_jira, "LKK-13", "23302")
    released = {
        "webhookEvent": "jira:version_released",
        "version": {"id": "10020", "name": "2026.12.0", "projectId": 10000, "released": True},
    }
    fake_jira.issue("LKK-11")["fields"]["fixVersions"] = [{"name": "2026.12.0", "id": "10020"}]
    assert webhook(client, released).json["closed_problems"] == [first_id]
    fake_jira.issue("LKK-13")["fields"]["fixVersions"] = [{"name": "2026.12.0", "id": "10020"}]
    again = webhook(client, released).json
    assert (again["replay"], again["closed_problems"]) == (False, [added_id])
    assert again["already_processed_issues"] == ["LKK-11"]
    assert webhook(client, released).json["replay"] is True


def test_manual_close_and_reopen_over_http(client):
    problem_id = open_zabbix_problem(client)
    assert client.post(f"/api/v1/problems/{problem_id}/close", json={}, headers=OPERATE).status_code == 400
    closed = client.post(f"/api/v1/problems/{problem_id}/close", json={"reason": "fixed by hand"}, headers=OPERATE)
    assert closed.json["state"] == "closed"
    assert client.post(f"/api/v1/problems/{problem_id}/close", json={"reason": "x"}, headers=OPERATE).status_code == 409
    reopened = client.post(f"/api/v1/problems/{problem_id}/reopen", json={"reason": "back"}, headers=OPERATE)
    assert reopened.json["state"] == "open"


def test_a_non_ascii_signature_is_refused_not_a_crash(client):
    response = client.post(
        "/api/v1/jira/webhook",
        data=b'{"webhookEvent": "jira:issue_updated"}',
        content_type="application/json",
        headers={"X-Hub-Signature": "sha256=\u00e9\u00e9"},
    )
    assert response.status_code == 401 and response.json["message"] == "invalid Jira webhook signature or secret"


@pytest.mark.parametrize("issue", ["LKK-1", ["LKK-1"], 7, True])
def test_a_signed_webhook_whose_issue_is_not_an_object_is_a_400(client, issue):
    response = webhook(client, {"webhookEvent": "jira:issue_updated", "issue": issue})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["errors"] == ["issue.key: expected a Jira key"]


def test_a_signed_webhook_whose_key_ends_in_a_newline_is_a_400(client):
    response = webhook(client, {"webhookEvent": "jira:issue_updated", "issue": {"id": "10001", "key": "LKK-1\n"}})
    assert response.status_code == 400 and response.json["errors"] == ["issue.key: expected a Jira key"]


def test_a_moved_issue_keeps_its_problem_over_http_webhook_by_id_then_release_by_new_key(
    client, runner, fake_jira, clock
):
    fake_jira.add_issue("LKK-9")
    issue_id = fake_jira.issue("LKK-9")["id"]
    problem_id = open_zabbix_problem(client)
    linked = client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-9"}, headers=OPERATE).json
    assert (linked["jira_key"], linked["jira_issue_id"]) == ("LKK-9", issue_id)
    moved_to = fake_jira.move("LKK-9", "OPS")
    response = webhook(client, {"webhookEvent": "jira:issue_updated", "issue": {"id": issue_id, "key": moved_to}})
    assert response.status_code == 202
    assert (response.json["action"], response.json["move_read_queued"]) == ("sync_queued", "LKK-9")
    runner.run_due(clock())  # the issue is read by its id: Jira says where it moved
    detail = client.get(f"/api/v1/problems/{problem_id}", headers=API).json
    assert (detail["jira_key"], detail["jira_issue_id"]) == (moved_to, issue_id)
    assert detail["jira_url"] == f"{fake_jira.url}/browse/{moved_to}"
    assert [h["kind"] for h in detail["history"]] == ["opened", "linked", "jira_moved"]
    body = {"version": "2026.11.3", "project": "OPS", "issues": [moved_to], "released_at": "2026-11-25T10:00:00Z"}
    released = client.post("/api/v1/releases", json=body, headers=RELEASE).json
    assert released["closed_problems"] == [problem_id]
