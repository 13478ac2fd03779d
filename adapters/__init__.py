"""Source adapters: pure parsers from webhook payloads to normalised domain alerts, and their registry.

`SOURCES` is the one list of webhook senders: the API, CLI, rules, pages, settings, metrics
and OpenAPI document all read it. Adding a source is one entry here plus its adapter module.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from adapters import alertmanager, events, grafana, heartbeats, tickets, zabbix
from bridge.domain.incidents import ParsedNotification


@dataclass(frozen=True)
class Source:
    """A webhook sender: its parser, the credential guarding its endpoint, and what it looks like."""

    name: str  # URL segment /api/v1/alerts/<name>, token group, incidents.source, metric label
    display_name: str  # for people: CLI notes
    parse: Callable[[Any], ParsedNotification]
    # Environment variable of its bearer token; None for a source whose credential travels in the
    # body (PagerDuty's routing_key, checked against rules.yaml by its own endpoint).
    token_variable: str | None
    examples: tuple[str, ...]  # payload files under adapters/examples/, rendered against rules at start-up
    payload_schema: Mapping[str, Any]  # JSON Schema of its body, for the OpenAPI document
    # Served at /api/v1/alerts/<name>; tickets have their own endpoint (POST /api/v1/tickets, token group
    # tickets), and heartbeat signals none (the bridge writes them).
    alerts_endpoint: bool = True

    def example_payloads(self) -> list[Any]:
        """The shipped example payloads, decoded."""
        folder = resources.files("adapters").joinpath("examples")
        return [json.loads(folder.joinpath(name).read_text()) for name in self.examples]


SOURCES: Mapping[str, Source] = {
    "alertmanager": Source(
        "alertmanager",
        "Alertmanager",
        alertmanager.parse,
        "BRIDGE_TOKEN_ALERTMANAGER",
        ("alertmanager.json",),
        alertmanager.PAYLOAD_SCHEMA,
    ),
    "zabbix": Source("zabbix", "Zabbix", zabbix.parse, "BRIDGE_TOKEN_ZABBIX", ("zabbix.json",), zabbix.PAYLOAD_SCHEMA),
    "grafana": Source(
        "grafana", "Grafana Alerting", grafana.parse, "BRIDGE_TOKEN_GRAFANA", ("grafana.json",), grafana.PAYLOAD_SCHEMA
    ),
    "events": Source("events", "PagerDuty Events v2", events.parse, None, ("events.json",), events.PAYLOAD_SCHEMA),
    "ticket": Source(
        "ticket", "Tickets", tickets.parse, None, ("ticket.json",), tickets.PAYLOAD_SCHEMA, alerts_endpoint=False
    ),
    # Written by the bridge itself when a heartbeat expires or recovers (bridge/watch/heartbeats.py).
    "heartbeat": Source(
        "heartbeat",
        "Heartbeats",
        heartbeats.parse,
        None,
        ("heartbeat.json",),
        heartbeats.PAYLOAD_SCHEMA,
        alerts_endpoint=False,
    ),
}
assert all(name == source.name for name, source in SOURCES.items()), "a source is registered under its own name"

# Source name -> parser, as bridge.ingest.deliveries.parse_body looks it up.
PARSERS: dict[str, Callable[[Any], ParsedNotification]] = {name: source.parse for name, source in SOURCES.items()}
