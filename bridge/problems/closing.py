"""Closing a problem and telling whoever must hear: Zabbix of its events, the tickets' systems, the notify targets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bridge.domain.rules import Rules
from bridge.outbox.jobs import ZabbixClose, queue
from bridge.problems.tickets import after_close
from bridge.storage.engine import Connection
from bridge.storage.store import Store


def queue_zabbix_close(
    conn: Connection,
    store: Store,
    closed: Sequence[tuple[str, list[str] | None]],
    message: str,
    now: datetime,
    release: str | None = None,
) -> None:
    """Ask the worker to close in Zabbix the events of Zabbix incidents just closed here (if any)."""
    job = ZabbixClose.of_incidents(closed, message, release)
    if job.event_ids:
        queue(conn, store, job, now)


def close_and_tell(
    conn: Connection, store: Store, rules: Rules, problem_id: int, now: datetime, incident_reason: str, reason: str
) -> tuple[int, int]:
    """Close a problem and every incident of it, and tell whoever must hear: Zabbix of the events it closes,
    the tickets' systems and the notify targets (bridge.problems.tickets.after_close). Returns (incidents closed, tickets told).
    """
    counts, zabbix_closed = store.close_problems_and_incidents(conn, [problem_id], now, incident_reason)
    queue_zabbix_close(conn, store, zabbix_closed.get(problem_id, []), f"Closed by incident-bridge: {reason}", now)
    return counts.get(problem_id, 0), after_close(conn, store, rules, [problem_id], now, reason)
