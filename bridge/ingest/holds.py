"""Holds on the webhook path: an incident that opens while a window covers its alert is held by that window,
and one that opens during a deploy is marked with it.

Set-based per transaction: the windows in force (maintenance and deploy windows alike) are
read once, and only when the group opened (created or reopened) an incident; a storm of
repeats reads nothing. Read inside the transaction, so a window made or a deploy started a
moment ago by another process counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bridge.domain.incidents import AlertResult, Incident, Outcome
from bridge.domain.windows import covering, deploy_covering, hold
from bridge.storage.engine import Connection
from bridge.storage.store import Store

OPENING = (Outcome.CREATED, Outcome.REOPENED)


def hold_opened(
    conn: Connection, store: Store, results: Sequence[Sequence[AlertResult]], times: Sequence[datetime]
) -> list[Incident]:
    """Mark the incidents these results opened during a deploy (`during_deploy`; one reopened after its deploy
    loses the mark) and hold those opened under a window that holds (`times[i]`: when notification i
    arrived); the incidents held. Their clocks stop; grouping and the events pass them by (`Incident.held`)."""
    opened = [
        (result.incident, times[index])
        for index, own in enumerate(results)
        for result in own
        if result.outcome in OPENING and result.incident is not None and not result.incident.held
    ]
    if not opened:
        return []
    windows = store.covering_windows(conn, min(at for _, at in opened), max(at for _, at in opened))
    held: dict[int, Incident] = {}
    for incident, at in opened:
        deploy = deploy_covering(windows, incident.source, incident.labels, at) if windows else None
        incident.during_deploy = dict(deploy.deploy) if deploy is not None and deploy.deploy is not None else None
        incident.deploy_id = incident.during_deploy["id"] if incident.during_deploy is not None else None
        window = covering(windows, incident.source, incident.labels, at) if windows else None
        if window is not None and id(incident) not in held:
            hold(incident, window)
            held[id(incident)] = incident
    return list(held.values())


def hold_events(held: Sequence[Incident]) -> list[dict[str, Any]]:
    """The history line of each incident just held (written once the incidents have their ids)."""
    events = []
    for incident in held:
        window = incident.hold_window or {}
        events.append(
            dict(
                incident_id=incident.stored_id,
                at=incident.last_seen,
                kind="held",
                actor=None,
                detail=(
                    f"held by {window.get('kind', 'hold')} window #{window.get('id')} {window.get('name')!r}: "
                    "no problem, side effect or clock until it ends"
                ),
            )
        )
    return events
