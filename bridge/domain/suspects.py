"""Suspects: the releases and changes that may have caused a problem, named when it opens or regresses.

A release is a suspect of a problem when a deploy of it, to the problem's environment, of a
project whose services the problem's incident carries (rules.yaml `projects:`), began within
the suspect window before the problem's first occurrence. A change (a PagerDuty Change Event)
is one when its labels name one of those projects' services, and its environment, if it
says one, is the problem's. Suspects are listed nearest first, each with how long before;
they are decided once and kept, so a later release never rewrites them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bridge.domain.deploys import Project

DEFAULT_SUSPECT_WINDOW = timedelta(hours=24)
# Suspects kept per problem: the nearest. More would bury the likely cause.
MAX_SUSPECTS = 10
RELEASE = "release"
CHANGE = "change"


@dataclass(frozen=True)
class ReleaseDeploy:
    """A deploy as a suspect: which release reached which environment, when, and what it carried."""

    deploy_id: int
    project: str
    version: str
    environment: str
    deployed_at: datetime
    phase: str
    issues: tuple[str, ...] = ()


@dataclass(frozen=True)
class Change:
    """A change outside the release pipeline (a PagerDuty Change Event): configuration, infrastructure.

    `labels` are the routing key's labels and the event's own text `custom_details`, which is
    what says which services the change touched.
    """

    id: int
    summary: str
    source: str
    changed_at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    links: tuple[Mapping[str, str], ...] = ()


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _minutes(before: datetime, first: datetime) -> int:
    return int((first - before).total_seconds() // 60)


def _in_window(moment: datetime, first: datetime, window: timedelta) -> bool:
    return first - window <= moment <= first


def release_suspects(deploys: Iterable[ReleaseDeploy], first: datetime, window: timedelta) -> list[dict[str, Any]]:
    """The releases deployed within `window` before `first`: one per release and environment (its latest
    deploy then), as the problem keeps them."""
    latest: dict[tuple[str, str, str], ReleaseDeploy] = {}
    for deploy in deploys:
        if not _in_window(deploy.deployed_at, first, window):
            continue
        key = (deploy.project, deploy.version, deploy.environment)
        if key not in latest or latest[key].deployed_at < deploy.deployed_at:
            latest[key] = deploy
    return [
        {
            "kind": RELEASE,
            "project": deploy.project,
            "version": deploy.version,
            "environment": deploy.environment,
            "deployed_at": _iso(deploy.deployed_at),
            "minutes_before": _minutes(deploy.deployed_at, first),
            "issues": list(deploy.issues),
            "phase": deploy.phase,
            "deploy_id": deploy.deploy_id,
        }
        for deploy in latest.values()
    ]


def change_touches(
    change: Change, projects: Sequence[Project], environment_label: str | None, environment: str | None
) -> bool:
    """Whether a change names one of these projects' services, in this environment when it says one."""
    said = change.labels.get(environment_label) if environment_label else None
    if said is not None and said != environment:
        return False
    return any(project.ships(change.labels) for project in projects)


def change_suspects(
    changes: Iterable[Change],
    projects: Sequence[Project],
    environment_label: str | None,
    environment: str | None,
    first: datetime,
    window: timedelta,
) -> list[dict[str, Any]]:
    """The changes within `window` before `first` that touched these projects' services."""
    return [
        {
            "kind": CHANGE,
            "change_id": change.id,
            "summary": change.summary,
            "source": change.source,
            "changed_at": _iso(change.changed_at),
            "minutes_before": _minutes(change.changed_at, first),
            "links": [dict(link) for link in change.links],
        }
        for change in changes
        if _in_window(change.changed_at, first, window)
        and change_touches(change, projects, environment_label, environment)
    ]


def nearest_first(*found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every suspect found, nearest first (a release before a change at the same minute), the nearest
    MAX_SUSPECTS."""
    merged = [suspect for group in found for suspect in group]
    merged.sort(key=lambda suspect: (suspect["minutes_before"], suspect["kind"] != RELEASE))
    return merged[:MAX_SUSPECTS]


def suspect_line(suspects: Sequence[Mapping[str, Any]]) -> str | None:
    """The one line a Jira issue carries about its problem's suspects: the nearest, and how many more."""
    if not suspects:
        return None
    nearest = suspects[0]
    before = f"{nearest['minutes_before']} min before the first occurrence"
    if nearest["kind"] == RELEASE:
        line = (
            f"Suspect release: {nearest['project']} {nearest['version']}, deployed to {nearest['environment']} {before}"
        )
    else:
        line = f"Suspect change: {nearest['summary']} ({nearest['source']}), {before}"
    more = len(suspects) - 1
    if more:
        line += f" (and {more} more suspect{'s' if more > 1 else ''} on the problem's page)"
    return line


def is_release(suspect: Mapping[str, Any], project: str, version: str, environment: str | None = None) -> bool:
    """Whether a kept suspect names this release (deployed to `environment`, when given)."""
    return (
        suspect.get("kind") == RELEASE
        and suspect.get("project") == project
        and suspect.get("version") == version
        and (environment is None or suspect.get("environment") == environment)
    )
