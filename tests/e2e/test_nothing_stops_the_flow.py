"""One bad value, number or nesting never stops the flow: through HTTP on SQLite and PostgreSQL, the bad
item gets a 4xx naming the problem (kept in rejected), its neighbours are written, the next notification works."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator

import pytest

from adapters import PARSERS
from bridge.app import create_app
from bridge.config import load_settings
from tests.conftest import ROOT, Clock, payload


@pytest.fixture
def client(database_url: str, clock: Clock) -> Iterator:
    app = create_app(load_settings({}, database_url=database_url, rules_path=str(ROOT / "rules.yaml")), now=clock)
    yield app.test_client()
    app.extensions["bridge"].store.engine.dispose()


def post(client, source: str, body: object):
    return client.post(f"/api/v1/alerts/{source}", data=json.dumps(body), content_type="application/json")


def incidents(client) -> list[dict]:
    return client.get("/api/v1/incidents").json["items"]


def rejected(client) -> list[dict]:
    return client.get("/api/v1/rejected").json["items"]


def assert_next_notification_works(client) -> None:
    response = post(client, "alertmanager", payload("alertmanager-0.25-repeat-after-resolve.json"))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_alert_with_a_long_random_label_value_does_not_fail_its_neighbour(client):
    body = payload("alertmanager-0.25-two-firing.json")
    body["alerts"][1]["labels"]["service"] = secrets.token_hex(4000)  # incompressible, past the index row limit
    response = post(client, "alertmanager", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["outcomes"] == {"created": 2} and response.json["rejected"] == []
    assert {i["labels"]["instance"] for i in incidents(client)} == {"a:1", "b:1"}
    again = post(client, "alertmanager", body)
    assert again.status_code == 200 and again.json["outcomes"] == {"repeated": 2}
    assert_next_notification_works(client)


def test_zabbix_field_of_thousands_of_characters_is_accepted_and_grouped(client):
    body = payload("zabbix-6.0.14-problem.json")
    body["trigger_id"] = secrets.token_hex(2500)
    response = post(client, "zabbix", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    [problem] = client.get("/api/v1/problems").json["items"]
    assert problem["problem_key"].startswith("zabbix-trigger/" + body["trigger_id"][:100])
    assert len(problem["problem_key"]) <= 200
    assert_next_notification_works(client)


@pytest.mark.parametrize("truncated", [2**31, 2**63, 2**64 - 1, 10**30, -1, 1.5])
def test_truncated_alerts_out_of_range_is_a_400_kept_in_rejected(client, truncated):
    body = payload("alertmanager-0.25-two-firing.json")
    body["truncatedAlerts"] = truncated
    response = post(client, "alertmanager", body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["message"] == "invalid Alertmanager payload"
    assert response.json["errors"][0].startswith("truncatedAlerts: ")
    [kept] = rejected(client)
    assert kept["reason"] == "invalid Alertmanager payload" and kept["errors"] == response.json["errors"]
    assert_next_notification_works(client)


def test_zabbix_tags_json_text_nested_very_deep_is_a_400_kept_in_rejected(client):
    body = payload("zabbix-6.0.14-problem.json")
    body["tags"] = "[" * 100_000 + "]" * 100_000
    response = post(client, "zabbix", body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["errors"] == [
        "tags: not a JSON array of {tag, value} objects (JSON nested more than 4 levels deep)"
    ]
    assert [r["reason"] for r in rejected(client)] == ["invalid Zabbix payload"]
    assert_next_notification_works(client)


def test_zabbix_tags_as_json_text_still_become_labels(client):
    body = payload("zabbix-6.0.14-problem.json")
    body["tags"] = json.dumps(body["tags"])
    assert post(client, "zabbix", body).status_code == 200
    [incident] = incidents(client)
    assert incident["labels"]["service"] == "lkk" and incident["labels"]["component"] == "api"


def test_unexpected_adapter_exception_is_a_400_kept_in_rejected_and_logged(client, monkeypatch, caplog):
    def broken_parser(body):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setitem(PARSERS, "zabbix", broken_parser)
    with caplog.at_level(logging.ERROR, logger="bridge.ingest.deliveries"):
        response = post(client, "zabbix", payload("zabbix-6.0.14-problem.json"))
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["message"] == "the zabbix adapter could not read this payload"
    assert response.json["errors"] == ["body: unexpected RecursionError while parsing; the bridge log has the details"]
    [kept] = rejected(client)
    body = client.get(f"/api/v1/rejected/{kept['id']}").json["body"]
    assert kept["reason"] == response.json["message"] and '"event_id": "1"' in body
    [record] = [r for r in caplog.records if r.getMessage() == "adapter failed on a payload; refused"]
    assert record.exc_info is not None, "the traceback goes to the log"
    assert_next_notification_works(client)


def test_refused_alert_whose_label_name_holds_nul_is_kept_with_its_neighbour_written(client):
    """The finding quotes the sender's key; PostgreSQL's JSONB refuses NUL, so it is stored as U+FFFD."""
    body = payload("alertmanager-0.25-two-firing.json")
    body["alerts"][1]["labels"]["bad\x00name"] = "x"
    response = post(client, "alertmanager", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [item["index"] for item in response.json["rejected"]] == [1]
    [kept] = rejected(client)
    assert kept["partial"] and kept["errors"][0].startswith("alerts[1].labels.bad\ufffdname")
    assert [i["labels"]["instance"] for i in incidents(client)] == ["a:1"]
