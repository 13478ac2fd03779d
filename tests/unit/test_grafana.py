"""The Grafana Alerting adapter on bodies in the shapes Grafana documents for versions 9 to 11."""

from __future__ import annotations

import copy

import pytest

from adapters import alertmanager, grafana
from bridge.domain.incidents import AlertStatus
from bridge.errors import BadPayload
from tests.conftest import payload


@pytest.mark.parametrize(
    "name, value_annotation, value",
    [
        ("grafana-11-values.json", "grafana_values", '{"B":44.23943737541908,"C":1}'),
        ("grafana-9-valuestring.json", "grafana_value_string", "[ metric='' labels={} value=14151.331895396988 ]"),
    ],
)
def test_each_grafana_shape_keeps_links_and_values_as_annotations(name, value_annotation, value):
    parsed = grafana.parse(payload(name))
    assert [(a.source, a.source_id, a.status) for a in parsed.alerts] == [
        ("grafana", "1:c6eadffa33fcdf37", AlertStatus.FIRING),
        ("grafana", "1:bc97ff14869b13e3", AlertStatus.FIRING),
    ]
    first = parsed.alerts[0]
    assert first.annotations[value_annotation] == value
    assert first.annotations["grafana_silence_url"].startswith("https://play.grafana.org/alerting/silence/new")
    assert "grafana_dashboard_url" not in first.annotations, "empty links are not kept"
    assert first.summary == "This alert was triggered for zone us-1" and first.ends_at is None
    assert parsed.group_key == "{}:{}"


def test_the_incident_key_is_the_fingerprint_within_its_organisation():
    body = payload("grafana-11-values.json")
    other_org = dict(body, orgId=7)
    assert grafana.parse(other_org).alerts[0].source_id == "7:c6eadffa33fcdf37"
    assert grafana.parse(other_org).alerts[0].source_id != grafana.parse(body).alerts[0].source_id


def test_a_resolved_alert_carries_its_end():
    [alert] = grafana.parse(payload("grafana-11-resolved.json")).alerts
    assert alert.status is AlertStatus.RESOLVED and alert.ends_at is not None


def test_the_sender_own_annotations_win_over_the_links():
    body = payload("grafana-11-values.json")
    body["alerts"][0]["annotations"]["grafana_values"] = "set by the rule"
    assert grafana.parse(body).alerts[0].annotations["grafana_values"] == "set by the rule"


@pytest.mark.parametrize(
    "change, error",
    [
        ({"version": "4"}, "version: Input should be '1'"),
        ({"orgId": 2**64}, "orgId: Input should be less than or equal to"),
        ({"orgId": "one"}, "orgId: Input should be a valid integer"),
        ({"alerts": []}, "alerts: must hold at least one alert"),
    ],
)
def test_unusable_envelopes_are_refused_naming_the_field(change, error):
    with pytest.raises(BadPayload) as refused:
        grafana.parse(dict(payload("grafana-11-values.json"), **change))
    assert any(line.startswith(error) for line in refused.value.errors), refused.value.errors


def test_a_bad_alert_is_refused_alone():
    body = payload("grafana-11-values.json")
    body["alerts"][1]["values"] = {"B": "not a number"}
    parsed = grafana.parse(body)
    assert len(parsed.alerts) == 1 and parsed.rejected[0].index == 1
    assert parsed.rejected[0].errors[0].startswith("alerts[1].values.B")


def test_alertmanager_refuses_grafana_bodies_and_grafana_alertmanager_ones():
    with pytest.raises(BadPayload):
        alertmanager.parse(payload("grafana-11-values.json"))
    with pytest.raises(BadPayload):
        grafana.parse(payload("alertmanager-0.25-two-firing.json"))


def test_parse_leaves_input_unmutated():
    body = payload("grafana-11-values.json")
    before = copy.deepcopy(body)
    grafana.parse(body)
    assert body == before
