"""What a web page can make a browser send to a bridge whose tokens are unset (`make run`, or a proxy in front
with BRIDGE_ALLOW_ANONYMOUS=1), on SQLite and PostgreSQL: nothing that acts gets through.

Every acting route is found in the app's url_map, so a route added later is held too. A form
or a no-cors fetch can send no body and a Content-Type of none, text/plain, form-urlencoded or
multipart: each is a 415 that changes nothing. A browser's request marked cross-site (Sec-Fetch-Site)
or from a foreign Origin is a 403 on every acting route, the pages' included. curl and the
senders send neither header and still act.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from werkzeug.routing import Rule

from bridge.app import create_app
from bridge.config import load_settings
from bridge.storage.schema import metadata
from tests.conftest import ROOT, Clock, payload

ACTING_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# What a <form> or fetch(..., {mode: "no-cors"}) may declare without asking the server first.
BROWSER_CONTENT_TYPES = (None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x")
# Routes that take no JSON, each with its reason. They are still refused cross-site (below).
JSON_EXEMPT = {
    "ui": "the pages' forms post form data; the session's form token and the operate sign-in guard them",
}
# A value for each route argument, naming what the test made for it.
ARGUMENTS = {
    "incident_id": 1,
    "problem_id": 1,
    "job_id": 1,
    "window_id": 1,
    "source": "alertmanager",
    "name": "nightly-export",
    "system": "itsm",
    "ticket_id": "SR-1",
}
# Refusals of senders are kept for the operator to read (the rule of the edge); they act on nothing.
KEPT_REFUSALS = "rejected_payloads"


@pytest.fixture
def app(database_url: str, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """As `make run` starts it: no token set."""
    monkeypatch.setenv("BRIDGE_ITSM_SECRET", "itsm-secret")
    rules = yaml.safe_load((ROOT / "rules.yaml").read_text())
    rules["heartbeats"] = [{"name": "nightly-export", "interval": "25h"}]
    rules["ticket_systems"] = {"itsm": {"url": "https://itsm.example", "secret_env": "BRIDGE_ITSM_SECRET"}}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    settings = load_settings({}, database_url=database_url, rules_path=str(tmp_path / "rules.yaml"))
    app = create_app(settings, now=clock)
    yield app
    app.extensions["bridge"].store.engine.dispose()


@pytest.fixture
def client(app, clock: Clock):
    """A client of a bridge with something to act on: incidents and a problem, a window, a linked ticket."""
    client = app.test_client()
    assert client.post("/api/v1/alerts/zabbix", json=payload("zabbix-6.0.14-problem.json")).status_code == 200
    window = {
        "name": "db migration",
        "reason": "moving the database",
        "ends_at": (clock.value + timedelta(hours=2)).isoformat(),
        "match": {"source": "alertmanager"},
    }
    assert client.post("/api/v1/maintenance", json=window).status_code == 201
    assert client.post("/api/v1/problems/1/tickets", json={"system": "itsm", "ticket_id": "SR-1"}).status_code == 201
    return client


def acting_routes(app) -> list[tuple[str, Rule]]:
    """(method, rule) for every route that takes an acting method."""
    return sorted(
        ((method, rule) for rule in app.url_map.iter_rules() for method in ACTING_METHODS if method in rule.methods),
        key=lambda found: (found[1].rule, found[0]),
    )


def url_of(rule: Rule) -> str:
    missing = set(rule.arguments) - set(ARGUMENTS)
    assert not missing, f"{rule.rule}: give ARGUMENTS a value for {sorted(missing)}"
    return rule.build({name: ARGUMENTS[name] for name in rule.arguments}, append_unknown=False)[1]


def snapshot(app, *, but: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Every row of every table (but those named)."""
    store = app.extensions["bridge"].store
    with store.engine.connect() as conn:
        return {
            table.name: sorted(repr(tuple(row)) for row in conn.execute(sa.select(table)))
            for table in metadata.sorted_tables
            if table.name not in but
        }


def send(client, method: str, url: str, content_type: str | None, **headers: str) -> Any:
    if content_type is not None:
        headers["Content-Type"] = content_type
    return client.open(url, method=method, data=b"", headers=headers)


def test_every_acting_route_is_found(app):
    found = {rule.endpoint for _, rule in acting_routes(app)}
    assert {"incidents.acknowledge", "problems.create_issue", "outbox.retry_job", "webhooks.receive_alerts"} <= found
    assert {"ui.acknowledge", "ui.login"} <= found


def test_an_empty_body_a_browser_can_send_is_refused_and_changes_nothing(app, client):
    before = snapshot(app, but=(KEPT_REFUSALS,))
    acted = []
    for method, rule in acting_routes(app):
        if rule.endpoint.partition(".")[0] in JSON_EXEMPT:
            continue
        url = url_of(rule)
        for content_type in BROWSER_CONTENT_TYPES:
            answer = send(client, method, url, content_type)
            refused = answer.status_code == 415 and "application/json" in (answer.json or {}).get("message", "")
            if not refused:
                acted.append(f"{method} {url} ({content_type or 'no Content-Type'}): {answer.status_code}")
    assert acted == []
    assert snapshot(app, but=(KEPT_REFUSALS,)) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
        {"Origin": "https://attacker.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost.attacker.example"},
    ],
)
def test_a_request_from_another_site_is_refused_on_every_acting_route(app, client, headers):
    before = snapshot(app)
    acted = []
    for method, rule in acting_routes(app):
        url = url_of(rule)
        answer = client.open(url, method=method, json={}, headers=headers)
        if answer.status_code != 403 or "another site" not in answer.json["message"]:
            acted.append(f"{method} {url}: {answer.status_code}")
    assert acted == []
    assert snapshot(app) == before, "nothing kept, nothing changed"


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, a sender, a script
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": "http://localhost"},
        {"Origin": "http://127.0.0.1:8080"},  # BRIDGE_PUBLIC_URL's
    ],
)
def test_a_request_from_this_bridge_or_no_browser_acts(client, headers):
    acked = client.post("/api/v1/incidents/1/ack", headers={**headers, "Content-Type": "application/json"})
    assert acked.status_code == 200, acked.json
    assert acked.json["acknowledged_at"] is not None


def test_the_senders_still_post_as_they_do(client):
    """Alertmanager's body as it sends it; a heartbeat's ping as the how-to writes it (no body, declared JSON)."""
    sent = client.post(
        "/api/v1/alerts/alertmanager",
        data=(ROOT / "tests/fixtures/payloads/alertmanager-0.25-two-firing.json").read_bytes(),
        headers={"Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0"},
    )
    assert sent.status_code == 200, sent.json
    ping = client.post("/api/v1/heartbeats/nightly-export/ping", headers={"Content-Type": "application/json"})
    assert ping.status_code == 200, ping.json


@pytest.mark.parametrize(
    "host", ["attacker.example", "attacker.example:8080", "127.0.0.1.attacker.example", "10.0.0.5"]
)
def test_a_loopback_bridge_answers_no_other_host_name(app, client, host):
    """DNS rebinding: a page points its own name at 127.0.0.1, so its requests look same-origin to the
    browser and carry JSON; only the Host header still names the page. Neither reading nor acting."""
    before = snapshot(app)
    headers = {"Host": host, "Sec-Fetch-Site": "same-origin", "Origin": f"http://{host}"}
    read = client.get("/api/v1/incidents", headers=headers)
    acted = client.post("/api/v1/incidents/1/ack", headers={**headers, "Content-Type": "application/json"})
    page = client.get("/ui/", headers=headers)
    for answer in (read, acted, page):
        assert (
            answer.status_code == 403 and answer.json["message"] == "refused a request addressed to another host name"
        )
    assert snapshot(app) == before


@pytest.mark.parametrize("host", ["localhost", "localhost:8080", "127.0.0.1:8080", "127.0.0.2", "[::1]:8080"])
def test_a_loopback_bridge_answers_its_loopback_names(client, host):
    assert client.get("/api/v1/incidents", headers={"Host": host}).status_code == 200


def test_a_bridge_behind_its_public_name_or_on_the_network_answers_that_name(
    database_url: str, clock: Clock, tmp_path: Path
):
    public = load_settings({"BRIDGE_PUBLIC_URL": "https://bridge.example.com"}, database_url=database_url)
    network = load_settings({"BRIDGE_BIND": "0.0.0.0:8080"}, database_url=database_url)
    for settings, host in ((public, "bridge.example.com"), (network, "bridge.internal:8080")):
        app = create_app(settings, now=clock)
        try:
            assert app.test_client().get("/api/v1/incidents", headers={"Host": host}).status_code == 200
        finally:
            app.extensions["bridge"].store.engine.dispose()
