"""PagerDuty Events API v2 through HTTP, on SQLite and PostgreSQL.

The bodies are PagerDuty's documented examples (tests/fixtures/payloads/events-*.json) and what a
real Alertmanager 0.25 posts through pagerduty_configs (alertmanager-0.25-pagerduty-*.json).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from bridge.app import create_app
from bridge.config import load_settings
from bridge.errors import Conflict
from bridge.problems.actions import acknowledge_incident
from bridge.storage.store import Store
from tests.conftest import ROOT, Clock, payload

KEY = "e2e0f5b1c8d94a2b9c7d6e5f4a3b2c1d"  # the routing_key of the events-*.json fixtures
ALERTMANAGER_KEY = "test-routing-key"  # as recorded from Alertmanager
JSON = {"Content-Type": "application/json"}
API = {"Authorization": "Bearer api-token"}


@pytest.fixture
def rules_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example rules with two routing keys (from the environment) and a problem rule for one of them."""
    monkeypatch.setenv("BRIDGE_TEST_EVENTS_KEY", KEY)
    monkeypatch.setenv("BRIDGE_TEST_AM_KEY", ALERTMANAGER_KEY)
    rules = yaml.safe_load((ROOT / "rules.yaml").read_text())
    rules["events"] = {
        "routing_keys": [
            {"name": "portal-uptime", "key": "${BRIDGE_TEST_EVENTS_KEY}", "labels": {"service": "portal"}},
            {"name": "alertmanager-pd", "key": "${BRIDGE_TEST_AM_KEY}"},
        ]
    }
    rules["routes"].insert(
        0,
        {
            "name": "portal-events",
            "match": {"source": "events", "labels": {"service": "portal"}},
            "impact": "high",
            "urgency": "medium",
        },
    )
    rules["problems"].insert(
        0,
        {
            "name": "portal-events",
            "match": {"source": "events", "labels": {"service": "portal"}},
            "key": "events/{{ labels.service }}",
            "summary": "{{ labels.service }} is failing",
            "example_labels": {"service": "portal"},
        },
    )
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


@pytest.fixture
def app(database_url: str, rules_path: Path, clock: Clock):
    settings = load_settings({"BRIDGE_TOKEN_API": "api-token"}, database_url=database_url, rules_path=str(rules_path))
    app = create_app(settings, now=clock)
    yield app
    app.extensions["bridge"].store.engine.dispose()


@pytest.fixture
def client(app) -> Iterator:
    return app.test_client()


def send(client, body: object):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/v1/alerts/events", data=data, headers=JSON)


def incidents(client) -> dict[str, dict]:
    return {
        item["dedup_key"]: item for item in client.get("/api/v1/incidents?source=events", headers=API).json["items"]
    }


def rejected(client) -> list[dict]:
    items = client.get("/api/v1/rejected?source=events", headers=API).json["items"]
    return [client.get(f"/api/v1/rejected/{item['id']}", headers=API).json for item in items]


def stored_bodies(app) -> list[str]:
    store: Store = app.extensions["bridge"].store
    with store.engine.connect() as conn:
        return [
            row[0]
            for row in conn.execute(
                sa.text("SELECT body FROM notifications UNION ALL SELECT body FROM rejected_payloads")
            )
        ]


def test_trigger_repeat_acknowledge_resolve_make_one_incident(client, clock):
    first = send(client, payload("events-trigger.json"))
    assert first.status_code == 202, first.json
    assert {k: first.json[k] for k in ("status", "message", "dedup_key")} == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "samplekeyhere",
    }
    assert first.json["outcomes"] == {"created": 1}
    clock.advance(minutes=1)
    assert send(client, payload("events-trigger.json")).json["outcomes"] == {"repeated": 1}
    clock.advance(minutes=1)
    acknowledged = send(client, payload("events-acknowledge.json"))
    assert acknowledged.status_code == 202 and acknowledged.json["outcomes"] == {"updated": 1}

    [incident] = incidents(client).values()
    assert incident["dedup_key"] == "events:portal-uptime:samplekeyhere"
    assert (incident["state"], incident["occurrences"], incident["source"]) == ("firing", 2, "events")
    assert (incident["route"], incident["priority"]) == ("portal-events", "P2")
    assert incident["summary"] == "Example alert on host1.example.com"
    assert incident["labels"] == {
        "service": "portal",
        "severity": "info",
        "component": "postgres",
        "group": "prod-datapipe",
        "class": "deploy",
        "source": "monitoringtool:cloudvendor:central-region-dc-01:852559987:cluster/api-stats-prod-003",
    }
    annotations = incident["annotations"]
    assert annotations["acknowledged_by"] == "events" and annotations["acknowledged_at"] == "2026-11-23T19:02:00Z"
    assert (annotations["details.ping time"], annotations["details.load avg"]) == ("1500ms", "0.75")
    assert (annotations["link_1_url"], annotations["link_1_text"]) == ("https://example.com/", "Link text")
    assert annotations["client_url"] == "https://monitoring.example.com"

    clock.advance(minutes=1)
    resolved = send(client, payload("events-resolve.json"))
    assert resolved.status_code == 202 and resolved.json["outcomes"] == {"resolved": 1}
    [incident] = incidents(client).values()
    assert incident["state"] == "resolved" and incident["resolved_at"] == "2026-11-23T19:03:00Z"


def test_trigger_without_dedup_key_gets_one_generated_that_later_events_use(client):
    answers = [send(client, payload("events-trigger-without-dedup-key.json")) for _ in range(2)]
    keys = [answer.json["dedup_key"] for answer in answers]
    assert all(answer.status_code == 202 for answer in answers) and len(set(keys)) == 2, "each is a new alert"
    resolve = {**payload("events-resolve.json"), "dedup_key": keys[0]}
    assert send(client, resolve).json["outcomes"] == {"resolved": 1}
    found = incidents(client)
    assert found[f"events:portal-uptime:{keys[0]}"]["state"] == "resolved"
    assert found[f"events:portal-uptime:{keys[1]}"]["state"] == "firing"


def test_a_trigger_after_a_resolve_is_a_new_episode_and_acknowledging_nothing_changes_nothing(client, clock):
    assert send(client, payload("events-acknowledge.json")).json["outcomes"] == {"stale": 1}
    assert send(client, payload("events-resolve.json")).json["outcomes"] == {"unknown_resolved": 1}
    assert incidents(client) == {}
    trigger = payload("events-trigger-without-dedup-key.json") | {"dedup_key": "samplekeyhere"}
    send(client, trigger)
    send(client, payload("events-acknowledge.json"))
    send(client, payload("events-resolve.json"))
    assert send(client, payload("events-acknowledge.json")).json["outcomes"] == {"stale": 1}
    clock.advance(minutes=5)
    assert send(client, trigger).json["outcomes"] == {"reopened": 1}
    [incident] = incidents(client).values()
    assert incident["reopen_count"] == 1 and "acknowledged_by" not in incident["annotations"]


def test_unknown_or_missing_routing_key_is_a_400_like_pagerduty_and_not_kept(client):
    for body in [
        payload("events-trigger.json") | {"routing_key": "not-a-configured-key"},
        {k: v for k, v in payload("events-trigger.json").items() if k != "routing_key"},
        payload("events-trigger.json") | {"routing_key": 42},
        "not json at all",
    ]:
        answer = send(client, body)
        assert answer.status_code == 400
        assert {k: answer.json[k] for k in ("status", "message", "errors", "code")} == {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": ["routing_key: Invalid routing key"],
            "code": 400,
        }
        assert answer.json["request_id"]
    assert rejected(client) == [] and incidents(client) == {}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda e: e.pop("payload"), "payload: required for a trigger event"),
        (lambda e: e["payload"].pop("summary"), "payload.summary: required field is missing"),
        (lambda e: e["payload"].pop("source"), "payload.source: required field is missing"),
        (lambda e: e["payload"].update(severity="disaster"), "payload.severity: Input should be 'critical'"),
        (lambda e: e.update(event_action="escalate"), "event_action: Input should be 'trigger'"),
        (lambda e: e.update(event_action="acknowledge", dedup_key=None), "dedup_key: required to acknowledge"),
        (lambda e: e.pop("dedup_key") and e.update(event_action="resolve"), "dedup_key: required to resolve"),
        (
            lambda e: e["payload"].update(summary="x" * 1025),
            "payload.summary: String should have at most 1024 characters",
        ),
        (lambda e: e.update(dedup_key="k" * 256), "dedup_key: String should have at most 255 characters"),
        (lambda e: e["payload"].update(timestamp="yesterday"), "payload.timestamp: Input should be a valid datetime"),
    ],
)
def test_bad_event_is_a_400_naming_the_field_and_kept_without_its_key(app, client, change, error):
    body = payload("events-trigger.json")
    change(body)
    answer = send(client, body)
    assert answer.status_code == 400, answer.json
    assert (answer.json["status"], answer.json["message"]) == ("invalid event", "Event object is invalid")
    assert any(line.startswith(error) for line in answer.json["errors"]), answer.json["errors"]
    [kept] = rejected(client)
    assert kept["reason"] == "invalid PagerDuty event" and any(line.startswith(error) for line in kept["errors"])
    assert '"routing_key": "<redacted>"' in kept["body"] and KEY not in kept["body"]


def test_limits_as_pagerduty_documents_them(client):
    at_limits = payload("events-trigger.json")
    at_limits["payload"]["summary"] = "s" * 1024
    at_limits["dedup_key"] = "k" * 255
    assert send(client, at_limits).status_code == 202

    huge = payload("events-trigger.json")
    huge["payload"]["custom_details"] = {"log": "x" * (512 * 1024)}
    answer = send(client, huge)
    assert answer.status_code == 413
    assert answer.json["status"] == "invalid event"
    assert answer.json["errors"] == ["body: at most 524288 bytes (PagerDuty Events API limit)"]
    [kept] = rejected(client)
    assert kept["reason"] == "request body larger than 524288 bytes" and KEY not in kept["body"]
    assert kept["body"].count("<redacted>") == 1


def test_body_not_declared_json_is_a_415_kept_only_for_a_known_key(client):
    body = json.dumps(payload("events-trigger.json"))
    answer = client.post("/api/v1/alerts/events", data=body, headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415 and answer.json["status"] == "invalid event"
    stranger = body.replace(KEY, "someone-else")
    assert (
        client.post("/api/v1/alerts/events", data=stranger, headers={"Content-Type": "text/plain"}).status_code == 415
    )
    [kept] = rejected(client)
    assert kept["content_type"] == "text/plain" and KEY not in kept["body"]


def test_the_routing_key_is_never_stored_logged_or_shown(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    send(client, payload("events-trigger.json"))
    escaped = json.dumps(payload("events-trigger.json")).replace('"routing_key"', '"routing\\u005fkey"')
    assert send(client, escaped).status_code == 202
    send(client, payload("events-trigger.json") | {"payload": None})
    bodies = stored_bodies(app)
    assert len(bodies) == 3 and all("<redacted>" in body and KEY not in body for body in bodies)
    assert KEY not in caplog.text
    shown = json.dumps([incidents(client), rejected(client)])
    assert KEY not in shown and "portal-uptime" in shown


def escaped(text: str, every: int = 1) -> str:
    """`text` as JSON may spell it: every `every`th character as a \\u escape (upper-case hex on odd ones)."""
    return "".join(
        (f"\\u{ord(ch):04x}" if at % 2 else f"\\u{ord(ch):04X}") if at % every == 0 else ch
        for at, ch in enumerate(text)
    )


_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"?', re.DOTALL)


def traces_of_key(text: str) -> list[str]:
    """Where the key shows in a stored or logged text: as written, or spelt with escapes in a string."""
    found = [text] if KEY in text else []
    for literal in _LITERAL.findall(text):
        try:
            decoded = json.loads(f'"{literal}"')
        except ValueError:
            decoded = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), literal)
        found += [decoded] if KEY in decoded else []
    return found


def strings_in(value: object) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(text for inner in value.values() for text in strings_in(inner))]
    if isinstance(value, list):
        return [text for inner in value for text in strings_in(inner)]
    return [value] if isinstance(value, str) else []


def test_a_routing_key_spelt_with_escapes_elsewhere_is_never_stored_logged_or_shown(app, client, caplog):
    """The key, sent as it should be in routing_key, also appears elsewhere spelt with JSON escapes (a
    summary, an object's key, nested arrays, the dedup key, a change's details and links): redacted in
    the parsed event, so no stored body, log line, incident or change carries it, and every stored
    body still reads as JSON."""
    caplog.set_level(logging.DEBUG)
    trigger = payload("events-trigger.json")
    trigger["dedup_key"] = "dk-@FULL@"
    trigger["payload"]["summary"] = "disk full, sent with @FULL@ and @HALF@"
    trigger["payload"]["custom_details"] = {"@HALF@": [["deep", ["@FULL@"]]], "note": "@TAIL@"}
    bad = json.loads(json.dumps(trigger))
    del bad["payload"]["severity"]
    change = payload("events-change.json")
    change["payload"]["summary"] = "deployed with @FULL@"
    change["payload"]["custom_details"] = {"@HALF@": "x", "list": [["@TAIL@"]]}
    change["links"] = [{"href": "https://ci.example/@FULL@", "text": "@HALF@"}]

    def spelt(body: object) -> str:
        text = json.dumps(body)
        for name, value in {
            "@FULL@": escaped(KEY),
            "@HALF@": escaped(KEY, 2),
            "@TAIL@": KEY[:5] + escaped(KEY[5:]),
        }.items():
            text = text.replace(name, value)
        assert text.count(KEY) == 1 and sum(KEY in value for value in strings_in(json.loads(text))) > 3
        return text

    assert client.post("/v2/enqueue", data=spelt(trigger), headers=JSON).status_code == 202
    assert client.post("/v2/enqueue", data=spelt(bad), headers=JSON).status_code == 400
    assert client.post("/v2/change/enqueue", data=spelt(change), headers=JSON).status_code == 202
    huge = json.loads(json.dumps(trigger))
    huge["payload"]["custom_details"]["log"] = "x" * (512 * 1024)
    assert client.post("/v2/enqueue", data=spelt(huge), headers=JSON).status_code == 413
    deep = '{"routing_key": "' + KEY + '", "a": ' + "[" * 1000 + "]" * 1000 + "}"
    assert client.post("/v2/enqueue", data=deep, headers=JSON).status_code == 400  # refused, no crash

    bodies = stored_bodies(app)
    assert len(bodies) == 4
    assert [traces_of_key(body) for body in bodies] == [[], [], [], []]
    parsed = [json.loads(body) for body in bodies[:2]]  # the cut one (413) is no JSON, as sent
    assert all(KEY not in text for body in parsed for text in strings_in(body))
    assert all(body["routing_key"] == "<redacted>" for body in parsed)
    assert "disk full, sent with <redacted> and <redacted>" in [body["payload"]["summary"] for body in parsed]
    assert traces_of_key(caplog.text) == []
    shown = json.dumps([incidents(client), rejected(client), client.get("/api/v1/changes", headers=API).json])
    assert traces_of_key(shown) == [] and "deployed with <redacted>" in shown


def test_alertmanager_pagerduty_configs_events_create_and_resolve_one_incident_per_group(client):
    fired = send(client, payload("alertmanager-0.25-pagerduty-trigger.json"))
    assert fired.status_code == 202 and fired.json["outcomes"] == {"created": 1}
    group_key = "cc9772a1ec901d26ef71dae861793e4d08979fa5030a3f0a5f3ba549f1f2d0b6"
    assert fired.json["dedup_key"] == group_key
    resolved = send(client, payload("alertmanager-0.25-pagerduty-resolve.json"))
    assert resolved.json["outcomes"] == {"resolved": 1}
    incident = incidents(client)[f"events:alertmanager-pd:{group_key}"]
    assert incident["state"] == "resolved" and incident["summary"] == "[FIRING:1]  (PdTest x1 critical)"
    assert incident["labels"] == {"severity": "error", "source": "Alertmanager"}
    assert incident["annotations"]["details.firing"].startswith("Labels:\n - alertname = PdTest")


def test_events_group_under_a_problem_and_close_like_the_others(client):
    send(client, payload("events-trigger.json"))
    send(client, payload("events-trigger-without-dedup-key.json"))
    [problem] = client.get("/api/v1/problems", headers=API).json["items"]
    assert (problem["problem_key"], problem["incident_count"]) == ("events/portal", 2)
    closed = client.post(f"/api/v1/problems/{problem['id']}/close", json={"reason": "fixed"}, headers=API)
    assert closed.status_code == 200 and all(i["state"] == "closed" for i in incidents(client).values())


def counters(client) -> Counter:
    text = client.get("/metrics").get_data(as_text=True)
    return Counter(
        {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
    )


def test_events_are_counted_and_shown_like_the_others(client):
    before = counters(client)
    send(client, payload("events-trigger.json"))
    send(client, payload("events-trigger.json") | {"routing_key": "wrong"})
    after = counters(client)
    after.subtract(before)
    received = "bridge_notifications_received_total"
    assert after[received, (("outcome", "accepted"), ("source", "events"))] == 1
    assert after[received, (("outcome", "unauthorized"), ("source", "events"))] == 1
    assert after["bridge_incidents_opened_total", (("line", "L3"), ("priority", "P2"), ("source", "events"))] == 1
    [incident] = incidents(client).values()
    client.post("/ui/login", data={"token": "api-token"})
    page = client.get(f"/ui/incidents/{incident['id']}").get_data(as_text=True)
    assert '<a href="https://monitoring.example.com" rel="noopener noreferrer">' in page
    assert "Example alert on host1.example.com" in client.get("/ui/incidents?source=events").get_data(as_text=True)


def response_count(priority: str) -> float:
    return REGISTRY.get_sample_value("bridge_incident_response_seconds_count", {"priority": priority}) or 0.0


def test_an_acknowledge_acknowledges_as_the_api_does_once(app, client, clock):
    """The response clock stops, the histogram counts it once, and the routing key's name is who did."""
    send(client, payload("events-trigger.json"))
    [incident] = incidents(client).values()
    before = response_count(incident["priority"])
    clock.advance(minutes=2)
    assert send(client, payload("events-acknowledge.json")).json["outcomes"] == {"updated": 1}
    acked = client.get(f"/api/v1/incidents/{incident['id']}", headers=API).json
    assert (acked["acknowledged_by"], acked["acknowledged_at"]) == ("portal-uptime", "2026-11-23T19:02:00Z")
    assert response_count(incident["priority"]) == before + 1
    clock.advance(minutes=1)
    assert send(client, payload("events-acknowledge.json")).json["outcomes"] == {"updated": 1}
    assert response_count(incident["priority"]) == before + 1, "a repeated acknowledge is not counted again"
    store: Store = app.extensions["bridge"].store
    assert [(e["kind"], e["actor"]) for e in store.incident_history(incident["id"])] == [
        ("acknowledged", "portal-uptime")
    ]
    assert store.mark_response_breaches(clock() + timedelta(days=7)) == [], "its response clock stopped"
    with pytest.raises(Conflict, match="already acknowledged by portal-uptime"):
        acknowledge_incident(store, incident["id"], "Ann", None, clock())


def test_an_acknowledge_of_an_unknown_dedup_key_is_harmless(client):
    before = {priority: response_count(priority) for priority in ("P1", "P2", "P3")}
    answer = send(client, payload("events-acknowledge.json") | {"dedup_key": "never-triggered"})
    assert answer.status_code == 202 and answer.json["outcomes"] == {"stale": 1}
    assert incidents(client) == {}
    assert {priority: response_count(priority) for priority in before} == before
