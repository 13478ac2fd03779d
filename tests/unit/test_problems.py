"""The problem lifecycle as pure transitions: no database, no Jira."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain.problems import Problem, ProblemState, TransitionRefused

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
URL = "https://jira.example.com/browse/LKK-42"


def new_problem() -> Problem:
    return Problem.open("zabbix-trigger/23133", "db-team", "  Errors on the portal API \n", "why", T0, "LKK")


def test_a_new_problem_is_open_with_nothing_counted():
    problem = new_problem()
    assert (problem.id, problem.state, problem.summary, problem.jira_project) == (
        None,
        ProblemState.OPEN,
        "Errors on the portal API",
        "LKK",
    )
    assert (problem.incident_count, problem.regressions, problem.comment_pending) == (0, 0, 0)


def test_an_empty_summary_falls_back_to_the_key():
    assert Problem.open("key-1", "rule", "   ", "", T0).summary == "key-1"


def test_linking_makes_an_open_problem_a_known_error():
    linked = new_problem().link("LKK-42", URL, "manual")
    assert (linked.state, linked.jira_key, linked.jira_url, linked.jira_linked_by) == (
        ProblemState.KNOWN_ERROR,
        "LKK-42",
        URL,
        "manual",
    )


def test_a_problem_already_linked_refuses_a_second_issue():
    with pytest.raises(TransitionRefused):
        new_problem().link("LKK-42", URL, "manual").link("LKK-43", URL, "bridge")


def test_linking_a_closed_problem_keeps_it_closed():
    assert new_problem().close(T0).link("LKK-42", URL, "bridge").state is ProblemState.CLOSED


def test_unlinking_returns_a_known_error_to_open_and_forgets_the_conclusion():
    linked = new_problem().link("LKK-42", URL, "manual")
    concluded = Problem(**{**vars(linked), "conclusion": "Done: fixed", "conclusion_updated_at": T0})
    unlinked = concluded.unlink()
    assert (unlinked.state, unlinked.jira_key, unlinked.jira_url, unlinked.jira_linked_by) == (
        ProblemState.OPEN,
        None,
        None,
        None,
    )
    assert (unlinked.conclusion, unlinked.conclusion_updated_at) == (None, None)


def test_closing_by_hand_remembers_no_fix():
    closed = new_problem().close(T0)
    assert (closed.state, closed.closed_at, closed.fixed_in, closed.fixed_at) == (ProblemState.CLOSED, T0, None, None)
    assert not closed.fix_shipped_by(T0 + timedelta(days=1))


def test_a_release_close_remembers_the_fix_and_when_it_shipped():
    shipped = T0 - timedelta(hours=1)
    closed = new_problem().close(T0, fixed_in="2026.11.2", fixed_at=shipped)
    assert (closed.state, closed.fixed_in, closed.fixed_at) == (ProblemState.CLOSED, "2026.11.2", shipped)
    assert closed.fix_shipped_by(T0) and not closed.fix_shipped_by(shipped - timedelta(seconds=1))


def test_reopening_by_hand_counts_no_regression():
    reopened = new_problem().close(T0).reopen(regression=False)
    assert (reopened.state, reopened.closed_at, reopened.regressions) == (ProblemState.OPEN, None, 0)


def test_a_regression_reopens_a_linked_problem_as_a_known_error_and_counts():
    fixed = new_problem().link("LKK-42", URL, "bridge").close(T0, fixed_in="2026.11.2", fixed_at=T0)
    regressed = fixed.reopen(regression=True).close(T0, fixed_in="2026.11.3", fixed_at=T0).reopen(regression=True)
    assert (regressed.state, regressed.jira_key, regressed.regressions) == (ProblemState.KNOWN_ERROR, "LKK-42", 2)


def test_only_a_closed_problem_reopens():
    with pytest.raises(TransitionRefused):
        new_problem().reopen(regression=False)


def test_transitions_leave_the_problem_they_start_from_unchanged():
    problem = new_problem()
    problem.link("LKK-42", URL, "manual")
    problem.close(T0)
    assert (problem.state, problem.jira_key, problem.closed_at) == (ProblemState.OPEN, None, None)
