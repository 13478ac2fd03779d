"""Request Tracker read on a schedule: every `sync.interval`, the tickets of its queues changed since the last read.

The worker runs it, one process at a time across replicas: a pass takes the system's lease
row first (one conditional update decides between workers, on either database), and a
worker that finds it held leaves the pass to its holder. A pass searches RT with TicketSQL,
`LastUpdated >= <watermark - overlap>` (RT's times are whole seconds, so a ticket changed in
the watermark's own second is read again, never skipped), newest first through every page,
and applies each ticket (bridge/tickets/sync.py, where a repeated reading changes nothing).
Only a pass that read everything moves the watermark on: one that fails (RT down, refusing
the credentials) is logged with its cause, counted, shown on the overview, and retried with
a growing delay no longer than the interval; webhooks never wait for it. The very first pass
reads the queues' active tickets.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from adapters import tickets as ticket_adapter
from adapters.request_tracker import DONE_STATUSES, RtClient, RtError
from bridge import metrics
from bridge.domain.rules import Rules
from bridge.domain.ticket_sync import TicketSnapshot, TicketState, ticket_labels, ticket_text
from bridge.domain.tickets import TicketSync, TicketSystem
from bridge.errors import BridgeError, StoreUnavailable
from bridge.storage.store import Store
from bridge.tickets.sync import apply_ticket

log = logging.getLogger(__name__)

# How long a pass holds a system before another worker may take over (renewed after every page).
LEASE = timedelta(minutes=5)
FIRST_RETRY_SECONDS = 5.0
FIELDS = "Subject,Status,LastUpdated,Priority,Queue,CustomFields"


class SyncInterrupted(Exception):
    """The lease ran out during a pass and another worker took the system over: this pass stops."""


@dataclass(frozen=True)
class SyncOutcome:
    """What one attempt at a system's sync did: `not_due`, `busy` (another worker holds it), `success`, `failure`."""

    outcome: str
    read: int = 0
    error: str | None = None


def rt_time(value: datetime) -> str:
    """An instant as TicketSQL reads it, its zone explicit (an unreadable date would match every ticket)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def sync_query(sync: TicketSync, watermark: datetime | None) -> str:
    """The TicketSQL of a pass: the queues' tickets changed since the watermark, less the overlap."""
    queues = " OR ".join(f"Queue = '{queue}'" for queue in sync.queues)
    if watermark is None:
        return f"({queues}) AND Status = '__Active__'"
    return f"({queues}) AND LastUpdated >= '{rt_time(watermark - sync.overlap)}'"


def label_name(name: str) -> str:
    """A custom field's name as a label name: lower case, anything but letters and digits as `_`."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "field"


def rt_state(status: str) -> TicketState:
    """A status of RT's default lifecycle as a ticket state (custom active statuses count as active)."""
    if status == "deleted":
        return TicketState.GONE
    return TicketState.DONE if status in DONE_STATUSES else TicketState.ACTIVE


def _custom_fields(item: Mapping[str, Any]) -> dict[str, str]:
    """A search result's custom fields with values: name -> values joined (REST2 lists them by name; a
    cleared field reads `values: [null]`)."""
    found = {}
    for entry in item.get("CustomFields") or []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            continue
        values = [str(value).strip() for value in entry.get("values") or [] if value is not None and str(value).strip()]
        if values:
            found[entry["name"]] = ", ".join(values)
    return found


def rt_snapshot(system: TicketSystem, item: Mapping[str, Any], url: str) -> TicketSnapshot:
    """A ticket of a REST2 search (`FIELDS`, the queue by name) in the shape every reader gives."""
    ticket_id = str(item.get("id", ""))
    status = ticket_text(item.get("Status") or "", 64)
    queue = item.get("Queue")
    fields = _custom_fields(item)
    fixed = {
        "queue": str(queue.get("Name", queue.get("id", ""))) if isinstance(queue, Mapping) else str(queue or ""),
        "status": status,
        "priority": str(item.get("Priority") or "0"),
    }
    labels = ticket_labels({**fixed, **{label_name(name): value for name, value in fields.items()}, **fixed})
    updated = str(item.get("LastUpdated") or "")
    problem_field = system.field_of_problem
    subject = ticket_text(item.get("Subject") or "", ticket_adapter.MAX_SUMMARY_LENGTH) or f"RT ticket {ticket_id}"
    return TicketSnapshot(
        system=system.name,
        ticket_id=ticket_id,
        status=status,
        state=rt_state(status),
        summary=subject,
        labels=labels,
        url=url,
        problem_ref=ticket_text(fields.get(problem_field, "").split(", ")[0], 200) if problem_field else "",
        version=updated,
        updated_at=_rt_instant(updated),
    )


def _rt_instant(text: str) -> datetime | None:
    """RT's `2026-12-07T02:56:24Z`; None when absent or unreadable (the watermark then stays)."""
    try:
        return datetime.fromisoformat(text).astimezone(UTC) if text else None
    except ValueError:
        return None


def default_owner() -> str:
    """This worker's name in the lease row: host, process and a random part (two workers never share it)."""
    return f"{socket.gethostname()[:150]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class TicketSyncer:
    """Runs the sync of every Request Tracker with `sync:` in rules.yaml, each when it is due."""

    store: Store
    rules: Rules
    owner: str = field(default_factory=default_owner)
    session: Callable[[], requests.Session] = requests.Session

    @property
    def systems(self) -> list[TicketSystem]:
        return [s for s in self.rules.ticket_systems.values() if s.kind == "rt" and s.sync is not None]

    def run_due(self, now: datetime) -> list[SyncOutcome]:
        """Sync each system whose time has come; a failing system never stops the others or the worker."""
        outcomes = []
        for system in self.systems:
            try:
                outcomes.append(self.sync(system, now))
            except StoreUnavailable:
                raise
            except Exception:  # a bug must cost one system's pass, not the worker
                log.exception("ticket sync crashed", extra={"system": system.name})
                outcomes.append(SyncOutcome("failure", error="crashed"))
        return outcomes

    def sync(self, system: TicketSystem, now: datetime) -> SyncOutcome:
        """One attempt at a system's sync: not due, held by another worker, done, or failed (and retried later)."""
        assert system.sync is not None
        state = self.store.sync_state(system.name, now)
        if state["next_attempt_at"] is not None and state["next_attempt_at"] > now:
            return SyncOutcome("not_due")
        if not self.store.take_sync_lease(system.name, self.owner, now, now + LEASE):
            return SyncOutcome("busy")
        try:
            newest, read = self._read(system, state["watermark"], now)
        except (RtError, SyncInterrupted, BridgeError) as exc:
            error = str(exc) if not isinstance(exc, BridgeError) else exc.message
            return self._failed(system, state["failures"], now, error)
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.exception("ticket sync crashed", extra={"system": system.name})
            return self._failed(system, state["failures"], now, f"unexpected error: {type(exc).__name__}")
        self.store.finish_sync(system.name, self.owner, now, newest or now, now + system.sync.interval, read)
        metrics.labelled(metrics.TICKET_SYNC, system.name, "success").inc()
        log.info("tickets synced", extra={"system": system.name, "read": read})
        return SyncOutcome("success", read)

    def _failed(self, system: TicketSystem, failures: int, now: datetime, error: str) -> SyncOutcome:
        assert system.sync is not None
        delay = min(system.sync.interval.total_seconds(), FIRST_RETRY_SECONDS * 2.0**failures)
        self.store.fail_sync(system.name, self.owner, error, now + timedelta(seconds=delay))
        metrics.labelled(metrics.TICKET_SYNC, system.name, "failure").inc()
        log.warning(
            "ticket sync failed; the next pass reads it all again",
            extra={"system": system.name, "error": error, "failures": failures + 1, "retry_in_seconds": delay},
        )
        return SyncOutcome("failure", error=error)

    def _read(self, system: TicketSystem, watermark: datetime | None, now: datetime) -> tuple[datetime | None, int]:
        """Read and apply every page of changed tickets; returns the newest change seen and how many were read."""
        assert system.sync is not None
        client = RtClient.for_system(system, self.session())
        started = time.monotonic()
        query = sync_query(system.sync, watermark)
        newest, read, page = watermark, 0, 1
        try:
            while True:
                answer = client.search_tickets(query, FIELDS, page)
                items = [item for item in answer.get("items") or [] if isinstance(item, Mapping)]
                for item in items:
                    snapshot = rt_snapshot(system, item, client.ticket_url(str(item.get("id", ""))))
                    apply_ticket(self.store, self.rules, system, snapshot, now)
                    read += 1
                    if snapshot.updated_at is not None and (newest is None or snapshot.updated_at > newest):
                        newest = snapshot.updated_at
                if not items or not answer.get("next_page"):
                    return newest, read
                page += 1
                until = now + timedelta(seconds=time.monotonic() - started) + LEASE
                if not self.store.renew_sync_lease(system.name, self.owner, now, until):
                    raise SyncInterrupted("the sync's lease ran out during the pass; another worker took it over")
        finally:
            client.session.close()
