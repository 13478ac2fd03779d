"""Durable store on SQLAlchemy Core: SQLite (WAL) embedded, PostgreSQL in production.

One package by concern: `schema` (tables and types), `engine` (engine set-up, the
transaction and retry loop, migrations), one repository per aggregate, and `read_models`
for what pages show. `Connection` is the transaction a use case's work runs in (the only
SQLAlchemy name the rest of the bridge sees). `Store` gathers the repositories into the one object callers pass
around, so `from bridge.storage import Store, ...` reads as it always did.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from bridge.storage.action_repository import ActionRepository
from bridge.storage.engine import (
    MAX_ID,
    MAX_TRANSACTION_ATTEMPTS,
    READ_ONLY,
    SQLITE_BUSY_TIMEOUT_MS,
    Database,
    Page,
    make_engine,
    migrate,
    normalise_url,
    schema_is_current,
)
from bridge.storage.incident_repository import IncidentRepository
from bridge.storage.merge_repository import MergeRepository
from bridge.storage.outbox_repository import OutboxRepository
from bridge.storage.outcome_repository import OutcomeRepository
from bridge.storage.payload_repository import PRUNE_BATCH, PRUNED_TABLES, PayloadRepository
from bridge.storage.problem_repository import ProblemRepository
from bridge.storage.rate_limit_repository import JiraLimits, RateLimitBlock, RateLimitRepository
from bridge.storage.read_models import GaugeCounts, IncidentFilter, ReadModels
from bridge.storage.release_repository import ReleaseRepository
from bridge.storage.schema import (
    BigId,
    JsonType,
    UtcDateTime,
    incident_events,
    incidents,
    jira_rate_limits,
    metadata,
    notifications,
    outbox,
    problem_events,
    problem_tickets,
    problems,
    rejected_payloads,
    release_issues,
    releases,
)
from bridge.storage.ticket_repository import TicketRepository

__all__ = [
    "MAX_ID",
    "MAX_TRANSACTION_ATTEMPTS",
    "PRUNED_TABLES",
    "PRUNE_BATCH",
    "READ_ONLY",
    "SQLITE_BUSY_TIMEOUT_MS",
    "BigId",
    "Connection",
    "Database",
    "GaugeCounts",
    "IncidentFilter",
    "JiraLimits",
    "JsonType",
    "Page",
    "RateLimitBlock",
    "Store",
    "UtcDateTime",
    "incident_events",
    "incidents",
    "jira_rate_limits",
    "make_engine",
    "metadata",
    "migrate",
    "normalise_url",
    "notifications",
    "outbox",
    "problem_events",
    "problem_tickets",
    "problems",
    "rejected_payloads",
    "release_issues",
    "releases",
    "schema_is_current",
]


class Store(
    IncidentRepository,
    ProblemRepository,
    MergeRepository,
    OutcomeRepository,
    OutboxRepository,
    ReleaseRepository,
    PayloadRepository,
    RateLimitRepository,
    ReadModels,
    ActionRepository,
    TicketRepository,
):
    """All reads and writes of the bridge's state, one repository per aggregate on one engine."""
