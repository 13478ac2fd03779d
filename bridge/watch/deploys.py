"""Deploys from the pipeline (POST /api/v1/deploys): recorded, and a failed one's window released at once.

The recording and the windows are bridge/problems/deploys.py's; what a failed deploy held
is released here in the same transaction, as ending a maintenance window by hand does
(bridge/watch/windows.py): what still fires is handled from now, what resolved closes quietly.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from bridge import metrics
from bridge.domain.deploys import Deploy, DeployPhase
from bridge.domain.rules import Rules
from bridge.problems.deploys import DeployCall, Recorded, apply_deploy
from bridge.shapes import iso
from bridge.storage.deploy_repository import deploy_of
from bridge.storage.engine import Connection
from bridge.storage.store import Store
from bridge.watch.windows import Release, count_released, release_window

log = logging.getLogger(__name__)


def record_deploy(
    store: Store, rules: Rules, call: DeployCall, now: datetime, longest: timedelta
) -> tuple[Recorded, Release | None]:
    """Record a call of the pipeline; what a failure released (None when nothing was).

    `longest` is BRIDGE_DEPLOY_MAX.
    """

    def work(conn: Connection) -> tuple[Recorded, Release | None]:
        recorded = apply_deploy(conn, store, rules, call, now, longest)
        released = release_window(conn, store, rules, recorded.ended, now) if recorded.ended is not None else None
        return recorded, released

    recorded, released = store.run(work)
    if not recorded.replay:
        metrics.count_deploy(call.project, call.environment, call.phase.value)
        log.info(
            "deploy recorded",
            extra={
                "deploy_id": recorded.deploy["id"],
                "project": call.project,
                "version": call.version,
                "environment": call.environment,
                "phase": call.phase.value,
            },
        )
    count_released(released)
    return recorded, released


def deploy_json(row: dict[str, Any], now: datetime, rules: Rules | None = None) -> dict[str, Any]:
    """A deploy as the API shows it: its state now (`expired` for one never finished), and whether its
    project's services are marked (and held) while it runs."""
    deploy: Deploy = deploy_of(row)
    project = rules.project(deploy.project) if rules is not None else None
    return {
        "id": deploy.id,
        "project": deploy.project,
        "version": deploy.version,
        "environment": deploy.environment,
        "state": deploy.state(now).value,
        "deployed_at": iso(deploy.deployed_at),
        "started_at": iso(deploy.started_at),
        "finished_at": iso(deploy.finished_at),
        "failed_at": iso(deploy.failed_at),
        "expires_at": iso(deploy.expires_at) if deploy.phase is DeployPhase.STARTED else None,
        "issues": list(row["issues"] or []),
        "via": row["via"],
        "window_id": deploy.window_id,
        "hold": project.hold.value if project is not None else None,
    }
