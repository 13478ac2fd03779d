"""Deploys and suspects in the domain (bridge/domain/deploys.py, suspects.py), without I/O."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain.deploys import Deploy, DeployHold, DeployPhase, Project, Step, decide, projects_shipping
from bridge.domain.incidents import Matcher
from bridge.domain.suspects import (
    MAX_SUSPECTS,
    Change,
    ReleaseDeploy,
    change_suspects,
    is_release,
    nearest_first,
    release_suspects,
    suspect_line,
)
from bridge.domain.windows import Window, WindowKind, covering, deploy_covering

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
LKK = Project("LKK", Matcher(labels={"service": "lkk"}), DeployHold.SIDE_EFFECTS, timedelta(minutes=10))
BILLING = Project("BILL", Matcher(labels_regex={"service": re.compile("billing-.*")}))


def deploy(phase: DeployPhase = DeployPhase.STARTED, deploy_id: int = 1, **more) -> Deploy:
    values = dict(expires_at=T0 + timedelta(hours=2), started_at=T0)
    values.update(more)
    return Deploy(deploy_id, "LKK", "2026.12.1", "prod", phase, T0, **values)


@pytest.mark.parametrize(
    ("phase", "in_progress", "newest", "at", "step"),
    [
        ("started", None, None, T0, Step.START),
        ("started", deploy(), None, T0 + timedelta(minutes=5), Step.REPLAY),
        ("started", deploy(), None, T0 + timedelta(hours=2), Step.START),  # the old one expired
        ("finished", deploy(), None, T0 + timedelta(minutes=5), Step.FINISH),
        ("failed", deploy(), None, T0 + timedelta(minutes=5), Step.FAIL),
        ("finished", deploy(), None, T0 + timedelta(hours=3), Step.FINISH),  # late, but it did finish
        ("finished", None, deploy(DeployPhase.FINISHED), T0, Step.REPLAY),
        ("failed", None, deploy(DeployPhase.FAILED), T0, Step.REPLAY),
        ("finished", None, deploy(DeployPhase.FAILED), T0, Step.RECORD_FINISHED),
        ("finished", None, None, T0, Step.RECORD_FINISHED),
        ("failed", None, None, T0, Step.RECORD_FAILED),
    ],
)
def test_each_call_of_the_pipeline_takes_one_step_and_repeats_change_nothing(phase, in_progress, newest, at, step):
    assert decide(DeployPhase(phase), in_progress, newest, at) is step


def test_a_deploy_never_finished_is_expired_at_its_expiry_and_not_before():
    running = deploy()
    assert running.state(T0 + timedelta(hours=2) - timedelta(seconds=1)) is DeployPhase.STARTED
    assert running.state(T0 + timedelta(hours=2)) is DeployPhase.EXPIRED
    assert deploy(DeployPhase.FINISHED).state(T0 + timedelta(days=1)) is DeployPhase.FINISHED


def test_a_project_ships_the_services_its_matchers_name_from_any_source():
    assert projects_shipping([LKK, BILLING], {"service": "lkk", "env": "prod"}) == [LKK]
    assert projects_shipping([LKK, BILLING], {"service": "billing-api"}) == [BILLING]
    assert projects_shipping([LKK, BILLING], {"service": "lkk-old"}) == []
    assert LKK.window_match("env", "prod") == {"labels": {"service": "lkk", "env": "prod"}}
    assert BILLING.window_match("env", "stage") == {
        "labels": {"env": "stage"},
        "labels_regex": {"service": "billing-.*"},
    }


def _window(window_id: int, starts: datetime, *, holds: bool, deploy_mark: dict | None) -> Window:
    kind = WindowKind.DEPLOY if deploy_mark else WindowKind.MAINTENANCE
    matcher = Matcher(labels={"service": "lkk", "env": "prod"})
    return Window(
        window_id, kind, f"w{window_id}", matcher, starts, starts + timedelta(hours=1), None, holds, deploy_mark
    )


def test_a_deploy_window_that_holds_nothing_marks_but_never_holds():
    marking = _window(
        1, T0, holds=False, deploy_mark={"id": 7, "project": "LKK", "version": "1", "environment": "prod"}
    )
    labels = {"service": "lkk", "env": "prod"}
    assert covering([marking], "alertmanager", labels, T0 + timedelta(minutes=1)) is None
    assert deploy_covering([marking], "alertmanager", labels, T0 + timedelta(minutes=1)) is marking
    assert deploy_covering([marking], "alertmanager", {"service": "lkk", "env": "stage"}, T0) is None


def test_of_two_deploys_in_progress_the_one_started_last_marks_and_a_maintenance_window_still_holds():
    older = _window(1, T0, holds=True, deploy_mark={"id": 1, "project": "LKK", "version": "1", "environment": "prod"})
    newer = _window(2, T0 + timedelta(minutes=5), holds=False, deploy_mark={"id": 2, "project": "LKK"})
    maintenance = _window(3, T0 - timedelta(minutes=5), holds=True, deploy_mark=None)
    at, labels = T0 + timedelta(minutes=10), {"service": "lkk", "env": "prod"}
    assert deploy_covering([older, newer, maintenance], "zabbix", labels, at) is newer
    assert covering([older, newer, maintenance], "zabbix", labels, at) in (older, maintenance)


def release(
    deploy_id: int, project: str, version: str, minutes_before: int, environment: str = "prod"
) -> ReleaseDeploy:
    return ReleaseDeploy(deploy_id, project, version, environment, T0 - timedelta(minutes=minutes_before), "finished")


def test_release_suspects_are_those_within_the_window_each_release_once_at_its_latest_deploy():
    found = release_suspects(
        [
            release(1, "LKK", "2026.12.1", 14),
            release(2, "LKK", "2026.12.1", 200),  # an earlier deploy of the same release: the later one counts
            release(3, "LKK", "2026.11.9", 60 * 25),  # before the window
            release(4, "LKK", "2026.12.2", -3),  # after the first occurrence
        ],
        T0,
        timedelta(hours=24),
    )
    assert [(s["version"], s["minutes_before"], s["deploy_id"]) for s in found] == [("2026.12.1", 14, 1)]
    assert found[0]["deployed_at"] == "2026-12-07T09:46:00Z"


def change(change_id: int, minutes_before: int, **labels: str) -> Change:
    return Change(change_id, f"change {change_id}", "ansible", T0 - timedelta(minutes=minutes_before), labels)


def test_a_change_is_a_suspect_when_it_names_the_projects_service_in_its_environment():
    changes = [
        change(1, 5, service="lkk"),
        change(2, 6, service="billing-api"),
        change(3, 7),
        change(4, 8, service="lkk", env="stage"),
        change(5, 9, service="lkk", env="prod"),
    ]
    found = change_suspects(changes, [LKK], "env", "prod", T0, timedelta(hours=24))
    assert [(s["change_id"], s["minutes_before"]) for s in found] == [(1, 5), (5, 9)]


def test_suspects_come_nearest_first_a_release_before_a_change_of_the_same_minute_and_bounded():
    releases = release_suspects([release(1, "LKK", "a", 30), release(2, "LKK", "b", 5)], T0, timedelta(hours=1))
    changes = change_suspects([change(9, 5, service="lkk")], [LKK], "env", "prod", T0, timedelta(hours=1))
    merged = nearest_first(releases, changes)
    assert [(s["kind"], s["minutes_before"]) for s in merged] == [("release", 5), ("change", 5), ("release", 30)]
    many = release_suspects([release(n, "LKK", str(n), n) for n in range(30)], T0, timedelta(hours=1))
    assert len(nearest_first(many)) == MAX_SUSPECTS


def test_the_jira_line_names_the_nearest_suspect_and_how_many_more():
    releases = release_suspects(
        [release(1, "LKK", "2026.12.1", 14), release(2, "LKK", "2026.12.0", 90)], T0, timedelta(hours=24)
    )
    assert (
        suspect_line(nearest_first(releases))
        == "Suspect release: LKK 2026.12.1, deployed to prod 14 min before the first occurrence "
        "(and 1 more suspect on the problem's page)"
    )
    changes = change_suspects([change(3, 2, service="lkk")], [LKK], "env", "prod", T0, timedelta(hours=24))
    assert suspect_line(changes) == "Suspect change: change 3 (ansible), 2 min before the first occurrence"
    assert suspect_line([]) is None


def test_a_kept_suspect_names_its_release_and_environment():
    [suspect] = release_suspects([release(1, "LKK", "2026.12.1", 14)], T0, timedelta(hours=1))
    assert is_release(suspect, "LKK", "2026.12.1", "prod")
    assert not is_release(suspect, "LKK", "2026.12.1", "stage")
    assert not is_release(suspect, "BILL", "2026.12.1")
