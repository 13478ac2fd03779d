"""rules.yaml validation: strict, and every message names the rule and the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from bridge.rules.load import RulesError, load_rules, parse_duration, parse_rules
from tests.conftest import ROOT

VALID = {
    "version": 1,
    "defaults": {
        "line": "L3",
        "impact": "medium",
        "urgency": "medium",
        "reopen_window": "30m",
        "auto_close_after": "24h",
    },
    "priority_matrix": {i: {u: "P3" for u in ("high", "medium", "low")} for i in ("high", "medium", "low")},
    "routes": [
        {
            "name": "db-team",
            "match": {"source": "alertmanager", "labels": {"team": "db"}},
            "line": "L2",
            "impact": "high",
        }
    ],
}


def problems_of(document) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(document)
    return caught.value.problems


def with_route(**fields):
    document = {**VALID, "routes": [{**VALID["routes"][0], **fields}]}
    return document


def test_example_rules_file_is_valid_and_routes_in_order():
    rules = load_rules(ROOT / "rules.yaml")
    assert rules.routes[0].name == "portal-critical"
    assert rules.priority("high", "high") == "P1"
    assert rules.default_route.line == "L3"


def test_route_inherits_defaults_field_by_field():
    route = parse_rules(VALID).routes[0]
    assert (route.line, route.impact, route.urgency, route.reopen_window) == (
        "L2",
        "high",
        "medium",
        timedelta(minutes=30),
    )


@pytest.mark.parametrize(
    "document, expected",
    [
        (with_route(colour="red"), 'route "db-team" key colour: unknown key'),
        (with_route(impact="huge"), "route \"db-team\": impact 'huge' is not one of high, medium, low"),
        (with_route(match={"source": "nagios"}), 'route "db-team" key match.source: unknown source'),
        (
            with_route(match={"labels_regex": {"a": "("}}),
            "route \"db-team\" key match.labels_regex: label 'a': invalid regex",
        ),
        (with_route(reopen_window="soon"), "route \"db-team\": reopen_window: invalid duration 'soon'"),
        (with_route(auto_close_after="1m"), 'route "db-team": auto_close_after must not be shorter than reopen_window'),
        (with_route(line="L" * 65), 'route "db-team" key line: String should have at most 64 characters'),
        (with_route(dedup_labels=[]), 'route "db-team": dedup_labels must name at least one label'),
        ({**VALID, "version": 2}, "key version: unsupported version 2"),
        ({**VALID, "extra": 1}, "key extra: unknown key"),
        ({**VALID, "priority_matrix": {"high": {"high": "P1"}}}, "key priority_matrix: missing impact 'medium'"),
        ({**VALID, "routes": [VALID["routes"][0], VALID["routes"][0]]}, 'route "db-team": name used twice'),
        ({**VALID, "routes": [{"match": {}}]}, "route #1 key name: required field is missing"),
    ],
)
def test_problems_name_rule_and_key(document, expected):
    problems = problems_of(document)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_missing_default_is_reported_for_route_that_needs_it():
    document = {
        **VALID,
        "defaults": {"impact": "low", "urgency": "low", "reopen_window": "1m", "auto_close_after": "1h"},
    }
    problems = problems_of(document)
    assert 'route "db-team": missing line' not in problems
    assert "defaults: missing line (set it on the route or in defaults)" in problems


def test_unreadable_and_non_yaml_files_fail_clearly(tmp_path: Path):
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("routes: [unclosed\n")
    with pytest.raises(RulesError, match="not valid YAML"):
        load_rules(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text(yaml.safe_dump("just text"))
    with pytest.raises(RulesError, match="must be a mapping"):
        load_rules(scalar)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("4h", timedelta(hours=4)),
        ("1d12h", timedelta(days=1, hours=12)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "4", "h", "-1h", "1w", "1h 2m"])
def test_parse_duration_refuses_other_forms(text):
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_templates_cannot_reach_the_environment_or_python_internals():
    from bridge.rules.templates import TemplateError, compile_template

    for source in (
        "{{ cycler.__init__.__globals__.os.environ }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
    ):
        with pytest.raises(TemplateError):
            compile_template(source)({"labels": {}})
    assert compile_template("{{ labels.a }}")({"labels": {"a": "{{ 7*7 }}"}}) == "{{ 7*7 }}"
    with pytest.raises(TemplateError, match="undefined|has no attribute"):
        compile_template("{{ labels.missing }}")({"labels": {}})


def with_transition_fields(transition_fields):
    """The example rules file with the first problem rule's jira section given `transition_fields`."""
    document = yaml.safe_load((ROOT / "rules.yaml").read_text())
    document["problems"][0]["jira"]["transition_fields"] = transition_fields
    return document


def test_transition_fields_reach_the_jira_target():
    fields = {"Close Issue": {"resolution": {"name": "Fixed"}, "customfield_10050": "rolled back", "story_points": 3}}
    target = parse_rules(with_transition_fields(fields)).problem_rules[0].jira
    assert target.transition_fields == fields
    assert load_rules(ROOT / "rules.yaml").problem_rules[0].jira.transition_fields == {}


@pytest.mark.parametrize(
    "fields, message",
    [
        pytest.param(
            {"Done": {"resolution": True}},
            "Done.resolution: must be a string, a number or an object such as {name: Fixed}, not True",
            id="boolean",
        ),
        pytest.param(
            {"Done": {"resolution": None}},
            "Done.resolution: must be a string, a number or an object such as {name: Fixed}, not None",
            id="null",
        ),
        pytest.param(
            {"Done": {"story_points": float("nan")}},
            "Done.story_points: must be a string, a number or an object such as {name: Fixed}, not nan",
            id="not-a-json-number",
        ),
        pytest.param({"Done": "Fixed"}, "Input should be a valid dictionary", id="transition-without-a-field-map"),
    ],
)
def test_transition_fields_refuse_what_jira_cannot_take(fields, message):
    [problem] = problems_of(with_transition_fields(fields))
    assert problem.startswith('problem rule "portal-errors" key jira.transition_fields') and message in problem
