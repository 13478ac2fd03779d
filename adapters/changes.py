"""PagerDuty Change Events (`POST /v2/change/enqueue`) to the bridge's changes: never incidents, only suspects.

A change event says that something changed (a deploy outside the pipeline, a configuration
or infrastructure change): `payload.summary` (required, at most 1,024 characters),
`payload.timestamp`, `payload.source`, `payload.custom_details`, `links`, `images`. Like
alert events, it carries its routing key in the body: the endpoint (bridge/api/webhooks.py)
authenticates with it and hands the event here without it. Unknown fields are ignored, as
PagerDuty ignores them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from adapters.events import Link
from bridge.errors import BadPayload
from bridge.validation import MAX_LABEL_VALUE_LENGTH, MAX_LABELS, SafeStr, describe

# PagerDuty's documented limit of a change event's summary; the rest as for alert events (adapters/events.py).
MAX_SUMMARY_LENGTH = 1024
MAX_LINKS = 32
# custom_details are kept as sent, within this many bytes of JSON: far above a pipeline's notes.
MAX_DETAILS_BYTES = 64 * 1024

_Bounded = Field(default="", max_length=MAX_LABEL_VALUE_LENGTH)

# The event as the OpenAPI document describes it (the models below are the real check).
PAYLOAD_SCHEMA = {
    "type": "object",
    "required": ["routing_key", "payload"],
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "payload": {
            "type": "object",
            "required": ["summary"],
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": MAX_SUMMARY_LENGTH},
                "timestamp": {"type": "string", "format": "date-time"},
                "source": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
        "links": {"type": "array", "maxItems": MAX_LINKS, "items": {"type": "object"}},
        "images": {"type": "array", "maxItems": MAX_LINKS, "items": {"type": "object"}},
    },
}


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")

    summary: SafeStr = Field(min_length=1, max_length=MAX_SUMMARY_LENGTH)
    timestamp: AwareDatetime | None = None
    source: SafeStr = _Bounded
    custom_details: dict[str, Any] | None = None


class _ChangeEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    routing_key: str | None = None  # checked and redacted by the endpoint before this model sees it
    payload: _Payload
    links: list[Link] = Field(default=[], max_length=MAX_LINKS)
    images: list[dict[str, Any]] = Field(default=[], max_length=MAX_LINKS)


@dataclass(frozen=True)
class ChangeEvent:
    """A change event as the bridge keeps it: `labels` are its text custom_details, which name what it touched."""

    summary: str
    source: str
    timestamp: datetime | None
    custom_details: Mapping[str, Any] | None
    links: tuple[Mapping[str, str], ...]
    labels: Mapping[str, str]


def _labels(details: Mapping[str, Any] | None) -> dict[str, str]:
    """The custom details that are text or numbers, as labels (`service: lkk`), bounded; nested ones are kept
    in custom_details only."""
    if not details:
        return {}
    found = {}
    for name, value in list(details.items())[:MAX_LABELS]:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            continue
        found[str(name)[:256]] = str(value)[:MAX_LABEL_VALUE_LENGTH]
    return found


def parse(payload: Any) -> ChangeEvent:
    """Parse one change event (its routing_key already checked by the endpoint).

    Raises:
        BadPayload: not an object, or not a valid change event (each finding names its field):
            no summary, a field too long, custom_details larger than MAX_DETAILS_BYTES.
    """
    if not isinstance(payload, Mapping):
        raise BadPayload("PagerDuty change event must be a JSON object")
    try:
        event = _ChangeEvent.model_validate(payload)
    except ValidationError as exc:
        raise BadPayload("invalid PagerDuty change event", describe(exc)) from exc
    details = event.payload.custom_details
    if details is not None and len(orjson.dumps(details)) > MAX_DETAILS_BYTES:
        raise BadPayload(
            "invalid PagerDuty change event",
            [f"payload.custom_details: larger than {MAX_DETAILS_BYTES} bytes of JSON"],
        )
    if details is not None and "\\u0000" in orjson.dumps(details).decode():
        raise BadPayload("invalid PagerDuty change event", ["payload.custom_details: NUL characters are not allowed"])
    return ChangeEvent(
        summary=event.payload.summary,
        source=event.payload.source,
        timestamp=event.payload.timestamp,
        custom_details=details,
        links=tuple({"href": link.href, "text": link.text} for link in event.links),
        labels=_labels(details),
    )
