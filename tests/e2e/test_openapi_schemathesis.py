"""Schemathesis against the bridge's own OpenAPI document, on SQLite and PostgreSQL: no input yields a 5xx."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings

from bridge.app import create_app
from bridge.config import load_settings
from bridge.storage.engine import migrate
from bridge.storage.store import Store
from tests.conftest import ROOT, empty_tables

_DB = Path(tempfile.mkdtemp(prefix="bridge-schemathesis-")) / "api.db"
migrate(f"sqlite:///{_DB}")
APP = create_app(
    load_settings(
        {"BRIDGE_JIRA_WEBHOOK_SECRET": "hook"}, database_url=f"sqlite:///{_DB}", rules_path=str(ROOT / "rules.yaml")
    )
)


schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", APP)
# What PagerDuty's senders post to: refusals in their shape.
PAGERDUTY_PATHS = ("/api/v1/alerts/events", "/api/v1/changes", "/v2/enqueue", "/v2/change/enqueue")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def app_under_test(request: pytest.FixtureRequest) -> Iterator[Flask]:
    """The app on each backend: PostgreSQL refuses values (lengths, ranges, NUL) that SQLite takes."""
    if request.param == "sqlite":
        yield APP
        return
    url = request.getfixturevalue("pg_database_url")
    store = Store.from_url(url)
    empty_tables(store)
    store.engine.dispose()
    app = create_app(
        load_settings({"BRIDGE_JIRA_WEBHOOK_SECRET": "hook"}, database_url=url, rules_path=str(ROOT / "rules.yaml"))
    )
    yield app
    app.extensions["bridge"].store.engine.dispose()


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail_with_a_server_error(case, app_under_test):
    response = case.call(app=app_under_test)
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        body = response.json()
        # The events and changes views answer in PagerDuty's shape (its status word, ours in code and request_id);
        # what the app refuses before any view (a method, a NUL in the query) in ours.
        pagerduty_shaped = case.path in PAGERDUTY_PATHS and case.method == "POST"
        expected = {"error", "invalid event"} if pagerduty_shaped else {"error"}
        assert body["status"] in expected and body["message"] and body["code"] == response.status_code


def test_the_document_covers_every_route():
    documented = set(APP.test_client().get("/api/v1/openapi.json").json["paths"])
    routes = {
        rule.rule.replace("<int:", "{").replace("<path:", "{").replace("<", "{").replace(">", "}")
        for rule in APP.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.rule.startswith("/ui/")
    }  # /ui/ is HTML, not the API
    assert routes - documented == {"/api/v1/openapi.json", "/api/v1/alerts/{source}"}
    assert {"/api/v1/alerts/alertmanager", "/api/v1/alerts/zabbix"} <= documented


def test_every_operation_documents_what_the_edge_refuses():
    """Any request may be refused for another site or host name (403), an acting one for not declaring JSON
    (415), and one whose token is compared for too many failures from its address (429)."""
    undocumented = []
    for path, item in APP.test_client().get("/api/v1/openapi.json").json["paths"].items():
        for method, op in item.items():
            answers = set(op["responses"])
            expected = {"403"} | ({"415"} if method in ("post", "put", "patch", "delete") else set())
            expected |= {"429"} if "401" in answers else set()
            undocumented += [f"{method.upper()} {path}: {code}" for code in sorted(expected - answers)]
    assert undocumented == []
