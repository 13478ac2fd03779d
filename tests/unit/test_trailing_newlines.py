"""Anchored checks of untrusted text hold to the end of it: `^...$` with re.match accepts a trailing newline,
so every such check is a fullmatch. One test per check."""

from __future__ import annotations

import pytest

from bridge.app import request_id_from
from bridge.rules.load import expand_variables
from bridge.rules.projects import ProjectModel, build_projects
from bridge.rules.sla import _intervals
from bridge.rules.tickets import TicketSystemModel, build_ticket_systems


def test_a_ticket_system_name_with_a_newline_is_refused():
    problems: list[str] = []
    models = {"itsm\n": TicketSystemModel(url="https://itsm.example", secret_env="SECRET")}
    assert build_ticket_systems(models, expand_variables, {"SECRET": "s"}, problems) == {}
    assert problems == ['ticket system "itsm\n": a name is letters, digits, dots, dashes and underscores (at most 64)']


def test_a_project_name_with_a_newline_is_refused():
    problems: list[str] = []
    build_projects({"LKK\n": ProjectModel(labels={"service": "lkk"})}, "environment", problems)
    assert problems == ['project "LKK\n": name it as releases do: a Jira project key such as LKK']


def test_a_variable_name_with_a_newline_is_not_one():
    with pytest.raises(ValueError, match="not a variable name"):
        expand_variables("${TOKEN\n}", {"TOKEN\n": "x"})


def test_working_hours_with_a_newline_are_not_hours():
    problems: list[str] = []
    assert _intervals("calendar", "09:00-18:00\n", problems) == ()
    assert problems == ["calendar: '09:00-18:00\\n' is not HH:MM-HH:MM"]


def test_a_request_id_with_a_newline_is_replaced():
    assert request_id_from("abc-1") == "abc-1"
    assert request_id_from("abc-1\n") != "abc-1\n"
