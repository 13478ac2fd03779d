"""Webhooks in: monitoring senders (Alertmanager, Zabbix, Grafana, PagerDuty Events v2 and Change Events) and Jira.

Each answers only after what it was sent is committed, and keeps what it refuses with its
reason (docs/explanation/incidents.md, the rule of the edge). Senders authenticate before anything is read or
kept: a bearer token per source group, the routing key for Events v2, an HMAC for Jira.
PagerDuty's own client libraries post to `<base>/v2/enqueue` and `<base>/v2/change/enqueue`:
those paths are the same endpoints, so a bridge can stand in for events.pagerduty.com.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from flask import Blueprint, jsonify, request

from adapters import SOURCES, changes, events
from bridge import metrics
from bridge.config import Secret
from bridge.domain.incidents import EventRoutingKey
from bridge.errors import (
    BadPayload,
    BridgeError,
    InvalidRoutingKey,
    NotFound,
    PayloadTooLarge,
    SenderShapedError,
    Unauthorized,
    UnsupportedMediaType,
)
from bridge.ingest.deliveries import IngestResult, body_text, keep_refused, prepare_delivery
from bridge.ingest.measured import delivery_answer, measured_ingest
from bridge.jira.webhook import handle_jira_webhook
from bridge.validation import nesting_depth_exceeds
from bridge.web.context import bridge
from bridge.web.edge import check_bearer, read_body, require_json, unread_head
from bridge.web.throttle import count_failure, refuse_if_throttled

log = logging.getLogger(__name__)
webhooks = Blueprint("webhooks", __name__)
# What the Jira webhook's failures count as (bridge.web.throttle).
JIRA_WEBHOOK = "jira_webhook"


@webhooks.before_request
def _require_json_body() -> None:
    """The Jira webhook like every JSON endpoint; the senders check the type after authenticating, to keep
    what they refuse."""
    if request.endpoint == "webhooks.jira_webhook":
        require_json()


def _webhook_body(
    source: str, limit_name: str = "BRIDGE_MAX_BODY_BYTES", kept: Callable[[str], str | None] = lambda text: text
) -> bytes:
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
        text = kept(body_text(exc.head if isinstance(exc, PayloadTooLarge) else unread_head()))
        if text is not None:
            keep_refused(
                ctx.store,
                source,
                ctx.now(),
                exc,
                body=text,
                content_type=request.content_type,
                body_limit=ctx.settings.rejected_body_limit,
            )
        raise


@webhooks.post("/api/v1/alerts/<source>")
def receive_alerts(source: str):  # type: ignore[no-untyped-def]
    """Webhook receiver: answers 200 only after the notification is committed (docs/explanation/incidents.md: the rule of the edge)."""
    ctx = bridge()
    if source not in SOURCES or not SOURCES[source].alerts_endpoint:
        served = [name for name, known in SOURCES.items() if known.alerts_endpoint]
        raise NotFound(f"unknown source {source!r}", [f"source: expected one of {', '.join(served)}"])

    def write() -> IngestResult:
        check_bearer(source)
        delivery = prepare_delivery(
            ctx.store,
            ctx.rules,
            source,
            _webhook_body(source),
            ctx.now(),
            content_type=request.content_type,
            rejected_body_limit=ctx.settings.rejected_body_limit,
            max_depth=ctx.settings.max_json_depth,
            max_alerts=ctx.settings.max_alerts,
        )
        return ctx.write(delivery)

    return jsonify(delivery_answer(measured_ingest(source, write)))


def _routing_key(keys: tuple[EventRoutingKey, ...], text: str, event: Any) -> tuple[EventRoutingKey, str] | None:
    """The configured key a body carries and the key as given: from the event, or, in a body that is no
    JSON object (cut, or broken), from its text, so a known sender's refusal is kept like any other."""
    given = event.get("routing_key") if isinstance(event, dict) else events.routing_key_in_text(text)
    key = events.find_routing_key(keys, given)
    return (key, given) if key is not None and isinstance(given, str) else None


def _stored_event_text(text: str, event: Any, given: str) -> str:
    """The body as stored and parsed: the routing_key "<redacted>" (never kept, never logged).

    Redacted in the parsed event, where escapes no longer hide the key (`\\u0061bc...` in a
    summary, an object's key, an array): the text redacted as sent is kept when it reads as
    exactly that event, so everything else stays as sent; otherwise the event is written out again.
    """
    redacted = events.redact(text, given)
    if event is None:  # no JSON: only the text can be redacted
        return redacted
    try:
        clean = events.redact_event(event, given)
    except RecursionError:  # nested deeper than any event: refused as such, kept as the text redacts it
        return redacted
    try:
        as_sent = orjson.loads(redacted) == clean
    except (orjson.JSONDecodeError, RecursionError):
        as_sent = False
    return redacted if as_sent else orjson.dumps(clean).decode()


def _authenticated_event() -> tuple[EventRoutingKey, str, Any, bytes]:
    """Read a PagerDuty event (alert or change) and find its routing key: the key, the body as it may be
    stored (the key redacted), the event decoded (None when the body is no JSON) and the body.

    Raises:
        InvalidRoutingKey: no configured key in the body (nothing is kept: the sender is unknown).
        UnsupportedMediaType, PayloadTooLarge: refused (and kept, for a known key).
    """
    ctx = bridge()
    keys = ctx.rules.event_routing_keys
    # PagerDuty's own limit, unless the operator's is lower.
    request.max_content_length = min(events.MAX_BODY_BYTES, ctx.settings.max_body_bytes)
    limit_name = (
        "PagerDuty Events API limit" if events.MAX_BODY_BYTES < ctx.settings.max_body_bytes else "BRIDGE_MAX_BODY_BYTES"
    )

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
    return key, _stored_event_text(text, event, given), event, body


def _accept_event() -> tuple[Any, str]:
    """Authenticate, parse, route and commit one PagerDuty event; the result and the dedup_key to answer."""
    ctx = bridge()
    key, stored, _, _ = _authenticated_event()
    now = ctx.now()
    delivery = prepare_delivery(
        ctx.store,
        ctx.rules,
        events.SOURCE,
        stored.encode(),
        now,
        content_type=request.content_type,
        rejected_body_limit=ctx.settings.rejected_body_limit,
        max_depth=ctx.settings.max_json_depth,
        max_alerts=ctx.settings.max_alerts,
        complete=functools.partial(events.attach_routing_key, key=key, received_at=now, new_dedup_key=uuid.uuid4().hex),
    )
    return ctx.write(delivery), events.accepted_dedup_key(delivery.parsed)


def pagerduty_error(exc: BridgeError) -> SenderShapedError:
    """A refusal in PagerDuty's shape too: `{"status": "invalid event", "message": "Event object is invalid"}`."""
    if exc.status >= 500:
        return SenderShapedError(exc, {})
    message = "Event object is invalid" if exc.status == 400 else exc.message
    return SenderShapedError(
        exc, {"status": "invalid event", "message": message, "errors": exc.errors or [exc.message]}
    )


@webhooks.post("/api/v1/alerts/events")
@webhooks.post("/v2/enqueue")
def receive_event():  # type: ignore[no-untyped-def]
    """PagerDuty Events API v2: answers 202 like PagerDuty, only after the event is committed.

    The credential is the routing_key inside the body (rules.yaml `events.routing_keys`),
    so there is no bearer token; an unknown key is a 400, as PagerDuty answers it.
    """
    started = time.perf_counter()
    try:
        result, dedup_key = _accept_event()
    except BridgeError as exc:
        outcome = (
            "unauthorized" if isinstance(exc, InvalidRoutingKey) else metrics.WEBHOOK_OUTCOMES.get(exc.status, "error")
        )
        metrics.labelled(metrics.NOTIFICATIONS, events.SOURCE, outcome).inc()
        raise pagerduty_error(exc) from exc
    finally:
        metrics.labelled(metrics.WEBHOOK_DURATION, events.SOURCE).observe(time.perf_counter() - started)
    metrics.record_ingest(events.SOURCE, result)
    return jsonify(
        {
            "status": "success",
            "message": "Event processed",
            "dedup_key": dedup_key,
            "incidents": result.incident_ids,
            "outcomes": result.outcomes,
        }
    ), 202


def _accept_change() -> int:
    """Authenticate, parse and commit one PagerDuty change event; the change's id. A refusal is kept."""
    ctx = bridge()
    key, stored, event, body = _authenticated_event()
    now = ctx.now()
    try:
        if event is None:
            raise BadPayload("body is not valid JSON", ["body: expected a change event object"])
        if nesting_depth_exceeds(body, ctx.settings.max_json_depth):
            raise BadPayload(
                "JSON nested too deep", [f"body: more than {ctx.settings.max_json_depth} levels of objects and arrays"]
            )
        change = changes.parse(orjson.loads(stored))  # as stored: the key never lands in a change's fields
    except BadPayload as exc:
        keep_refused(
            ctx.store,
            events.SOURCE,
            now,
            exc,
            body=stored,
            content_type=request.content_type,
            body_limit=ctx.settings.rejected_body_limit,
        )
        raise
    values = dict(
        routing_key=key.name,
        summary=change.summary,
        source=change.source or None,
        changed_at=change.timestamp or now,
        received_at=now,
        custom_details=dict(change.custom_details) if change.custom_details is not None else None,
        links=[dict(link) for link in change.links],
        labels={**key.labels, **change.labels},
    )
    change_id = ctx.store.run(lambda conn: ctx.store.add_change(conn, values))
    log.info("change recorded", extra={"change_id": change_id, "routing_key": key.name})
    return change_id


@webhooks.post("/api/v1/changes")
@webhooks.post("/v2/change/enqueue")
def receive_change():  # type: ignore[no-untyped-def]
    """PagerDuty Change Events: a change is recorded (a suspect of the problems that follow), never an incident.

    Authenticated, refused and answered as Events v2 (202, PagerDuty's shapes).
    """
    try:
        change_id = _accept_change()
    except BridgeError as exc:
        raise pagerduty_error(exc) from exc
    return jsonify({"status": "success", "message": "Change event processed", "change_id": change_id}), 202


def check_jira_webhook(secret: Secret | None, body: bytes) -> None:
    """Accept Jira's HMAC signature (X-Hub-Signature: sha256=...) or the secret in the URL.

    Raises:
        TooManyFailures: this address failed too often lately (429).
        Unauthorized: neither matches, or no secret is configured (unverified webhooks are refused).
    """
    if secret is None:
        raise Unauthorized("Jira webhook is disabled: set BRIDGE_JIRA_WEBHOOK_SECRET")
    refuse_if_throttled(JIRA_WEBHOOK)
    signature = request.headers.get("X-Hub-Signature", "")
    if signature.startswith("sha256="):
        expected = hmac.new(secret.value.encode(), body, hashlib.sha256).hexdigest().encode()
        # Bytes, not str: compare_digest raises TypeError on non-ASCII str, and headers can carry any byte.
        if hmac.compare_digest(signature[len("sha256=") :].strip().lower().encode(), expected):
            return
    given = request.args.get("secret", "")
    if given and secret.matches(given):
        return
    count_failure(JIRA_WEBHOOK)
    raise Unauthorized(
        "invalid Jira webhook signature or secret",
        ["X-Hub-Signature: expected sha256=<HMAC of the body>, or ?secret=<shared secret>"],
    )


@webhooks.post("/api/v1/jira/webhook")
def jira_webhook():  # type: ignore[no-untyped-def]
    """Jira tells us an issue changed; the worker re-reads its conclusion."""
    ctx = bridge()
    body = read_body()
    check_jira_webhook(ctx.settings.jira_webhook_secret, body)
    marker_prefix = ctx.link_options.marker_prefix if ctx.link_options else None
    answer = handle_jira_webhook(ctx.store, ctx.jira, ctx.rules, body, ctx.now(), marker_prefix)
    return jsonify({"status": "ok", **answer}), 202
