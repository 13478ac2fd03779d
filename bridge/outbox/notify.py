"""Outbound webhooks: lifecycle events queued with the change that makes them, delivered signed by the worker.

One format for every receiver: `POST` JSON `{"event", "id", "occurred_at", <subject>...}` with
`X-Bridge-Event`, `X-Bridge-Delivery` (the same on every retry, so receivers drop repeats)
and `X-Bridge-Signature: t=<unix time of the attempt>,v1=<HMAC-SHA256 of the time, the delivery id and
the event, a newline after each, then the raw body>`: a captured delivery can neither be sent
again later nor under another id or event. A notify target may shape its own JSON body with a
sandboxed template whose values are JSON-encoded. Nothing is queued for an event no target
asked for, so the ingest hot path pays one set lookup when notify is unused.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import requests

from bridge.domain.incidents import AlertResult, Outcome
from bridge.domain.problems import Renderer
from bridge.domain.rules import Rules
from bridge.domain.tickets import NotifyTarget, targets_wanting, wanted_events
from bridge.errors import OutboundFailure
from bridge.outbox.jobs import Deliver, queue
from bridge.rules.templates import TemplateError, is_json
from bridge.shapes import incident_shape, iso, problem_shape
from bridge.storage.engine import Connection
from bridge.storage.store import Store

TIMEOUT_SECONDS = 10.0
# Answers worth another try: the receiver is busy, down or timed out (the rest are final).
RETRYABLE_STATUSES = frozenset({408, 429})
USER_AGENT = "incident-bridge"


def queue_delivery(
    conn: Connection,
    store: Store,
    destination: str,
    event: str,
    now: datetime,
    subject: Mapping[str, Any],
    problem_id: int | None = None,
) -> None:
    """Queue one signed delivery in the caller's transaction, with its own id (kept across retries)."""
    delivery_id = uuid.uuid4().hex
    body = {"event": event, "id": delivery_id, "occurred_at": iso(now), **subject}
    queue(conn, store, Deliver(destination, event, delivery_id, body, problem_id), now)


@dataclass(frozen=True)
class Announcer:
    """Queues lifecycle events for the notify targets that asked for them, in the caller's transaction."""

    store: Store
    targets: tuple[NotifyTarget, ...]
    wanted: frozenset[str]

    @classmethod
    def of(cls, store: Store, rules: Rules) -> Announcer | None:
        """None when rules.yaml has no notify target: callers then skip even building the event."""
        if not rules.notify_targets:
            return None
        return cls(store, rules.notify_targets, wanted_events(rules.notify_targets))

    def wants(self, event: str) -> bool:
        return event in self.wanted

    def announce(
        self, conn: Connection, event: str, now: datetime, subject: Mapping[str, Any], problem_id: int | None = None
    ) -> None:
        for target in targets_wanting(self.targets, event):
            queue_delivery(conn, self.store, f"notify:{target.name}", event, now, subject, problem_id)

    def announce_problem(self, conn: Connection, event: str, now: datetime, problem_id: int, **more: Any) -> None:
        """A problem event with the problem as it is now in this transaction."""
        if not self.wants(event):
            return
        problem = self.store.find_problem(conn, problem_id)
        if problem is not None:
            self.announce(conn, event, now, {"problem": problem_shape(problem), **more}, problem_id)


def announce_incidents(
    conn: Connection, announcer: Announcer | None, results: list[list[AlertResult]], now: datetime
) -> None:
    """incident.opened (created or reopened) and incident.resolved for what one ingest transaction did."""
    if announcer is None or not (announcer.wants("incident.opened") or announcer.wants("incident.resolved")):
        return
    for own in results:
        for result in own:
            if result.incident is None or result.incident.held:  # its window's end announces it, once
                continue
            if result.outcome in (Outcome.CREATED, Outcome.REOPENED):
                event = "incident.opened"
            elif result.outcome is Outcome.RESOLVED:
                event = "incident.resolved"
            else:
                continue
            if announcer.wants(event):
                shape = incident_shape(result.incident)
                announcer.announce(conn, event, now, {"incident": shape}, result.incident.problem_id)


def announce_auto_closed(announcer: Announcer | None) -> Callable[[Connection, list[int]], None] | None:
    """incident.closed for incidents the worker auto-closes, in its transaction; None when nobody asked."""
    if announcer is None or not announcer.wants("incident.closed"):
        return None

    def announce(conn: Connection, ids: list[int]) -> None:
        for incident in announcer.store.incidents_by_ids(conn, ids):
            shape = {"incident": incident_shape(incident)}
            announcer.announce(
                conn, "incident.closed", incident.closed_at or incident.last_seen, shape, incident.problem_id
            )

    return announce


# Sending (the worker) ---------------------------------------------------------


class DeliveryFailed(OutboundFailure):
    """A delivery was not accepted; retried with backoff when `retryable`, else dead with the answer."""


@dataclass(frozen=True)
class Endpoint:
    """Where a delivery goes, the key that signs it and the template that shapes it (if any)."""

    name: str
    url: str
    secret: str
    template: Renderer | None = None


def endpoint_for(rules: Rules, destination: str) -> Endpoint | None:
    """The receiver a queued delivery names (`notify:<name>` or `ticket:<name>`), None if gone from rules."""
    kind, _, name = destination.partition(":")
    if kind == "notify":
        target = next((t for t in rules.notify_targets if t.name == name), None)
        return Endpoint(name, target.url, target.secret, target.body_template) if target else None
    system = rules.ticket_systems.get(name) if kind == "ticket" else None
    if system is None or system.secret is None:
        return None
    return Endpoint(name, system.url, system.secret)


def signed_text(timestamp: int, delivery_id: str, event: str, body: bytes) -> bytes:
    """What X-Bridge-Signature signs: the timestamp, the delivery id and the event, each ended by a newline
    (which none of them holds, so no field can borrow from the next), then the raw body."""
    return f"{timestamp}\n{delivery_id}\n{event}\n".encode() + body


def signature(secret: str, timestamp: int, delivery_id: str, event: str, body: bytes) -> str:
    """The X-Bridge-Signature value: `t=<timestamp>,v1=<hex HMAC-SHA256 of the signed text>`."""
    digest = hmac.new(secret.encode(), signed_text(timestamp, delivery_id, event, body), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def request_of(endpoint: Endpoint, job: Deliver, timestamp: int) -> tuple[bytes, dict[str, str]]:
    """The exact bytes and headers of a delivery sent at `timestamp` (unix seconds): the body and
    delivery id are the same on every retry, the signature's time is the attempt's.

    Raises:
        DeliveryFailed: the target's body template fails on this event or renders no JSON (dead, never
            sent: fix the template, then retry).
    """
    if endpoint.template is not None:
        try:
            text = endpoint.template(job.body)
        except TemplateError as exc:
            raise DeliveryFailed(f"body_template of {endpoint.name} fails on {job.event}: {exc}", False) from exc
        if not is_json(text):
            raise DeliveryFailed(f"body_template of {endpoint.name} renders no valid JSON on {job.event}", False)
        body = text.encode()
    else:
        body = orjson.dumps(job.body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Bridge-Event": job.event,
        "X-Bridge-Delivery": job.delivery_id,
        "X-Bridge-Signature": signature(endpoint.secret, timestamp, job.delivery_id, job.event, body),
    }
    return body, headers


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def send(session: requests.Session, endpoint: Endpoint, job: Deliver, now: datetime) -> None:
    """POST a delivery once.

    Raises:
        DeliveryFailed: timeouts, connection errors, 408, 429 and 5xx are retryable (Retry-After
            honoured); any other answer but 2xx is final, with the receiver's answer.
    """
    body, headers = request_of(endpoint, job, int(time.time()))
    try:
        answer = session.post(endpoint.url, data=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except requests.Timeout as exc:
        raise DeliveryFailed(f"{endpoint.name}: timed out after {TIMEOUT_SECONDS:g}s", True) from exc
    except requests.RequestException as exc:
        raise DeliveryFailed(f"{endpoint.name}: cannot connect ({type(exc).__name__})", True) from exc
    if 200 <= answer.status_code < 300:
        return
    said = answer.text[:500].strip()
    message = f"{endpoint.name} answered {answer.status_code}" + (f": {said}" if said else "")
    retryable = answer.status_code in RETRYABLE_STATUSES or answer.status_code >= 500
    raise DeliveryFailed(message, retryable, retry_after_seconds(answer.headers.get("Retry-After"), now))
