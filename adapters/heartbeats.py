"""Heartbeat signals to domain alerts: the notification the bridge writes when a heartbeat expires or recovers.

The worker (bridge/watch/heartbeats.py) writes one of these through ingest when a heartbeat
changes state, so its incident is routed, prioritised, grouped and kept like any sender's:
expired fires `heartbeat:<name>`, ok and disabled resolve it. No endpoint accepts it from outside.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from bridge.domain.heartbeats import HEARTBEAT_SOURCE, NAME_PATTERN
from bridge.domain.incidents import Alert, AlertStatus, ParsedNotification
from bridge.errors import BadPayload
from bridge.validation import bounded_str, describe

SOURCE = HEARTBEAT_SOURCE

PAYLOAD_SCHEMA = {
    "type": "object",
    "required": ["heartbeat", "state", "at", "armed_at"],
    "properties": {
        "heartbeat": {"type": "string", "pattern": NAME_PATTERN},
        "state": {"enum": ["expired", "ok", "disabled"]},
        "at": {"type": "string", "format": "date-time"},
        "armed_at": {"type": "string", "format": "date-time"},
        "last_heard": {"type": ["string", "null"], "format": "date-time"},
        "source": {"type": ["string", "null"]},
        "silent": {"type": "string"},
        "interval": {"type": "string"},
        "grace": {"type": "string"},
    },
}


class HeartbeatSignal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    heartbeat: str = Field(pattern=NAME_PATTERN)
    state: Literal["expired", "ok", "disabled"]
    at: AwareDatetime
    armed_at: AwareDatetime
    last_heard: AwareDatetime | None = None
    source: bounded_str(1, 32) | None = None  # type: ignore[valid-type]
    silent: bounded_str(1, 200) | None = None  # type: ignore[valid-type]
    interval: bounded_str(1, 32) | None = None  # type: ignore[valid-type]
    grace: bounded_str(1, 32) | None = None  # type: ignore[valid-type]


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse(payload: Any) -> ParsedNotification:
    """One signal -> one alert keyed by the heartbeat's name: firing when it expired, resolved otherwise.

    Raises:
        BadPayload: not a valid signal (each finding named).
    """
    if not isinstance(payload, Mapping):
        raise BadPayload("heartbeat signal must be a JSON object")
    try:
        signal = HeartbeatSignal.model_validate(payload)
    except ValidationError as exc:
        raise BadPayload("invalid heartbeat signal", describe(exc)) from exc
    labels = {"heartbeat": signal.heartbeat}
    if signal.source:
        labels["heartbeat_source"] = signal.source
    heard = _when(signal.last_heard) if signal.last_heard else f"never (armed {_when(signal.armed_at)})"
    annotations = {"last_heard": heard}
    if signal.interval:
        annotations["allowed_silence"] = f"{signal.interval} + grace {signal.grace or '0s'}"
    silent = signal.silent or signal.source or "its pinger"
    if signal.last_heard is None:
        summary = f"Heartbeat {signal.heartbeat}: never heard from {silent} since it was armed {_when(signal.armed_at)}"
    else:
        summary = f"Heartbeat {signal.heartbeat}: nothing heard from {silent} since {heard}"
    at = signal.at.astimezone(UTC)
    firing = signal.state == "expired"
    alert = Alert(
        source=SOURCE,
        status=AlertStatus.FIRING if firing else AlertStatus.RESOLVED,
        source_id=signal.heartbeat,
        labels=labels,
        annotations=annotations,
        summary=summary,
        starts_at=at if firing else None,
        ends_at=None if firing else at,
    )
    return ParsedNotification(source=SOURCE, alerts=(alert,))
