"""Use cases: plain functions that take their collaborators as arguments."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from adapters import PARSERS, zabbix
from bridge import metrics
from bridge.domain import (
    AlertResult, Incident, Outcome, ParsedNotification, ProblemRule, ProblemState, RejectedAlert, Routing, Rules,
    apply_notifications, bounded_key, decide_problem, problem_rule_for, regression_comment_text, release_comment_text,
    route_alert, template_context,
)
from bridge.errors import BadPayload, BridgeError, Conflict, DataRefused, NotFound, Unprocessable, UpstreamError
from bridge.storage import Store
from bridge.templates import TemplateError
from bridge.validation import nesting_depth_exceeds
from bridge.versions import is_older
from jira_link.client import JiraClient, JiraError, jql_string
from jira_link.linker import LinkOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestResult:
    """What one accepted notification did."""

    notification_id: int
    parsed: ParsedNotification
    results: list[AlertResult]
    regressions: int = 0

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


def parse_body(source: str, body: bytes, max_depth: int = 32, max_alerts: int = 5000) -> ParsedNotification:
    """Decode JSON and run the source's adapter, within the configured limits.

    Raises:
        NotFound: unknown source.
        BadPayload: not JSON, nested too deep, too many alerts, not a usable notification, or
            the adapter failed on it (logged with its traceback).
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
    if nesting_depth_exceeds(body, max_depth):
        raise BadPayload("JSON nested too deep", [f"body: more than {max_depth} levels of objects and arrays"])
    alerts = payload.get("alerts") if isinstance(payload, dict) else None
    if isinstance(alerts, list) and len(alerts) > max_alerts:
        raise BadPayload("too many alerts in one notification",
                         [f"alerts: {len(alerts)} alerts, at most {max_alerts} (BRIDGE_MAX_ALERTS; "
                          "Alertmanager's max_alerts can cap it)"])
    try:
        return parser(payload)
    except BadPayload:
        raise
    except Exception as exc:
        # A parser bug must cost one refused (and kept) payload, not a 500 that Alertmanager retries.
        log.exception("adapter failed on a payload; refused", extra={"source": source})
        raise BadPayload(f"the {source} adapter could not read this payload", [
            f"body: unexpected {type(exc).__name__} while parsing; the bridge log has the details"]) from exc


JOB_JIRA_ENSURE_ISSUE = "jira.ensure_issue"
JOB_JIRA_SYNC = "jira.sync_issue"
JOB_JIRA_COMMENT = "jira.comment_incidents"
JOB_JIRA_RELEASE = "jira.release"
JOB_JIRA_REGRESSION = "jira.regression"
JOB_ZABBIX_CLOSE = "zabbix.close_problems"
JOB_JIRA_NOTE = "jira.note"


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
            incident.problem_key = bounded_key(rule.key(template_context(incident)).strip())
        except TemplateError as exc:
            log.warning("problem key template failed; incident left outside problems",
                        extra={"rule": rule.name, "dedup_key": incident.dedup_key, "error": str(exc)})
            continue
        if incident.problem_key:
            candidates[id(incident)] = (incident, rule)
    return list(candidates.values())


def assign_problems(conn: Connection, store: Store, candidates: list[tuple[Incident, ProblemRule]],
                    now: datetime, rules_version_label: str | None = None) -> int:
    """Join the candidates to the open problem of their key, or open one at the threshold.

    Set-based per key (one lock, one lookup, one bulk join, one comment job), so an alert
    storm of one failure costs a handful of statements, not several per incident. Keys are
    locked in sorted order so concurrent writers never deadlock on them. Returns how many
    problems reopened as regressions.
    """
    by_key: dict[str, list[Incident]] = {}
    rules_of: dict[str, ProblemRule] = {}
    for incident, rule in candidates:
        assert incident.id is not None and incident.problem_key is not None
        by_key.setdefault(incident.problem_key, []).append(incident)
        rules_of.setdefault(incident.problem_key, rule)
    regressions = 0
    for key in sorted(by_key):
        rule = rules_of[key]
        store.lock_problem_key(conn, key)
        problem = store.open_problem(conn, key)
        waiting = []
        for incident in by_key[key]:
            if problem is None:
                recurrence = handle_recurrence(conn, store, rules_version_label, incident, rule, now)
                if recurrence == "regressed":
                    regressions += 1
                    problem = store.open_problem(conn, key)
                if recurrence is not None:
                    continue
            waiting.append(incident)
        if not waiting:
            continue
        if problem is not None:
            join_known_problem(conn, store, problem, waiting, rule, now)
            continue
        since = now - rule.window
        decision = decide_problem(rule, key, False, store.count_problem_candidates(conn, key, since))
        if decision.action == "open":
            open_new_problem(conn, store, key, waiting, rule, now, since)
    return regressions


def join_known_problem(conn: Connection, store: Store, problem: dict[str, Any], joining: list[Incident],
                       rule: ProblemRule, now: datetime) -> None:
    """Attach incidents to an open problem; a linked issue hears of them in one throttled comment."""
    notify = problem["jira_key"] is not None
    store.join_problem(conn, problem["id"], [incident.id for incident in joining if incident.id is not None],
                       notify, now)
    for incident in joining:
        incident.problem_id = problem["id"]
    if notify and rule.jira is not None:
        last = problem["last_comment_at"]
        run_at = max(now, last + rule.jira.comment_interval) if last else now
        store.enqueue(conn, JOB_JIRA_COMMENT, target="jira", now=now, problem_id=problem["id"],
                      dedup_key=f"{JOB_JIRA_COMMENT}:{problem['id']}", run_at=run_at)


def open_new_problem(conn: Connection, store: Store, key: str, opening: list[Incident], rule: ProblemRule,
                     now: datetime, since: datetime) -> None:
    """Open a problem for a key, gathering every waiting incident of the window, and queue its Jira issue."""
    first = opening[0]
    context = template_context(first)
    try:
        summary, description = rule.summary(context), rule.description(context)
    except TemplateError as exc:
        log.warning("problem summary template failed", extra={"rule": rule.name, "error": str(exc)})
        summary, description = key, ""
    problem_id, _ = store.open_problem_with_candidates(conn, dict(
        problem_key=key, rule=rule.name, state=ProblemState.OPEN.value,
        summary=summary.strip()[:1000] or key, description=description,
        incident_count=0, opened_at=now, regressions=0, comment_pending=0,
        jira_project=rule.jira.project if rule.jira else None), since)
    for incident in opening:
        incident.problem_id = problem_id
    store.add_problem_events(conn, [dict(problem_id=problem_id, at=now, kind="opened",
                                         detail=f"opened by rule {rule.name}")])
    if rule.jira is not None and rule.jira.create:
        store.enqueue(conn, JOB_JIRA_ENSURE_ISSUE, target="jira", now=now, problem_id=problem_id,
                      payload={"priority": first.priority}, dedup_key=f"{JOB_JIRA_ENSURE_ISSUE}:{problem_id}")


def handle_recurrence(conn: Connection, store: Store, version_label: str | None, incident: Incident,
                      rule: ProblemRule, now: datetime) -> str | None:
    """A failure whose problem a release closed fires again: a regression, or a target not yet fixed.

    With a version label configured, an incident from a target running a version older
    than the fix joins the closed problem as "fix not deployed there yet". Otherwise the
    problem reopens as a regression (counted, recorded, Jira told). Returns "not_deployed"
    or "regressed", or None when the key has no released fix.
    """
    fixed = store.latest_fixed_problem(conn, incident.problem_key or "")
    if fixed is None or fixed["fixed_at"] is None or now < fixed["fixed_at"]:
        return None
    running = incident.labels.get(version_label) if version_label else None
    if running and is_older(running, fixed["fixed_in"]):
        store.attach_incident(conn, fixed["id"], incident.id)
        incident.problem_id = fixed["id"]
        store.add_problem_events(conn, [dict(problem_id=fixed["id"], at=now, kind="not_deployed",
                                             detail=f"incident {incident.id} from version {running}, "
                                                    f"older than the fix in {fixed['fixed_in']}")])
        return "not_deployed"
    store.reopen_problem(conn, fixed["id"], regression=True)
    store.attach_incident(conn, fixed["id"], incident.id)
    incident.problem_id = fixed["id"]
    where = f" on version {running}" if running else ""
    store.add_problem_events(conn, [dict(problem_id=fixed["id"], at=now, kind="regressed",
                                         detail=f"incident {incident.id}{where} after the fix in {fixed['fixed_in']}")])
    if fixed["jira_key"] is not None and rule.jira is not None and rule.jira.reopen_on_regression:
        store.enqueue(conn, JOB_JIRA_REGRESSION, target="jira", now=now, problem_id=fixed["id"], payload={
            "jira_key": fixed["jira_key"], "text": regression_comment_text(fixed["fixed_in"], incident.summary, running)})
    return "regressed"


def keep_refused(store: Store, source: str, received_at: datetime, refusal: BridgeError, *, body: str,
                 content_type: str | None, body_limit: int) -> None:
    """Keep a notification refused as a whole (400, 413, 415) with its reason, for the operator to read.

    Raises:
        StoreUnavailable: the database is down, so not even the refusal could be kept.
    """
    store.run(lambda conn: store.add_rejected(
        conn, source, received_at, reason=refusal.message, errors=refusal.errors, body=body,
        content_type=content_type, partial=False, body_limit=body_limit))
    log.info("payload rejected", extra={"source": source, "reason": refusal.message, "status": refusal.status})


@dataclass(frozen=True)
class Delivery:
    """A parsed, routed notification waiting for the transaction that writes it."""

    source: str
    text: str
    parsed: ParsedNotification
    routings: list[Routing]
    received_at: datetime
    content_type: str | None = None


def prepare_delivery(
    store: Store, rules: Rules, source: str, body: bytes, now: datetime, content_type: str | None = None,
    rejected_body_limit: int = 1024 * 1024, max_depth: int = 32, max_alerts: int = 5000,
) -> Delivery:
    """Parse and route a webhook body: the work that needs no transaction.

    A payload refused as a whole is kept in `rejected_payloads` before the error is raised.

    Raises:
        BadPayload, NotFound: the payload is refused (and recorded).
        StoreUnavailable: the database is down, so not even the refusal could be kept.
    """
    text = body_text(body)
    try:
        parsed = parse_body(source, body, max_depth, max_alerts)
    except BadPayload as exc:
        keep_refused(store, source, now, exc, body=text, content_type=content_type, body_limit=rejected_body_limit)
        raise
    if parsed.truncated_alerts:
        log.warning("Alertmanager truncated alerts (max_alerts)",
                    extra={"source": source, "truncated_alerts": parsed.truncated_alerts})
    return Delivery(source, text, parsed, [route_alert(rules, alert) for alert in parsed.alerts], now, content_type)


def write_deliveries(store: Store, rules: Rules, deliveries: Sequence[Delivery],
                     rejected_body_limit: int = 1024 * 1024) -> list[IngestResult]:
    """Write several notifications in one transaction, in order, as if one by one.

    Set-based across the whole group: one insert of the raw bodies, one lookup of the
    current incidents, one write of the changed ones, one problem decision per key, taken
    at the time of the group's latest notification. The group's regressions are counted
    on its first result. A single notification the database refuses a value of is written
    without the alerts to blame (see `write_without_refused_alerts`).

    Raises:
        DataRefused: the database refused a value of the group (of more than one
            notification: the group commit then writes each alone), or of the notification
            as a whole (recorded in rejected_payloads).
        StoreUnavailable: the database is down; nothing was written.
    """
    try:
        return store.run(_write_work(store, rules, deliveries, rejected_body_limit))
    except DataRefused as exc:
        if len(deliveries) > 1:
            raise
        return [write_without_refused_alerts(store, rules, deliveries[0], exc, rejected_body_limit)]


def _write_work(store: Store, rules: Rules, deliveries: Sequence[Delivery],
                rejected_body_limit: int) -> Callable[[Connection], list[IngestResult]]:
    """The transaction body that writes `deliveries` (run by `Store.run`, possibly more than once)."""

    def work(conn: Connection) -> list[IngestResult]:
        notification_ids = store.add_notifications(conn, [dict(
            source=d.source, received_at=d.received_at, body=d.text, alert_count=len(d.parsed.alerts),
            rejected_count=len(d.parsed.rejected), truncated_alerts=d.parsed.truncated_alerts,
            group_key=d.parsed.group_key) for d in deliveries])
        current = store.current_incidents(conn, (routing.dedup_key for d in deliveries for routing in d.routings))
        results, touched = apply_notifications(
            [(d.parsed.alerts, d.routings, d.received_at) for d in deliveries], current, rules.sla_policies)
        candidates = set_problem_keys(rules, [result for own in results for result in own])
        store.save_incidents(conn, [(incident, notification_ids[index]) for incident, index in touched], current)
        now = max(d.received_at for d in deliveries)
        regressions = assign_problems(conn, store, candidates, now, rules.version_label)
        for d in deliveries:
            if d.parsed.rejected:
                refused = len(d.parsed.rejected)
                store.add_rejected(
                    conn, d.source, d.received_at, body=d.text, content_type=d.content_type, partial=True,
                    body_limit=rejected_body_limit,
                    reason=f"{refused} of {refused + len(d.parsed.alerts)} alerts refused",
                    errors=[line for item in d.parsed.rejected for line in item.errors])
        per_notification = zip(notification_ids, deliveries, results, strict=True)
        return [IngestResult(notification_id, d.parsed, own, regressions if index == 0 else 0)
                for index, (notification_id, d, own) in enumerate(per_notification)]

    return work


def _without_alerts(delivery: Delivery, refused: Mapping[int, DataRefused]) -> Delivery:
    """The delivery without the alerts at these positions, each reported in `rejected` with the database's reason."""
    indexes = delivery.parsed.payload_indexes()
    kept = [position for position in range(len(delivery.parsed.alerts)) if position not in refused]
    rejected = [*delivery.parsed.rejected, *(
        RejectedAlert(indexes[position], tuple(f"alerts[{indexes[position]}]: {line}" for line in exc.errors))
        for position, exc in refused.items())]
    parsed = replace(delivery.parsed, alerts=tuple(delivery.parsed.alerts[position] for position in kept),
                     rejected=tuple(sorted(rejected, key=lambda item: item.index)))
    return replace(delivery, parsed=parsed, routings=[delivery.routings[position] for position in kept])


def _refused_positions(attempt: Callable[[list[int]], DataRefused | None], positions: list[int],
                       refusal: DataRefused) -> dict[int, DataRefused]:
    """The alerts among `positions` (which the database refuses together) that it refuses alone.

    Halving finds each bad alert in a few rolled-back probes, even in a notification of
    thousands of alerts. Empty when only a combination is refused.
    """
    if len(positions) == 1:
        return {positions[0]: refusal}
    found: dict[int, DataRefused] = {}
    half = len(positions) // 2
    for part in (positions[:half], positions[half:]):
        part_refusal = attempt(part)
        if part_refusal is not None:
            found.update(_refused_positions(attempt, part, part_refusal))
    return found


def write_without_refused_alerts(store: Store, rules: Rules, delivery: Delivery, refusal: DataRefused,
                                 rejected_body_limit: int = 1024 * 1024) -> IngestResult:
    """Write a notification the database refused a value of, without the alerts to blame.

    One oversized or out-of-range value must not cost its neighbours (Alertmanager would
    retry the whole group forever): the alerts the database refuses alone are found in
    rolled-back probes, reported in `rejected` and kept in rejected_payloads with the good
    alerts written. Only on this rare path.

    Raises:
        DataRefused: no alert alone is to blame (the notification's own fields, or a
            combination): the notification is refused as a whole and recorded.
    """
    def attempt(positions: list[int]) -> DataRefused | None:
        subset = _without_alerts(delivery, {p: refusal for p in range(len(delivery.parsed.alerts)) if p not in positions})
        return store.refusal(_write_work(store, rules, [subset], rejected_body_limit))

    everything = list(range(len(delivery.parsed.alerts)))
    envelope_refusal = attempt([])
    if envelope_refusal is not None:
        refusal, refused = envelope_refusal, {}
    else:
        refused = _refused_positions(attempt, everything, refusal)
    if refused and len(refused) < len(everything):
        try:
            [result] = store.run(_write_work(store, rules, [_without_alerts(delivery, refused)], rejected_body_limit))
        except DataRefused as exc:
            refusal, refused = exc, {}
        else:
            log.warning("alerts refused by the database; the rest of the notification was written",
                        extra={"source": delivery.source, "refused": len(refused)})
            return result
    if refused:
        errors = [line for item in _without_alerts(delivery, refused).parsed.rejected for line in item.errors]
    else:
        errors = refusal.errors
    refused_whole = DataRefused("notification refused by the database", errors)
    keep_refused(store, delivery.source, delivery.received_at, refused_whole, body=delivery.text,
                 content_type=delivery.content_type, body_limit=rejected_body_limit)
    raise refused_whole from refusal


def ingest(
    store: Store, rules: Rules, source: str, body: bytes, now: datetime,
    content_type: str | None = None, rejected_body_limit: int = 1024 * 1024, max_depth: int = 32,
    max_alerts: int = 5000,
) -> IngestResult:
    """Turn one webhook into incident changes in a single transaction.

    The refused alerts of a partly good notification are kept in the same transaction as
    the good ones.

    Raises:
        BadPayload, NotFound: the payload is refused (and recorded).
        StoreUnavailable: the database is down; nothing was accepted.
    """
    delivery = prepare_delivery(store, rules, source, body, now, content_type, rejected_body_limit,
                                max_depth, max_alerts)
    [result] = write_deliveries(store, rules, [delivery], rejected_body_limit)
    return result


# At most 64 characters in all, as the columns holding a key (problems.jira_key, release_issues.issue_key).
JIRA_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,46}-[1-9][0-9]{0,15}$")


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
    url = jira.issue_url(key)

    def work(conn: Connection) -> dict:
        # Link, history and sync job commit together: a crash never leaves a link nobody syncs.
        store.link_issue(conn, problem_id, key, url, "manual")
        store.add_problem_events(conn, [dict(problem_id=problem_id, at=now, kind="linked", detail=f"linked to {key} by hand")])
        store.enqueue(conn, JOB_JIRA_ENSURE_ISSUE, target="jira", now=now, problem_id=problem_id,
                      dedup_key=f"{JOB_JIRA_ENSURE_ISSUE}:{problem_id}")
        queue_issue_sync(conn, store, key, now)
        updated = store.get_problem(problem_id, conn)
        assert updated is not None
        return updated

    return store.run(work)


def queue_issue_sync(conn: Connection, store: Store, key: str, now: datetime) -> None:
    """Ask the worker to read an issue's conclusion (webhook and periodic sync share this)."""
    store.enqueue(conn, JOB_JIRA_SYNC, target="jira", now=now, payload={"jira_key": key},
                  dedup_key=f"{JOB_JIRA_SYNC}:{key}")


def handle_jira_webhook(store: Store, jira: JiraClient | None, rules: Rules, body: bytes,
                        now: datetime) -> dict[str, Any]:
    """React to a Jira webhook: an updated issue linked to a live problem gets its conclusion re-read;
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
        return {"event": event, "action": "release_closed",
                **release_from_jira_version(store, jira, rules, payload.get("version"), now)}
    if event not in ("jira:issue_updated", "comment_created", "comment_updated"):
        return {"event": event, "action": "ignored"}
    issue = payload.get("issue")
    key = issue.get("key") if isinstance(issue, dict) else None
    if not isinstance(key, str) or not JIRA_KEY.match(key):
        raise BadPayload("Jira webhook without an issue key", ["issue.key: expected a Jira key"])
    if not store.live_problems_for_issue(key):
        return {"event": event, "action": "ignored", "jira_key": key}
    store.run(lambda conn: queue_issue_sync(conn, store, key, now))
    return {"event": event, "action": "sync_queued", "jira_key": key}


def issue_keys_in(jira: JiraClient | None, jql: str, what: str) -> list[str]:
    """The keys of the issues a release carries, asked of Jira while the caller waits.

    Raises:
        Conflict: Jira is not configured. UpstreamError: Jira failed (503 when retrying may help).
    """
    if jira is None:
        raise Conflict(f"Jira is not configured: cannot find the issues of {what}; send the issue list")
    try:
        return [issue.key for issue in jira.search(jql, fields=("status",))]
    except JiraError as exc:
        raise UpstreamError(f"could not ask Jira for the issues of {what}: {exc.message}", exc.retryable) from exc


def close_release(store: Store, jira: JiraClient | None, rules: Rules, *, project: str, version: str,
                  issues: Sequence[str] | None, released_at: datetime | None, now: datetime,
                  via: str = "pipeline") -> dict[str, Any]:
    """Close every problem linked to the release's new issues and every incident of those problems.

    A release is identified per issue: a later call for a version (a hotfix issue added to
    it) processes only the issues no call processed before, and answers what it did this
    time. A call whose issues were all processed changes nothing ("replay": true). The
    version's row keeps the summary of all its calls. Without `issues`, Jira is asked
    which issues carry the fix version.

    Raises:
        Conflict: no issue list and no Jira to ask. UpstreamError: Jira failed.
    """
    if issues is None:
        issues = issue_keys_in(jira, f"project = {project} AND fixVersion = {jql_string(version)}",
                               f"fix version {version}")
    keys = sorted(set(issues))
    shipped_at = released_at or now
    rules_by_name = {rule.name: rule for rule in rules.problem_rules}

    def work(conn: Connection) -> dict[str, Any]:
        # The row lock makes calls for one version take turns; the unique key on
        # (project, version, issue) backs it, a loser retrying the whole transaction.
        recorded = store.lock_release(conn, project, version)
        before: dict[str, Any] = recorded["summary"] if recorded is not None else {}
        release_id = recorded["id"] if recorded is not None else store.add_release(
            conn, project=project, version=version, released_at=shipped_at, received_at=now, via=via, summary={})
        # Releases recorded before per-issue identity (0006) list their issues only in the summary.
        done = store.processed_release_issues(conn, project, version, keys)
        done |= set(before.get("issues", ())) & set(keys)
        new_keys = [key for key in keys if key not in done]
        answer = {"project": project, "version": version, "released_at": shipped_at.isoformat(), "issues": keys,
                  "already_processed_issues": sorted(done)}
        if recorded is not None and not new_keys:
            return {**answer, "closed_problems": [], "closed_incidents": 0, "already_closed_problems": [],
                    "unmatched_issues": [], "replay": True}
        store.add_release_issues(conn, release_id, project, version, new_keys, now)
        linked = store.problems_for_issues(conn, new_keys)
        to_close = [p for p in linked if p["state"] != "closed"]
        reason = f"released in {version}"
        per_problem, zabbix_closed = store.close_problems_and_incidents(
            conn, [p["id"] for p in to_close], now, reason, fixed_in=version, fixed_at=shipped_at)
        store.add_problem_events(conn, [dict(problem_id=p["id"], at=now, kind="released",
                                             detail=f"{reason}: {per_problem.get(p['id'], 0)} incidents closed")
                                        for p in to_close])
        by_issue: dict[str, list[dict[str, Any]]] = {}
        for problem in to_close:
            by_issue.setdefault(problem["jira_key"], []).append(problem)
        for key, problems_of_issue in by_issue.items():
            rule = rules_by_name.get(problems_of_issue[0]["rule"])
            transition = rule is not None and rule.jira is not None and rule.jira.close_on_release
            store.enqueue(conn, JOB_JIRA_RELEASE, target="jira", now=now, problem_id=problems_of_issue[0]["id"],
                          dedup_key=f"{JOB_JIRA_RELEASE}:{project}:{version}:{key}", payload={
                              "jira_key": key, "transition": transition, "rule": problems_of_issue[0]["rule"],
                              "text": release_comment_text(version, [p["id"] for p in problems_of_issue],
                                                           sum(per_problem.get(p["id"], 0) for p in problems_of_issue))})
            zabbix_of_issue = [closed for p in problems_of_issue for closed in zabbix_closed.get(p["id"], [])]
            queue_zabbix_close(conn, store, zabbix_of_issue, f"Closed by incident-bridge: fixed in release {version}",
                               now, dedup_key=f"{JOB_ZABBIX_CLOSE}:{project}:{version}:{key}")
        matched = {p["jira_key"] for p in linked}
        summary = {**answer, "closed_problems": [p["id"] for p in to_close],
                   "closed_incidents": sum(per_problem.values()),
                   "already_closed_problems": [p["id"] for p in linked if p["state"] == "closed"],
                   "unmatched_issues": [key for key in new_keys if key not in matched]}
        store.set_release_summary(conn, release_id, release_totals(before, summary))
        fix_times[:] = [(shipped_at - p["opened_at"]).total_seconds() for p in to_close]
        return {**summary, "replay": False}

    fix_times: list[float] = []
    summary = store.run(work)
    if not summary["replay"]:
        metrics.record_release(summary["closed_incidents"], fix_times)
    return summary


def release_totals(before: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    """A version's summary over all its calls, as the release list and the overview show it."""
    def union(name: str) -> list[Any]:
        return sorted({*before.get(name, ()), *call[name]})

    return {"project": call["project"], "version": call["version"],
            "released_at": before.get("released_at", call["released_at"]),
            "issues": sorted({*before.get("issues", ()), *call["issues"]}),
            "closed_problems": union("closed_problems"),
            "closed_incidents": before.get("closed_incidents", 0) + call["closed_incidents"],
            "already_closed_problems": union("already_closed_problems"),
            "unmatched_issues": union("unmatched_issues"),
            "calls": before.get("calls", 1 if before else 0) + 1}


def queue_zabbix_close(conn: Connection, store: Store, closed: Sequence[tuple[str, list[str] | None]], message: str,
                       now: datetime, dedup_key: str | None = None) -> None:
    """Ask the worker to close in Zabbix the events of Zabbix incidents just closed here.

    The ids are the events each incident gathered, never text taken from its dedup key
    (a route with dedup_labels keys an incident by labels).
    """
    event_ids = list(dict.fromkeys(event_id for key, source_ids in closed
                                   for event_id in zabbix.event_ids(key, source_ids)))
    if event_ids:
        store.enqueue(conn, JOB_ZABBIX_CLOSE, target="zabbix", now=now, dedup_key=dedup_key,
                      payload={"event_ids": event_ids, "message": message})


def close_problem_by_hand(store: Store, problem_id: int, reason: str, now: datetime) -> None:
    """Close a problem and its incidents for a case the pipeline missed; Zabbix hears of its events too.

    Raises:
        NotFound: no such problem. Conflict: already closed.
    """

    def work(conn: Connection) -> None:
        problem = store.get_problem(problem_id, conn)
        if problem is None:
            raise NotFound(f"no problem {problem_id}")
        if problem["state"] == "closed":
            raise Conflict(f"problem {problem_id} is already closed")
        counts, zabbix_closed = store.close_problems_and_incidents(conn, [problem_id], now,
                                                                   f"problem closed by hand: {reason}")
        closed[:] = [counts.get(problem_id, 0)]
        store.add_problem_events(conn, [dict(problem_id=problem_id, at=now, kind="closed",
                                             detail=f"by hand: {reason} ({counts.get(problem_id, 0)} incidents closed)")])
        queue_zabbix_close(conn, store, zabbix_closed.get(problem_id, []),
                           f"Closed by incident-bridge: problem closed by hand: {reason}", now)

    closed: list[int] = []
    store.run(work)
    metrics.CLOSED.labels("manual").inc(sum(closed))


def reopen_problem_by_hand(store: Store, problem_id: int, reason: str, now: datetime) -> None:
    """Reopen a closed problem (its closed incidents stay closed; new ones will join it).

    Raises:
        NotFound: no such problem. Conflict: not closed, or another problem is open for the key.
    """

    def work(conn: Connection) -> None:
        problem = store.get_problem(problem_id, conn)
        if problem is None:
            raise NotFound(f"no problem {problem_id}")
        if problem["state"] != "closed":
            raise Conflict(f"problem {problem_id} is not closed")
        store.lock_problem_key(conn, problem["problem_key"])
        other = store.open_problem(conn, problem["problem_key"])
        if other is not None:
            raise Conflict(f"problem {other['id']} is already open for {problem['problem_key']!r}")
        store.reopen_problem(conn, problem_id, regression=False)
        store.add_problem_events(conn, [dict(problem_id=problem_id, at=now, kind="reopened", detail=f"by hand: {reason}")])

    store.run(work)


def release_from_jira_version(store: Store, jira: JiraClient | None, rules: Rules, version: Any,
                              now: datetime) -> dict[str, Any]:
    """The release close hook, fed by Jira's version-released webhook (which lists no issues).

    Raises:
        BadPayload: no version name or id. Conflict: Jira is not configured. UpstreamError: Jira failed.
    """
    if not isinstance(version, dict) or not version.get("name") or not str(version.get("id", "")).isdigit():
        raise BadPayload("version_released webhook without a version", ["version: needs id and name"])
    keys = issue_keys_in(jira, f"fixVersion = {version['id']}", f"version {version['name']}")
    project = keys[0].split("-")[0] if keys else str(version.get("projectId", "unknown"))
    return close_release(store, jira, rules, project=project, version=str(version["name"]), issues=keys,
                         released_at=None, now=now, via="jira_webhook")
