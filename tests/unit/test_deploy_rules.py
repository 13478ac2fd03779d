"""rules.yaml `projects` and `releases.suspect_window`: what check-rules accepts, and every mistake named."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bridge.domain.deploys import DeployHold
from bridge.rules.load import RulesError
from tests.conftest import example_rules_with

RELEASES = {"version_label": "version", "environment_label": "env"}


def refused(**sections: Any) -> list[str]:
    with pytest.raises(RulesError) as error:
        example_rules_with(**sections)
    return error.value.problems


def test_projects_load_with_their_hold_and_settle_and_defaults():
    rules = example_rules_with(
        releases={**RELEASES, "suspect_window": "6h"},
        projects={
            "LKK": {"labels": {"service": "lkk"}, "hold": "side_effects", "settle": "15m"},
            "BILL": {"labels_regex": {"service": "billing-.*"}},
        },
    )
    lkk, bill = rules.projects
    assert (lkk.name, lkk.hold, lkk.settle) == ("LKK", DeployHold.SIDE_EFFECTS, timedelta(minutes=15))
    assert (bill.hold, bill.settle) == (DeployHold.NONE, timedelta(minutes=10))
    assert bill.ships({"service": "billing-api"}) and not bill.ships({"service": "lkk"})
    assert rules.project("LKK") is lkk and rules.project("NOPE") is None
    assert rules.suspect_window == timedelta(hours=6)


def test_the_suspect_window_defaults_to_a_day():
    assert example_rules_with().suspect_window == timedelta(hours=24)


@pytest.mark.parametrize(
    ("sections", "named"),
    [
        ({"projects": {"LKK": {"labels": {"service": "lkk"}}}}, "key projects: needs releases.environment_label"),
        ({"releases": RELEASES, "projects": {"LKK": {}}}, 'project "LKK": name a label of its services'),
        ({"releases": RELEASES, "projects": {"lkk": {"labels": {"a": "b"}}}}, 'project "lkk": name it as releases do'),
        (
            {"releases": RELEASES, "projects": {"LKK": {"labels": {"service": "lkk"}, "hold": "everything"}}},
            'project "LKK" key hold:',
        ),
        (
            {"releases": RELEASES, "projects": {"LKK": {"labels": {"service": "lkk"}, "settle": "soon"}}},
            'project "LKK": settle: invalid duration',
        ),
        (
            {"releases": RELEASES, "projects": {"LKK": {"labels": {"env": "prod"}}}},
            'project "LKK": env is releases.environment_label',
        ),
        (
            {"releases": RELEASES, "projects": {"LKK": {"labels_regex": {"service": "(unclosed"}}}},
            'project "LKK" key labels_regex',
        ),
        (
            {"releases": RELEASES, "projects": {"LKK": {"labels": {"service": "lkk"}, "source": "zabbix"}}},
            'project "LKK" key source: unknown key',
        ),
        ({"releases": {**RELEASES, "suspect_window": "0s"}}, "key releases.suspect_window: must be longer than 0s"),
        ({"releases": {**RELEASES, "suspect_window": "a day"}}, "key releases.suspect_window: invalid duration"),
    ],
)
def test_each_mistake_in_projects_is_named_with_its_project(sections, named):
    problems = refused(**sections)
    assert any(problem.startswith(named) for problem in problems), problems
