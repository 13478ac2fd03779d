"""The worker's pass over what it watches: recurring windows stored ahead, ended windows released, heartbeats decided."""

from __future__ import annotations

from datetime import datetime

from bridge.domain.rules import Rules
from bridge.storage.store import Store
from bridge.watch.heartbeats import check_heartbeats
from bridge.watch.windows import release_due, sync_recurring


def watch_once(store: Store, rules: Rules, now: datetime) -> int:
    """One pass; returns how many windows and heartbeats changed. Every change is conditional, so the
    workers of several bridges on one database may all run it: each change is made once."""
    changed = sync_recurring(store, rules, now)
    changed += len(release_due(store, rules, now))
    return changed + len(check_heartbeats(store, rules, now))
