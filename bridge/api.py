"""HTTP API: webhooks in, incidents and rejected payloads out. JSON only."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from functools import wraps
from typing import Annotated, Any

import orjson
from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from adapters import SOURCES, events
from bridge import metrics
from bridge.config import TOKEN_GROUPS, Secret
from bridge.context import bridge
from bridge.domain import EventRoutingKey, Incident, IncidentState, OutboxState, ProblemState, route_alert
from bridge.errors import (
    BadPayload, BridgeError, Conflict, InvalidRoutingKey, NotFound, PayloadTooLarge, SenderShapedError, Unauthorized,
    UnsupportedMediaType,
)
from bridge.openapi import build_document
from bridge.sla import SlaClock, remaining_seconds
from bridge.ingest import body_text, keep_refused, prepare_delivery
from bridge.jira_webhook import handle_jira_webhook
from bridge.problems import JIRA_KEY, close_problem_by_hand, link_problem, reopen_problem_by_hand
from bridge.releases import close_release
from bridge.validation import describe
from bridge.storage import MAX_ID, IncidentFilter

log = logging.getLogger(__name__)
api = Blueprint("api", __name__)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_INTEGER = re.compile(r"-?[0-9]+")


def check_bearer(expected: Secret | None) -> None:
    """Require `Authorization: Bearer <token>` when a token is configured.

    Raises:
        Unauthorized: missing or wrong token (compared in constant time).
    """
    if expected is None:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not expected.matches(given.strip()):
        raise Unauthorized("missing or invalid bearer token", ["Authorization: expected 'Bearer <token>'"])


def group_token(group: str) -> Secret | None:
    """The token of an endpoint group (config.TOKEN_GROUPS), None when the operator left it open."""
    return bridge().settings.token(group)


def requires_token(group: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Guard a view with the bearer token of its endpoint group."""
    assert group in TOKEN_GROUPS, group

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            check_bearer(group_token(group))
            return view(*args, **kwargs)

        return guarded

    return decorate


def require_json() -> None:
    """A POST that carries a body carries JSON. Demanding the type keeps web pages out: a form or a
    no-cors fetch cannot send application/json, so a browser on the operator's desk cannot post to a
    loopback bridge. A POST without a body (an outbox retry) carries nothing to declare.

    Raises:
        UnsupportedMediaType: a body of any other Content-Type (a charset parameter is fine).
    """
    has_body = bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if request.method == "POST" and has_body and request.mimetype != "application/json":
        raise UnsupportedMediaType("expected Content-Type: application/json",
                                   [f"Content-Type: got {request.content_type or 'none'!r}"])


@api.before_request
def _require_json_body() -> None:
    """Every JSON endpoint but the webhooks, which authenticate first and keep what they refuse."""
    if request.endpoint not in ("api.receive_alerts", "api.receive_event"):
        require_json()


def _unread_head() -> bytes:
    """The first BRIDGE_REJECTED_BODY_LIMIT bytes of a body nobody read, to keep with its refusal."""
    return request.environ["wsgi.input"].read(bridge().settings.rejected_body_limit)


def read_body(limit_name: str = "BRIDGE_MAX_BODY_BYTES") -> bytes:
    """The whole body, or 413 when it is past the request's limit (BRIDGE_MAX_BODY_BYTES unless a view lowered it).

    Werkzeug stops a streamed (chunked) body at the limit without saying so; one more byte
    from the server's stream tells a body of exactly the limit from a longer one. A body
    declared too long is not read, but its first BRIDGE_REJECTED_BODY_LIMIT bytes are, so a
    webhook's refusal can be kept.

    Raises:
        PayloadTooLarge: the body is longer than the limit.
    """
    limit = request.max_content_length
    assert limit is not None, "create_app sets MAX_CONTENT_LENGTH"
    try:
        body = request.get_data()
    except RequestEntityTooLarge as exc:
        raise PayloadTooLarge(limit, _unread_head(), limit_name) from exc
    if request.content_length is None and len(body) >= limit and request.environ["wsgi.input"].read(1):
        raise PayloadTooLarge(limit, body, limit_name)
    return body


def _json_object() -> Any:
    read_body()
    return request.get_json(silent=True)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def incident_json(incident: Incident) -> dict[str, Any]:
    """The API shape of an incident; SLA time left is in business seconds where the calendar says so."""
    ctx = bridge()
    policy = ctx.rules.sla_policies.get(incident.priority)
    remaining = None
    if policy is not None and incident.state is not IncidentState.CLOSED:
        clock = SlaClock(incident.sla_elapsed_seconds, incident.sla_running_since)
        remaining = round(remaining_seconds(policy, clock, ctx.now()), 3)
    return {
        "id": incident.id,
        "dedup_key": incident.dedup_key,
        "source": incident.source,
        "state": incident.state.value,
        "line": incident.line,
        "impact": incident.impact,
        "urgency": incident.urgency,
        "priority": incident.priority,
        "route": incident.route,
        "summary": incident.summary,
        "labels": incident.labels,
        "annotations": incident.annotations,
        "occurrences": incident.occurrences,
        "reopen_count": incident.reopen_count,
        "first_seen": _iso(incident.first_seen),
        "last_seen": _iso(incident.last_seen),
        "resolved_at": _iso(incident.resolved_at),
        "closed_at": _iso(incident.closed_at),
        "close_reason": incident.close_reason,
        "problem_id": incident.problem_id,
        "sla_due": _iso(incident.sla_due),
        "sla_breached": incident.sla_breached,
        "sla_breached_at": _iso(incident.sla_breached_at),
        "sla_remaining_seconds": remaining,
    }


def problem_json(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a problem."""
    return {
        "id": row["id"],
        "problem_key": row["problem_key"],
        "rule": row["rule"],
        "state": row["state"],
        "summary": row["summary"],
        "description": row["description"],
        "jira_key": row["jira_key"],
        "jira_url": row["jira_url"],
        "incident_count": row["incident_count"],
        "opened_at": _iso(row["opened_at"]),
        "closed_at": _iso(row["closed_at"]),
        "fixed_in": row["fixed_in"],
        "regressions": row["regressions"],
        "conclusion": row["conclusion"],
    }


def _rejected_json(row: dict[str, Any]) -> dict[str, Any]:
    """A refused payload; the body only when the row carries it (single item, not a list page)."""
    shape = {
        "id": row["id"],
        "source": row["source"],
        "received_at": _iso(row["received_at"]),
        "reason": row["reason"],
        "errors": row["errors"],
        "partial": row["partial"],
        "content_type": row["content_type"],
        "body_bytes": row["body_bytes"],
        "body_truncated": row["body_truncated"],
    }
    if "body" in row:
        shape["body"] = row["body"]
    return shape


def int_arg(name: str, default: int | None = None, minimum: int = 1, maximum: int | None = None) -> int | None:
    """An integer query argument in bounds; ASCII digits only (int() would take "1_0" and other scripts' digits).

    Raises:
        BadPayload: not an integer, or out of bounds.
    """
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):
        raise BadPayload(f"invalid query parameter {name}", [f"{name}: expected an integer, got {raw!r}"])
    value = int(raw) if len(raw) <= 20 else None  # longer is out of any bound here, and int() caps digits
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise BadPayload(f"invalid query parameter {name}", [f"{name}: must be {bounds}"])
    return value


def choice_arg(name: str, allowed: Iterable[str]) -> str | None:
    """One of `allowed`, or None when absent.

    Raises:
        BadPayload: any other value.
    """
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    allowed = tuple(allowed)
    if raw not in allowed:
        raise BadPayload(f"invalid query parameter {name}", [f"{name}: expected one of {', '.join(allowed)}"])
    return raw


def page_args() -> tuple[int, int | None]:
    """The `limit` and `cursor` of a listing, validated (the UI pages use them too)."""
    limit = int_arg("limit", DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    assert limit is not None
    return limit, int_arg("cursor", maximum=MAX_ID)


def _webhook_body(source: str, limit_name: str = "BRIDGE_MAX_BODY_BYTES",
                  kept: Callable[[str], str | None] = lambda text: text) -> bytes:
    """The body of an authenticated webhook, declared JSON and within the size limit.

    A refusal here (415, 413) is kept in rejected_payloads like any other: the sender is
    known, and the operator must be able to see why its alerts did not arrive. `kept` turns
    the text read into what may be stored, or None when nothing may be (a sender whose
    credential is in the body, not found there).

    Raises:
        UnsupportedMediaType, PayloadTooLarge: refused (and recorded).
    """
    ctx = bridge()
    try:
        require_json()
        return read_body(limit_name)
    except (UnsupportedMediaType, PayloadTooLarge) as exc:
        text = kept(body_text(exc.head if isinstance(exc, PayloadTooLarge) else _unread_head()))
        if text is not None:
            keep_refused(ctx.store, source, ctx.now(), exc, body=text, content_type=request.content_type,
                         body_limit=ctx.settings.rejected_body_limit)
        raise


@api.post("/api/v1/alerts/<source>")
def receive_alerts(source: str):  # type: ignore[no-untyped-def]
    """Webhook receiver: answers 200 only after the notification is committed (see the README's rule of the edge)."""
    ctx = bridge()
    if source not in SOURCES:
        raise NotFound(f"unknown source {source!r}", [f"source: expected one of {', '.join(SOURCES)}"])
    started = time.perf_counter()
    try:
        check_bearer(group_token(source))
        delivery = prepare_delivery(ctx.store, ctx.rules, source, _webhook_body(source), ctx.now(),
                                    content_type=request.content_type,
                                    rejected_body_limit=ctx.settings.rejected_body_limit,
                                    max_depth=ctx.settings.max_json_depth, max_alerts=ctx.settings.max_alerts)
        result = ctx.write(delivery)
    except BridgeError as exc:
        metrics.NOTIFICATIONS.labels(source, metrics.WEBHOOK_OUTCOMES.get(exc.status, "error")).inc()
        raise
    finally:
        metrics.WEBHOOK_DURATION.labels(source).observe(time.perf_counter() - started)
    metrics.record_ingest(source, result)
    return jsonify({
        "status": "ok",
        "notification_id": result.notification_id,
        "incidents": result.incident_ids,
        "alerts": len(result.results),
        "outcomes": result.outcomes,
        "rejected": [{"index": item.index, "errors": list(item.errors)} for item in result.parsed.rejected],
        "truncated_alerts": result.parsed.truncated_alerts,
    })


def _routing_key(keys: tuple[EventRoutingKey, ...], text: str, event: Any) -> tuple[EventRoutingKey, str] | None:
    """The configured key a body carries and the key as given: from the event, or, in a body that is no
    JSON object (cut, or broken), from its text, so a known sender's refusal is kept like any other."""
    given = event.get("routing_key") if isinstance(event, dict) else events.routing_key_in_text(text)
    key = events.find_routing_key(keys, given)
    return (key, given) if key is not None else None


def _stored_event_text(text: str, event: Any, given: str) -> str:
    """The body as stored and parsed: the routing_key "<redacted>" (never kept, never logged).

    Replaced in the text, so everything else stays as sent; when the sender spelt the field
    with escapes the text replacement misses, the event is written out again instead.
    """
    redacted = events.redact(text, given)
    if isinstance(event, dict):
        try:
            still = orjson.loads(redacted).get("routing_key", events.REDACTED)
        except (orjson.JSONDecodeError, AttributeError):
            still = None
        if still != events.REDACTED:
            redacted = orjson.dumps({**event, "routing_key": events.REDACTED}).decode()
    return redacted


def _accept_event() -> tuple[Any, str]:
    """Authenticate, parse, route and commit one PagerDuty event; the result and the dedup_key to answer."""
    ctx = bridge()
    keys = ctx.rules.event_routing_keys
    # PagerDuty's own limit, unless the operator's is lower.
    request.max_content_length = min(events.MAX_BODY_BYTES, ctx.settings.max_body_bytes)
    limit_name = ("PagerDuty Events API limit" if events.MAX_BODY_BYTES < ctx.settings.max_body_bytes
                  else "BRIDGE_MAX_BODY_BYTES")

    def kept(head: str) -> str | None:
        found = _routing_key(keys, head, None)
        return events.redact(head, found[1]) if found is not None else None

    body = _webhook_body(events.SOURCE, limit_name, kept)
    text = body_text(body)
    try:
        event = orjson.loads(body)
    except orjson.JSONDecodeError:
        event = None
    found = _routing_key(keys, text, event)
    if found is None:
        log.info("event refused: unknown or missing routing key", extra={"source": events.SOURCE})
        raise InvalidRoutingKey("invalid routing key", ["routing_key: Invalid routing key"])
    key, given = found
    delivery = prepare_delivery(ctx.store, ctx.rules, events.SOURCE, _stored_event_text(text, event, given).encode(),
                                ctx.now(), content_type=request.content_type,
                                rejected_body_limit=ctx.settings.rejected_body_limit,
                                max_depth=ctx.settings.max_json_depth, max_alerts=ctx.settings.max_alerts)
    parsed = events.attach_routing_key(delivery.parsed, key, delivery.received_at, uuid.uuid4().hex)
    delivery = replace(delivery, parsed=parsed, routings=[route_alert(ctx.rules, alert) for alert in parsed.alerts])
    return ctx.write(delivery), events.accepted_dedup_key(parsed)


def pagerduty_error(exc: BridgeError) -> SenderShapedError:
    """A refusal in PagerDuty's shape too: `{"status": "invalid event", "message": "Event object is invalid"}`."""
    if exc.status >= 500:
        return SenderShapedError(exc, {})
    message = "Event object is invalid" if exc.status == 400 else exc.message
    return SenderShapedError(exc, {"status": "invalid event", "message": message,
                                   "errors": exc.errors or [exc.message]})


@api.post("/api/v1/alerts/events")
def receive_event():  # type: ignore[no-untyped-def]
    """PagerDuty Events API v2: answers 202 like PagerDuty, only after the event is committed.

    The credential is the routing_key inside the body (rules.yaml `events.routing_keys`),
    so there is no bearer token; an unknown key is a 400, as PagerDuty answers it.
    """
    started = time.perf_counter()
    try:
        result, dedup_key = _accept_event()
    except BridgeError as exc:
        outcome = ("unauthorized" if isinstance(exc, InvalidRoutingKey)
                   else metrics.WEBHOOK_OUTCOMES.get(exc.status, "error"))
        metrics.NOTIFICATIONS.labels(events.SOURCE, outcome).inc()
        raise pagerduty_error(exc) from exc
    finally:
        metrics.WEBHOOK_DURATION.labels(events.SOURCE).observe(time.perf_counter() - started)
    metrics.record_ingest(events.SOURCE, result)
    return jsonify({"status": "success", "message": "Event processed", "dedup_key": dedup_key,
                    "incidents": result.incident_ids, "outcomes": result.outcomes}), 202


@api.get("/api/v1/incidents")
@requires_token("api")
def list_incidents():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    filters = IncidentFilter(
        state=choice_arg("state", IncidentState),
        source=choice_arg("source", SOURCES),
        priority=request.args.get("priority") or None,
        problem_id=int_arg("problem_id", maximum=MAX_ID),
    )
    page = bridge().store.list_incidents(filters, limit, cursor)
    return jsonify({"items": [incident_json(i) for i in page.items], "next_cursor": page.next_cursor})


@api.get("/api/v1/incidents/<int:incident_id>")
@requires_token("api")
def get_incident(incident_id: int):  # type: ignore[no-untyped-def]
    incident = bridge().store.get_incident(incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    return jsonify(incident_json(incident))


@api.get("/api/v1/rejected")
@requires_token("api")
def list_rejected():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    source = choice_arg("source", SOURCES)
    page = bridge().store.list_rejected(limit, cursor, source)
    return jsonify({"items": [_rejected_json(row) for row in page.items], "next_cursor": page.next_cursor})


@api.get("/api/v1/rejected/<int:rejected_id>")
@requires_token("api")
def get_rejected(rejected_id: int):  # type: ignore[no-untyped-def]
    """One refused payload with its body (as kept: at most BRIDGE_REJECTED_BODY_LIMIT characters)."""
    row = bridge().store.get_rejected(rejected_id)
    if row is None:
        raise NotFound(f"no rejected payload {rejected_id}", ["it never existed or was pruned (BRIDGE_RETENTION)"])
    return jsonify(_rejected_json(row))


@api.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    """Liveness: the process answers. Never touches the database."""
    return jsonify({"status": "ok"})


@api.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    """Readiness: the database answers; 503 otherwise."""
    bridge().store.ping()
    return jsonify({"status": "ok", "database": "ok"})


@api.get("/api/v1/problems")
@requires_token("api")
def list_problems():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    state = choice_arg("state", ProblemState)
    page = bridge().store.list_problems(state, request.args.get("jira_key") or None, limit, cursor)
    return jsonify({"items": [problem_json(row) for row in page.items], "next_cursor": page.next_cursor})


def _problem_or_404(problem_id: int) -> dict[str, Any]:
    problem = bridge().store.get_problem(problem_id)
    if problem is None:
        raise NotFound(f"no problem {problem_id}")
    return problem


@api.get("/api/v1/problems/<int:problem_id>")
@requires_token("api")
def get_problem(problem_id: int):  # type: ignore[no-untyped-def]
    """A problem with its incidents (the newest 500; the incidents API pages through all)."""
    problem = _problem_or_404(problem_id)
    page = bridge().store.list_incidents(IncidentFilter(problem_id=problem_id), MAX_PAGE_SIZE, None)
    history = [{"at": _iso(event["at"]), "kind": event["kind"], "detail": event["detail"]}
               for event in bridge().store.problem_history(problem_id)]
    return jsonify({**problem_json(problem), "incidents": [incident_json(i) for i in page.items],
                    "history": history})


@api.post("/api/v1/problems/<int:problem_id>/jira")
@requires_token("api")
def link_jira(problem_id: int):  # type: ignore[no-untyped-def]
    """Link an existing Jira issue, checked against Jira first."""
    body = _json_object()
    if not isinstance(body, dict) or not isinstance(body.get("jira_key"), str):
        raise BadPayload("expected a JSON object with jira_key", ["jira_key: required string, e.g. LKK-123"])
    ctx = bridge()
    assert ctx.link_options is not None
    problem = link_problem(ctx.store, ctx.jira, ctx.link_options, problem_id, body["jira_key"].strip(), ctx.now())
    return jsonify(problem_json(problem))


@api.delete("/api/v1/problems/<int:problem_id>/jira")
@requires_token("api")
def unlink_jira(problem_id: int):  # type: ignore[no-untyped-def]
    """Forget the link (the Jira issue itself is left alone); idempotent."""
    _problem_or_404(problem_id)
    bridge().store.unlink_jira(problem_id)
    return jsonify(problem_json(_problem_or_404(problem_id)))


def check_jira_webhook(secret: Secret | None, body: bytes) -> None:
    """Accept Jira's HMAC signature (X-Hub-Signature: sha256=...) or the secret in the URL.

    Raises:
        Unauthorized: neither matches, or no secret is configured (unverified webhooks are refused).
    """
    if secret is None:
        raise Unauthorized("Jira webhook is disabled: set BRIDGE_JIRA_WEBHOOK_SECRET")
    signature = request.headers.get("X-Hub-Signature", "")
    if signature.startswith("sha256="):
        expected = hmac.new(secret.value.encode(), body, hashlib.sha256).hexdigest().encode()
        # Bytes, not str: compare_digest raises TypeError on non-ASCII str, and headers can carry any byte.
        if hmac.compare_digest(signature[len("sha256="):].strip().lower().encode(), expected):
            return
    given = request.args.get("secret", "")
    if given and secret.matches(given):
        return
    raise Unauthorized("invalid Jira webhook signature or secret",
                       ["X-Hub-Signature: expected sha256=<HMAC of the body>, or ?secret=<shared secret>"])


@api.post("/api/v1/jira/webhook")
def jira_webhook():  # type: ignore[no-untyped-def]
    """Jira tells us an issue changed; the worker re-reads its conclusion."""
    ctx = bridge()
    body = read_body()
    check_jira_webhook(ctx.settings.jira_webhook_secret, body)
    return jsonify({"status": "ok", **handle_jira_webhook(ctx.store, ctx.jira, ctx.rules, body, ctx.now())}), 202


@api.get("/api/v1/outbox")
@requires_token("api")
def list_outbox():  # type: ignore[no-untyped-def]
    """Side-effect jobs: what is waiting, done, or dead-lettered and why."""
    limit, cursor = page_args()
    state = choice_arg("state", OutboxState)
    page = bridge().store.list_jobs(state, limit, cursor)
    return jsonify({"items": [_job_json(job) for job in page.items], "next_cursor": page.next_cursor})


def _job_json(job: dict[str, Any]) -> dict[str, Any]:
    return {"id": job["id"], "kind": job["kind"], "target": job["target"], "problem_id": job["problem_id"],
            "state": job["state"], "attempts": job["attempts"], "created_at": _iso(job["created_at"]),
            "next_attempt_at": _iso(job["next_attempt_at"]), "finished_at": _iso(job["finished_at"]),
            "last_error": job["last_error"]}


@api.post("/api/v1/outbox/<int:job_id>/retry")
@requires_token("api")
def retry_job(job_id: int):  # type: ignore[no-untyped-def]
    """Run a dead-lettered job again, once its cause (a wrong token, a missing project) is fixed."""
    store = bridge().store
    job = store.get_job(job_id)
    if job is None:
        raise NotFound(f"no outbox job {job_id}")
    if job["state"] != OutboxState.DEAD:
        raise Conflict(f"outbox job {job_id} is {job['state']}, not dead", ["only dead jobs can be retried"])
    retried, skipped = store.retry_dead_jobs(bridge().now(), job_id=job_id)
    if job_id in skipped:
        raise Conflict(f"outbox job {job_id} not retried: pending job {skipped[job_id]} does the same work",
                       [f"dedup_key: {job['dedup_key']} already has pending job {skipped[job_id]}"])
    if not retried:  # retried or finished by another request meanwhile
        raise Conflict(f"outbox job {job_id} is no longer dead")
    return jsonify(_job_json(store.get_job(job_id)))


class ReleaseRequest(BaseModel):
    """The close hook's body, as a release pipeline sends it."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=200)
    project: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")
    issues: list[Annotated[str, Field(pattern=JIRA_KEY.pattern)]] | None = Field(default=None, max_length=10_000)
    released_at: AwareDatetime | None = None


class ReasonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


def _validated(model: type[BaseModel]) -> Any:
    body = _json_object()
    if not isinstance(body, dict):
        raise BadPayload("expected a JSON object", ["body: not a JSON object"])
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise BadPayload(f"invalid {model.__name__}", describe(exc)) from exc


@api.post("/api/v1/releases")
@requires_token("release")
def release_shipped():  # type: ignore[no-untyped-def]
    """The release close hook: close the problems fixed by this release and all their incidents."""
    ctx = bridge()
    release = _validated(ReleaseRequest)
    summary = close_release(ctx.store, ctx.jira, ctx.rules, project=release.project, version=release.version,
                            issues=release.issues, released_at=release.released_at, now=ctx.now())
    return jsonify({"status": "ok", **summary})


@api.get("/api/v1/releases")
@requires_token("api")
def list_releases():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    page = bridge().store.list_releases(limit, cursor)
    items = [{"id": row["id"], "project": row["project"], "version": row["version"], "via": row["via"],
              "released_at": _iso(row["released_at"]), "received_at": _iso(row["received_at"]),
              "summary": row["summary"]} for row in page.items]
    return jsonify({"items": items, "next_cursor": page.next_cursor})


@api.post("/api/v1/problems/<int:problem_id>/close")
@requires_token("api")
def close_problem(problem_id: int):  # type: ignore[no-untyped-def]
    """Close a problem and its incidents by hand, with a reason."""
    body = _validated(ReasonRequest)
    close_problem_by_hand(bridge().store, problem_id, body.reason, bridge().now())
    return jsonify(problem_json(_problem_or_404(problem_id)))


@api.post("/api/v1/problems/<int:problem_id>/reopen")
@requires_token("api")
def reopen_problem(problem_id: int):  # type: ignore[no-untyped-def]
    """Reopen a closed problem by hand, with a reason."""
    body = _validated(ReasonRequest)
    reopen_problem_by_hand(bridge().store, problem_id, body.reason, bridge().now())
    return jsonify(problem_json(_problem_or_404(problem_id)))


@api.get("/metrics")
def prometheus_metrics():  # type: ignore[no-untyped-def]
    """Prometheus exposition: counters summed across processes, gauges from the database."""
    body, content_type = metrics.exposition(bridge().store, bridge().rules)
    return Response(body, content_type=content_type)


@api.get("/api/v1/openapi.json")
def openapi_document():  # type: ignore[no-untyped-def]
    """This API, described for clients and for schemathesis."""
    return jsonify(build_document(ReleaseRequest, ReasonRequest))
