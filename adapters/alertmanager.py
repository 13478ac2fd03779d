"""Alertmanager webhook (payload version 4) to domain alerts.

Each alert is validated on its own: a bad alert is reported in `rejected` while the
good ones in the same notification go through (Alertmanager treats any 4xx as final
and would drop the whole group otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from bridge.validation import LabelMap, SafeStr, describe
from bridge.domain import Alert, AlertStatus, ParsedNotification, RejectedAlert
from bridge.errors import BadPayload

SOURCE = "alertmanager"
STATUS_MAP = {"firing": AlertStatus.FIRING, "resolved": AlertStatus.RESOLVED}
# Alertmanager writes the zero Go time as endsAt of every firing alert.
GO_ZERO_YEAR = 1
# notifications.truncated_alerts is a 32-bit integer (PostgreSQL int4).
MAX_TRUNCATED_ALERTS = 2**31 - 1
_ALERT_SCHEMA = {"type": "object", "required": ["status", "labels", "startsAt", "fingerprint"], "properties": {
    "status": {"enum": ["firing", "resolved"]}, "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    "startsAt": {"type": "string", "format": "date-time"}, "endsAt": {"type": "string", "format": "date-time"},
    "generatorURL": {"type": "string"}, "fingerprint": {"type": "string", "pattern": "^[0-9A-Za-z]{1,128}$"}}}
# The notification as the OpenAPI document describes it (the models below are the real check).
PAYLOAD_SCHEMA = {"type": "object", "required": ["version", "status", "alerts"], "properties": {
    "version": {"const": "4"}, "status": {"enum": ["firing", "resolved"]}, "receiver": {"type": "string"},
    "groupKey": {"type": "string"}, "truncatedAlerts": {"type": "integer", "minimum": 0},
    "alerts": {"type": "array", "items": _ALERT_SCHEMA}}}


class _Envelope(BaseModel):
    # Unknown fields are allowed: Alertmanager adds fields between versions (routeLabels).
    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    alerts: list[Any]
    receiver: SafeStr = ""
    groupKey: SafeStr = ""
    truncatedAlerts: int = Field(default=0, ge=0, le=MAX_TRUNCATED_ALERTS)


class _Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: LabelMap
    annotations: LabelMap = {}
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: SafeStr = ""
    fingerprint: str = Field(min_length=1, max_length=128, pattern=r"^[0-9A-Za-z]+$")


_ALERT = TypeAdapter(_Alert)


def _summary(alert: _Alert) -> str:
    text = alert.annotations.get("summary") or alert.annotations.get("description")
    if text:
        return text
    name = alert.labels.get("alertname", "alert")
    instance = alert.labels.get("instance")
    return f"{name} on {instance}" if instance else name


def _to_alert(alert: _Alert) -> Alert:
    ends_at = alert.endsAt if alert.endsAt is not None and alert.endsAt.year > GO_ZERO_YEAR else None
    annotations = dict(alert.annotations)
    if alert.generatorURL:
        annotations.setdefault("generator_url", alert.generatorURL)
    return Alert(
        source=SOURCE,
        status=STATUS_MAP[alert.status],
        source_id=alert.fingerprint,
        labels=dict(alert.labels),
        annotations=annotations,
        summary=_summary(alert),
        starts_at=alert.startsAt,
        ends_at=ends_at,
    )


def parse(payload: Any) -> ParsedNotification:
    """Parse an Alertmanager v4 notification.

    Raises:
        BadPayload: the envelope is unusable, or no alert in it is valid.
    """
    if not isinstance(payload, Mapping):
        raise BadPayload("Alertmanager payload must be a JSON object")
    try:
        envelope = _Envelope.model_validate(payload)
    except ValidationError as exc:
        raise BadPayload("invalid Alertmanager payload", describe(exc)) from exc
    if not envelope.alerts:
        raise BadPayload("no alerts in Alertmanager payload", ["alerts: must hold at least one alert"])
    alerts: list[Alert] = []
    rejected: list[RejectedAlert] = []
    for index, item in enumerate(envelope.alerts):
        try:
            alerts.append(_to_alert(_ALERT.validate_python(item)))
        except ValidationError as exc:
            rejected.append(RejectedAlert(index, tuple(describe(exc, f"alerts[{index}]"))))
    if not alerts:
        errors = [line for item in rejected for line in item.errors]
        raise BadPayload("no valid alert in Alertmanager payload", errors)
    return ParsedNotification(
        source=SOURCE,
        alerts=tuple(alerts),
        rejected=tuple(rejected),
        truncated_alerts=envelope.truncatedAlerts,
        group_key=envelope.groupKey or None,
    )
