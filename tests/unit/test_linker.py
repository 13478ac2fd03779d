"""The linker case by case, against the in-memory Jira: one named row per branch, no I/O."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, NamedTuple

import pytest

from bridge.domain.problems import JiraTarget
from jira_link.client import CLOUD, JiraError, JiraIssue, adf, wiki_markup
from jira_link.linker import (
    DESCRIPTION_LIMIT,
    SUMMARY_LIMIT,
    LinkOptions,
    comment_unless_repeated,
    conclusion_of,
    find_or_create_issue,
    issue_fields,
    link_back,
    move_issue,
)
from tests.jira_memory import STATUS_DONE, STATUS_IN_PROGRESS, STATUS_OPEN, WORKFLOW, MemoryJira

OPTIONS = LinkOptions(marker_prefix="incident-bridge", public_url="http://bridge.test/")
TARGET = JiraTarget(
    create=True,
    project="LKK",
    issue_type="Bug",
    labels=("incident-bridge", "lkk"),
    priority_map={"P1": "Highest", "P2": "High"},
)
MARKER = "incident-bridge-problem-7"
LINK_LINE = "\n\nincident-bridge problem 7 (checkout): http://bridge.test/api/v1/problems/7"
STATUS_WONT_DO = {"name": "Won't Do", "statusCategory": {"key": "done", "name": "Done"}}


def problem(**changes: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "problem_key": "checkout",
        "summary": "HighErrorRate on checkout",
        "description": "5xx above 5% for 10m",
        **changes,
    }


PROBLEM = problem()


# issue_fields -----------------------------------------------------------------------


class FieldsCase(NamedTuple):
    expected: Mapping[str, Any]
    problem: Mapping[str, Any] = PROBLEM
    target: JiraTarget = TARGET
    priority: str | None = None
    absent: tuple[str, ...] = ()
    truncated: str | None = None


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            FieldsCase(
                {
                    "project": {"key": "LKK"},
                    "issuetype": {"name": "Bug"},
                    "summary": "HighErrorRate on checkout",
                    "labels": ["incident-bridge", "lkk", MARKER],
                },
                absent=("components", "priority"),
            ),
            id="rule-labels-then-the-marker",
        ),
        pytest.param(
            FieldsCase({"description": wiki_markup("5xx above 5% for 10m" + LINK_LINE)}),
            id="description-ends-with-a-link-back",
        ),
        pytest.param(
            FieldsCase(
                {"description": wiki_markup("HighErrorRate on checkout" + LINK_LINE)}, problem(description=None)
            ),
            id="no-description-uses-the-summary",
        ),
        pytest.param(
            FieldsCase(
                {"components": [{"name": "api"}, {"name": "db"}]}, target=replace(TARGET, components=("api", "db"))
            ),
            id="components-by-name",
        ),
        pytest.param(FieldsCase({"priority": {"name": "Highest"}}, priority="P1"), id="priority-mapped"),
        pytest.param(FieldsCase({}, priority="P4", absent=("priority",)), id="priority-outside-the-map-left-to-jira"),
        pytest.param(
            FieldsCase({"labels": [MARKER]}, target=replace(TARGET, labels=())), id="no-rule-labels-marker-only"
        ),
        pytest.param(
            FieldsCase({"summary": "line one line two"}, problem(summary="line one\nline two")),
            id="summary-on-one-line",
        ),
        pytest.param(
            FieldsCase({"summary": "x" * (SUMMARY_LIMIT - 1) + "…"}, problem(summary="x" * 300), truncated="summary"),
            id="long-summary-truncated",
        ),
        pytest.param(
            FieldsCase(
                {"description": "d" * (DESCRIPTION_LIMIT - 1) + "…"},
                problem(description="d" * DESCRIPTION_LIMIT),
                truncated="description",
            ),
            id="long-description-truncated-link-line-too",
        ),
    ],
)
def test_issue_fields(case: FieldsCase, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="jira_link.linker"):
        fields = issue_fields(MemoryJira(), case.problem, case.target, OPTIONS, case.priority)
    assert {name: fields[name] for name in case.expected} == dict(case.expected)
    assert not set(case.absent) & set(fields)
    assert [r.getMessage() for r in caplog.records] == ([f"Jira {case.truncated} truncated"] if case.truncated else [])


def test_a_description_that_grows_when_escaped_still_fits_the_limit(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="jira_link.linker"):
        fields = issue_fields(MemoryJira(), problem(description="[" * DESCRIPTION_LIMIT), TARGET, OPTIONS, None)
    assert len(fields["description"]) <= DESCRIPTION_LIMIT
    assert fields["description"].startswith(r"\[\[") and fields["description"].endswith("…")
    assert "Jira escaped description truncated" in [r.getMessage() for r in caplog.records]


def test_issue_fields_description_is_adf_on_cloud() -> None:
    fields = issue_fields(MemoryJira(flavour=CLOUD), problem(), TARGET, OPTIONS, None)
    assert fields["description"] == adf("5xx above 5% for 10m" + LINK_LINE)


# find_or_create_issue ----------------------------------------------------------------


class FindCase(NamedTuple):
    existing: Mapping[str, tuple[str, ...]]  # key -> labels
    expected: str
    created: bool


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(FindCase({}, "LKK-1", created=True), id="nothing-yet-creates"),
        pytest.param(FindCase({"LKK-1": ("lkk", MARKER)}, "LKK-1", created=False), id="marker-found-after-lost-answer"),
        pytest.param(
            FindCase({"LKK-1": ("incident-bridge-problem-70",)}, "LKK-2", created=True),
            id="marker-of-another-problem-ignored",
        ),
        pytest.param(FindCase({"OPS-1": (MARKER,)}, "LKK-1", created=True), id="marker-in-another-project-ignored"),
        pytest.param(
            FindCase({"LKK-1": ("incident-bridge", "lkk")}, "LKK-2", created=True),
            id="rule-labels-alone-are-not-identity",
        ),
        pytest.param(
            FindCase({"LKK-1": (MARKER,), "LKK-2": (MARKER,)}, "LKK-1", created=False),
            id="two-marked-issues-first-wins",
        ),
    ],
)
def test_find_or_create_issue(case: FindCase) -> None:
    jira = MemoryJira()
    for key, labels in case.existing.items():
        jira.add_issue(key, labels=labels)
    assert find_or_create_issue(jira, problem(), TARGET, OPTIONS, "P2") == case.expected
    assert jira.called("search") == [(f'project = LKK AND labels = "{MARKER}"', ("labels",))]
    assert jira.called("create_issue") == (
        [(issue_fields(jira, problem(), TARGET, OPTIONS, "P2"),)] if case.created else []
    )


def test_retry_after_a_lost_create_answer_finds_the_issue_instead_of_a_twin() -> None:
    jira = MemoryJira()
    jira.fail("create_issue", lose_answer=True)
    with pytest.raises(JiraError) as lost:
        find_or_create_issue(jira, problem(), TARGET, OPTIONS, None)
    assert lost.value.retryable and list(jira.issues) == ["LKK-1"]
    assert find_or_create_issue(jira, problem(), TARGET, OPTIONS, None) == "LKK-1"
    assert len(jira.called("create_issue")) == 1 and list(jira.issues) == ["LKK-1"]


def test_the_marker_is_escaped_in_jql() -> None:
    odd = replace(OPTIONS, marker_prefix='ib"\\x')
    jira = MemoryJira()
    jira.add_issue("LKK-1", labels=('ib"\\x-problem-7',))
    assert find_or_create_issue(jira, problem(), TARGET, odd, None) == "LKK-1"
    assert jira.called("search")[0][0] == 'project = LKK AND labels = "ib\\"\\\\x-problem-7"'


@pytest.mark.parametrize(
    "operation, retryable",
    [
        pytest.param("search", True, id="search-unavailable-retryable"),
        pytest.param("search", False, id="search-refused-final"),
        pytest.param("create_issue", True, id="create-unavailable-retryable"),
        pytest.param("create_issue", False, id="create-refused-final"),
    ],
)
def test_find_or_create_issue_passes_jira_failures_on(operation: str, retryable: bool) -> None:
    jira = MemoryJira()
    jira.fail(operation, retryable=retryable)
    with pytest.raises(JiraError) as failed:
        find_or_create_issue(jira, problem(), TARGET, OPTIONS, None)
    assert failed.value.retryable is retryable and jira.issues == {}
    assert len(jira.called("create_issue")) == (operation == "create_issue")


def test_create_in_an_unknown_project_is_final() -> None:
    with pytest.raises(JiraError) as refused:
        find_or_create_issue(MemoryJira(), problem(), replace(TARGET, project="NOPE"), OPTIONS, None)
    assert "project: valid project is required" in refused.value.message and not refused.value.retryable


# link_back ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "problems, expected",
    [
        pytest.param(
            [problem()],
            {
                "incident-bridge:problem:7": {
                    "url": "http://bridge.test/api/v1/problems/7",
                    "title": "incident-bridge problem 7",
                    "summary": "HighErrorRate on checkout",
                }
            },
            id="first-link",
        ),
        pytest.param(
            [problem(), problem(summary="renamed")],
            {
                "incident-bridge:problem:7": {
                    "url": "http://bridge.test/api/v1/problems/7",
                    "title": "incident-bridge problem 7",
                    "summary": "renamed",
                }
            },
            id="repeat-updates-never-doubles",
        ),
        pytest.param(
            [problem(), problem(id=8)],
            {
                "incident-bridge:problem:7": {
                    "url": "http://bridge.test/api/v1/problems/7",
                    "title": "incident-bridge problem 7",
                    "summary": "HighErrorRate on checkout",
                },
                "incident-bridge:problem:8": {
                    "url": "http://bridge.test/api/v1/problems/8",
                    "title": "incident-bridge problem 8",
                    "summary": "HighErrorRate on checkout",
                },
            },
            id="two-problems-on-one-issue-two-links",
        ),
        pytest.param(
            [problem(summary="s" * 300)],
            {
                "incident-bridge:problem:7": {
                    "url": "http://bridge.test/api/v1/problems/7",
                    "title": "incident-bridge problem 7",
                    "summary": "s" * 255,
                }
            },
            id="long-summary-cut",
        ),
    ],
)
def test_link_back(problems: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    jira = MemoryJira()
    jira.add_issue("LKK-1")
    for each in problems:
        link_back(jira, "LKK-1", each, OPTIONS)
    assert jira.issues["LKK-1"].remote_links == expected


def test_link_back_to_a_missing_issue_is_final() -> None:
    with pytest.raises(JiraError) as missing:
        link_back(MemoryJira(), "LKK-1", problem(), OPTIONS)
    assert (missing.value.status, missing.value.retryable) == (404, False)


# comment_unless_repeated -------------------------------------------------------------


@pytest.mark.parametrize(
    "before, text, posted",
    [
        pytest.param([], "3 more incidents", True, id="first-comment-posted"),
        pytest.param(["3 more incidents"], "3 more incidents", False, id="same-as-newest-skipped"),
        pytest.param(
            ["3 more incidents", "a person wrote"], "3 more incidents", True, id="same-as-an-older-one-posted"
        ),
        pytest.param(["2 more incidents"], "3 more incidents", True, id="different-text-posted"),
        pytest.param(["3 more incidents "], "3 more incidents", True, id="exact-match-only"),
    ],
)
def test_comment_unless_repeated(before: list[str], text: str, posted: bool) -> None:
    jira = MemoryJira()
    jira.add_issue("LKK-1", comments=before)
    assert comment_unless_repeated(jira, "LKK-1", text) is posted
    assert jira.issues["LKK-1"].comments == before + [text] * posted
    assert jira.called("recent_comments") == [("LKK-1", 1)]


def test_comment_retried_after_a_lost_answer_is_not_repeated() -> None:
    jira = MemoryJira()
    jira.add_issue("LKK-1")
    jira.fail("add_comment", lose_answer=True)
    with pytest.raises(JiraError):
        comment_unless_repeated(jira, "LKK-1", "release 1.4.0 shipped")
    assert comment_unless_repeated(jira, "LKK-1", "release 1.4.0 shipped") is False
    assert jira.issues["LKK-1"].comments == ["release 1.4.0 shipped"]


# conclusion_of -----------------------------------------------------------------------

FIELD = "customfield_10042"
WITH_FIELD = replace(OPTIONS, conclusion_field=FIELD)


def issue(
    status: str | None = "Done", resolution: str | None = "Fixed", fields: Mapping[str, Any] | None = None
) -> JiraIssue:
    return JiraIssue("LKK-1", status=status, status_category="done", resolution=resolution, fields=fields or {})


@pytest.mark.parametrize(
    "read, options, comments, expected",
    [
        pytest.param(issue(), OPTIONS, [], "Status: Done\nResolution: Fixed", id="status-and-resolution"),
        pytest.param(issue(resolution=None), OPTIONS, [], "Status: Done", id="status-only"),
        pytest.param(issue(None, None), OPTIONS, [], None, id="nothing-known"),
        pytest.param(
            issue(fields={FIELD: "  pool exhausted \n"}),
            WITH_FIELD,
            [],
            "Status: Done\nResolution: Fixed\npool exhausted",
            id="from-the-configured-field",
        ),
        pytest.param(
            issue(fields={FIELD: "pool exhausted"}),
            WITH_FIELD,
            ["Conclusion: bad deploy"],
            "Status: Done\nResolution: Fixed\npool exhausted",
            id="field-wins-over-comment",
        ),
        pytest.param(
            issue(fields={FIELD: "   "}),
            WITH_FIELD,
            ["Conclusion: bad deploy"],
            "Status: Done\nResolution: Fixed\nbad deploy",
            id="blank-field-falls-back-to-comment",
        ),
        pytest.param(
            issue(fields={FIELD: adf("rich text")}),
            WITH_FIELD,
            [],
            "Status: Done\nResolution: Fixed",
            id="rich-text-field-is-not-read",
        ),
        pytest.param(
            issue(fields={FIELD: "pool exhausted"}),
            OPTIONS,
            [],
            "Status: Done\nResolution: Fixed",
            id="field-not-configured-is-ignored",
        ),
        pytest.param(
            issue(),
            OPTIONS,
            ["thanks", "Conclusion: newer", "Conclusion: older"],
            "Status: Done\nResolution: Fixed\nnewer",
            id="newest-marked-comment-wins",
        ),
        pytest.param(
            issue(),
            OPTIONS,
            ["  Conclusion:  leading space  "],
            "Status: Done\nResolution: Fixed\nleading space",
            id="marked-comment-stripped",
        ),
        pytest.param(
            issue(),
            OPTIONS,
            ["My Conclusion: not a marker"],
            "Status: Done\nResolution: Fixed",
            id="marker-must-start-the-comment",
        ),
        pytest.param(
            issue(),
            OPTIONS,
            ["Conclusion:   "],
            "Status: Done\nResolution: Fixed",
            id="empty-marked-comment-adds-nothing",
        ),
        pytest.param(
            issue(),
            replace(OPTIONS, conclusion_marker="RCA:"),
            ["Conclusion: no", "RCA: disk full"],
            "Status: Done\nResolution: Fixed\ndisk full",
            id="configured-marker",
        ),
    ],
)
def test_conclusion_of(read: JiraIssue, options: LinkOptions, comments: list[str], expected: str | None) -> None:
    assert conclusion_of(read, options, comments) == expected


def test_conclusion_read_through_the_port_like_the_worker() -> None:
    """The worker asks for status, resolution and the field; the field reaches the conclusion."""
    jira = MemoryJira()
    jira.add_issue("LKK-1", status=STATUS_DONE, comments=["Conclusion: from a comment"], **{FIELD: "from the field"})
    read = jira.get_issue("LKK-1", fields=("status", "resolution", FIELD))
    assert read is not None
    assert (
        conclusion_of(read, WITH_FIELD, jira.recent_comments("LKK-1"))
        == "Status: Done\nResolution: Done\nfrom the field"
    )


# move_issue --------------------------------------------------------------------------

DONE = ("done",)
REOPENED = ("new", "indeterminate")
TWO_WAYS_TO_DONE = {
    "To Do": [
        {"id": "51", "name": "Won't Do", "to": STATUS_WONT_DO},
        {"id": "31", "name": "Close Issue", "to": STATUS_DONE},
    ]
}


class MoveCase(NamedTuple):
    status: Mapping[str, Any]
    name: str | None
    categories: tuple[str, ...]
    taken: str | None
    status_after: str
    workflow: Mapping[str, list[dict[str, Any]]] = WORKFLOW
    transition_fields: Mapping[str, Mapping[str, Any]] | None = None
    required: tuple[str, ...] = ()
    sent: Mapping[str, Any] | None = None


FIXED = {"resolution": {"name": "Fixed"}}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(MoveCase(STATUS_OPEN, None, DONE, "Close Issue", "Done"), id="done-by-category"),
        pytest.param(
            MoveCase(STATUS_IN_PROGRESS, None, DONE, "Close Issue", "Done"), id="done-by-category-from-in-progress"
        ),
        pytest.param(MoveCase(STATUS_OPEN, "close issue", DONE, "Close Issue", "Done"), id="done-by-name-any-case"),
        pytest.param(
            MoveCase(STATUS_OPEN, None, DONE, "Won't Do", "Won't Do", TWO_WAYS_TO_DONE),
            id="done-by-category-first-offered-wins",
        ),
        pytest.param(
            MoveCase(STATUS_OPEN, "Close Issue", DONE, "Close Issue", "Done", TWO_WAYS_TO_DONE),
            id="done-by-name-over-offer-order",
        ),
        pytest.param(MoveCase(STATUS_DONE, None, DONE, None, "Done"), id="already-done-nothing-to-do"),
        pytest.param(
            MoveCase(STATUS_WONT_DO, "Close Issue", DONE, None, "Won't Do"), id="already-in-another-done-status-kept"
        ),
        pytest.param(MoveCase(STATUS_DONE, None, REOPENED, "Reopen", "To Do"), id="reopen-by-category"),
        pytest.param(MoveCase(STATUS_DONE, "Reopen", REOPENED, "Reopen", "To Do"), id="reopen-by-name"),
        pytest.param(MoveCase(STATUS_OPEN, "Reopen", REOPENED, None, "To Do"), id="reopen-when-open-nothing-to-do"),
        pytest.param(
            MoveCase(STATUS_IN_PROGRESS, None, REOPENED, None, "In Progress"),
            id="reopen-when-in-progress-nothing-to-do",
        ),
        pytest.param(
            MoveCase(
                STATUS_OPEN,
                None,
                DONE,
                "Close Issue",
                "Done",
                transition_fields={"Close Issue": FIXED},
                required=("resolution",),
                sent=FIXED,
            ),
            id="configured-fields-fill-a-required-screen",
        ),
        pytest.param(
            MoveCase(
                STATUS_OPEN,
                "Close Issue",
                DONE,
                "Close Issue",
                "Done",
                transition_fields={"close issue": FIXED},
                sent=FIXED,
            ),
            id="fields-matched-by-transition-name-any-case",
        ),
        pytest.param(
            MoveCase(STATUS_DONE, None, REOPENED, "Reopen", "To Do", transition_fields={"Close Issue": FIXED}, sent={}),
            id="fields-of-another-transition-not-sent",
        ),
    ],
)
def test_move_issue(case: MoveCase) -> None:
    jira = MemoryJira(workflow=case.workflow)
    jira.add_issue("LKK-1", status=case.status)
    jira.require_fields("31", *case.required)
    taken = move_issue(
        jira, "LKK-1", name=case.name, to_categories=case.categories, transition_fields=case.transition_fields
    )
    assert taken == case.taken
    assert jira.status_of("LKK-1") == case.status_after
    assert len(jira.called("transition")) == (case.taken is not None)
    assert len(jira.called("transitions")) == (case.taken is not None)
    if case.sent is not None:
        assert jira.called("transition")[0][2] == case.sent


class MoveFailure(NamedTuple):
    name: str | None
    categories: tuple[str, ...]
    retryable: bool
    message: str
    workflow: Mapping[str, list[dict[str, Any]]] = WORKFLOW
    ignored: frozenset[str] = frozenset()
    status_after: str = "To Do"
    status: Mapping[str, Any] = STATUS_OPEN
    required: tuple[str, ...] = ()
    transition_fields: Mapping[str, Mapping[str, Any]] | None = None
    refused: tuple[str, ...] = ()


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            MoveFailure(
                "Resolve",
                DONE,
                False,
                "no transition named 'Resolve' from 'To Do' on LKK-1 (available: In Progress, Close Issue)",
            ),
            id="unknown-name-is-final",
        ),
        pytest.param(
            MoveFailure(
                None,
                DONE,
                False,
                "no transition to a done status from 'To Do' on LKK-1 (available: none)",
                workflow={"To Do": []},
            ),
            id="no-transition-available-is-final",
        ),
        pytest.param(
            MoveFailure(
                None,
                REOPENED,
                False,
                "no transition to a new/indeterminate status from 'Done' on LKK-1 (available: Archive)",
                workflow={"Done": [{"id": "61", "name": "Archive", "to": STATUS_WONT_DO}]},
                status=STATUS_DONE,
                status_after="Done",
            ),
            id="reopen-with-no-way-out-of-done-is-final",
        ),
        pytest.param(
            MoveFailure(
                None, DONE, True, "LKK-1 is in 'To Do' after transition 'Close Issue'", ignored=frozenset({"31"})
            ),
            id="post-function-left-it-in-place-retryable",
        ),
        pytest.param(
            MoveFailure(
                "In Progress",
                DONE,
                True,
                "LKK-1 is in 'In Progress' after transition 'In Progress'",
                status_after="In Progress",
            ),
            id="named-transition-to-the-wrong-category-retryable",
        ),
        pytest.param(
            MoveFailure(
                None,
                DONE,
                False,
                "transition 'Close Issue' on LKK-1 needs fields: customfield_10050, resolution; "
                "set them under jira.transition_fields in rules.yaml",
                required=("resolution", "customfield_10050"),
            ),
            id="required-screen-fields-named-and-final",
        ),
        pytest.param(
            MoveFailure(
                None,
                DONE,
                False,
                "transition 'Close Issue' on LKK-1 needs fields: customfield_10050; "
                "set them under jira.transition_fields in rules.yaml",
                required=("resolution", "customfield_10050"),
                transition_fields={"Close Issue": FIXED},
            ),
            id="only-the-fields-still-missing-named",
        ),
        pytest.param(
            MoveFailure(
                None,
                DONE,
                False,
                "transition 'Close Issue' on LKK-1 refused fields: resolution (resolution is not on the screen.); "
                "check jira.transition_fields in rules.yaml",
                refused=("resolution",),
                transition_fields={"Close Issue": FIXED},
            ),
            id="a-configured-field-refused-keeps-jiras-reason",
        ),
    ],
)
def test_move_issue_fails(case: MoveFailure) -> None:
    jira = MemoryJira(workflow=case.workflow)
    jira.ignored_transitions = set(case.ignored)
    jira.require_fields("31", *case.required)
    jira.refuse_fields("31", *case.refused)
    jira.add_issue("LKK-1", status=case.status)
    with pytest.raises(JiraError) as failed:
        move_issue(
            jira, "LKK-1", name=case.name, to_categories=case.categories, transition_fields=case.transition_fields
        )
    assert (failed.value.message, failed.value.retryable) == (case.message, case.retryable)
    assert jira.status_of("LKK-1") == case.status_after


def test_move_of_a_missing_issue_is_final() -> None:
    with pytest.raises(JiraError) as missing:
        move_issue(MemoryJira(), "LKK-1", name=None, to_categories=DONE)
    assert (missing.value.status, missing.value.retryable) == (404, False)


@pytest.mark.parametrize(
    "retryable", [pytest.param(True, id="unavailable-retryable"), pytest.param(False, id="refused-final")]
)
def test_move_passes_a_failed_transition_on(retryable: bool) -> None:
    jira = MemoryJira()
    jira.add_issue("LKK-1")
    jira.fail("transition", retryable=retryable, status=503 if retryable else 409)
    with pytest.raises(JiraError) as failed:
        move_issue(jira, "LKK-1", name=None, to_categories=DONE)
    assert failed.value.retryable is retryable and jira.status_of("LKK-1") == "To Do"
