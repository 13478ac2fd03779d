"""Grafana Alerting webhook (contact point "webhook", payload version 1) to domain alerts.

Grafana-managed alerts post the Alertmanager webhook shape with `"version": "1"` and
extra fields: `orgId`, `title`, `state`, `message`, and per alert `silenceURL`,
`dashboardURL`, `panelURL`, `imageURL` and the query values (`values` since Grafana 9,
`valueString` in every version). The incident key is the alert's fingerprint within its
organisation: two Grafana organisations may evaluate rules that fingerprint alike. The
links and values are kept as annotations, so the incident's page shows them.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import Field

from adapters.alertmanager import ALERT_SCHEMA, AlertModel, Envelope, parse_grouped, to_alert
from bridge.domain.incidents import Alert, ParsedNotification
from bridge.validation import MAX_LABEL_VALUE_LENGTH, SafeStr

SOURCE = "grafana"
# Grafana's organisation ids are 64-bit.
MAX_ORG_ID = 2**63 - 1
_LINKS = {name: {"type": "string"} for name in ("silenceURL", "dashboardURL", "panelURL", "imageURL", "valueString")}
# The notification as the OpenAPI document describes it (the models below are the real check).
PAYLOAD_SCHEMA = {
    "type": "object",
    "required": ["version", "status", "alerts"],
    "properties": {
        "version": {"const": "1"},
        "status": {"enum": ["firing", "resolved"]},
        "receiver": {"type": "string"},
        "orgId": {"type": "integer", "minimum": 0},
        "title": {"type": "string"},
        "state": {"type": "string"},
        "message": {"type": "string"},
        "groupKey": {"type": "string"},
        "truncatedAlerts": {"type": "integer", "minimum": 0},
        "alerts": {
            "type": "array",
            "items": {
                **ALERT_SCHEMA,
                "properties": {
                    **ALERT_SCHEMA["properties"],
                    **_LINKS,
                    "values": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
                },
            },
        },
    },
}


class _Envelope(Envelope):
    version: Literal["1"]
    orgId: int = Field(default=1, ge=0, le=MAX_ORG_ID)
    title: SafeStr = ""
    state: SafeStr = ""
    message: SafeStr = ""


class _Alert(AlertModel):
    silenceURL: SafeStr = Field(default="", max_length=MAX_LABEL_VALUE_LENGTH)
    dashboardURL: SafeStr = Field(default="", max_length=MAX_LABEL_VALUE_LENGTH)
    panelURL: SafeStr = Field(default="", max_length=MAX_LABEL_VALUE_LENGTH)
    imageURL: SafeStr = Field(default="", max_length=MAX_LABEL_VALUE_LENGTH)
    valueString: SafeStr = Field(default="", max_length=MAX_LABEL_VALUE_LENGTH)
    values: dict[SafeStr, float | int | None] | None = Field(default=None, max_length=128)


def _values_text(values: dict[str, float | int | None] | None) -> str:
    """The query values as compact JSON text (annotations are strings), in the order Grafana sent them."""
    return orjson.dumps(values).decode() if values else ""


def _to_alert(envelope: _Envelope, alert: _Alert) -> Alert:
    return to_alert(
        alert,
        SOURCE,
        f"{envelope.orgId}:{alert.fingerprint}",
        {
            "grafana_dashboard_url": alert.dashboardURL,
            "grafana_panel_url": alert.panelURL,
            "grafana_silence_url": alert.silenceURL,
            "grafana_image_url": alert.imageURL,
            "grafana_values": _values_text(alert.values),
            "grafana_value_string": alert.valueString,
        },
    )


def parse(payload: Any) -> ParsedNotification:
    """Parse a Grafana Alerting webhook notification.

    Raises:
        BadPayload: the envelope is unusable (not version 1), or no alert in it is valid.
    """
    return parse_grouped(
        payload, sender="Grafana", source=SOURCE, envelope_model=_Envelope, alert_model=_Alert, convert=_to_alert
    )
