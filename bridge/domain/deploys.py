"""Deploys: where each release is going, and the deploy window a deploy in progress opens.

The release pipeline says when a project's version starts reaching an environment, and
whether it finished or failed (a release naming environments implies finished). A project
of rules.yaml (`projects:`) names its services by label matchers; while one of its deploys is
in progress, and for `settle` after it finished, it is a deploy window over those services
in that environment: what opens there is marked `during_deploy` and, for a project with
`hold: side_effects`, held as a maintenance window holds (bridge/domain/windows.py). A failed
deploy ends its window at once; one never finished ends at its expiry (BRIDGE_DEPLOY_MAX).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bridge.domain.incidents import Matcher

DEFAULT_SETTLE = timedelta(minutes=10)
DEPLOY_WINDOW_KIND = "deploy"


class DeployHold(enum.StrEnum):
    """What a project's deploy window does to what opens under it."""

    NONE = "none"  # marked during_deploy, handled as ever
    SIDE_EFFECTS = "side_effects"  # marked and held: no problem, side effect or clock until it settles


class DeployPhase(enum.StrEnum):
    """A deploy's phase as the pipeline tells it; `expired` when it never finished before its expiry."""

    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"
    EXPIRED = "expired"


# What the pipeline may send (`expired` is the bridge's own word for a deploy never finished).
TOLD_PHASES = (DeployPhase.STARTED, DeployPhase.FINISHED, DeployPhase.FAILED)


@dataclass(frozen=True)
class Project:
    """A project of rules.yaml: the services its releases ship (label matchers), and what its deploys hold."""

    name: str
    matcher: Matcher
    hold: DeployHold = DeployHold.NONE
    settle: timedelta = DEFAULT_SETTLE

    def ships(self, labels: Mapping[str, str]) -> bool:
        """Whether something with these labels is one of the project's services (any source)."""
        return self.matcher.fits("", labels)

    def window_match(self, environment_label: str, environment: str) -> dict[str, Any]:
        """What its deploy window to `environment` covers, as a window stores it: its services there."""
        labels = {**self.matcher.labels, environment_label: environment}
        match: dict[str, Any] = {"labels": labels}
        if self.matcher.labels_regex:
            match["labels_regex"] = {name: pattern.pattern for name, pattern in self.matcher.labels_regex.items()}
        return match


def projects_shipping(projects: Iterable[Project], labels: Mapping[str, str]) -> list[Project]:
    """The projects whose services carry these labels (an incident's, a change's)."""
    return [project for project in projects if project.ships(labels)]


@dataclass(frozen=True)
class Deploy:
    """A stored deploy of `version` of `project` to `environment`.

    `deployed_at` is when it began reaching the environment: its start, or, when the
    pipeline told only its end, that end. `expires_at` is when a deploy never finished stops
    counting as in progress.
    """

    id: int
    project: str
    version: str
    environment: str
    phase: DeployPhase
    deployed_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    failed_at: datetime | None = None
    expires_at: datetime | None = None
    window_id: int | None = None

    def state(self, now: datetime) -> DeployPhase:
        """Its phase now: a deploy still `started` past its expiry has expired."""
        if self.phase is DeployPhase.STARTED and self.expires_at is not None and now >= self.expires_at:
            return DeployPhase.EXPIRED
        return self.phase

    def mark(self) -> dict[str, Any]:
        """What an alert opened during it carries (`during_deploy` in the API, the pages, outbound payloads)."""
        return {"id": self.id, "project": self.project, "version": self.version, "environment": self.environment}


class Step(enum.StrEnum):
    """What one call of the pipeline does."""

    START = "start"  # a new deploy in progress (one past its expiry is marked expired first)
    FINISH = "finish"  # the deploy in progress finished: its window settles
    FAIL = "fail"  # the deploy in progress failed: its window ends now
    RECORD_FINISHED = "record_finished"  # finished without a start we heard of
    RECORD_FAILED = "record_failed"  # failed without a start we heard of
    REPLAY = "replay"  # said already: nothing changes


def decide(phase: DeployPhase, in_progress: Deploy | None, newest: Deploy | None, now: datetime) -> Step:
    """What a call telling `phase` does, given the deploy of the same project, version and environment
    still `started` (`in_progress`, maybe expired) and the newest one of them (`newest`).

    Calls are idempotent: a repeated `started` while the deploy runs, or a repeated `finished`
    or `failed` of one that ended so, changes nothing.
    """
    if phase is DeployPhase.STARTED:
        live = in_progress is not None and in_progress.state(now) is DeployPhase.STARTED
        return Step.REPLAY if live else Step.START
    if in_progress is not None:
        return Step.FINISH if phase is DeployPhase.FINISHED else Step.FAIL
    if newest is not None and newest.phase is phase:
        return Step.REPLAY
    return Step.RECORD_FINISHED if phase is DeployPhase.FINISHED else Step.RECORD_FAILED


def window_name(project: str, version: str, environment: str) -> str:
    """How a deploy window is named on incidents it held and in their history."""
    return f"deploy of {project} {version} to {environment}"
