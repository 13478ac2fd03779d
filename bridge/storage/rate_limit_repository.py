"""The Jira rate-limit budget every worker shares: blocks by scope and the latest X-RateLimit-* headers.

Kept in the database, not per process, so a 429 one worker meets holds back the same
scope in every other worker, and the budget one answer reports is what all of them see.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from bridge.storage.engine import Database
from bridge.storage.schema import jira_rate_limits

# The row that holds the quota's block and the budget headers.
QUOTA_SCOPE = "quota"
STALE_BLOCK = timedelta(days=1)


@dataclass(frozen=True)
class RateLimitBlock:
    """One scope held back until `until` (scope as jira_link.rate_limits.RateLimitScope.key)."""

    scope: str
    operation: str | None
    reason: str | None
    until: datetime


@dataclass(frozen=True)
class JiraLimits:
    """The blocks in force now and the budget the latest answer reported."""

    blocks: tuple[RateLimitBlock, ...] = ()
    remaining: int | None = None
    limit: int | None = None
    near_limit: bool = False
    reset_at: datetime | None = None


def _upsert(conn: Connection, values: dict[str, Any], update: dict[str, Any]) -> None:
    insert = (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(jira_rate_limits).values(values)
    conn.execute(insert.on_conflict_do_update(index_elements=["scope"], set_=update))


class RateLimitRepository(Database):
    """Blocks and budget of the Jira site, upserted by any worker."""

    def block_jira(
        self,
        scope: str,
        operation: str | None,
        reason: str | None,
        until: datetime,
        now: datetime,
        escalate_up_to: timedelta | None = None,
    ) -> datetime:
        """Hold `scope` back until `until` (a later block already in force stays); returns when it ends.

        With `escalate_up_to` (Jira gave no wait), a scope blocked again soon after its last
        block ended waits twice as long as that one did, up to the cap: exponential backoff
        per scope, shared by every worker.
        """

        def work(conn: Connection) -> datetime:
            table = jira_rate_limits
            nonlocal until
            last = conn.execute(
                sa.select(table.c.blocked_at, table.c.blocked_until).where(table.c.scope == scope[:255])
            ).first()
            if escalate_up_to is not None and last is not None and last.blocked_at and last.blocked_until:
                lasted = last.blocked_until - last.blocked_at
                if last.blocked_until >= now - lasted:
                    until = max(until, now + min(2 * lasted, escalate_up_to))
            excluded = (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(table).excluded
            later = sa.case(
                (
                    sa.and_(table.c.blocked_until.is_not(None), table.c.blocked_until > excluded.blocked_until),
                    table.c.blocked_until,
                ),
                else_=excluded.blocked_until,
            )
            values = dict(
                scope=scope[:255],
                operation=operation,
                reason=(reason or "")[:64] or None,
                blocked_until=until,
                blocked_at=now,
                updated_at=now,
            )
            _upsert(
                conn,
                values,
                dict(
                    blocked_until=later,
                    blocked_at=now,
                    reason=excluded.reason,
                    operation=excluded.operation,
                    updated_at=now,
                ),
            )
            # Blocks long over say nothing any more (issue scopes would otherwise pile up).
            conn.execute(table.delete().where(table.c.scope != QUOTA_SCOPE, table.c.blocked_until < now - STALE_BLOCK))
            ends: datetime = conn.execute(
                sa.select(table.c.blocked_until).where(table.c.scope == scope[:255])
            ).scalar_one()
            return ends

        return self.run(work)

    def record_jira_budget(
        self, *, limit: int | None, remaining: int | None, near_limit: bool, reset_at: datetime | None, now: datetime
    ) -> None:
        """Keep the X-RateLimit-* headers of the latest answer on the quota row (its block untouched)."""
        budget = dict(remaining=remaining, request_limit=limit, near_limit=near_limit, reset_at=reset_at)
        self.run(
            lambda conn: _upsert(conn, dict(scope=QUOTA_SCOPE, updated_at=now, **budget), dict(budget, updated_at=now))
        )

    def jira_limits(self, now: datetime) -> JiraLimits:
        """The blocks in force at `now` and the latest budget."""

        def work(conn: Connection) -> JiraLimits:
            table = jira_rate_limits
            blocks = tuple(
                RateLimitBlock(row.scope, row.operation, row.reason, row.blocked_until)
                for row in conn.execute(
                    sa.select(table.c.scope, table.c.operation, table.c.reason, table.c.blocked_until)
                    .where(table.c.blocked_until > now)
                    .order_by(table.c.scope)
                )
            )
            quota = conn.execute(sa.select(table).where(table.c.scope == QUOTA_SCOPE)).mappings().first()
            if quota is None:
                return JiraLimits(blocks)
            return JiraLimits(
                blocks, quota["remaining"], quota["request_limit"], bool(quota["near_limit"]), quota["reset_at"]
            )

        return self.read(work)
