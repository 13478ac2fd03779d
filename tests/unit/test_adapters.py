"""Parsers on payloads recorded from a real Alertmanager 0.25 and Zabbix 6.0.14."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from adapters import PARSERS, SOURCES, alertmanager, zabbix
from bridge.config import TOKEN_GROUPS
from bridge.domain.incidents import AlertStatus
from bridge.errors import BadPayload
from tests.conftest import payload


def test_alertmanager_recorded_notification_keeps_every_alert_firing_and_resolved():
    parsed = alertmanager.parse(payload("alertmanager-0.25-one-resolved-one-firing.json"))
    assert [(a.source_id, a.status) for a in parsed.alerts] == [
        ("3d64f6474bce3ff4", AlertStatus.RESOLVED),
        ("11e44d6c5771e52b", AlertStatus.FIRING),
    ]
    resolved, firing = parsed.alerts
    assert resolved.ends_at == datetime(2026, 11, 23, 19, 0, 4, 629639, tzinfo=UTC)
    assert firing.ends_at is None, "Go's zero time means still firing"
    assert firing.starts_at == datetime(2026, 11, 23, 18, 59, 2, 486085, tzinfo=UTC)
    assert firing.labels["service"] == "lkk" and firing.summary == "HighErrorRate on b:1"
    assert parsed.group_key == '{}:{alertname="HighErrorRate", service="lkk"}'
    assert parsed.rejected == () and parsed.truncated_alerts == 0


def test_alertmanager_parse_leaves_input_unmutated():
    body = payload("alertmanager-0.25-two-firing.json")
    before = copy.deepcopy(body)
    alertmanager.parse(body)
    assert body == before


def test_alertmanager_nanosecond_timestamps_and_unknown_fields_are_accepted():
    body = payload("alertmanager-0.25-two-firing.json")
    body["routeLabels"] = {"receiver": "bridge"}
    body["notification_reason"] = "first notification"
    body["alerts"][0]["startsAt"] = "2025-03-04T10:15:30.123456789Z"
    parsed = alertmanager.parse(body)
    assert parsed.alerts[0].starts_at == datetime(2025, 3, 4, 10, 15, 30, 123456, tzinfo=UTC)


def test_alertmanager_truncated_alerts_are_noted():
    body = payload("alertmanager-0.25-two-firing.json")
    body["truncatedAlerts"] = 17
    assert alertmanager.parse(body).truncated_alerts == 17


def test_alertmanager_bad_alert_is_refused_alone_with_field_path():
    body = payload("alertmanager-0.25-two-firing.json")
    del body["alerts"][1]["fingerprint"]
    body["alerts"].append({"status": "exploded", "labels": {}, "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "ab"})
    parsed = alertmanager.parse(body)
    assert [a.source_id for a in parsed.alerts] == ["3d64f6474bce3ff4"]
    assert [(r.index, r.errors) for r in parsed.rejected] == [
        (1, ("alerts[1].fingerprint: required field is missing",)),
        (2, ("alerts[2].status: Input should be 'firing' or 'resolved'",)),
    ]


@pytest.mark.parametrize(
    "mutate, message, error",
    [
        (lambda b: b.update(version="3"), "invalid Alertmanager payload", "version: Input should be '4'"),
        (lambda b: b.pop("alerts"), "invalid Alertmanager payload", "alerts: required field is missing"),
        (lambda b: b.update(alerts={}), "invalid Alertmanager payload", "alerts: Input should be a valid list"),
        (lambda b: b.update(alerts=[]), "no alerts in Alertmanager payload", "alerts: must hold at least one alert"),
        (lambda b: b.update(alerts=[1]), "no valid alert in Alertmanager payload", "alerts[0]: Input should be"),
        (lambda b: b.update(truncatedAlerts=-1), "invalid Alertmanager payload", "truncatedAlerts:"),
    ],
)
def test_alertmanager_unusable_envelope_names_the_field(mutate, message, error):
    body = payload("alertmanager-0.25-two-firing.json")
    mutate(body)
    with pytest.raises(BadPayload) as caught:
        alertmanager.parse(body)
    assert caught.value.message == message
    assert any(line.startswith(error) for line in caught.value.errors), caught.value.errors


@pytest.mark.parametrize("source", sorted(PARSERS))
@pytest.mark.parametrize("body", [[], "text", 3, None])
def test_non_object_bodies_are_refused(source, body):
    with pytest.raises(BadPayload, match="must be a JSON object"):
        PARSERS[source](body)


def test_zabbix_problem_maps_event_id_labels_and_link():
    [alert] = zabbix.parse(payload("zabbix-6.0.14-problem.json")).alerts
    assert (alert.source_id, alert.status, alert.is_update) == ("1", AlertStatus.FIRING, False)
    assert alert.labels == {
        "service": "lkk",
        "component": "api",
        "host": "lkk-app-1",
        "trigger_id": "23133",
        "severity": "High",
        "nseverity": "4",
        "event_source": "trigger",
    }
    assert alert.summary == "LKK API errors high on lkk-app-1"
    assert alert.annotations["zabbix_event_url"] == "http://127.0.0.1:8081/tr_events.php?triggerid=23133&eventid=1"
    assert "recovery_event_id" not in alert.annotations, "unresolved macro is unset"


@pytest.mark.parametrize(
    "name, status, is_update",
    [
        ("zabbix-6.0.14-update-ack.json", AlertStatus.FIRING, True),
        ("zabbix-6.0.14-recovery.json", AlertStatus.RESOLVED, False),
        ("zabbix-6.0.14-manual-close-update.json", AlertStatus.RESOLVED, True),
        ("zabbix-6.0.14-manual-close-recovery.json", AlertStatus.RESOLVED, False),
    ],
)
def test_zabbix_recovery_and_updates_map_back_to_the_problem_event(name, status, is_update):
    [alert] = zabbix.parse(payload(name)).alerts
    problem_id = payload(name)["event_id"]
    assert (alert.source_id, alert.status, alert.is_update) == (problem_id, status, is_update)


def test_zabbix_tags_as_json_text_and_colliding_names():
    body = payload("zabbix-6.0.14-problem.json")
    body["tags"] = json.dumps(
        [{"tag": "host", "value": "tagged"}, {"tag": "scope", "value": "a"}, {"tag": "scope", "value": "b"}]
    )
    [alert] = zabbix.parse(body).alerts
    assert (alert.labels["host"], alert.labels["tag_host"], alert.labels["scope"]) == ("lkk-app-1", "tagged", "a,b")


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("event_id", "{EVENT.ID}", "event_id: String should match pattern"),
        ("event_value", "2", "event_value: Input should be '0' or '1'"),
        ("tags", "not json", "tags: not a JSON array"),
        ("event_name", "", "event_name: String should have at least 1 character"),
    ],
)
def test_zabbix_bad_field_is_named(field, value, error):
    body = payload("zabbix-6.0.14-problem.json")
    body[field] = value
    with pytest.raises(BadPayload) as caught:
        zabbix.parse(body)
    assert any(line.startswith(error) for line in caught.value.errors), caught.value.errors


def test_zabbix_discovery_events_are_refused():
    body = payload("zabbix-6.0.14-problem.json")
    body["event_source"] = "1"
    with pytest.raises(BadPayload, match="unsupported Zabbix event source"):
        zabbix.parse(body)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_registered_source_has_its_token_group_and_parseable_examples(name):
    source = SOURCES[name]
    assert TOKEN_GROUPS.get(name) == source.token_variable
    alerts = [alert for body in source.example_payloads() for alert in source.parse(body).alerts]
    assert alerts and {alert.source for alert in alerts} == {name}
