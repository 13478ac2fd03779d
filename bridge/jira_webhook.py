"""Jira's webhooks: an updated issue gets its conclusion and outcome re-read, a released version closes what it fixed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from bridge.domain import Rules
from bridge.errors import BadPayload
from bridge.problems import JIRA_KEY, queue_issue_sync
from bridge.releases import release_from_jira_version
from bridge.storage import Store
from jira_link.port import JiraPort


def handle_jira_webhook(
    store: Store, jira: JiraPort | None, rules: Rules, body: bytes, now: datetime
) -> dict[str, Any]:
    """React to a Jira webhook: an updated issue linked to a live problem (or to one won't do closed, which
    reopens if the issue is worked on again) gets its conclusion and outcome re-read;
    a released version runs the release close path.

    Raises:
        BadPayload: not a JSON object with a webhookEvent.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPayload("body is not valid JSON", [f"body: {exc}"]) from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("webhookEvent"), str):
        raise BadPayload("not a Jira webhook", ["webhookEvent: required field is missing"])
    event = payload["webhookEvent"]
    if event == "jira:version_released":
        return {
            "event": event,
            "action": "release_closed",
            **release_from_jira_version(store, jira, rules, payload.get("version"), now),
        }
    if event not in ("jira:issue_updated", "comment_created", "comment_updated"):
        return {"event": event, "action": "ignored"}
    issue = payload.get("issue")
    key = issue.get("key") if isinstance(issue, dict) else None
    if not isinstance(key, str) or not JIRA_KEY.match(key):
        raise BadPayload("Jira webhook without an issue key", ["issue.key: expected a Jira key"])
    if not store.issue_concerns_problems(key):
        return {"event": event, "action": "ignored", "jira_key": key}
    store.run(lambda conn: queue_issue_sync(conn, store, key, now))
    return {"event": event, "action": "sync_queued", "jira_key": key}
