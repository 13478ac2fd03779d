"""Grafana Alerting through HTTP, on SQLite and PostgreSQL: fire, repeat, resolve, group, page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bridge.app import create_app
from bridge.config import load_settings
from tests.conftest import ROOT, Clock, payload

GRAFANA = {"Authorization": "Bearer grafana-token", "Content-Type": "application/json"}
API = {"Authorization": "Bearer api-token"}


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    """The example rules plus a problem rule for Grafana alerts of one team."""
    rules = yaml.safe_load((ROOT / "rules.yaml").read_text())
    rules["routes"].insert(
        0,
        {
            "name": "grafana-blue",
            "match": {"source": "grafana", "labels": {"team": "blue"}},
            "impact": "high",
            "urgency": "high",
        },
    )
    rules["problems"].insert(
        0,
        {
            "name": "grafana-team",
            "match": {"source": "grafana"},
            "key": "grafana/{{ labels.team }}",
            "summary": "Team {{ labels.team }} alerts",
            "open_after": 2,
        },
    )
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


@pytest.fixture
def client(database_url: str, rules_path: Path, clock: Clock) -> Iterator:
    settings = load_settings(
        {"BRIDGE_TOKEN_GRAFANA": "grafana-token", "BRIDGE_TOKEN_API": "api-token"},
        database_url=database_url,
        rules_path=str(rules_path),
    )
    app = create_app(settings, now=clock)
    yield app.test_client()
    app.extensions["bridge"].store.engine.dispose()


def post(client, name: str, headers: dict[str, str] = GRAFANA):
    return client.post("/api/v1/alerts/grafana", data=json.dumps(payload(name)), headers=headers)


def incidents(client) -> dict[str, dict]:
    return {item["dedup_key"]: item for item in client.get("/api/v1/incidents", headers=API).json["items"]}


def test_grafana_alerts_fire_repeat_and_resolve_as_incidents(client, clock):
    first = post(client, "grafana-11-values.json")
    assert first.status_code == 200, first.json
    assert first.json["outcomes"] == {"created": 2}
    clock.advance(minutes=1)
    assert post(client, "grafana-11-values.json").json["outcomes"] == {"repeated": 2}
    clock.advance(minutes=1)
    assert post(client, "grafana-11-resolved.json").json["outcomes"] == {"resolved": 1}
    found = incidents(client)
    memory, cpu = found["grafana:1:c6eadffa33fcdf37"], found["grafana:1:bc97ff14869b13e3"]
    assert (memory["state"], memory["occurrences"], cpu["state"]) == ("resolved", 2, "firing")
    assert (memory["source"], memory["route"], memory["priority"]) == ("grafana", "grafana-blue", "P1")
    assert memory["annotations"]["grafana_values"] == '{"B":44.23943737541908,"C":1}'


def test_grafana_9_value_strings_are_kept(client):
    assert post(client, "grafana-9-valuestring.json").status_code == 200
    [incident, _] = incidents(client).values()
    assert incident["annotations"]["grafana_value_string"].startswith("[ metric=''")


def test_grafana_alerts_group_under_a_problem_by_rule(client):
    post(client, "grafana-11-values.json")
    [problem] = client.get("/api/v1/problems", headers=API).json["items"]
    assert (problem["problem_key"], problem["rule"], problem["incident_count"]) == ("grafana/blue", "grafana-team", 2)
    closed = client.post(f"/api/v1/problems/{problem['id']}/close", json={"reason": "fixed"}, headers=API)
    assert closed.status_code == 200 and all(i["state"] == "closed" for i in incidents(client).values())


def test_grafana_needs_its_own_token_and_refuses_other_shapes(client):
    assert post(client, "grafana-11-values.json", {"Content-Type": "application/json"}).status_code == 401
    wrong = client.post(
        "/api/v1/alerts/grafana", data=json.dumps(payload("alertmanager-0.25-two-firing.json")), headers=GRAFANA
    )
    assert wrong.status_code == 400 and wrong.json["message"] == "invalid Grafana payload"
    assert "version: Input should be '1'" in wrong.json["errors"]
    [kept] = client.get("/api/v1/rejected?source=grafana", headers=API).json["items"]
    assert kept["reason"] == "invalid Grafana payload"


def test_the_incident_page_links_grafana_dashboards_and_silences(client):
    post(client, "grafana-11-values.json")
    incident = incidents(client)["grafana:1:c6eadffa33fcdf37"]
    client.post("/ui/login", data={"token": "api-token"})
    page = client.get(f"/ui/incidents/{incident['id']}").get_data(as_text=True)
    assert (
        '<a href="https://play.grafana.org/alerting/silence/new?alertmanager=grafana" rel="noopener noreferrer">'
        in page
    )
    listing = client.get("/ui/incidents?source=grafana")
    assert listing.status_code == 200 and "This alert was triggered for zone us-1" in listing.get_data(as_text=True)
