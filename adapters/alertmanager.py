"""Alertmanager webhook (payload version 4) to domain alerts.

Each alert is validated on its own: a bad alert is reported in `rejected` while the
good ones in the same notification go through (Alertmanager treats any 4xx as final
and would drop the whole group otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.domain import Alert, AlertStatus, ParsedNotification, RejectedAlert
from bridge.errors import BadPayload
from bridge.validation import LabelMap, SafeStr, describe

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


def parse(payload: Any) -> ParsedNotification:
    """Parse an Alertmanager v4 notification.

    Raises:
        BadPayload: the envelope is unusable, or no alert in it is valid.
    """
    return parse_grouped(
        payload,
        sender="Alertmanager",
        source=SOURCE,
        envelope_model=_Envelope,
        alert_model=AlertModel,
        convert=lambda _envelope, alert: to_alert(alert, SOURCE, alert.fingerprint),
    )
