"""Use cases: plain functions that take their collaborators as arguments."""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from adapters import PARSERS
from bridge.domain import (
    AlertResult, Incident, Outcome, ParsedNotification, ProblemRule, ProblemState, Rules, apply_notification,
    decide_problem, problem_rule_for, route_alert, template_context,
)
from bridge.errors import BadPayload, Conflict, NotFound, Unprocessable, UpstreamError
from bridge.storage import Store
from bridge.templates import TemplateError
from jira_link.client import JiraClient, JiraError
from jira_link.linker import LinkOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """What one accepted notification did."""

    notification_id: int
    parsed: ParsedNotification
    results: list[AlertResult]

    @property
    def incident_ids(self) -> list[int]:
        seen: dict[int, None] = {}
        for result in self.results:
            if result.incident is not None and result.incident.id is not None:
                seen.setdefault(result.incident.id, None)
        return list(seen)

    @property
    def outcomes(self) -> dict[str, int]:
        return dict(Counter(result.outcome.value for result in self.results))


def body_text(body: bytes) -> str:
    """The raw body as storable text: invalid UTF-8 and NUL bytes become U+FFFD."""
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def parse_body(source: str, body: bytes) -> ParsedNotification:
    """Decode JSON and run the source's adapter.

    Raises:
        NotFound: unknown source.
        BadPayload: not JSON, or not a usable notification.
    """
    parser = PARSERS.get(source)
    if parser is None:
        raise NotFound(f"unknown source {source!r}", [f"source: expected one of {', '.join(PARSERS)}"])
    if not body.strip():
        raise BadPayload("empty body; expected a JSON object")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadPayload("body is not valid JSON", [f"body: {exc}"]) from exc
    return parser(payload)


JOB_JIRA_ENSURE_ISSUE = "jira.ensure_issue"
JOB_JIRA_SYNC = "jira.sync_issue"
JOB_JIRA_COMMENT = "jira.comment_incidents"


def set_problem_keys(rules: Rules, results: list[AlertResult]) -> list[tuple[Incident, ProblemRule]]:
    """Render problem keys for incidents that just opened or reopened outside a problem.

    A template that fails on a real alert (a label the rule expects is missing) leaves the
    incident without a problem rather than refusing the alert.
    """
    candidates: dict[int, tuple[Incident, ProblemRule]] = {}
    for result in results:
        incident = result.incident
        if incident is None or result.outcome not in (Outcome.CREATED, Outcome.REOPENED):
            continue
        if incident.problem_id is not None or id(incident) in candidates:
            continue
        rule = problem_rule_for(rules.problem_rules, incident)
        if rule is None:
            continue
        try:
            incident.problem_key = rule.key(template_context(incident)).strip()
        except TemplateError as exc:
            log.warning("problem key template failed; incident left outside problems",
                        extra={"rule": rule.name, "dedup_key": incident.dedup_key, "error": str(exc)})
            continue
        if incident.problem_key:
            candidates[id(incident)] = (incident, rule)
    return list(candidates.values())


def assign_problems(conn: Connection, store: Store, candidates: list[tuple[Incident, ProblemRule]],
                    now: datetime) -> None:
    """Join each candidate to the open problem of its key, or open one at the threshold.

    Keys are locked in sorted order so concurrent writers never deadlock on them.
    """
    for incident, rule in sorted(candidates, key=lambda pair: pair[0].problem_key or ""):
        assert incident.id is not None and incident.problem_key is not None
        store.lock_problem_key(conn, incident.problem_key)
        problem = store.open_problem(conn, incident.problem_key)
        since = now - rule.window
        count = 0 if problem else store.count_problem_candidates(conn, incident.problem_key, since)
        decision = decide_problem(rule, incident.problem_key, problem is not None, count)
        if decision.action == "join":
            assert problem is not None
            notify = problem["jira_key"] is not None
            store.join_problem(conn, problem["id"], incident.id, notify, now)
            incident.problem_id = problem["id"]
            if notify and rule.jira is not None:
                last = problem["last_comment_at"]
                run_at = max(now, last + rule.jira.comment_interval) if last else now
                store.enqueue(conn, JOB_JIRA_COMMENT, target="jira", now=now, problem_id=problem["id"],
                              dedup_key=f"{JOB_JIRA_COMMENT}:{problem['id']}", run_at=run_at)
        elif decision.action == "open":
            context = template_context(incident)
            try:
                summary, description = rule.summary(context), rule.description(context)
            except TemplateError as exc:
                log.warning("problem summary template failed", extra={"rule": rule.name, "error": str(exc)})
                summary, description = incident.problem_key, ""
            problem_id, _ = store.open_problem_with_candidates(conn, dict(
                problem_key=incident.problem_key, rule=rule.name, state=ProblemState.OPEN.value,
                summary=summary.strip()[:1000] or incident.problem_key, description=description,
                incident_count=0, opened_at=now, regressions=0, comment_pending=0,
                jira_project=rule.jira.project if rule.jira else None), since)
            incident.problem_id = problem_id
            if rule.jira is not None and rule.jira.create:
                store.enqueue(conn, JOB_JIRA_ENSURE_ISSUE, target="jira", now=now, problem_id=problem_id,
                              payload={"priority": incident.priority}, dedup_key=f"{JOB_JIRA_ENSURE_ISSUE}:{problem_id}")


def ingest(
    store: Store, rules: Rules, source: str, body: bytes, now: datetime,
    content_type: str | None = None, rejected_body_limit: int = 1024 * 1024,
) -> IngestResult:
    """Turn one webhook into incident changes in a single transaction.

    A payload refused as a whole is kept in `rejected_payloads` before the error is
    raised; the refused alerts of a partly good notification are kept in the same
    transaction as the good ones.

    Raises:
        BadPayload, NotFound: the payload is refused (and recorded).
        StoreUnavailable: the database is down; nothing was accepted.
    """
    text = body_text(body)
    try:
        parsed = parse_body(source, body)
    except BadPayload as exc:
        store.run(lambda conn: store.add_rejected(
            conn, source, now, reason=exc.message, errors=exc.errors, body=text,
            content_type=content_type, partial=False, body_limit=rejected_body_limit))
        log.info("payload rejected", extra={"source": source, "reason": exc.message})
        raise
    routings = [route_alert(rules, alert) for alert in parsed.alerts]

    def work(conn: Connection) -> IngestResult:
        notification_id = store.add_notification(
            conn, source, now, text, alert_count=len(parsed.alerts), rejected_count=len(parsed.rejected),
            truncated_alerts=parsed.truncated_alerts, group_key=parsed.group_key)
        current = store.current_incidents(conn, (routing.dedup_key for routing in routings))
        results, changed = apply_notification(parsed.alerts, routings, current, now)
        candidates = set_problem_keys(rules, results)
        store.save_incidents(conn, changed, notification_id)
        assign_problems(conn, store, candidates, now)
        if parsed.rejected:
            store.add_rejected(
                conn, source, now, body=text, content_type=content_type, partial=True,
                body_limit=rejected_body_limit,
                reason=f"{len(parsed.rejected)} of {len(parsed.rejected) + len(parsed.alerts)} alerts refused",
                errors=[line for item in parsed.rejected for line in item.errors])
        return IngestResult(notification_id, parsed, results)

    result = store.run(work)
    if parsed.truncated_alerts:
        log.warning("Alertmanager truncated alerts (max_alerts)",
                    extra={"source": source, "truncated_alerts": parsed.truncated_alerts})
    return result


JIRA_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,63}-[1-9][0-9]{0,15}$")


def link_problem(store: Store, jira: JiraClient | None, options: LinkOptions, problem_id: int, key: str,
                 now: datetime) -> dict:
    """Link an existing Jira issue to a problem by hand, after checking the issue exists.

    Raises:
        BadPayload: not a Jira key. NotFound: no such problem. Conflict: closed problem,
        another issue already linked, or the issue is linked to another problem.
        Unprocessable: the issue does not exist. UpstreamError: Jira failed.
    """
    if not JIRA_KEY.match(key):
        raise BadPayload("invalid Jira key", [f"jira_key: expected a key like LKK-123, got {key!r}"])
    problem = store.get_problem(problem_id)
    if problem is None:
        raise NotFound(f"no problem {problem_id}")
    if problem["state"] == "closed":
        raise Conflict(f"problem {problem_id} is closed")
    if problem["jira_key"] == key:
        return problem
    if problem["jira_key"] is not None:
        raise Conflict(f"problem {problem_id} is already linked to {problem['jira_key']}; unlink it first")
    others = [p["id"] for p in store.live_problems_for_issue(key) if p["id"] != problem_id]
    if others:
        raise Conflict(f"{key} is already linked to problem {others[0]}")
    if jira is None:
        raise Conflict("Jira is not configured on this bridge (BRIDGE_JIRA_URL)")
    try:
        issue = jira.get_issue(key)
    except JiraError as exc:
        raise UpstreamError(f"could not check {key} in Jira: {exc.message}", exc.retryable) from exc
    if issue is None:
        raise Unprocessable(f"Jira issue {key} does not exist or is not visible to the bridge",
                            [f"jira_key: {key} not found in Jira"])
    store.record_jira_link(problem_id, key, jira.issue_url(key), "manual")

    def queue(conn: Connection) -> None:
        store.enqueue(conn, JOB_JIRA_ENSURE_ISSUE, target="jira", now=now, problem_id=problem_id,
                      dedup_key=f"{JOB_JIRA_ENSURE_ISSUE}:{problem_id}")
        queue_issue_sync(conn, store, key, now)

    store.run(queue)
    updated = store.get_problem(problem_id)
    assert updated is not None
    return updated


def queue_issue_sync(conn: Connection, store: Store, key: str, now: datetime) -> None:
    """Ask the worker to read an issue's conclusion (webhook and periodic sync share this)."""
    store.enqueue(conn, JOB_JIRA_SYNC, target="jira", now=now, payload={"jira_key": key},
                  dedup_key=f"{JOB_JIRA_SYNC}:{key}")


def handle_jira_webhook(store: Store, body: bytes, now: datetime) -> dict[str, Any]:
    """React to a Jira webhook: an updated issue linked to a live problem gets its conclusion re-read.

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
    if event not in ("jira:issue_updated", "comment_created", "comment_updated"):
        return {"event": event, "action": "ignored"}
    key = (payload.get("issue") or {}).get("key")
    if not isinstance(key, str) or not JIRA_KEY.match(key):
        raise BadPayload("Jira webhook without an issue key", ["issue.key: expected a Jira key"])
    if not store.live_problems_for_issue(key):
        return {"event": event, "action": "ignored", "jira_key": key}
    store.run(lambda conn: queue_issue_sync(conn, store, key, now))
    return {"event": event, "action": "sync_queued", "jira_key": key}
