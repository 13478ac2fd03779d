"""The HTTP API through create_app and Flask's test client, on a temporary SQLite database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.app import create_app
from bridge.config import load_settings
from tests.conftest import ROOT, Clock, build_app, payload, payload_bytes

TOKENS = {"BRIDGE_TOKEN_ALERTMANAGER": "am-token", "BRIDGE_TOKEN_ZABBIX": "zbx-token", "BRIDGE_TOKEN_API": "api-token"}
API = {"Authorization": "Bearer api-token"}
AM = {"Authorization": "Bearer am-token", "Content-Type": "application/json"}
ZBX = {"Authorization": "Bearer zbx-token", "Content-Type": "application/json"}


@pytest.fixture
def app(tmp_path: Path, clock: Clock):
    return build_app(tmp_path, {**TOKENS, "BRIDGE_MAX_BODY_BYTES": "65536"}, clock)


@pytest.fixture
def client(app):
    return app.test_client()


def post_am(client, name_or_body, headers=AM):
    data = payload_bytes(name_or_body) if isinstance(name_or_body, str) else json.dumps(name_or_body)
    return client.post("/api/v1/alerts/alertmanager", data=data, headers=headers, content_type="application/json")


def test_alert_to_incident_round_trip(client, clock: Clock):
    first = post_am(client, "alertmanager-0.25-two-firing.json")
    assert first.status_code == 200
    assert first.json["outcomes"] == {"created": 2} and len(first.json["incidents"]) == 2
    clock.advance(minutes=1)
    second = post_am(client, "alertmanager-0.25-one-resolved-one-firing.json")
    assert second.json["outcomes"] == {"resolved": 1, "repeated": 1}
    assert sorted(second.json["incidents"]) == sorted(first.json["incidents"])

    listing = client.get("/api/v1/incidents?state=resolved", headers=API).json
    [resolved] = listing["items"]
    assert resolved["dedup_key"] == "alertmanager:3d64f6474bce3ff4"
    assert resolved["resolved_at"] == "2026-11-23T19:00:04.629639Z"
    detail = client.get(f"/api/v1/incidents/{resolved['id']}", headers=API).json
    assert set(detail) >= {
        "id",
        "dedup_key",
        "source",
        "state",
        "line",
        "impact",
        "urgency",
        "priority",
        "summary",
        "labels",
        "occurrences",
        "reopen_count",
        "first_seen",
        "last_seen",
        "resolved_at",
        "closed_at",
        "close_reason",
        "problem_id",
    }
    assert (detail["line"], detail["priority"], detail["labels"]["instance"]) == ("L3", "P1", "a:1")


def test_zabbix_event_lifecycle(client):
    ids = {
        client.post("/api/v1/alerts/zabbix", data=payload_bytes(name), headers=ZBX).json["incidents"][0]
        for name in ["zabbix-6.0.14-problem.json", "zabbix-6.0.14-update-ack.json", "zabbix-6.0.14-recovery.json"]
    }
    assert len(ids) == 1
    incident = client.get(f"/api/v1/incidents/{ids.pop()}", headers=API).json
    assert (incident["state"], incident["priority"], incident["source"]) == ("resolved", "P2", "zabbix")


@pytest.mark.parametrize(
    "path, method, headers",
    [
        ("/api/v1/alerts/alertmanager", "post", {}),
        ("/api/v1/alerts/alertmanager", "post", {"Authorization": "Bearer zbx-token"}),
        ("/api/v1/alerts/alertmanager", "post", {"Authorization": "am-token"}),
        ("/api/v1/alerts/zabbix", "post", AM),
        ("/api/v1/incidents", "get", AM),
        ("/api/v1/incidents/1", "get", {}),
        ("/api/v1/rejected", "get", {}),
    ],
)
def test_each_endpoint_requires_its_own_token(client, path, method, headers):
    response = getattr(client, method)(path, headers=headers, data=b"{}", content_type="application/json")
    assert response.status_code == 401
    assert response.json["message"] == "missing or invalid bearer token"


def test_unauthenticated_junk_is_not_stored(client):
    client.post("/api/v1/alerts/alertmanager", data=b"junk", content_type="application/json")
    assert client.get("/api/v1/rejected", headers=API).json["items"] == []


def test_health_endpoints_need_no_token(client):
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ok", "database": "ok"}


@pytest.mark.parametrize(
    "body, message, error",
    [
        (b"", "empty body; expected a JSON object", None),
        (b"{not json", "body is not valid JSON", "body:"),
        (b"[1, 2]", "Alertmanager payload must be a JSON object", None),
        (b'{"version": "4", "status": "firing", "alerts": []}', "no alerts in Alertmanager payload", "alerts:"),
        (b'{"status": "firing", "alerts": [{}]}', "invalid Alertmanager payload", "version: required field is missing"),
    ],
)
def test_bad_input_is_400_with_the_field_named_and_kept(client, body, message, error):
    response = client.post("/api/v1/alerts/alertmanager", data=body, headers=AM)
    assert response.status_code == 400
    assert response.json["status"] == "error" and response.json["message"] == message
    assert response.json["request_id"]
    if error:
        assert any(line.startswith(error) for line in response.json["errors"])
    [kept] = client.get("/api/v1/rejected", headers=API).json["items"]
    assert (kept["reason"], kept["body_bytes"]) == (message, len(body))
    assert client.get(f"/api/v1/rejected/{kept['id']}", headers=API).json["body"] == body.decode()


def test_partly_bad_batch_keeps_good_alerts_and_reports_bad_ones(client):
    body = payload("alertmanager-0.25-two-firing.json")
    body["alerts"][0]["startsAt"] = "yesterday"
    response = post_am(client, body)
    assert response.status_code == 200
    assert response.json["outcomes"] == {"created": 1}
    assert response.json["rejected"][0]["index"] == 0
    assert response.json["rejected"][0]["errors"][0].startswith("alerts[0].startsAt:")
    [kept] = client.get("/api/v1/rejected", headers=API).json["items"]
    assert kept["partial"] is True and kept["reason"] == "1 of 2 alerts refused"


def test_body_over_the_limit_is_413_in_the_json_envelope(client):
    response = client.post("/api/v1/alerts/alertmanager", data=b"x" * 70000, headers=AM)
    assert response.status_code == 413
    assert response.json["message"] == "request body larger than 65536 bytes"


def test_unknown_source_and_route_are_404_json(client):
    assert client.post("/api/v1/alerts/nagios", json={}).json["message"] == "unknown source 'nagios'"
    assert client.get("/nothing").status_code == 404
    assert client.get("/api/v1/incidents/999", headers=API).json["message"] == "no incident 999"
    assert client.delete("/api/v1/incidents", headers=API).status_code == 405


def test_an_unknown_sender_hears_the_senders_this_endpoint_serves(client):
    """Tickets have an endpoint of their own: naming them here would send a sender to the wrong door."""
    answer = client.post("/api/v1/alerts/ticket", json={}).json
    assert answer["message"] == "unknown source 'ticket'"
    assert answer["errors"] == ["source: expected one of alertmanager, zabbix, grafana, events"]


@pytest.mark.parametrize(
    "query, error",
    [
        ("state=open", "state: expected one of firing, resolved, closed"),
        ("source=nagios", "source: expected one of alertmanager, zabbix, grafana, events, ticket, heartbeat"),
        ("limit=0", "limit: must be between 1 and 500"),
        ("limit=lots", "limit: expected an integer, got 'lots'"),
        ("problem_id=x", "problem_id: expected an integer, got 'x'"),
    ],
)
def test_bad_query_parameters_are_named(client, query, error):
    response = client.get(f"/api/v1/incidents?{query}", headers=API)
    assert response.status_code == 400 and response.json["errors"] == [error]


def test_incident_listing_filters_and_paginates(client):
    post_am(client, "alertmanager-0.25-two-firing.json")
    client.post("/api/v1/alerts/zabbix", data=payload_bytes("zabbix-6.0.14-problem.json"), headers=ZBX)
    page = client.get("/api/v1/incidents?limit=2", headers=API).json
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(f"/api/v1/incidents?limit=2&cursor={page['next_cursor']}", headers=API).json
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert [i["source"] for i in client.get("/api/v1/incidents?source=zabbix", headers=API).json["items"]] == ["zabbix"]
    assert len(client.get("/api/v1/incidents?priority=P1", headers=API).json["items"]) == 2


def test_request_id_is_echoed_or_made(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    assert len(client.get("/healthz", headers={"X-Request-ID": "bad id!"}).headers["X-Request-ID"]) == 32


def test_unexpected_error_is_generic_500_without_details(app, client, monkeypatch):
    def explode(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(app.extensions["bridge"].store, "get_incident", explode)
    response = client.get("/api/v1/incidents/1", headers=API)
    assert response.status_code == 500
    assert "secret internals" not in response.get_data(as_text=True)


def test_database_down_answers_503_so_senders_retry(tmp_path: Path, clock: Clock):
    missing_dir = tmp_path / "absent" / "bridge.db"
    settings = load_settings({}, database_url=f"sqlite:///{missing_dir}", rules_path=str(ROOT / "rules.yaml"))
    client = create_app(settings, now=clock).test_client()
    assert client.get("/readyz").status_code == 503
    response = client.post(
        "/api/v1/alerts/alertmanager",
        data=payload_bytes("alertmanager-0.25-two-firing.json"),
        content_type="application/json",
    )
    assert response.status_code == 503
    assert response.json["message"] == "database unavailable; retry later"


def test_incidents_expose_sla_due_breach_and_business_seconds_left(client, clock: Clock):
    post_am(client, "alertmanager-0.25-two-firing.json")
    client.post("/api/v1/alerts/zabbix", data=payload_bytes("zabbix-6.0.14-problem.json"), headers=ZBX)
    clock.advance(hours=1)
    items = {i["source"]: i for i in client.get("/api/v1/incidents", headers=API).json["items"]}
    p1, p2 = items["alertmanager"], items["zabbix"]
    assert (p1["priority"], p1["sla_due"], p1["sla_breached"]) == ("P1", "2026-11-23T23:00:00Z", False)
    assert p1["sla_remaining_seconds"] == 3 * 3600
    # P2 on Moscow business hours, opened Monday 22:00 Moscow: nothing used overnight.
    assert (p2["priority"], p2["sla_remaining_seconds"]) == ("P2", 4 * 3600)
    assert p2["sla_due"] == "2026-11-24T10:00:00Z"
