"""Jira outcomes: which resolution means what (rules.yaml `jira.outcomes`), and what a problem does about it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
import yaml

from bridge.domain.outcomes import IssueOutcome, IssueReading, OutcomeRules, OutcomeStep, outcome_step
from bridge.domain.problems import Problem, ProblemState
from bridge.rules.load import RulesError, parse_rules
from jira_link.client import JiraIssue
from jira_link.linker import outward_links
from tests.conftest import ROOT

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def with_outcomes(outcomes):
    """The example rules file with the first problem rule's jira section given `outcomes`."""
    document = yaml.safe_load((ROOT / "rules.yaml").read_text())
    document["problems"][0]["jira"]["outcomes"] = outcomes
    return document


def problems_of(document) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(document)
    return caught.value.problems


def test_left_out_outcomes_take_the_defaults_and_given_ones_reach_the_target():
    document = with_outcomes({"wont_do": {"close_incidents": False}, "duplicate": {"link_type": "Duplicates"}})
    outcomes = parse_rules(document).problem_rules[0].jira.outcomes
    assert outcomes == OutcomeRules(close_incidents=False, duplicate_link_type="Duplicates")
    document = yaml.safe_load((ROOT / "rules.yaml").read_text())
    del document["problems"][0]["jira"]["outcomes"]
    assert parse_rules(document).problem_rules[0].jira.outcomes == OutcomeRules()
    custom = parse_rules(with_outcomes({"wont_do": {"resolutions": ["Rejected"]}})).problem_rules[0].jira.outcomes
    assert custom.wont_do == ("Rejected",) and custom.fixed == OutcomeRules().fixed


@pytest.mark.parametrize(
    "outcomes, message",
    [
        pytest.param(
            {"wont_do": {"resolutions": ["Fixed"]}},
            "problem rule \"portal-errors\" key jira.outcomes.wont_do.resolutions: 'Fixed' already means fixed; "
            "a resolution can mean one outcome only",
            id="claimed-twice",
        ),
        pytest.param(
            {"duplicate": {"resolutions": [" "]}},
            'problem rule "portal-errors" key jira.outcomes.duplicate.resolutions: a resolution name cannot be blank',
            id="blank",
        ),
        pytest.param(
            {"wont_fix": {"resolutions": ["Won't Fix"]}},
            'problem rule "portal-errors" key jira.outcomes.wont_fix: unknown key',
            id="unknown-outcome",
        ),
        pytest.param(
            {"wont_do": {"close_incidents": "sometimes"}},
            'problem rule "portal-errors" key jira.outcomes.wont_do.close_incidents: Input should be a valid boolean',
            id="not-a-boolean",
        ),
        pytest.param(
            {"fixed": {"resolutions": []}},
            'problem rule "portal-errors" key jira.outcomes.fixed.resolutions: List should have at least 1 item',
            id="empty-list",
        ),
    ],
)
def test_bad_outcomes_are_named_with_their_rule_and_key(outcomes, message):
    found = problems_of(with_outcomes(outcomes))
    assert any(line.startswith(message) for line in found), found


@pytest.mark.parametrize(
    "category, resolution, expected",
    [
        ("done", "Fixed", IssueOutcome.FIXED),
        ("done", "Done", IssueOutcome.FIXED),
        ("done", "Something Else", IssueOutcome.FIXED),
        ("done", None, IssueOutcome.FIXED),
        ("done", "won't do", IssueOutcome.WONT_DO),
        ("done", "Cannot Reproduce", IssueOutcome.WONT_DO),
        ("done", "Duplicate", IssueOutcome.DUPLICATE),
        ("indeterminate", "Duplicate", None),
        ("new", None, None),
    ],
)
def test_the_outcome_comes_from_the_status_category_and_the_resolution(category, resolution, expected):
    assert OutcomeRules().outcome_of(category, resolution) is expected


def problem(**changes) -> Problem:
    base = Problem(1, "k", "portal-errors", ProblemState.KNOWN_ERROR, "s", "", T0, jira_key="LKK-1")
    return replace(base, **changes)


@pytest.mark.parametrize(
    "before, outcome, duplicates, step",
    [
        pytest.param(problem(), IssueOutcome.FIXED, None, OutcomeStep.RECORD, id="fixed-recorded"),
        pytest.param(problem(outcome="fixed"), IssueOutcome.FIXED, None, OutcomeStep.NOTHING, id="fixed-again"),
        pytest.param(problem(), IssueOutcome.WONT_DO, None, OutcomeStep.CLOSE, id="wont-do-closes"),
        pytest.param(problem(), IssueOutcome.DUPLICATE, "LKK-9", OutcomeStep.FOLLOW, id="duplicate-follows"),
        pytest.param(problem(), IssueOutcome.DUPLICATE, None, OutcomeStep.RECORD, id="duplicate-of-nothing"),
        pytest.param(problem(outcome="fixed"), None, None, OutcomeStep.CLEAR, id="open-again-clears"),
        pytest.param(problem(), None, None, OutcomeStep.NOTHING, id="open-and-was-open"),
        pytest.param(
            problem(state=ProblemState.CLOSED, outcome="wont_do"), None, None, OutcomeStep.REOPEN, id="wont-do-undone"
        ),
        pytest.param(
            problem(state=ProblemState.CLOSED, fixed_in="1.2"), None, None, OutcomeStep.NOTHING, id="released-stays"
        ),
        pytest.param(
            problem(state=ProblemState.CLOSED, merged_into=2),
            IssueOutcome.WONT_DO,
            None,
            OutcomeStep.NOTHING,
            id="merged",
        ),
        pytest.param(
            problem(state=ProblemState.CLOSED), IssueOutcome.WONT_DO, None, OutcomeStep.NOTHING, id="closed-stays"
        ),
    ],
)
def test_what_a_problem_does_about_its_issue_outcome(before, outcome, duplicates, step):
    assert outcome_step(before, outcome, duplicates) is step


def test_the_duplicated_issue_is_the_outward_end_of_a_duplicate_link():
    links = [
        {"id": "1", "type": {"name": "Blocks", "outward": "blocks"}, "outwardIssue": {"key": "LKK-3"}},
        {"id": "2", "type": {"name": "Duplicate", "outward": "duplicates"}, "inwardIssue": {"key": "LKK-4"}},
        {"id": "3", "type": {"name": "Duplicate", "outward": "duplicates"}, "outwardIssue": {"key": "LKK-5"}},
        {"id": "4", "type": "garbage"},
        "garbage",
    ]
    issue = JiraIssue("LKK-1", fields={"issuelinks": links})
    assert outward_links(issue) == (("Blocks", "LKK-3"), ("Duplicate", "LKK-5"))
    reading = IssueReading("LKK-1", "Done", "done", "Duplicate", None, outward_links(issue))
    assert OutcomeRules().duplicated_issue(reading) == "LKK-5"
    assert OutcomeRules(duplicate_link_type="Blocks").duplicated_issue(reading) == "LKK-3"
    assert outward_links(JiraIssue("LKK-1", fields={})) == ()


def test_merge_into_keeps_the_link_or_names_the_conflict():
    source, into = (
        problem(id=1, jira_key="LKK-1", outcome="fixed"),
        problem(id=2, jira_key=None, state=ProblemState.OPEN),
    )
    merged, target, moved, conflict = source.merge_into(into, T0)
    assert (merged.state, merged.merged_into, merged.jira_key) == (ProblemState.CLOSED, 2, None)
    assert (target.jira_key, target.state, target.outcome, moved, conflict) == (
        "LKK-1",
        ProblemState.KNOWN_ERROR,
        "fixed",
        "LKK-1",
        None,
    )
    merged, target, moved, conflict = source.merge_into(replace(into, jira_key="LKK-2"), T0)
    assert (merged.jira_key, target.jira_key, moved) == ("LKK-1", "LKK-2", None)
    assert (
        conflict == "both problems have a Jira issue: problem 2 keeps LKK-2; LKK-1 stays recorded on merged problem 1"
    )


def test_a_problem_that_followed_its_duplicate_keeps_that_outcome_until_the_original_is_done():
    followed = problem(outcome="duplicate", jira_key="LKK-9", jira_linked_by="duplicate")
    assert outcome_step(followed, None, None) is OutcomeStep.NOTHING
    assert outcome_step(followed, IssueOutcome.FIXED, None) is OutcomeStep.RECORD
    assert outcome_step(problem(outcome="duplicate"), None, None) is OutcomeStep.CLEAR, "its own issue reopened"
