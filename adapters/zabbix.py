"""Zabbix webhook (our media type, `adapters/zabbix/`) to domain alerts.

The incident key is the problem event id: recovery and update notifications carry the
original problem's `{EVENT.ID}`, so they map back to it. The trigger id, host and
severity travel as labels for routing and later grouping. Unresolved macros arrive as
literal text (`{EVENT.RECOVERY.ID}`) and are treated as unset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bridge.domain.incidents import Alert, AlertStatus, ParsedNotification
from bridge.errors import BadPayload
from bridge.validation import (
    MAX_LABEL_NAME_LENGTH,
    MAX_LABEL_VALUE_LENGTH,
    MAX_LABELS,
    SafeStr,
    describe,
    json_in_text,
)

SOURCE = "zabbix"
_UNRESOLVED_MACRO = re.compile(r"^\{[A-Z0-9_.$]+\}$|^\*UNKNOWN\*$")
# Event sources with a problem/recovery life (trigger, internal, service); see contracts B.3.
PROBLEM_EVENT_SOURCES = {"0": "trigger", "3": "internal", "4": "service"}
# {EVENT.TAGSJSON} is a list of {tag, value} objects: two levels; a little room, no more.
MAX_TAGS_JSON_DEPTH = 4
# Labels the adapter sets itself; a Zabbix tag with one of these names becomes tag_<name>.
BUILTIN_LABELS = ("host", "trigger_id", "severity", "nseverity", "event_source")
EVENT_ID = re.compile(r"^[0-9]{1,20}$")
# The event as the OpenAPI document describes it (the models below are the real check).
PAYLOAD_SCHEMA = {
    "type": "object",
    "required": ["event_id", "event_value", "event_name"],
    "properties": {
        "event_id": {"type": "string", "pattern": "^[0-9]{1,20}$"},
        "event_value": {"enum": ["0", "1"]},
        "event_update_status": {"enum": ["0", "1"]},
        "event_source": {"type": "string"},
        "event_name": {"type": "string", "minLength": 1},
        "severity": {"type": "string"},
        "nseverity": {"type": "string"},
        "trigger_id": {"type": "string"},
        "host": {"type": "string"},
        "tags": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["tag"],
                "properties": {"tag": {"type": "string"}, "value": {"type": "string"}},
            },
        },
    },
}


def macro_value(value: str | None) -> str | None:
    """The value, or None where Zabbix left the macro unresolved or empty."""
    if value is None or value == "" or _UNRESOLVED_MACRO.match(value):
        return None
    return value


class _Tag(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tag: SafeStr = Field(min_length=1, max_length=MAX_LABEL_NAME_LENGTH)
    value: SafeStr = Field(default="", max_length=MAX_LABEL_VALUE_LENGTH)


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow")

    event_id: str = Field(pattern=EVENT_ID.pattern)
    event_value: Literal["0", "1"]
    event_update_status: Literal["0", "1"] = "0"
    event_source: str = "0"
    event_name: SafeStr = Field(min_length=1)
    severity: SafeStr = Field(default="", max_length=MAX_LABEL_VALUE_LENGTH)
    nseverity: str = Field(default="", pattern=r"^[0-5]?$")
    trigger_id: SafeStr = Field(default="", max_length=MAX_LABEL_VALUE_LENGTH)
    host: SafeStr = Field(default="", max_length=MAX_LABEL_VALUE_LENGTH)
    tags: list[_Tag] = Field(default=[], max_length=MAX_LABELS)
    event_date: SafeStr = ""
    event_time: SafeStr = ""
    recovery_event_id: SafeStr | None = None
    event_update_action: SafeStr | None = None
    event_update_message: SafeStr | None = None
    event_update_user: SafeStr | None = None
    zabbix_url: SafeStr | None = None

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_from_json_text(cls, value: Any) -> Any:
        # {EVENT.TAGSJSON} arrives as text when a media type forwards it unparsed.
        if isinstance(value, str):
            if macro_value(value) is None:
                return []
            try:
                return json_in_text(value, MAX_TAGS_JSON_DEPTH)
            except ValueError as exc:
                raise ValueError(f"not a JSON array of {{tag, value}} objects ({exc})") from exc
        return value


def event_ids(dedup_key: str, source_ids: Sequence[str] | None) -> list[str]:
    """The Zabbix event ids an incident gathered, whatever its dedup key.

    An incident stored before source ids were kept (migration 0006) has none: its key
    names its event only when it is a bare event id (`zabbix:<id>`), never a label set.
    """
    if source_ids is not None:
        return list(source_ids)
    body = dedup_key.removeprefix(f"{SOURCE}:")
    return [body] if EVENT_ID.fullmatch(body) else []


def _labels(event: _Event) -> dict[str, str]:
    labels: dict[str, str] = {}
    for tag in event.tags:
        name = f"tag_{tag.tag}" if tag.tag in BUILTIN_LABELS else tag.tag
        labels[name] = f"{labels[name]},{tag.value}" if name in labels else tag.value
    builtin = {
        "host": macro_value(event.host),
        "trigger_id": macro_value(event.trigger_id),
        "severity": macro_value(event.severity),
        "nseverity": macro_value(event.nseverity),
        "event_source": PROBLEM_EVENT_SOURCES[event.event_source],
    }
    labels.update({name: value for name, value in builtin.items() if value is not None})
    return labels


def _annotations(event: _Event) -> dict[str, str]:
    annotations = {
        "event_started": " ".join(filter(None, (macro_value(event.event_date), macro_value(event.event_time)))),
        "recovery_event_id": macro_value(event.recovery_event_id),
        "update_action": macro_value(event.event_update_action),
        "update_message": macro_value(event.event_update_message),
        "update_user": macro_value(event.event_update_user),
    }
    url = macro_value(event.zabbix_url)
    trigger_id = macro_value(event.trigger_id)
    if url and trigger_id:
        annotations["zabbix_event_url"] = (
            f"{url.rstrip('/')}/tr_events.php?triggerid={trigger_id}&eventid={event.event_id}"
        )
    return {name: value for name, value in annotations.items() if value}


def _acknowledged_by(event: _Event) -> str | None:
    """Who acknowledged the problem, when this update is an acknowledgement ({EVENT.UPDATE.ACTION}
    reads e.g. "acknowledged, commented"; "unacknowledged" is not one)."""
    action = macro_value(event.event_update_action) if event.event_update_status == "1" else None
    if action is None or "acknowledged" not in re.split(r",\s*|\s+and\s+", action.strip().lower()):
        return None
    return f"{macro_value(event.event_update_user) or 'someone'} (in Zabbix)"


def parse(payload: Any) -> ParsedNotification:
    """Parse one Zabbix notification: problem, recovery or update.

    An update with `event_value` 0 is a manual close and resolves the incident; other
    updates (acknowledge, comment, severity change) refresh it without counting a repeat.

    Raises:
        BadPayload: the body is not a usable Zabbix event.
    """
    if not isinstance(payload, Mapping):
        raise BadPayload("Zabbix payload must be a JSON object")
    try:
        event = _Event.model_validate(payload)
    except ValidationError as exc:
        raise BadPayload("invalid Zabbix payload", describe(exc)) from exc
    if event.event_source not in PROBLEM_EVENT_SOURCES:
        raise BadPayload(
            "unsupported Zabbix event source",
            [f"event_source: {event.event_source!r} has no problems; use the media type in trigger actions"],
        )
    alert = Alert(
        source=SOURCE,
        status=AlertStatus.FIRING if event.event_value == "1" else AlertStatus.RESOLVED,
        source_id=event.event_id,
        labels=_labels(event),
        annotations=_annotations(event),
        summary=event.event_name,
        is_update=event.event_update_status == "1",
        acknowledged_by=_acknowledged_by(event),
        repeat_counts=False,  # one event id is one occurrence, however often Zabbix delivers it
    )
    return ParsedNotification(source=SOURCE, alerts=(alert,))
