"""Sample lifecycle events, in the shapes notify targets receive, to check a body template at load.

A JSON body template that renders to something no JSON parser reads is refused when rules.yaml
loads, not found out by the first delivery. The samples carry every subject an event may
have (incident, problem, ticket, release, link, reason, update, text), built by the same
shape functions as the real events, and labels and annotations that answer any name.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bridge.domain.incidents import Incident, IncidentState
from bridge.shapes import incident_shape, iso, problem_shape, ticket_shape

SAMPLE_TIME = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


class AnyName(dict[str, str]):
    """Labels or annotations of a sample: whatever name a template reads has a value."""

    def __missing__(self, key: str) -> str:
        return f"sample {key}"


def sample_event(event: str) -> dict[str, Any]:
    """A body of `event` as queued (bridge.outbox.notify.queue_delivery), with every subject filled in."""
    incident = incident_shape(
        Incident(
            id=1,
            dedup_key="alertmanager:sample",
            source="alertmanager",
            state=IncidentState.FIRING,
            line="L2",
            impact="high",
            urgency="high",
            priority="P2",
            route="sample",
            summary="checkout is failing",
            labels={"alertname": "HighErrorRate", "service": "checkout"},
            annotations={"summary": "checkout is failing"},
            occurrences=1,
            reopen_count=0,
            first_seen=SAMPLE_TIME,
            last_seen=SAMPLE_TIME,
            episode_started_at=SAMPLE_TIME,
            problem_id=1,
        )
    )
    incident["labels"], incident["annotations"] = AnyName(incident["labels"]), AnyName(incident["annotations"])
    problem = problem_shape(
        {
            "id": 1,
            "problem_key": "service/checkout",
            "rule": "service",
            "state": "open",
            "summary": "checkout is failing",
            "description": "",
            "jira_key": "OPS-1",
            "jira_url": "https://jira.example.com/browse/OPS-1",
            "incident_count": 1,
            "opened_at": SAMPLE_TIME,
            "closed_at": None,
            "fixed_in": None,
            "regressions": 0,
            "conclusion": None,
        }
    )
    ticket = ticket_shape(
        {
            "system": "itsm",
            "ticket_id": "SR-1",
            "url": "https://itsm.example.com/SR-1",
            "summary": "checkout broken",
            "state": "open",
            "linked_by": "rule",
            "incident_id": 1,
            "linked_at": SAMPLE_TIME,
            "closed_at": None,
        }
    )
    return {
        "event": event,
        "id": "0" * 32,
        "occurred_at": iso(SAMPLE_TIME),
        "incident": incident,
        "problem": problem,
        "ticket": ticket,
        "release": {"project": "OPS", "version": "1.0.0", "issues": ["OPS-1"], "closed_problems": [1]},
        "link": {"jira_key": "OPS-1"},
        "reason": "released in 1.0.0",
        "update": "workaround",
        "text": "incident-bridge: a sample text",
    }
