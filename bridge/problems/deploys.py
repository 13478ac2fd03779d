"""Deploys as the pipeline tells them (and a release naming environments implies): recorded, with their windows.

A deploy of a project of rules.yaml (`projects:`) opens a deploy window over the project's
services in its environment while it runs: a hold window (bridge/domain/windows.py) of kind
`deploy` that marks what opens under it and, for `hold: side_effects`, holds it. `finished`
moves the window's end to `settle` from then; `failed` ends it now (its release follows in
the same transaction, bridge/watch/deploys.py); a deploy never finished ends at its expiry
(BRIDGE_DEPLOY_MAX), when the worker releases its window as any other. A deploy of a project
not in rules.yaml is recorded (a suspect of nothing, shown with its release) and marks nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bridge.domain.deploys import (
    DEFAULT_SETTLE,
    Deploy,
    DeployHold,
    DeployPhase,
    Project,
    Step,
    decide,
    window_name,
)
from bridge.domain.rules import Rules
from bridge.domain.windows import Window, WindowKind
from bridge.storage.engine import Connection
from bridge.storage.store import Store
from bridge.storage.window_repository import window_of

# Who a deploy window's row says made it: the pipeline's deploy call, or a release's environments.
VIA_PIPELINE = "pipeline"
VIA_RELEASE = "release"


@dataclass(frozen=True)
class DeployCall:
    """What the pipeline said: a release's version reaching an environment, in a phase, at `at` (default now)."""

    project: str
    version: str
    environment: str
    phase: DeployPhase
    issues: tuple[str, ...] = ()
    via: str = VIA_PIPELINE
    at: datetime | None = None


@dataclass(frozen=True)
class Recorded:
    """What a call did: the deploy as stored now, the step taken, and the window a failure ended (to release)."""

    deploy: dict[str, Any]
    step: Step
    ended: Window | None = None

    @property
    def replay(self) -> bool:
        return self.step is Step.REPLAY


def apply_deploy(
    conn: Connection, store: Store, rules: Rules, call: DeployCall, now: datetime, longest: timedelta
) -> Recorded:
    """Record one call of the pipeline in the caller's transaction; repeated calls change nothing.

    `longest` is BRIDGE_DEPLOY_MAX: how long a deploy never finished stays in progress.
    """
    store.lock_deploys(conn, call.project, call.version, call.environment)
    in_progress = store.deploy_in_progress(conn, call.project, call.version, call.environment)
    newest = store.newest_deploy(conn, call.project, call.version, call.environment) if in_progress is None else None
    step = decide(call.phase, in_progress, newest, now)
    project = rules.project(call.project)
    issues = sorted(set(call.issues))
    ended: Window | None = None
    if step is Step.REPLAY:
        replayed = in_progress or newest
        assert replayed is not None
        deploy_id = replayed.id
    elif step is Step.START:
        if in_progress is not None:  # past its expiry: it never finished
            store.update_deploy(conn, in_progress.id, dict(phase=DeployPhase.EXPIRED.value, updated_at=now))
        deploy_id = _add(conn, store, call, issues, now, started_at=now, expires_at=now + longest)
        if project is not None:
            _open_window(conn, store, rules, project, deploy_id, call, now, now + longest)
    elif step in (Step.FINISH, Step.FAIL):
        assert in_progress is not None
        deploy_id = in_progress.id
        known = store.find_deploy(conn, deploy_id) or {}
        merged = sorted({*(known.get("issues") or ()), *issues})
        if step is Step.FINISH:
            store.update_deploy(
                conn, deploy_id, dict(phase=DeployPhase.FINISHED.value, finished_at=now, issues=merged, updated_at=now)
            )
            if in_progress.window_id is not None:  # a deploy past its expiry has released its window already
                settle = project.settle if project is not None else DEFAULT_SETTLE
                store.settle_window(conn, in_progress.window_id, now + settle, now)
        else:
            store.update_deploy(
                conn, deploy_id, dict(phase=DeployPhase.FAILED.value, failed_at=now, issues=merged, updated_at=now)
            )
            ended = _end_window(conn, store, in_progress, now)
    elif step is Step.RECORD_FINISHED:
        at = min(call.at or now, now)
        deploy_id = _add(conn, store, call, issues, now, finished_at=at)
        if project is not None and at + project.settle > now:
            _open_window(conn, store, rules, project, deploy_id, call, at, at + project.settle)
    else:
        deploy_id = _add(conn, store, call, issues, now, failed_at=min(call.at or now, now))
    stored = store.find_deploy(conn, deploy_id)
    assert stored is not None
    return Recorded(stored, step, ended)


def _add(
    conn: Connection, store: Store, call: DeployCall, issues: list[str], now: datetime, **moments: datetime
) -> int:
    """A new deploy row: in progress (`started_at`, `expires_at`), or ended as told (`finished_at`, `failed_at`)."""
    phase = (
        DeployPhase.STARTED
        if "started_at" in moments
        else DeployPhase.FINISHED
        if "finished_at" in moments
        else DeployPhase.FAILED
    )
    began = moments.get("started_at") or moments.get("finished_at") or moments["failed_at"]
    return store.add_deploy(
        conn,
        dict(
            project=call.project,
            version=call.version,
            environment=call.environment,
            phase=phase.value,
            deployed_at=began,
            issues=issues,
            via=call.via,
            created_at=now,
            updated_at=now,
            **moments,
        ),
    )


def _open_window(
    conn: Connection,
    store: Store,
    rules: Rules,
    project: Project,
    deploy_id: int,
    call: DeployCall,
    starts: datetime,
    ends: datetime,
) -> int:
    """The deploy window over the project's services in the deploy's environment, from `starts` to `ends`."""
    assert rules.environment_label is not None, "rules.yaml refuses projects without releases.environment_label"
    mark = Deploy(deploy_id, call.project, call.version, call.environment, DeployPhase.STARTED, starts).mark()
    window_id = store.add_window(
        conn,
        dict(
            kind=WindowKind.DEPLOY.value,
            name=window_name(call.project, call.version, call.environment),
            reason=f"deploy told by the {call.via}; holds: {project.hold.value}",
            match=project.window_match(rules.environment_label, call.environment),
            starts_at=starts,
            ends_at=ends,
            created_at=starts,
            created_by=call.via,
            holds=project.hold is DeployHold.SIDE_EFFECTS,
            deploy=mark,
        ),
    )
    store.update_deploy(conn, deploy_id, dict(window_id=window_id))
    return window_id


def _end_window(conn: Connection, store: Store, deploy: Deploy, now: datetime) -> Window | None:
    """End a failed deploy's window now; the window to release, None when it had ended already."""
    if deploy.window_id is None or not store.end_window(conn, deploy.window_id, now, "pipeline: deploy failed"):
        return None
    row = store.find_window(conn, deploy.window_id, for_update=True)
    return window_of(row) if row is not None else None


def finish_release_deploys(
    conn: Connection,
    store: Store,
    rules: Rules,
    project: str,
    version: str,
    environments: Sequence[str],
    issues: Sequence[str],
    at: datetime,
    now: datetime,
) -> list[Recorded]:
    """What a release naming environments implies: its deploy to each finished (at `at`, its release time, when
    none was in progress). Nothing new when the pipeline said so already."""
    return [
        apply_deploy(
            conn,
            store,
            rules,
            DeployCall(project, version, environment, DeployPhase.FINISHED, tuple(issues), VIA_RELEASE, at),
            now,
            timedelta(0),
        )
        for environment in sorted(set(environments))
    ]
