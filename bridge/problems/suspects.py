"""A problem's suspects, found in the transaction that opens or regresses it, and kept with it.

Looked for only when the problem's incident carries the services of a project of rules.yaml
(`projects:`): the releases of those projects deployed to its environment, and the changes
touching those services, within `releases.suspect_window` before its first occurrence
(bridge/domain/suspects.py). A few indexed reads per problem opened, none per alert.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bridge.domain.deploys import projects_shipping
from bridge.domain.incidents import Incident
from bridge.domain.rules import Rules
from bridge.domain.suspects import change_suspects, nearest_first, release_suspects
from bridge.storage.engine import Connection
from bridge.storage.store import Store


def find_suspects(
    conn: Connection, store: Store, rules: Rules, incident: Incident, first: datetime
) -> list[dict[str, Any]] | None:
    """The suspects of a problem whose failure `incident` shows, first seen at `first`, nearest first;
    None when the incident is of no project's services (nothing to look for)."""
    projects = projects_shipping(rules.projects, incident.labels)
    if not projects:
        return None
    label = rules.environment_label
    environment = incident.labels.get(label) if label else None
    window = rules.suspect_window
    since = first - window
    deploys = store.suspect_deploys(conn, [p.name for p in projects], environment, since, first) if environment else []
    changes = store.suspect_changes(conn, since, first)
    return nearest_first(
        release_suspects(deploys, first, window),
        change_suspects(changes, projects, label, environment, first, window),
    )
