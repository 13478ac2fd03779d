"""Heartbeats and maintenance windows over HTTP, on SQLite and PostgreSQL: their tokens, their answers, their pages
and metrics; what a person with the wrong token or a hostile body gets."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bridge.app import create_app
from bridge.config import load_settings
from bridge.worker import run_once
from tests.conftest import ROOT, Clock, payload

READ = {"Authorization": "Bearer api-token"}
OPERATE = {"Authorization": "Bearer operate-token", "X-Bridge-Actor": "ann", "Content-Type": "application/json"}
PING = {"Authorization": "Bearer ping-token", "Content-Type": "application/json"}
HEARTBEATS = [
    {
        "name": "prometheus-watchdog",
        "source": "alertmanager",
        "match": {"labels": {"alertname": "Watchdog"}},
        "interval": "5m",
    },
    {"name": "zabbix-server", "source": "zabbix", "interval": "30m"},
    {"name": "nightly-export", "interval": "25h"},
]


@pytest.fixture
def app(database_url: str, clock: Clock, tmp_path: Path):
    rules = yaml.safe_load((ROOT / "rules.yaml").read_text())
    rules["heartbeats"] = HEARTBEATS
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    environ = {
        "BRIDGE_TOKEN_API": "api-token",
        "BRIDGE_TOKEN_OPERATE": "operate-token",
        "BRIDGE_TOKEN_HEARTBEATS": "ping-token",
        "BRIDGE_MAINTENANCE_MAX": "1d",
    }
    settings = load_settings(environ, database_url=database_url, rules_path=str(tmp_path / "rules.yaml"))
    app = create_app(settings, now=clock)
    yield app
    app.extensions["bridge"].store.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def window_body(clock: Clock, **more) -> dict:
    return {
        "name": "db migration",
        "reason": "moving the portal's database",
        "ends_at": (clock.value + timedelta(hours=2)).isoformat(),
        "match": {"source": "alertmanager", "labels": {"service": "lkk"}},
        **more,
    }


def pass_of_the_worker(app, clock: Clock) -> None:
    ctx = app.extensions["bridge"]
    run_once(ctx.store, clock.value, rules=ctx.rules)


def test_the_ping_endpoint_takes_its_own_token_and_only_pinged_heartbeats(client, app, clock: Clock):
    assert (
        client.post("/api/v1/heartbeats/nightly-export/ping", headers={"Content-Type": "application/json"}).status_code
        == 401
    )
    wrong = {**PING, "Authorization": "Bearer operate-token"}
    assert client.post("/api/v1/heartbeats/nightly-export/ping", headers=wrong).status_code == 401, (
        "tokens are separate"
    )
    answer = client.post("/api/v1/heartbeats/nightly-export/ping", headers=PING)
    assert answer.status_code == 200
    assert answer.json["last_heard"] == clock.value.isoformat().replace("+00:00", "Z")
    unknown = client.post("/api/v1/heartbeats/nope/ping", headers=PING)
    assert unknown.status_code == 404 and "nightly-export" in unknown.json["errors"][0]
    sourced = client.post("/api/v1/heartbeats/zabbix-server/ping", headers=PING)
    assert sourced.status_code == 409, "a script must not ping for a silent Zabbix server"
    assert client.post("/api/v1/heartbeats/nul%00/ping", headers=PING).status_code == 404
    pass_of_the_worker(app, clock)
    listed = {h["name"]: h for h in client.get("/api/v1/heartbeats", headers=READ).json["items"]}
    assert listed["nightly-export"]["state"] == "ok" and listed["nightly-export"]["pinged_by"] == "endpoint"
    assert listed["zabbix-server"]["state"] == "waiting" and listed["zabbix-server"]["pinged_by"] == "notifications"
    assert listed["prometheus-watchdog"]["match"] == {"source": "alertmanager", "labels": {"alertname": "Watchdog"}}
    assert client.get("/api/v1/heartbeats").status_code == 401


def test_an_expired_heartbeat_shows_on_the_overview_the_metrics_and_as_an_incident(client, app, clock: Clock):
    pass_of_the_worker(app, clock)
    clock.advance(minutes=20)
    client.post("/api/v1/alerts/zabbix", json=payload("zabbix-6.0.14-problem.json"))
    clock.advance(minutes=11)
    pass_of_the_worker(app, clock)
    incidents = client.get("/api/v1/incidents?source=heartbeat", headers=READ).json["items"]
    assert [i["dedup_key"] for i in incidents] == ["heartbeat:prometheus-watchdog"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'bridge_heartbeat_expired{name="prometheus-watchdog"} 1.0' in metrics
    assert 'bridge_heartbeat_expired{name="zabbix-server"} 0.0' in metrics
    heard = re.search(r'^bridge_source_last_seen_timestamp_seconds\{source="zabbix"\} (\S+)$', metrics, re.MULTILINE)
    assert heard and float(heard.group(1)) == (clock.value - timedelta(minutes=11)).timestamp()
    assert 'bridge_source_last_seen_timestamp_seconds{source="grafana"} 0.0' in metrics
    client.post("/ui/login", data={"token": "api-token"})
    page = client.get("/ui/").get_data(as_text=True)
    assert 'id="senders"' in page and "never" in page
    assert "prometheus-watchdog" in page and "state-expired" in page


def test_a_window_without_an_end_too_long_or_over_everything_is_refused_clearly(client, clock: Clock):
    body = window_body(clock)
    del body["ends_at"]
    refused = client.post("/api/v1/maintenance", json=body, headers=OPERATE)
    assert refused.status_code == 400 and refused.json["errors"] == ["ends_at: required field is missing"]
    too_long = client.post(
        "/api/v1/maintenance",
        json=window_body(clock, ends_at=(clock.value + timedelta(days=2)).isoformat()),
        headers=OPERATE,
    )
    assert too_long.status_code == 400 and "BRIDGE_MAINTENANCE_MAX" in too_long.json["errors"][0]
    everything = client.post("/api/v1/maintenance", json=window_body(clock, match={}), headers=OPERATE)
    assert everything.status_code == 400 and everything.json["errors"][0].startswith("match:")
    naive = client.post("/api/v1/maintenance", json=window_body(clock, ends_at="2026-11-23T21:00:00"), headers=OPERATE)
    assert naive.status_code == 400 and naive.json["errors"][0].startswith("ends_at:")
    stalls = client.post(
        "/api/v1/maintenance", json=window_body(clock, match={"labels_regex": {"service": "(a+)+$"}}), headers=OPERATE
    )
    assert stalls.status_code == 400 and "could stall the bridge" in stalls.json["errors"][0]
    unknown = client.post("/api/v1/maintenance", json=window_body(clock, match={"source": "nagios"}), headers=OPERATE)
    assert unknown.status_code == 400 and unknown.json["errors"][0].startswith("match.source:")
    assert client.post("/api/v1/maintenance", json=window_body(clock), headers=READ).status_code == 401
    assert client.get("/api/v1/maintenance", headers=READ).json["items"] == []


def test_a_window_made_and_ended_over_the_api_holds_then_releases_with_the_actor_recorded(client, clock: Clock):
    made = client.post("/api/v1/maintenance", json=window_body(clock), headers=OPERATE)
    assert made.status_code == 201
    window = made.json
    assert (window["state"], window["created_by"], window["kind"]) == ("active", "ann", "maintenance")
    client.post("/api/v1/alerts/alertmanager", json=payload("alertmanager-0.25-two-firing.json"))
    held = client.get("/api/v1/incidents", headers=READ).json["items"]
    assert [(i["maintenance"], i["held"], i["problem_id"], i["sla_due"]) for i in held] == [
        ({"id": window["id"], "name": "db migration"}, True, None, None)
    ] * 2
    detail = client.get(f"/api/v1/maintenance/{window['id']}", headers=READ).json
    assert (detail["incidents_held"], detail["incidents_holding"], len(detail["incidents"])) == (2, 2, 2)
    clock.advance(minutes=20)
    ended = client.post(f"/api/v1/maintenance/{window['id']}/end", headers={**OPERATE, "X-Bridge-Actor": "bob"})
    assert ended.status_code == 200
    assert (ended.json["state"], ended.json["ended_by"], ended.json["released"]) == (
        "ended",
        "bob",
        {"ordinary": 2, "closed": 0},
    )
    released = client.get("/api/v1/incidents", headers=READ).json["items"]
    assert all(not i["held"] and i["problem_id"] and i["clocks_from"] == ended.json["ended_at"] for i in released)
    assert all(i["maintenance"] == {"id": window["id"], "name": "db migration"} for i in released)
    history = client.get(f"/api/v1/incidents/{released[0]['id']}", headers=READ).json["history"]
    assert [e["kind"] for e in history] == ["held", "released"]
    again = client.post(f"/api/v1/maintenance/{window['id']}/end", headers=OPERATE)
    assert again.status_code == 409
    assert client.post("/api/v1/maintenance/999/end", headers=OPERATE).status_code == 404
    assert [w["id"] for w in client.get("/api/v1/maintenance?state=ended", headers=READ).json["items"]] == [
        window["id"]
    ]
    assert client.get("/api/v1/maintenance?state=active", headers=READ).json["items"] == []
    assert client.get("/api/v1/maintenance?state=sometime", headers=READ).status_code == 400


def test_the_pages_make_and_end_a_window_with_the_signed_in_name(client, clock: Clock):
    client.post("/ui/login", data={"token": "operate-token", "name": "Ann Operator"})
    page = client.get("/ui/maintenance").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    form = {
        "csrf_token": csrf,
        "name": "network change",
        "reason": "core switch firmware",
        "source": "zabbix",
        "labels": "site=msk, rack=4",
        "duration": "90m",
    }
    assert client.post("/ui/maintenance", data={**form, "csrf_token": "forged"}).status_code == 400
    made = client.post("/ui/maintenance", data=form)
    assert made.status_code == 303
    [window] = client.get("/api/v1/maintenance", headers=READ).json["items"]
    assert (window["created_by"], window["match"]) == (
        "Ann Operator",
        {"source": "zabbix", "labels": {"site": "msk", "rack": "4"}},
    )
    assert window["ends_at"] == (clock.value + timedelta(minutes=90)).isoformat().replace("+00:00", "Z")
    shown = client.get("/ui/maintenance").get_data(as_text=True)
    assert "network change" in shown and "made: it holds what opens under it" in shown
    bad = client.post("/ui/maintenance", data={**form, "labels": "no equals sign"})
    assert bad.status_code == 303
    assert "write label=value" in client.get("/ui/maintenance").get_data(as_text=True)
    ended = client.post(f"/ui/maintenance/{window['id']}/end", data={"csrf_token": csrf})
    assert ended.status_code == 303
    assert client.get(f"/api/v1/maintenance/{window['id']}", headers=READ).json["ended_by"] == "Ann Operator"
    assert "ended: 0 incident(s) still firing" in client.get("/ui/maintenance").get_data(as_text=True)


def test_reading_the_pages_with_the_read_token_offers_no_window_forms(client):
    client.post("/ui/login", data={"token": "api-token"})
    page = client.get("/ui/maintenance").get_data(as_text=True)
    assert 'id="make-window"' not in page and 'id="read-only"' in page
    refused = client.post("/ui/maintenance", data={"name": "x"})
    assert refused.status_code == 403


def test_the_openapi_document_lists_the_new_paths(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in (
        "/api/v1/heartbeats",
        "/api/v1/heartbeats/{name}/ping",
        "/api/v1/maintenance",
        "/api/v1/maintenance/{window_id}/end",
    ):
        assert path in paths
    match = paths["/api/v1/maintenance"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "match"
    ]
    assert match == {"$ref": "#/components/schemas/WindowMatchRequest"}
    assert "WindowMatchRequest" in client.get("/api/v1/openapi.json").json["components"]["schemas"]


def test_a_start_typed_on_the_page_is_utc_unless_it_names_its_offset(client, clock: Clock):
    client.post("/ui/login", data={"token": "operate-token", "name": "Ann"})
    csrf = client.get("/ui/maintenance").get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    form = {"csrf_token": csrf, "name": "w", "reason": "r", "source": "zabbix", "duration": "1h"}
    client.post("/ui/maintenance", data={**form, "starts_at": "2026-11-24 01:00+03:00"})
    client.post("/ui/maintenance", data={**form, "starts_at": "2026-11-24 01:00"})
    starts = sorted(w["starts_at"] for w in client.get("/api/v1/maintenance", headers=READ).json["items"])
    assert starts == ["2026-11-23T22:00:00Z", "2026-11-24T01:00:00Z"]
