"""Merge and move over HTTP, on SQLite and PostgreSQL: answers, refusals, the token, and the problem page."""

from __future__ import annotations

import json

import pytest

from bridge.app import create_app
from bridge.config import load_settings
from bridge.storage.schema import problems
from tests.conftest import ROOT, Clock
from tests.integration.test_problems import firing

API = {"Authorization": "Bearer api-token"}
OPERATE = {"Authorization": "Bearer operate-token", "X-Bridge-Actor": "Anna Petrova"}


@pytest.fixture
def client(database_url: str, clock: Clock):
    settings = load_settings(
        {"BRIDGE_TOKEN_API": "api-token", "BRIDGE_TOKEN_OPERATE": "operate-token", "BRIDGE_UI_SECRET_KEY": "x" * 32},
        database_url=database_url,
        rules_path=str(ROOT / "rules.yaml"),
    )
    app = create_app(settings, now=clock)
    yield app.test_client()
    app.extensions["bridge"].store.engine.dispose()


def open_problem(client, name: str, incidents: int = 2) -> int:
    for n in range(incidents):
        body = json.loads(firing(f"{name}{n:015x}"[-16:], alertname=name))
        assert client.post("/api/v1/alerts/alertmanager", json=body).status_code == 200
    items = client.get("/api/v1/problems", headers=API).json["items"]
    return next(p["id"] for p in items if p["problem_key"] == f"{name}/lkk")


def incident_ids(client, problem_id: int) -> list[int]:
    return sorted(i["id"] for i in client.get(f"/api/v1/problems/{problem_id}", headers=API).json["incidents"])


def test_merge_answers_with_the_problem_merged_into_and_what_happened(client):
    a, b = open_problem(client, "A"), open_problem(client, "B", 3)
    response = client.post(f"/api/v1/problems/{a}/merge", json={"into": b, "reason": "one outage"}, headers=OPERATE)
    assert response.status_code == 200, response.json
    answer = response.json
    assert (answer["id"], answer["state"], answer["incident_count"], answer["merged_into"]) == (b, "open", 5, None)
    assert answer["merge"] == {
        "merged": a,
        "into": b,
        "incidents_moved": 2,
        "jira_key": None,
        "jira_moved": None,
        "jira_conflict": None,
    }
    source = client.get(f"/api/v1/problems/{a}", headers=API).json
    assert (source["state"], source["merged_into"], source["incidents"], source["outcome"]) == ("closed", b, [], None)
    assert source["history"][-1]["detail"] == f"merged into problem {b} by Anna Petrova: one outage (2 incidents moved)"
    assert client.post("/ui/login", data={"token": "api-token", "next": "/ui/"}).status_code == 302
    page = client.get(f"/ui/problems/{a}").get_data(as_text=True)
    assert f'Merged into <a href="/ui/problems/{b}">problem #{b}</a>' in page
    assert '<dd id="outcome">none yet</dd>' in page


@pytest.mark.parametrize(
    "body, status, error",
    [
        pytest.param({}, 400, "into: required field is missing", id="missing"),
        pytest.param({"into": "2"}, 400, "into: Input should be a valid integer", id="string"),
        pytest.param({"into": True}, 400, "into: Input should be a valid integer", id="boolean"),
        pytest.param({"into": 0}, 400, "into: Input should be greater than or equal to 1", id="zero"),
        pytest.param({"into": 2, "why": "x"}, 400, "why: unknown key", id="unknown-key"),
        pytest.param({"into": 2, "reason": ""}, 400, "reason: String should have at least 1 character", id="empty"),
        pytest.param({"into": 2, "reason": "a\x00b"}, 400, "reason: NUL characters are not allowed", id="nul"),
        pytest.param({"into": 999}, 422, "into: problem 999 does not exist", id="into-missing"),
    ],
)
def test_merge_bodies_are_checked(client, body, status, error):
    open_problem(client, "A")
    open_problem(client, "B")
    response = client.post("/api/v1/problems/1/merge", json=body, headers=OPERATE)
    assert response.status_code == status, response.json
    assert error in response.json["errors"]


def test_merge_refusals_are_409_and_422_with_the_reason(client):
    a, b = open_problem(client, "A"), open_problem(client, "B")
    itself = client.post(f"/api/v1/problems/{a}/merge", json={"into": a}, headers=OPERATE)
    assert (itself.status_code, itself.json["message"]) == (422, f"problem {a} cannot be merged into itself")
    assert client.post(f"/api/v1/problems/{a}/merge", json={"into": b}, headers=OPERATE).status_code == 200
    back = client.post(f"/api/v1/problems/{b}/merge", json={"into": a}, headers=OPERATE)
    assert back.status_code == 409
    assert back.json["message"] == f"problem {a} is already merged into problem {b}; a merge back would loop"
    missing = client.post("/api/v1/problems/999/merge", json={"into": a}, headers=OPERATE)
    assert (missing.status_code, missing.json["message"]) == (404, "no problem 999")


def test_move_answers_with_the_incident_and_its_history(client):
    a, b = open_problem(client, "A", 3), open_problem(client, "B")
    incident = incident_ids(client, a)[0]
    response = client.post(f"/api/v1/incidents/{incident}/move", json={"problem_id": b}, headers=OPERATE)
    assert response.status_code == 200, response.json
    assert (response.json["id"], response.json["problem_id"], response.json["moved_from"]) == (incident, b, a)
    assert incident in incident_ids(client, b) and incident not in incident_ids(client, a)
    history = client.get(f"/api/v1/incidents/{incident}", headers=API).json["history"]
    assert [(e["kind"], e["actor"], e["detail"]) for e in history] == [
        ("moved", "Anna Petrova", f"moved from problem {a} to problem {b}")
    ]
    again = client.post(f"/api/v1/incidents/{incident}/move", json={"problem_id": b}, headers=OPERATE)
    assert (again.status_code, again.json["message"]) == (409, f"incident {incident} is already in problem {b}")
    assert client.post("/api/v1/incidents/999/move", json={"problem_id": b}, headers=OPERATE).status_code == 404
    nowhere = client.post(f"/api/v1/incidents/{incident}/move", json={"problem_id": 999}, headers=OPERATE)
    assert (nowhere.status_code, nowhere.json["errors"]) == (422, ["problem_id: problem 999 does not exist"])
    shape = client.post(f"/api/v1/incidents/{incident}/move", json={"problem": b}, headers=OPERATE)
    assert shape.status_code == 400 and "problem: unknown key" in shape.json["errors"]


def test_merge_and_move_need_the_token(client):
    a, b = open_problem(client, "A"), open_problem(client, "B")
    assert client.post(f"/api/v1/problems/{a}/merge", json={"into": b}).status_code == 401
    assert client.post("/api/v1/incidents/1/move", json={"problem_id": b}).status_code == 401
    reading = client.post(f"/api/v1/problems/{a}/merge", json={"into": b}, headers=API)
    assert reading.status_code == 401, "the reading token does not act"
    assert client.get(f"/api/v1/problems/{a}", headers=API).json["state"] == "open"


def test_the_outcome_shows_in_the_api_and_on_the_problem_page(client):
    a = open_problem(client, "A")
    store = client.application.extensions["bridge"].store
    store.run(lambda conn: conn.execute(problems.update().where(problems.c.id == a).values(outcome="wont_do")))
    assert client.get(f"/api/v1/problems/{a}", headers=API).json["outcome"] == "wont_do"
    assert client.post("/ui/login", data={"token": "api-token", "next": "/ui/"}).status_code == 302
    page = client.get(f"/ui/problems/{a}").get_data(as_text=True)
    assert '<dd id="outcome">won&#39;t do</dd>' in page
    assert 'id="merged-into"' not in page
