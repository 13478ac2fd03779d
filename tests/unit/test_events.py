"""PagerDuty Events v2: the parser, routing keys from rules.yaml, redaction and acknowledgements in the domain."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from adapters import events
from bridge.config import check_exposure, load_settings
from bridge.domain.incidents import AlertStatus, EventRoutingKey, IncidentState, Outcome
from bridge.domain.lifecycle import apply_alert
from bridge.domain.rules import Rules, route_alert
from bridge.errors import BadPayload
from bridge.rules.load import RulesError, expand_variables, load_rules, parse_rules
from tests.conftest import ROOT, payload
from tests.unit.test_config import ALL_TOKENS
from tests.unit.test_rules import VALID

KEY = EventRoutingKey.of("portal-uptime", "s3cret-routing-key", {"service": "portal", "severity": "unset"})
NOW = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def test_documented_trigger_becomes_one_alert_with_labels_details_and_links():
    body = payload("events-trigger.json")
    untouched = copy.deepcopy(body)
    [alert] = events.parse(body).alerts
    assert body == untouched, "the parser leaves its input alone"
    assert (alert.source, alert.status, alert.source_id) == ("events", AlertStatus.FIRING, "samplekeyhere")
    assert alert.labels["severity"] == "info" and alert.labels["class"] == "deploy"
    assert alert.starts_at == datetime(2015, 7, 17, 8, 42, 58, 315000, tzinfo=UTC)
    assert alert.annotations["image_1_url"].endswith("pagerduty-logo-green.png")
    assert alert.annotations["details.load avg"] == "0.75"
    assert not alert.is_update and not alert.note_only


def test_acknowledge_is_a_note_and_resolve_resolves():
    [ack] = events.parse(payload("events-acknowledge.json")).alerts
    assert ack.is_update and ack.note_only and ack.starts_at is None
    assert ack.annotations == {"acknowledged_by": "events"}
    [resolve] = events.parse(payload("events-resolve.json")).alerts
    assert resolve.status is AlertStatus.RESOLVED and resolve.source_id == "samplekeyhere"


def test_free_form_custom_details_are_bounded_not_refused():
    body = payload("events-trigger.json")
    body["payload"]["custom_details"] = {f"k{n}": "v" for n in range(500)} | {"long": "x" * 50_000}
    [alert] = events.parse(body).alerts
    details = {name: value for name, value in alert.annotations.items() if name.startswith("details.")}
    assert len(details) == 128 and all(len(value) <= 16_384 for value in details.values())
    body["payload"]["custom_details"] = "just text"
    assert events.parse(body).alerts[0].annotations["details"] == "just text"


def test_attaching_the_key_names_the_incident_by_the_key_name_never_the_key():
    [trigger] = events.attach_routing_key(
        events.parse(payload("events-trigger-without-dedup-key.json")), KEY, NOW, "generated"
    ).alerts
    assert trigger.source_id == "portal-uptime:generated" and trigger.starts_at == NOW
    assert trigger.labels == {"service": "portal", "severity": "critical", "source": "host1.example.com"}
    assert "s3cret" not in repr(KEY) and "s3cret" not in repr(trigger)
    [ack] = events.attach_routing_key(events.parse(payload("events-acknowledge.json")), KEY, NOW, "unused").alerts
    assert ack.starts_at is None and ack.annotations["acknowledged_at"] == "2026-11-23T19:00:00Z"


def test_routing_keys_are_compared_whole_and_only_as_strings():
    keys = (EventRoutingKey.of("a", "alpha", {}), KEY)
    assert events.find_routing_key(keys, "s3cret-routing-key") is KEY
    for given in ("s3cret-routing-ke", "s3cret-routing-key ", "", None, 42, ["alpha"]):
        assert events.find_routing_key(keys, given) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"routing_key": "s3cret-routing-key", "a": 1}', '{"routing_key": "<redacted>", "a": 1}'),
        (
            '{"routing_key" :"s3cret\\"x", "routing_key":"two"}',
            '{"routing_key": "<redacted>", "routing_key": "<redacted>"}',
        ),
        ('{"routing_key": "s3cret-rout', '{"routing_key": "<redacted>"'),
        ('{"other": "s3cret-routing-key"}', '{"other": "<redacted>"}'),
        ('{"a": "\\u00733cret-routing-\\u006Bey!"}', '{"a": "<redacted>!"}'),
        ('{"\\u0073\\u0033cret-routing-key": [["s\\u0033cret-routing-key"]]}', '{"<redacted>": [["<redacted>"]]}'),
        ('{"a": "x \\u00733cret-routing-key \\"q', '{"a": "x <redacted> \\"q"'),
        ('{"a": "\\u00733cret-routing-ke", "b": "\\n"}', '{"a": "\\u00733cret-routing-ke", "b": "\\n"}'),
    ],
)
def test_redaction_covers_cut_bodies_duplicates_stray_copies_and_escaped_ones(text, expected):
    assert events.redact(text, "s3cret-routing-key") == expected


def test_a_parsed_event_is_redacted_in_every_string_and_key_at_any_depth():
    event = {
        "routing_key": "s3cret-routing-key",
        "payload": {"summary": "with s3cret-routing-key", "s3cret-routing-key": [[{"routing_key": "x"}], 3, None]},
    }
    assert events.redact_event(event, "s3cret-routing-key") == {
        "routing_key": "<redacted>",
        "payload": {"summary": "with <redacted>", "<redacted>": [[{"routing_key": "<redacted>"}], 3, None]},
    }


def test_routing_key_values_are_expanded_from_the_environment():
    document = {
        **VALID,
        "events": {
            "routing_keys": [
                {"name": "portal-uptime", "key": "${PORTAL_KEY}", "labels": {"service": "portal"}},
                {"name": "ci", "key": "ci-${CI_KEY}"},
            ]
        },
    }
    rules = parse_rules(document, environ={"PORTAL_KEY": "s3cret", "CI_KEY": "42"})
    portal, ci = rules.event_routing_keys
    assert (portal.name, portal.labels, portal.matches("s3cret")) == ("portal-uptime", {"service": "portal"}, True)
    assert ci.matches("ci-42") and not ci.matches("ci-${CI_KEY}")
    assert "s3cret" not in repr(rules)


@pytest.mark.parametrize(
    ("entries", "environ", "problem"),
    [
        (
            [{"name": "p", "key": "${UNSET_KEY}"}],
            {},
            'events routing key "p" key key: environment variable not set: UNSET_KEY',
        ),
        (
            [{"name": "p", "key": "${not valid}"}],
            {},
            'events routing key "p" key key: not a variable name: ${not valid}',
        ),
        ([{"name": "p", "key": "${EMPTY}"}], {"EMPTY": " "}, 'events routing key "p" key key: empty once expanded'),
        ([{"name": "p", "key": "a"}, {"name": "p", "key": "b"}], {}, 'events routing key "p": name used twice'),
        (
            [{"name": "p", "key": "a"}, {"name": "q", "key": "a"}],
            {},
            'events routing key "q" key key: the same key as another entry',
        ),
        ([{"name": "p"}], {}, "events routing key #1 key key: required field is missing"),
        ([{"name": "has space", "key": "a"}], {}, "events routing key #1 key name: String should match pattern"),
    ],
)
def test_bad_routing_keys_are_rules_errors_naming_the_entry(entries, environ, problem):
    with pytest.raises(RulesError) as caught:
        parse_rules({**VALID, "events": {"routing_keys": entries}}, environ=environ)
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


def test_expand_variables_leaves_other_dollars_alone():
    assert expand_variables("$HOME ${A}$ {B}", {"A": "x"}) == "$HOME x$ {B}"


def test_events_need_no_bearer_token_on_the_network():
    """Its credential is the routing key: with none configured the endpoint refuses every event."""
    check_exposure(load_settings({"BRIDGE_BIND": "0.0.0.0:8080", **ALL_TOKENS}))
    assert load_rules(ROOT / "rules.yaml").event_routing_keys == ()


def _apply(rules: Rules, current, body: str, now: datetime):
    [alert] = events.attach_routing_key(events.parse(payload(body)), KEY, now, "unused").alerts
    return apply_alert(current, alert, route_alert(rules, alert), now)


def test_an_acknowledgement_notes_the_firing_incident_and_survives_repeats_until_it_resolves(example_rules):
    outcome, incident = _apply(example_rules, None, "events-acknowledge.json", NOW)
    assert (outcome, incident) == (Outcome.STALE, None), "nothing to acknowledge: nothing opened"
    _, incident = _apply(example_rules, None, "events-trigger.json", NOW)
    labels = dict(incident.labels)
    outcome, incident = _apply(example_rules, incident, "events-acknowledge.json", NOW + timedelta(minutes=1))
    assert outcome is Outcome.UPDATED and incident.labels == labels and incident.occurrences == 1
    assert incident.annotations["acknowledged_by"] == "events" and "details.ping time" in incident.annotations
    outcome, incident = _apply(example_rules, incident, "events-trigger.json", NOW + timedelta(minutes=2))
    assert outcome is Outcome.REPEATED and incident.annotations["acknowledged_at"] == "2026-11-23T19:01:00Z"
    outcome, incident = _apply(example_rules, incident, "events-resolve.json", NOW + timedelta(minutes=3))
    assert outcome is Outcome.RESOLVED and incident.state is IncidentState.RESOLVED
    assert _apply(example_rules, incident, "events-acknowledge.json", NOW + timedelta(minutes=4))[0] is Outcome.STALE
    outcome, incident = _apply(
        example_rules, incident, "events-trigger-without-dedup-key.json", NOW + timedelta(minutes=5)
    )
    assert outcome is Outcome.REOPENED, "no timestamp: the trigger starts a new episode on receipt"
    assert "acknowledged_at" not in incident.annotations and "acknowledged_by" not in incident.annotations


def test_a_bad_event_names_its_fields():
    with pytest.raises(BadPayload) as caught:
        events.parse({"routing_key": "x", "event_action": "trigger", "payload": {"severity": "fatal"}})
    assert caught.value.errors == [
        "payload.summary: required field is missing",
        "payload.source: required field is missing",
        "payload.severity: Input should be 'critical', 'error', 'warning' or 'info'",
    ]
