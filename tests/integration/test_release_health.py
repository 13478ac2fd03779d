"""Release health: what a release closed, what opened within the watch window, the regressions it caused,
and environments it did not reach (not a regression), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from bridge.problems.release_health import release_health
from bridge.problems.releases import close_release
from tests.integration import test_releases
from tests.integration.test_releases import RELEASED, fire, problem_by_key, release

# The release tests' world: two Alertmanager problems with issues, a Zabbix problem linked by hand.
fakes = test_releases.fakes
world = test_releases.world

WATCH = timedelta(hours=24)
VERSION = "2026.11.2"


def health(store, now=RELEASED + timedelta(days=3)):
    return release_health(store, "LKK", VERSION, WATCH, now)


def ship(world, issues, environments, rules=None):
    store, example_rules, jira, *_ = world
    return close_release(
        store,
        jira,
        rules or example_rules,
        project="LKK",
        version=VERSION,
        issues=issues,
        released_at=RELEASED,
        now=RELEASED + timedelta(minutes=1),
        environments=environments,
    )


def test_what_a_release_closed_and_what_opened_within_the_window(world):
    store, rules, *_ = world
    alpha = problem_by_key(store, "Alpha/lkk")
    release(world, [alpha["jira_key"]])
    fire(store, rules, "Gamma", 1, RELEASED + timedelta(hours=1))
    fire(store, rules, "Gamma", 2, RELEASED + timedelta(hours=2))  # the second opens the Gamma problem
    fire(store, rules, "Delta", 1, RELEASED + timedelta(hours=25))  # after the window
    shown = health(store)
    assert shown["closed"]["problems"] == [alpha["id"]] and shown["closed"]["incidents"] == 3
    assert shown["opened_after"]["incident_count"] == 2, "the world's incidents came before; Delta after the window"
    assert all(RELEASED <= i["first_seen"] < RELEASED + WATCH for i in shown["opened_after"]["incidents"])
    gamma = problem_by_key(store, "Gamma/lkk")
    assert [p["id"] for p in shown["opened_after"]["problems"]] == [gamma["id"]]
    assert shown["regressions"] == [] and shown["watch"]["complete"] is True
    assert health(store, now=RELEASED + timedelta(hours=3))["watch"]["complete"] is False


def test_a_recurrence_of_what_it_fixed_is_a_regression_it_caused(world):
    store, rules, *_ = world
    alpha = problem_by_key(store, "Alpha/lkk")
    release(world, [alpha["jira_key"]])
    fire(store, rules, "Alpha", 10, RELEASED + timedelta(hours=5))
    [regression] = health(store)["regressions"]
    assert regression["problem_id"] == alpha["id"] and "after the fix in 2026.11.2" in regression["detail"]


def test_an_environment_the_release_did_not_reach_is_not_deployed_there_yet(world):
    store, example_rules, *_ = world
    rules = dataclasses.replace(example_rules, environment_label="env")
    alpha = problem_by_key(store, "Alpha/lkk")
    shipped = ship(world, [alpha["jira_key"]], ["staging"], rules)
    assert shipped["environments"] == ["staging"]
    fire(store, rules, "Alpha", 20, RELEASED + timedelta(hours=1), env="prod")
    still = problem_by_key(store, "Alpha/lkk")
    assert (still["state"], still["regressions"]) == ("closed", 0)
    shown = health(store)
    assert shown["regressions"] == [] and shown["environments"] == ["staging"]
    [waiting] = shown["not_deployed"]
    assert "in prod, where the fix in 2026.11.2 is not deployed yet (it reached staging)" in waiting["detail"]
    fire(store, rules, "Alpha", 21, RELEASED + timedelta(hours=2), env="staging")
    assert problem_by_key(store, "Alpha/lkk")["regressions"] == 1
    assert [r["problem_id"] for r in health(store)["regressions"]] == [alpha["id"]]


def test_deploying_further_adds_environments_and_then_a_recurrence_there_regresses(world):
    store, example_rules, *_ = world
    rules = dataclasses.replace(example_rules, environment_label="env")
    alpha = problem_by_key(store, "Alpha/lkk")
    ship(world, [alpha["jira_key"]], ["staging"], rules)
    again = ship(world, [alpha["jira_key"]], ["prod"], rules)
    assert again["replay"] is True and again["environments"] == ["prod", "staging"]
    fire(store, rules, "Alpha", 30, RELEASED + timedelta(hours=1), env="prod")
    assert problem_by_key(store, "Alpha/lkk")["regressions"] == 1


def test_a_release_that_names_no_environments_reached_them_all(world):
    store, example_rules, *_ = world
    rules = dataclasses.replace(example_rules, environment_label="env")
    alpha = problem_by_key(store, "Alpha/lkk")
    ship(world, [alpha["jira_key"]], None, rules)
    fire(store, rules, "Alpha", 40, RELEASED + timedelta(hours=1), env="prod")
    assert problem_by_key(store, "Alpha/lkk")["regressions"] == 1
