"""PagerDuty Events API v2 (alert events) to domain alerts.

Hundreds of senders speak this format (uptime checkers, CI systems, cloud monitors, error
trackers, Alertmanager's `pagerduty_configs` with a custom `url`). One event is one alert:
`trigger` fires, `resolve` resolves, `acknowledge` acknowledges the firing incident (its
response clock stops, as when a person acknowledges it; the routing key's name is who did).

The sender's credential is the `routing_key` inside the body, so the endpoint (bridge/api/webhooks.py)
authenticates with `find_routing_key`, stores and parses the body only after `redact`, and
applies the matched key's name and default labels with `attach_routing_key`. `parse` itself
never sees a key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from bridge.domain.incidents import Alert, AlertStatus, EventRoutingKey, ParsedNotification
from bridge.errors import BadPayload
from bridge.validation import MAX_LABEL_VALUE_LENGTH, MAX_LABELS, SafeStr, bounded_str, describe

SOURCE = "events"
REDACTED = "<redacted>"
# PagerDuty's documented limits (Events API v2 overview and "Send an Alert Event").
MAX_BODY_BYTES = 512 * 1024
MAX_SUMMARY_LENGTH = 1024
MAX_DEDUP_KEY_LENGTH = 255
# What one event may attach: far above real use, low enough to keep an incident row small.
MAX_CONTEXTS = 32
STATUS_MAP = {"trigger": AlertStatus.FIRING, "acknowledge": AlertStatus.FIRING, "resolve": AlertStatus.RESOLVED}
# payload fields that become labels, so routes and problem rules can match them.
LABEL_FIELDS = ("severity", "source", "component", "group", "class")

_TEXT = {"type": "string"}
_CONTEXTS = {"type": "array", "maxItems": MAX_CONTEXTS, "items": {"type": "object"}}
# The event as the OpenAPI document describes it (the models below are the real check).
PAYLOAD_SCHEMA = {
    "type": "object",
    "required": ["routing_key", "event_action"],
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "event_action": {"enum": list(STATUS_MAP)},
        "dedup_key": {"type": "string", "maxLength": MAX_DEDUP_KEY_LENGTH},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": MAX_SUMMARY_LENGTH},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": {"type": "string", "format": "date-time"},
                "component": _TEXT,
                "group": _TEXT,
                "class": _TEXT,
                "custom_details": {},
            },
        },
        "links": _CONTEXTS,
        "images": _CONTEXTS,
        "client": _TEXT,
        "client_url": _TEXT,
    },
}

_Text = SafeStr
_Bounded = Field(default="", max_length=MAX_LABEL_VALUE_LENGTH)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    summary: _Text = Field(min_length=1, max_length=MAX_SUMMARY_LENGTH)
    source: _Text = Field(min_length=1, max_length=MAX_LABEL_VALUE_LENGTH)
    severity: Literal["critical", "error", "warning", "info"]
    timestamp: AwareDatetime | None = None
    component: _Text = _Bounded
    group: _Text = _Bounded
    class_: _Text = Field(default="", max_length=MAX_LABEL_VALUE_LENGTH, alias="class")
    custom_details: Any = None


class Link(BaseModel):
    """A link an event carries (alert and change events alike)."""

    model_config = ConfigDict(extra="allow")

    href: _Text = Field(min_length=1, max_length=MAX_LABEL_VALUE_LENGTH)
    text: _Text = _Bounded


class _Image(BaseModel):
    model_config = ConfigDict(extra="allow")

    src: _Text = Field(min_length=1, max_length=MAX_LABEL_VALUE_LENGTH)
    href: _Text = _Bounded
    alt: _Text = _Bounded


class _Event(BaseModel):
    # Unknown fields are allowed, as PagerDuty ignores them (senders add their own).
    model_config = ConfigDict(extra="allow")

    routing_key: str
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: bounded_str(1, MAX_DEDUP_KEY_LENGTH) | None = None  # type: ignore[valid-type]
    payload: _Payload | None = None
    links: list[Link] = Field(default=[], max_length=MAX_CONTEXTS)
    images: list[_Image] = Field(default=[], max_length=MAX_CONTEXTS)
    client: _Text = _Bounded
    client_url: _Text = _Bounded


def _missing(event: _Event) -> list[str]:
    """What the event's action needs and it lacks, as PagerDuty requires it."""
    if event.event_action == "trigger" and event.payload is None:
        return ["payload: required for a trigger event"]
    if event.event_action != "trigger" and event.dedup_key is None:
        return [f"dedup_key: required to {event.event_action}"]
    return []


def _detail_text(value: Any) -> str:
    """A custom detail as annotation text: strings as they are, anything else as compact JSON, bounded."""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text.replace("\x00", "\ufffd")[:MAX_LABEL_VALUE_LENGTH]


def _details(custom: Any) -> dict[str, str]:
    """custom_details as annotations `details.<name>`: free-form upstream, so bounded rather than refused."""
    if custom is None:
        return {}
    if not isinstance(custom, Mapping):
        return {"details": _detail_text(custom)}
    return {
        f"details.{name}"[:256].replace("\x00", "\ufffd"): _detail_text(value)
        for name, value in list(custom.items())[:MAX_LABELS]
    }


def _contexts(event: _Event) -> dict[str, str]:
    """links, images and the client as annotations; names ending in `_url` show as links on the incident's page."""
    found: dict[str, str] = {}
    for number, link in enumerate(event.links, 1):
        found[f"link_{number}_url"] = link.href
        found[f"link_{number}_text"] = link.text
    for number, image in enumerate(event.images, 1):
        found[f"image_{number}_url"] = image.src
        found[f"image_{number}_alt"] = image.alt
    found["client"] = event.client
    found["client_url"] = event.client_url
    return {name: value for name, value in found.items() if value}


def _to_alert(event: _Event) -> Alert:
    payload = event.payload
    labels: dict[str, str] = {}
    annotations = _contexts(event)
    summary = ""
    if payload is not None:
        values = {
            "severity": payload.severity,
            "source": payload.source,
            "component": payload.component,
            "group": payload.group,
            "class": payload.class_,
        }
        labels = {name: values[name] for name in LABEL_FIELDS if values[name]}
        annotations.update(_details(payload.custom_details))
        summary = payload.summary
    acknowledged = event.event_action == "acknowledge"
    if acknowledged:
        annotations["acknowledged_by"] = event.client or SOURCE
    return Alert(
        source=SOURCE,
        status=STATUS_MAP[event.event_action],
        source_id=event.dedup_key or "",
        labels=labels,
        annotations=annotations,
        summary=summary,
        # An acknowledgement never starts an episode: it must not reopen a resolved incident.
        starts_at=payload.timestamp if payload is not None and not acknowledged else None,
        is_update=acknowledged,
        note_only=acknowledged,
    )


def parse(payload: Any) -> ParsedNotification:
    """Parse one Events v2 alert event (its routing_key already checked and redacted by the endpoint).

    Raises:
        BadPayload: not an object, or not a valid event (each finding names its field).
    """
    if not isinstance(payload, Mapping):
        raise BadPayload("PagerDuty event must be a JSON object")
    try:
        event = _Event.model_validate(payload)
    except ValidationError as exc:
        raise BadPayload("invalid PagerDuty event", describe(exc)) from exc
    missing = _missing(event)
    if missing:
        raise BadPayload("invalid PagerDuty event", missing)
    return ParsedNotification(source=SOURCE, alerts=(_to_alert(event),))


def find_routing_key(keys: Sequence[EventRoutingKey], given: Any) -> EventRoutingKey | None:
    """The configured key equal to `given`, checking every entry so the time taken says nothing of which."""
    if not isinstance(given, str) or not given:
        return None
    found = None
    for key in keys:
        if key.matches(given) and found is None:
            found = key
    return found


# `"routing_key": "..."` in raw text, the closing quote optional: a refused body may be cut anywhere.
_ROUTING_KEY_TEXT = re.compile(r'"routing_key"\s*:\s*"((?:[^"\\]|\\.)*)"?', re.DOTALL)


def routing_key_in_text(text: str) -> str | None:
    """The routing_key of a body that could not be parsed (too large, so cut), for deciding whether to keep it."""
    match = _ROUTING_KEY_TEXT.search(text)
    return match.group(1) if match else None


# A JSON string literal in raw text (an object's key or a value), its closing quote optional.
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.DOTALL)
_ESCAPED = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def redact(text: str, key: str | None = None) -> str:
    """The body with every routing_key value replaced by "<redacted>", and `key` wherever else it appears:
    as written, or spelt with JSON escapes in any string (`\\u0061bc...`), object keys included. Works
    on a body cut anywhere, which no parser reads; a parsed event is redacted by `redact_event`."""
    text = _ROUTING_KEY_TEXT.sub(f'"routing_key": "{REDACTED}"', text)
    if not key:
        return text
    return _STRING_LITERAL.sub(lambda found: _redacted_literal(found.group(), key), text.replace(key, REDACTED))


def _redacted_literal(literal: str, key: str) -> str:
    """A string literal as it was, or (when its escapes spell `key`) written again with `key` redacted."""
    if "\\" not in literal:
        return literal
    closed = len(literal) > 1 and literal.endswith('"') and not _escaped_quote(literal)
    decoded = _ESCAPE.sub(_unescaped, literal[1:-1] if closed else literal[1:])
    if key not in decoded:
        return literal
    # \\ud83d\\ude00 decodes to two surrogates: joined again, and a lone one replaced, so it encodes.
    joined = decoded.replace(key, REDACTED).encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return orjson.dumps(joined).decode()


def _escaped_quote(literal: str) -> bool:
    """Whether a literal's last quote is escaped (so the literal was cut before its end)."""
    backslashes = len(literal[:-1]) - len(literal[:-1].rstrip("\\"))
    return backslashes % 2 == 1


def _unescaped(escape: re.Match[str]) -> str:
    code = escape.group(1)
    return chr(int(code[1:], 16)) if len(code) == 5 else _ESCAPED.get(code, code)


def redact_event(value: Any, key: str) -> Any:
    """A parsed event with every routing_key value "<redacted>", and `key` redacted in every string and
    object key at any depth: what the event says once its escapes are read, whatever they were."""
    if isinstance(value, dict):
        return {
            item.replace(key, REDACTED): REDACTED
            if item == "routing_key" and isinstance(inner, str)
            else redact_event(inner, key)
            for item, inner in value.items()
        }
    if isinstance(value, list):
        return [redact_event(inner, key) for inner in value]
    return value.replace(key, REDACTED) if isinstance(value, str) else value


def accepted_dedup_key(parsed: ParsedNotification) -> str:
    """The dedup_key to answer with: the event's own, or the one generated for a trigger without it."""
    [alert] = parsed.alerts
    return alert.source_id.split(":", 1)[1]


def attach_routing_key(
    parsed: ParsedNotification, key: EventRoutingKey, received_at: datetime, new_dedup_key: str
) -> ParsedNotification:
    """The event as the key's sender meant it: keyed within the key's name, with its default labels.

    The incident key holds the key's name, never the key. A trigger without dedup_key gets
    `new_dedup_key` (PagerDuty generates one too: such a trigger is always a new alert), and
    one without a timestamp starts its episode on receipt, so a trigger after a resolve is a
    new episode, as in PagerDuty. An acknowledgement records when it arrived.
    """
    alerts = []
    for alert in parsed.alerts:
        starts_at = alert.starts_at
        if starts_at is None and alert.status is AlertStatus.FIRING and not alert.note_only:
            starts_at = received_at
        annotations = dict(alert.annotations)
        if alert.note_only:
            annotations["acknowledged_at"] = received_at.isoformat().replace("+00:00", "Z")
        alerts.append(
            replace(
                alert,
                source_id=f"{key.name}:{alert.source_id or new_dedup_key}",
                labels={**key.labels, **alert.labels},
                annotations=annotations,
                starts_at=starts_at,
                # An acknowledge stops the response clock as a person's does; the key's name is who acked.
                acknowledged_by=key.name if alert.note_only else alert.acknowledged_by,
            )
        )
    return replace(parsed, alerts=tuple(alerts))
