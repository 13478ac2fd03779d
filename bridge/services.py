"""Use cases: plain functions that take their collaborators as arguments."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy.engine import Connection

from adapters import PARSERS
from bridge.domain import AlertResult, ParsedNotification, Rules, apply_notification, route_alert
from bridge.errors import BadPayload, NotFound
from bridge.storage import Store

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
        store.save_incidents(conn, changed, notification_id)
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
