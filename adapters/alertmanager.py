"""Alertmanager webhook (payload version 4) to domain alerts.

Each alert is validated on its own: a bad alert is reported in `rejected` while the
good ones in the same notification go through (Alertmanager treats any 4xx as final
and would drop the whole group otherwise).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.domain.incidents import Alert, AlertStatus, ParsedNotification, RejectedAlert
from bridge.errors import BadPayload
from bridge.validation import (
    MAX_LABEL_NAME_LENGTH,
    MAX_LABEL_VALUE_LENGTH,
    MAX_LABELS,
    LabelMap,
    SafeStr,
    describe,
)

SOURCE = "alertmanager"
STATUS_MAP = {"firing": AlertStatus.FIRING, "resolved": AlertStatus.RESOLVED}
# Alertmanager writes the zero Go time as endsAt of every firing alert.
GO_ZERO_YEAR = 1
# notifications.truncated_alerts is a 32-bit integer (PostgreSQL int4).
MAX_TRUNCATED_ALERTS = 2**31 - 1
ALERT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status", "labels", "startsAt", "fingerprint"],
    "properties": {
        "status": {"enum": ["firing", "resolved"]},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "startsAt": {"type": "string", "format": "date-time"},
        "endsAt": {"type": "string", "format": "date-time"},
        "generatorURL": {"type": "string"},
        "fingerprint": {"type": "string", "pattern": "^[0-9A-Za-z]{1,128}$"},
    },
}
# The notification as the OpenAPI document describes it (the models below are the real check).
PAYLOAD_SCHEMA = {
    "type": "object",
    "required": ["version", "status", "alerts"],
    "properties": {
        "version": {"const": "4"},
        "status": {"enum": ["firing", "resolved"]},
        "receiver": {"type": "string"},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "alerts": {"type": "array", "items": ALERT_SCHEMA},
    },
}


class Envelope(BaseModel):
    """What every notification in the Alertmanager webhook shape carries around its alerts."""

    # Unknown fields are allowed: Alertmanager adds fields between versions (routeLabels).
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    alerts: list[Any]
    receiver: SafeStr = ""
    groupKey: SafeStr = ""
    truncatedAlerts: int = Field(default=0, ge=0, le=MAX_TRUNCATED_ALERTS)


class _Envelope(Envelope):
    version: Literal["4"]


class AlertModel(BaseModel):
    """One alert in the Alertmanager webhook shape."""

    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: LabelMap
    annotations: LabelMap = {}
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: SafeStr = ""
    fingerprint: str = Field(min_length=1, max_length=128, pattern=r"^[0-9A-Za-z]+$")


def _summary(alert: AlertModel) -> str:
    text = alert.annotations.get("summary") or alert.annotations.get("description")
    if text:
        return text
    name = alert.labels.get("alertname", "alert")
    instance = alert.labels.get("instance")
    return f"{name} on {instance}" if instance else name


def to_alert(alert: AlertModel, source: str, source_id: str, extra_annotations: Mapping[str, str] = {}) -> Alert:
    """The domain alert of one alert in this shape; `extra_annotations` never replace the sender's own."""
    ends_at = alert.endsAt if alert.endsAt is not None and alert.endsAt.year > GO_ZERO_YEAR else None
    annotations = dict(alert.annotations)
    if alert.generatorURL:
        annotations.setdefault("generator_url", alert.generatorURL)
    for name, value in extra_annotations.items():
        if value:
            annotations.setdefault(name, value)
    return Alert(
        source=source,
        status=STATUS_MAP[alert.status],
        source_id=source_id,
        labels=dict(alert.labels),
        annotations=annotations,
        summary=_summary(alert),
        starts_at=alert.startsAt,
        ends_at=ends_at,
    )


E = TypeVar("E", bound=Envelope)
M = TypeVar("M", bound=AlertModel)


def parse_grouped(
    payload: Any,
    *,
    sender: str,
    source: str,
    envelope_model: type[E],
    alert_model: type[M],
    convert: Callable[[E, M], Alert],
) -> ParsedNotification:
    """Parse a notification in the Alertmanager webhook shape, each alert on its own.

    A bad alert is reported in `rejected` while the good ones go through: the senders of
    this shape treat any 4xx as final and would drop the whole group otherwise.

    Raises:
        BadPayload: the envelope is unusable, or no alert in it is valid.
    """
    if not isinstance(payload, Mapping):
        raise BadPayload(f"{sender} payload must be a JSON object")
    try:
        envelope = envelope_model.model_validate(payload)
    except ValidationError as exc:
        raise BadPayload(f"invalid {sender} payload", describe(exc)) from exc
    if not envelope.alerts:
        raise BadPayload(f"no alerts in {sender} payload", ["alerts: must hold at least one alert"])
    alerts: list[Alert] = []
    rejected: list[RejectedAlert] = []
    for index, item in enumerate(envelope.alerts):
        try:
            alerts.append(convert(envelope, alert_model.model_validate(item)))
        except ValidationError as exc:
            rejected.append(RejectedAlert(index, tuple(describe(exc, f"alerts[{index}]"))))
    if not alerts:
        errors = [line for item in rejected for line in item.errors]
        raise BadPayload(f"no valid alert in {sender} payload", errors)
    return ParsedNotification(
        source=source,
        alerts=tuple(alerts),
        rejected=tuple(rejected),
        truncated_alerts=envelope.truncatedAlerts,
        group_key=envelope.groupKey or None,
    )


# What the fast check takes for a timestamp: RFC 3339 as Alertmanager writes it (anything else
# goes through the models, which take more forms and name the problem).
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)
_FINGERPRINT = re.compile(r"[0-9A-Za-z]{1,128}")


def _plain_labels(value: Any) -> bool:
    """What LabelMap accepts, checked without building a model (True only when it surely would).

    Whole-map operations in C: a join fails on a value that is not text, and finds a NUL in one scan.
    """
    if type(value) is not dict or len(value) > MAX_LABELS:
        return False
    if not value:
        return True
    try:
        texts = "".join(value.values())
    except TypeError:
        return False
    return (
        "\x00" not in texts
        and "\x00" not in "".join(value)
        and max(map(len, value.values())) <= MAX_LABEL_VALUE_LENGTH
        and max(map(len, value)) <= MAX_LABEL_NAME_LENGTH
    )


def _timestamp(value: Any) -> datetime | None:
    return _timestamp_text(value) if type(value) is str else None


@functools.lru_cache(maxsize=1024)
def _timestamp_text(value: str) -> datetime | None:
    """Kept: a group's alerts, and every repeat of them, send the same few timestamps."""
    if _RFC3339.fullmatch(value) is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _plain_alert(item: Any) -> Alert | None:
    """The alert of a well-formed item, as `to_alert` makes it, or None when the models must judge it."""
    if type(item) is not dict:
        return None
    status = item.get("status")
    labels = item.get("labels")
    annotations = item.get("annotations", {})
    fingerprint = item.get("fingerprint")
    generator_url = item.get("generatorURL", "")
    starts_at = _timestamp(item.get("startsAt"))
    ends_raw = item.get("endsAt")
    ends_at = None if ends_raw is None else _timestamp(ends_raw)
    if (
        type(status) is not str
        or status not in STATUS_MAP
        or starts_at is None
        or (ends_raw is not None and ends_at is None)
        or type(fingerprint) is not str
        or _FINGERPRINT.fullmatch(fingerprint) is None
        or type(generator_url) is not str
        or "\x00" in generator_url
        or not _plain_labels(labels)
        or not _plain_labels(annotations)
    ):
        return None
    labels = cast(dict[str, str], labels)
    annotations = dict(annotations)
    if generator_url:
        annotations.setdefault("generator_url", generator_url)
    summary = annotations.get("summary") or annotations.get("description")
    if not summary:
        name, instance = labels.get("alertname", "alert"), labels.get("instance")
        summary = f"{name} on {instance}" if instance else name
    return Alert(
        source=SOURCE,
        status=STATUS_MAP[status],
        source_id=fingerprint,
        labels=labels,
        annotations=annotations,
        summary=summary,
        starts_at=starts_at,
        ends_at=ends_at if ends_at is not None and ends_at.year > GO_ZERO_YEAR else None,
    )


def parse_plain(payload: Any) -> ParsedNotification | None:
    """A well-formed notification parsed without the validation models, or None to let them judge it.

    The webhook's hot path: a model per alert costs more than the rest of its parse. Takes
    only what the models surely accept and makes the same alerts; anything else (a missing
    field, another timestamp form, a value past a bound) returns None, and `parse` reports
    the precise finding.
    """
    if type(payload) is not dict:
        return None
    alerts = payload.get("alerts")
    truncated = payload.get("truncatedAlerts", 0)
    receiver = payload.get("receiver", "")
    group_key = payload.get("groupKey", "")
    if (
        payload.get("version") != "4"
        or payload.get("status") not in ("firing", "resolved")
        or type(alerts) is not list
        or not alerts
        or type(truncated) is not int
        or not 0 <= truncated <= MAX_TRUNCATED_ALERTS
        or type(receiver) is not str
        or type(group_key) is not str
        or "\x00" in receiver
        or "\x00" in group_key
    ):
        return None
    parsed = []
    for item in alerts:
        alert = _plain_alert(item)
        if alert is None:
            return None
        parsed.append(alert)
    return ParsedNotification(
        source=SOURCE, alerts=tuple(parsed), truncated_alerts=truncated, group_key=group_key or None
    )


def parse(payload: Any) -> ParsedNotification:
    """Parse an Alertmanager v4 notification (the fast check first, the models for what it does not take).

    Raises:
        BadPayload: the envelope is unusable, or no alert in it is valid.
    """
    plain = parse_plain(payload)
    if plain is not None:
        return plain
    return parse_grouped(
        payload,
        sender="Alertmanager",
        source=SOURCE,
        envelope_model=_Envelope,
        alert_model=AlertModel,
        convert=lambda _envelope, alert: to_alert(alert, SOURCE, alert.fingerprint),
    )
