"""Release health: what a release closed, and what came after it within the watch window.

Opened after it: every incident and problem whose first sighting falls within
BRIDGE_RELEASE_WATCH of the release (the bridge does not know which services a project
ships, so this is everything that broke meanwhile). Regressions it caused: the problems it
closed that fired again after its fix; recurrences where the fix was not deployed yet
(an older version, an environment the release did not reach) are listed apart. Its deploys:
per environment, when each started and finished (or failed), the alerts that opened during
it, and the problems opened within the watch window after it that name this release among
their suspects, and whether as the nearest.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bridge.domain.suspects import is_release
from bridge.errors import NotFound
from bridge.shapes import iso
from bridge.storage.deploy_repository import deploy_of
from bridge.storage.store import Store

LISTED = 100  # incidents and problems listed per release; the counts cover all
# Problems read to find those suspecting one of a release's deploys: far above what opens in a watch window.
SUSPECTING_READ = 2000


def release_health(store: Store, project: str, version: str, watch: timedelta, now: datetime) -> dict[str, Any]:
    """A release's health as the API and the release page show it.

    Raises:
        NotFound: no such release.
    """
    release = store.get_release(project, version)
    if release is None:
        raise NotFound(f"no release {version} of {project}")
    summary = release["summary"] or {}
    closed = [int(pid) for pid in summary.get("closed_problems", ())]
    start = release["released_at"]
    end = start + watch
    activity = store.release_activity(version, closed, start, end, LISTED)
    recurrences = activity["recurrences"]
    return {
        "project": project,
        "version": version,
        "released_at": start,
        "received_at": release["received_at"],
        "environments": release["environments"],
        "closed": {
            "problems": closed,
            "incidents": summary.get("closed_incidents", 0),
            "issues": summary.get("issues", []),
            "unmatched_issues": summary.get("unmatched_issues", []),
        },
        "watch": {"from": start, "until": end, "seconds": watch.total_seconds(), "complete": now >= end},
        "opened_after": {
            "incident_count": activity["incident_count"],
            "incidents": activity["incidents"],
            "problem_count": activity["problem_count"],
            "problems": activity["problems"],
        },
        "regressions": [_recurrence(event) for event in recurrences if event["kind"] == "regressed"],
        "not_deployed": [_recurrence(event) for event in recurrences if event["kind"] == "not_deployed"],
        "deploys": _deploys(store, project, version, watch, now),
    }


def _deploys(store: Store, project: str, version: str, watch: timedelta, now: datetime) -> list[dict[str, Any]]:
    """The release's deploys in the order they began, each with what it may have caused."""
    deploys = store.release_deploys(project, version)
    if not deploys:
        return []
    start = min(deploy["deployed_at"] for deploy in deploys)
    suspecting = store.problems_suspecting(
        start, max(deploy["deployed_at"] for deploy in deploys) + watch, SUSPECTING_READ
    )
    shown = []
    for deploy in deploys:
        began, environment = deploy["deployed_at"], deploy["environment"]
        problems = [
            {
                "id": problem["id"],
                "summary": problem["summary"],
                "state": problem["state"],
                "opened_at": problem["opened_at"],
                "nearest_suspect": is_release(problem["suspects"][0], project, version, environment),
            }
            for problem in suspecting
            if began <= problem["opened_at"] < began + watch
            and any(is_release(suspect, project, version, environment) for suspect in problem["suspects"])
        ]
        shown.append(
            {
                "id": deploy["id"],
                "environment": environment,
                "state": deploy_of(deploy).state(now).value,
                "started_at": deploy["started_at"],
                "finished_at": deploy["finished_at"],
                "failed_at": deploy["failed_at"],
                "alerts_during": deploy["alerts_during"],
                "problems": problems[:LISTED],
            }
        )
    return shown


def _recurrence(event: dict[str, Any]) -> dict[str, Any]:
    return {"problem_id": event["problem_id"], "at": event["at"], "detail": event["detail"]}


def health_json(value: Any) -> Any:
    """The health with every instant as ISO 8601 text, for the API."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {key: health_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [health_json(item) for item in value]
    return value
