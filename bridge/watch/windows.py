"""Hold windows as a feature: made and ended by people, recurring from the rules, and released once when they end.

While a window covers an alert, ingest holds the incident it opens (bridge/ingest/holds.py).
When the window ends (its time is up, someone ends it, or its recurring rule is gone), the
release claims it with a conditional update that one process wins, then in the same
transaction settles what it held: resolved incidents close quietly; firing ones become
ordinary as of the window's end (clocks from then, problems open or join, `incident.opened`
goes out once). Each incident's history says which window held it and what its end did.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bridge import metrics
from bridge.domain.incidents import Incident
from bridge.domain.rules import Rules
from bridge.domain.windows import (
    QUIET_CLOSE,
    RecurringWindow,
    Released,
    Window,
    WindowKind,
    match_of,
    matcher_is_selective,
    matcher_of_match,
    release,
)
from bridge.errors import BadPayload, Conflict, NotFound
from bridge.outbox.notify import Announcer
from bridge.problems.grouping import assign_problems, join_open_problems, problem_candidates
from bridge.shapes import incident_shape, iso
from bridge.storage.engine import Connection
from bridge.storage.store import Store
from bridge.storage.window_repository import window_of

log = logging.getLogger(__name__)
# How long after a release the worker still looks for an incident a webhook held meanwhile.
STRAGGLERS = timedelta(hours=1)
RECURRING_ACTOR = "rules.yaml"


def make_window(
    store: Store,
    *,
    name: str,
    reason: str,
    match: Mapping[str, Any],
    starts_at: datetime | None,
    ends_at: datetime,
    now: datetime,
    longest: timedelta,
    actor: str,
) -> dict[str, Any]:
    """Make a maintenance window covering `match` ({source?, labels?, labels_regex?}); the window as stored.

    Raises:
        BadPayload: it ends before it starts or before now, lasts longer than `longest`
            (BRIDGE_MAINTENANCE_MAX), or its match selects everything.
    """
    starts = starts_at or now
    matcher = matcher_of_match(match)
    errors = []
    if ends_at <= starts:
        errors.append("ends_at: must be after starts_at (a window without an end is refused)")
    elif ends_at <= now:
        errors.append("ends_at: is in the past")
    elif ends_at - max(starts, now) > longest:
        errors.append(f"ends_at: the window would last longer than {longest} (BRIDGE_MAINTENANCE_MAX)")
    if not matcher_is_selective(matcher):
        errors.append("match: name a source or a label; a window over everything would hide every alarm")
    if errors:
        raise BadPayload("invalid maintenance window", errors)
    values = dict(
        kind=WindowKind.MAINTENANCE.value,
        name=name,
        reason=reason,
        match=match_of(matcher),
        starts_at=starts,
        ends_at=ends_at,
        created_at=now,
        created_by=actor,
    )

    def work(conn: Connection) -> dict[str, Any]:
        window = store.find_window(conn, store.add_window(conn, values))
        assert window is not None
        return window

    made = store.run(work)
    log.info("maintenance window made", extra={"window_id": made["id"], "window": name, "actor": actor})
    return made


@dataclass(frozen=True)
class Release:
    """What a window's end did: incidents handed on as ordinary, and closed quietly."""

    window_id: int
    ordinary: int
    closed: int


def end_window(store: Store, rules: Rules, window_id: int, now: datetime, actor: str) -> Release:
    """End a window now, by hand, and release what it held in the same transaction.

    Raises:
        NotFound: no such window. Conflict: it has ended already.
    """

    def work(conn: Connection) -> Release:
        row = store.find_window(conn, window_id, for_update=True)
        if row is None or row["kind"] != WindowKind.MAINTENANCE.value:  # a deploy's ends with its deploy
            raise NotFound(f"no maintenance window {window_id}")
        if not store.end_window(conn, window_id, now, actor):
            raise Conflict(f"maintenance window {window_id} has ended already", ["id: nothing left to end"])
        window = window_of({**row, "ended_at": now})
        return release_window(conn, store, rules, window, now) or Release(window_id, 0, 0)

    released = store.run(work)
    count_released(released)
    log.info("maintenance window ended", extra={"window_id": window_id, "actor": actor, **released.__dict__})
    return released


def release_window(conn: Connection, store: Store, rules: Rules, window: Window, now: datetime) -> Release | None:
    """Release an ended window once: None when another transaction claimed it first."""
    if not store.claim_release(conn, window.id, now):
        return None
    return release_held(conn, store, rules, window, now)


def release_held(conn: Connection, store: Store, rules: Rules, window: Window, now: datetime) -> Release:
    """Settle what the window holds still (locked, so a second releaser finds nothing left)."""
    held = store.held_incidents(conn, window.id)
    originals = {str(incident.stored_id): incident.copy() for incident in held}
    outcomes = {
        incident.stored_id: release(incident, rules.sla_policies.get(incident.priority), window.end, now)
        for incident in held
    }
    ordinary = [incident for incident in held if outcomes[incident.stored_id] is Released.ORDINARY]
    announcer = Announcer.of(store, rules)
    pending = join_open_problems(conn, store, problem_candidates(rules, ordinary), now)
    store.save_incidents(conn, [(incident, None) for incident in held], originals)
    assign_problems(conn, store, pending, now, rules, announcer)
    if announcer is not None and announcer.wants("incident.opened"):
        for incident in ordinary:
            announcer.announce(
                conn, "incident.opened", now, {"incident": incident_shape(incident)}, incident.problem_id
            )
    store.add_incident_events(
        conn, [_released_event(incident, outcomes[incident.stored_id], window, now) for incident in held]
    )
    closed = sum(1 for outcome in outcomes.values() if outcome is Released.CLOSED)
    return Release(window.id, len(ordinary), closed)


def _released_event(incident: Incident, outcome: Released, window: Window, now: datetime) -> dict[str, Any]:
    where = f"{window.kind.value} window #{window.id} {window.name!r}"
    detail = {
        Released.CLOSED: f"closed quietly: resolved inside {where}",
        Released.ORDINARY: f"released at the end of {where}: handled as opened at {window.end:%Y-%m-%d %H:%M:%S} UTC",
        Released.GONE: f"hold of {where} ended; the incident was closed already",
    }[outcome]
    return dict(incident_id=incident.stored_id, at=now, kind="released", actor=None, detail=detail)


def count_released(released: Release | None) -> None:
    """Count the incidents a window's end closed quietly (after its transaction committed)."""
    if released is not None and released.closed:
        metrics.labelled(metrics.CLOSED, QUIET_CLOSE).inc(released.closed)


def release_due(store: Store, rules: Rules, now: datetime) -> list[Release]:
    """Release every window whose end has come, and what a webhook held under a window while it was being released."""
    done = []
    for window_id in store.windows_to_release(now):
        released = store.run(functools.partial(_release_by_id, store=store, rules=rules, window_id=window_id, now=now))
        if released is not None:
            done.append(released)
            count_released(released)
            log.info("window ended; what it held is released", extra={"window_id": window_id, **released.__dict__})
    late = [
        window_id
        for window_id, (_, held) in store.held_counts(store.windows_released_since(now - STRAGGLERS)).items()
        if held
    ]
    for window_id in late:
        late_release = store.run(
            functools.partial(_release_late, store=store, rules=rules, window_id=window_id, now=now)
        )
        done.append(late_release)
        count_released(late_release)
    return done


def _release_by_id(conn: Connection, store: Store, rules: Rules, window_id: int, now: datetime) -> Release | None:
    row = store.find_window(conn, window_id)
    return release_window(conn, store, rules, window_of(row), now) if row is not None else None


def _release_late(conn: Connection, store: Store, rules: Rules, window_id: int, now: datetime) -> Release:
    row = store.find_window(conn, window_id)
    assert row is not None
    return release_held(conn, store, rules, window_of(row), now)


def sync_recurring(store: Store, rules: Rules, now: datetime) -> int:
    """Keep each recurring window's current or next occurrence stored, so ingest reads it like any window.

    An occurrence that has not started is dropped when its rule changed or went; one in
    progress whose rule went ends now (its release follows). Returns how many rows changed.
    """
    configured = {window.name: window for window in rules.maintenance}
    stored = store.read(lambda conn: store.window_occurrences(conn, None, now))
    expected = {name: _occurrence(window, now) for name, window in configured.items()}
    present = {(row["rule"], row["starts_at"]) for row in stored}
    dropped = [
        row["id"] for row in stored if row["starts_at"] > now and row["ended_at"] is None and _stale(row, expected)
    ]
    ended = [
        row["id"]
        for row in stored
        if row["starts_at"] <= now and row["ended_at"] is None and row["rule"] not in configured
    ]
    added = [values for name, values in expected.items() if (name, values["starts_at"]) not in present]
    if not (dropped or ended or added):
        return 0

    def work(conn: Connection) -> int:
        store.drop_occurrences(conn, dropped)
        changed = len(dropped) + sum(store.end_window(conn, window_id, now, RECURRING_ACTOR) for window_id in ended)
        return changed + sum(store.add_occurrence(conn, {**values, "created_at": now}) for values in added)

    return store.run(work)


def _occurrence(window: RecurringWindow, now: datetime) -> dict[str, Any]:
    starts, ends = window.next_occurrence(now)
    return dict(
        kind=WindowKind.MAINTENANCE.value,
        name=window.name,
        reason=window.reason,
        match=match_of(window.matcher),
        starts_at=starts,
        ends_at=ends,
        created_by=RECURRING_ACTOR,
        rule=window.name,
    )


def _stale(row: dict[str, Any], expected: dict[str, dict[str, Any]]) -> bool:
    wanted = expected.get(row["rule"])
    return wanted is None or any(row[key] != wanted[key] for key in ("starts_at", "ends_at", "match", "reason"))


def window_json(row: dict[str, Any], now: datetime, counts: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    """A window as the API shows it, with the incidents it held and holds still."""
    window = window_of(row)
    return {
        "id": row["id"],
        "kind": row["kind"],
        "name": row["name"],
        "reason": row["reason"],
        "match": row["match"],
        "state": window.state(now).value,
        "starts_at": iso(row["starts_at"]),
        "ends_at": iso(row["ends_at"]),
        "ended_at": iso(row["ended_at"]),
        "ended_by": row["ended_by"],
        "created_at": iso(row["created_at"]),
        "created_by": row["created_by"],
        "released_at": iso(row["released_at"]),
        "recurring": row["rule"],
        "incidents_held": counts[0],
        "incidents_holding": counts[1],
    }
