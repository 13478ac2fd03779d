"""Deploys and changes over HTTP, on SQLite and PostgreSQL: their tokens and refusals, the PagerDuty paths, and
what the problem, incident and release pages and /metrics show of them.

The change events are PagerDuty's documented example (tests/fixtures/payloads/events-change.json) and
variations of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.app import create_app
from bridge.config import load_settings
from tests.conftest import ROOT, Clock, payload

KEY = "e2e0f5b1c8d94a2b9c7d6e5f4a3b2c1d"  # the routing_key of the events-*.json fixtures
JSON = {"Content-Type": "application/json"}
API = {"Authorization": "Bearer api-token"}
RELEASE = {"Authorization": "Bearer release-token", **JSON}
ALERTS = {"Authorization": "Bearer am-token", **JSON}


@pytest.fixture
def app(database_url: str, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BRIDGE_TEST_CHANGES_KEY", KEY)
    rules = yaml.safe_load((ROOT / "rules.yaml").read_text())
    rules["releases"] = {"version_label": "version", "environment_label": "env"}
    rules["projects"] = {"LKK": {"labels": {"service": "lkk"}, "hold": "side_effects", "settle": "10m"}}
    rules["events"] = {
        "routing_keys": [{"name": "ansible", "key": "${BRIDGE_TEST_CHANGES_KEY}", "labels": {"team": "platform"}}]
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    environ = {
        "BRIDGE_TOKEN_API": "api-token",
        "BRIDGE_TOKEN_RELEASE": "release-token",
        "BRIDGE_TOKEN_ALERTMANAGER": "am-token",
        "BRIDGE_DEPLOY_MAX": "1h",
    }
    settings = load_settings(environ, database_url=database_url, rules_path=str(tmp_path / "rules.yaml"))
    app = create_app(settings, now=clock)
    yield app
    app.extensions["bridge"].store.engine.dispose()


@pytest.fixture
def client(app) -> Iterator:
    return app.test_client()


def told(client, phase: str, version: str = "2026.12.1", **more):
    body = {"project": "LKK", "version": version, "environment": "prod", "phase": phase, **more}
    return client.post("/api/v1/deploys", data=json.dumps(body), headers=RELEASE)


def fire(client, fingerprint: str, **labels: str):
    body = payload("alertmanager-0.25-two-firing.json")
    one = dict(body["alerts"][0], fingerprint=fingerprint)
    one["labels"] = {**one["labels"], "instance": fingerprint, "service": "lkk", "env": "prod", **labels}
    body["alerts"] = [one]
    answer = client.post("/api/v1/alerts/alertmanager", data=json.dumps(body), headers=ALERTS)
    assert answer.status_code == 200, answer.json
    return answer.json["incidents"][0]


def change(client, path: str = "/api/v1/changes", **details: str):
    body = payload("events-change.json")
    body["payload"]["custom_details"].update(details)
    return client.post(path, data=json.dumps(body), headers=JSON)


def sample(client, name: str, **labels: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return found.value
    return 0.0


def test_deploys_take_the_release_token_and_each_call_is_answered_as_what_it_did(client, clock: Clock):
    body = {"project": "LKK", "version": "2026.12.1", "environment": "prod", "phase": "started"}
    assert client.post("/api/v1/deploys", data=json.dumps(body), headers=JSON).status_code == 401
    wrong = {**RELEASE, "Authorization": "Bearer api-token"}
    assert client.post("/api/v1/deploys", data=json.dumps(body), headers=wrong).status_code == 401
    started = told(client, "started", issues=["LKK-1"])
    assert started.status_code == 201, started.json
    deploy = started.json["deploy"]
    assert (deploy["state"], deploy["hold"], deploy["issues"], started.json["replay"]) == (
        "started",
        "side_effects",
        ["LKK-1"],
        False,
    )
    assert deploy["expires_at"] == (clock.value + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    clock.advance(minutes=1)
    again = told(client, "started")
    assert (again.status_code, again.json["replay"], again.json["deploy"]["id"]) == (200, True, deploy["id"])
    clock.advance(minutes=5)
    finished = told(client, "finished", issues=["LKK-2"])
    assert finished.status_code == 200 and finished.json["deploy"]["state"] == "finished"
    assert finished.json["deploy"]["issues"] == ["LKK-1", "LKK-2"]
    other = client.post(
        "/api/v1/deploys", data=json.dumps({**body, "project": "PAY", "phase": "finished"}), headers=RELEASE
    )
    assert other.status_code == 201 and "not in rules.yaml projects" in other.json["note"]
    listed = client.get("/api/v1/deploys?project=LKK", headers=API)
    assert [item["version"] for item in listed.json["items"]] == ["2026.12.1"]
    assert client.get("/api/v1/deploys", headers=RELEASE).status_code == 401, "listing takes the read token"
    assert client.get("/api/v1/deploys?environment=no%20such", headers=API).status_code == 400


@pytest.mark.parametrize(
    ("change_body", "named"),
    [
        ({"phase": "rolled"}, "phase"),
        ({"project": "lkk"}, "project"),
        ({"environment": "prod env"}, "environment"),
        ({"version": ""}, "version"),
        ({"issues": ["not a key"]}, "issues[0]"),
        ({"when": "now"}, "when: unknown key"),
    ],
)
def test_a_deploy_body_that_is_not_one_is_refused_naming_the_field(client, change_body, named):
    body = {"project": "LKK", "version": "2026.12.1", "environment": "prod", "phase": "started", **change_body}
    answer = client.post("/api/v1/deploys", data=json.dumps(body), headers=RELEASE)
    assert answer.status_code == 400
    assert any(error.startswith(named) for error in answer.json["errors"]), answer.json


def test_alerts_during_a_deploy_are_marked_held_and_counted_and_pages_show_the_deploy_and_suspects(
    client, clock: Clock
):
    before = sample(client, "bridge_deploys_total", project="LKK", environment="prod", phase="started")
    during = sample(client, "bridge_alerts_during_deploy_total", project="LKK", environment="prod")
    told(client, "started")
    clock.advance(minutes=14)
    first = fire(client, "0000000000000001")
    clock.advance(minutes=1)
    fire(client, "0000000000000002")
    incident = client.get(f"/api/v1/incidents/{first}", headers=API).json
    assert incident["during_deploy"] == {"project": "LKK", "version": "2026.12.1", "environment": "prod"}
    assert incident["held"] is True
    client.post("/ui/login", data={"token": "api-token"})
    page = client.get(f"/ui/incidents/{first}").get_data(as_text=True)
    assert 'id="during-deploy"' in page and "LKK 2026.12.1</a> to prod" in page
    assert sample(client, "bridge_deploys_total", project="LKK", environment="prod", phase="started") - before == 1
    assert sample(client, "bridge_alerts_during_deploy_total", project="LKK", environment="prod") - during == 2
    told(client, "failed")  # released at once: the problem opens now, with its suspect
    [problem] = client.get("/api/v1/problems", headers=API).json["items"]
    found = client.get(f"/api/v1/problems/{problem['id']}", headers=API).json
    [suspect] = found["suspects"]
    assert {key: suspect[key] for key in ("project", "version", "environment", "minutes_before", "issues")} == {
        "project": "LKK",
        "version": "2026.12.1",
        "environment": "prod",
        "minutes_before": 14,
        "issues": [],
    }
    page = client.get(f"/ui/problems/{problem['id']}").get_data(as_text=True)
    assert 'id="suspects"' in page and "<strong>14 min</strong> before the first occurrence" in page
    client.post(
        "/api/v1/releases",
        data=json.dumps({"project": "LKK", "version": "2026.12.1", "issues": []}),
        headers=RELEASE,
    )
    health = client.get("/api/v1/releases/LKK/2026.12.1", headers=API).json
    [deploy] = health["deploys"]
    assert (deploy["state"], deploy["alerts_during"]) == ("failed", 2)
    assert [(p["id"], p["nearest_suspect"]) for p in deploy["problems"]] == [(problem["id"], True)]
    release_page = client.get("/ui/releases/LKK/2026.12.1").get_data(as_text=True)
    assert 'id="deploys"' in release_page and "(nearest suspect)" in release_page


def test_a_change_event_is_recorded_never_an_incident_and_a_suspect_when_it_names_the_service(client, clock: Clock):
    answer = change(client, service="lkk")
    assert answer.status_code == 202, answer.json
    assert (answer.json["status"], answer.json["message"]) == ("success", "Change event processed")
    assert change(client, "/v2/change/enqueue", service="billing").status_code == 202, "PagerDuty's own path"
    assert client.get("/api/v1/incidents", headers=API).json["items"] == []
    first, second = client.get("/api/v1/changes", headers=API).json["items"][::-1]
    assert first["labels"] == {
        "team": "platform",
        "build_state": "passed",
        "build_number": "2",
        "run_time": "1236s",
        "service": "lkk",
    }
    assert (first["routing_key"], first["changed_at"]) == ("ansible", "2020-07-17T08:42:58.315000Z")
    assert first["links"] == [{"href": "https://acme.pagerduty.dev/build/2", "text": "View more details in Acme!"}]
    assert KEY not in json.dumps([first, second]), "the routing key is never kept"
    leaky = payload("events-change.json")
    leaky["payload"]["custom_details"]["note"] = f"sent with {KEY}"
    assert client.post("/api/v1/changes", data=json.dumps(leaky), headers=JSON).status_code == 202
    [newest, *_] = client.get("/api/v1/changes", headers=API).json["items"]
    assert newest["custom_details"]["note"] == "sent with <redacted>" and KEY not in json.dumps(newest)
    body = payload("events-change.json")
    del body["payload"]["timestamp"]  # made now: inside the suspect window of what fires next
    body["payload"]["custom_details"]["service"] = "lkk"
    client.post("/api/v1/changes", data=json.dumps(body), headers=JSON)
    clock.advance(minutes=5)
    fire(client, "0000000000000001")
    fire(client, "0000000000000002")
    [problem] = client.get("/api/v1/problems", headers=API).json["items"]
    [suspect] = client.get(f"/api/v1/problems/{problem['id']}", headers=API).json["suspects"]
    assert (suspect["kind"], suspect["minutes_before"], suspect["source"]) == (
        "change",
        5,
        "acme-build-pipeline-tool-default-i-9999",
    )


@pytest.mark.parametrize(
    ("mutate", "status", "named"),
    [
        (lambda body: body.update(routing_key="f" * 32), 400, "routing_key: Invalid routing key"),
        (lambda body: body.pop("routing_key"), 400, "routing_key: Invalid routing key"),
        (lambda body: body["payload"].pop("summary"), 400, "payload.summary: required field is missing"),
        (lambda body: body.pop("payload"), 400, "payload: required field is missing"),
        (lambda body: body["payload"].update(summary="x" * 1025), 400, "payload.summary: String should have at most"),
        (lambda body: body["payload"].update(summary=""), 400, "payload.summary: String should have at least"),
        (lambda body: body["payload"].update(timestamp="yesterday"), 400, "payload.timestamp"),
        (lambda body: body["payload"].update(custom_details="passed"), 400, "payload.custom_details"),
        (
            lambda body: body["payload"]["custom_details"].update(log="x" * 70_000),
            400,
            "payload.custom_details: larger than 65536 bytes",
        ),
        (lambda body: body.update(links=[{"text": "no href"}]), 400, "links[0].href"),
        (lambda body: body.update(links=[{"href": "h"}] * 33), 400, "links: List should have at most 32"),
        (lambda body: body["payload"].update(source="x" * 600_000), 413, "body"),
    ],
)
def test_change_events_pagerduty_documents_but_broken_are_refused_clearly(client, app, mutate, status, named):
    body = payload("events-change.json")
    mutate(body)
    answer = client.post("/api/v1/changes", data=json.dumps(body), headers=JSON)
    assert answer.status_code == status, answer.json
    if status == 400:
        assert answer.json["status"] == "invalid event" or answer.json["message"] == "invalid routing key"
        assert any(error.startswith(named) for error in answer.json["errors"]), answer.json
    assert client.get("/api/v1/changes", headers=API).json["items"] == []
    kept = client.get("/api/v1/rejected?source=events", headers=API).json["items"]
    known_key = body.get("routing_key") == KEY
    assert len(kept) == (1 if known_key else 0), "a known sender's refusal is kept; an unknown one's is not"
    for item in kept:
        assert KEY not in json.dumps(client.get(f"/api/v1/rejected/{item['id']}", headers=API).json)


def test_a_change_not_sent_as_json_is_refused_and_kept(client):
    body = json.dumps(payload("events-change.json"))
    answer = client.post("/api/v1/changes", data=body, headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415
    [kept] = client.get("/api/v1/rejected?source=events", headers=API).json["items"]
    assert "application/json" in kept["reason"]


def test_pagerdutys_alert_path_is_the_events_endpoint(client):
    body = payload("events-trigger.json")
    answer = client.post("/v2/enqueue", data=json.dumps(body), headers=JSON)
    assert answer.status_code == 202 and answer.json["dedup_key"] == "samplekeyhere"
    wrong = client.post("/v2/enqueue", data=json.dumps({**body, "routing_key": "nope"}), headers=JSON)
    assert wrong.status_code == 400 and wrong.json["errors"] == ["routing_key: Invalid routing key"]
