"""The outbox: side effects (Jira, Zabbix) queued in the transaction that caused them, run by the worker."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.storage import driver_sql
from bridge.storage.engine import MAX_ID, Database
from bridge.storage.schema import outbox

# Driver SQL (see `driver_sql`): a storm's every group of creates queues a comment on its problem's issue.
_ENQUEUE_COLUMNS = "kind, target, problem_id, payload, state, attempts, created_at, next_attempt_at, dedup_key"
_SQLITE_ENQUEUE = f"INSERT INTO outbox ({_ENQUEUE_COLUMNS}) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?)"
_POSTGRES_ENQUEUE = f"INSERT INTO outbox ({_ENQUEUE_COLUMNS}) VALUES (%s, %s, %s, %s::jsonb, 'pending', 0, %s, %s, %s)"


class OutboxRepository(Database):
    """Queueing, leasing and settling outbox jobs."""

    @staticmethod
    def enqueue(
        conn: Connection,
        kind: str,
        *,
        target: str,
        now: datetime,
        payload: Mapping[str, Any] | None = None,
        problem_id: int | None = None,
        dedup_key: str | None = None,
        run_at: datetime | None = None,
    ) -> None:
        """Add an outbox job in the caller's transaction; a pending job with the same dedup key wins."""
        sqlite = driver_sql.is_sqlite(conn)
        statement = _SQLITE_ENQUEUE if sqlite else _POSTGRES_ENQUEUE
        # The predicate is literal SQL: PostgreSQL cannot match a partial index against a bound
        # parameter once psycopg prepares the statement.
        unless_pending = "" if dedup_key is None else " ON CONFLICT (dedup_key) WHERE state = 'pending' DO NOTHING"
        driver_sql.execute(
            conn,
            statement + unless_pending,
            (
                kind,
                target,
                problem_id,
                driver_sql.json_text(dict(payload or {})),
                driver_sql.datetime_value(now, sqlite),
                driver_sql.datetime_value(run_at or now, sqlite),
                dedup_key,
            ),
        )

    def claim_jobs(
        self,
        now: datetime,
        lease: timedelta,
        limit: int,
        *,
        held_kinds: Collection[str] = (),
        priorities: Mapping[str, int] | None = None,
    ) -> list[dict[str, Any]]:
        """Lease due jobs to this worker; other workers skip them (SKIP LOCKED on PostgreSQL).

        Kinds in `held_kinds` are left alone (a rate limit holds them back). With `priorities`
        (kind -> rank, lower first) jobs are leased by rank, then by due time; the jobs come
        back in lease order.
        """

        def work(conn: Connection) -> list[dict[str, Any]]:
            order: list[Any] = [outbox.c.next_attempt_at, outbox.c.id]
            if priorities:
                order.insert(0, sa.case(dict(priorities), value=outbox.c.kind, else_=max(priorities.values()) + 1))
            due = (
                sa.select(outbox.c.id)
                .where(
                    outbox.c.state == "pending",
                    outbox.c.next_attempt_at <= now,
                    sa.or_(outbox.c.locked_until.is_(None), outbox.c.locked_until < now),
                    *([outbox.c.kind.not_in(list(held_kinds))] if held_kinds else []),
                )
                .order_by(*order)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            ids = list(conn.execute(due).scalars())
            if not ids:
                return []
            rows = conn.execute(
                outbox.update()
                .where(outbox.c.id.in_(ids))
                .values(locked_until=now + lease, attempts=outbox.c.attempts + 1)
                .returning(*outbox.columns)
            ).mappings()
            rank = {job_id: n for n, job_id in enumerate(ids)}
            return sorted((dict(row) for row in rows), key=lambda job: rank[job["id"]])

        return self.run(work)

    def postpone_job(self, job_id: int, until: datetime, reason: str) -> None:
        """Put a leased job off until `until` without counting the lease as an attempt (a rate limit, not a failure)."""
        self.run(
            lambda conn: conn.execute(
                outbox.update()
                .where(outbox.c.id == job_id)
                .values(
                    next_attempt_at=until,
                    locked_until=None,
                    attempts=sa.case((outbox.c.attempts > 0, outbox.c.attempts - 1), else_=0),
                    last_error=reason[:2000],
                )
            )
        )

    def lease_pending_texts(
        self, kinds: Collection[str], jira_key: str, exclude_id: int, now: datetime, lease: timedelta
    ) -> list[dict[str, Any]]:
        """Lease the other pending jobs of `kinds` for one issue (payload `jira_key`), oldest first, to coalesce.

        Jobs another worker holds are skipped; leasing them counts no attempt.
        """

        def work(conn: Connection) -> list[dict[str, Any]]:
            query = (
                sa.select(outbox)
                .where(
                    outbox.c.state == "pending",
                    outbox.c.kind.in_(list(kinds)),
                    outbox.c.id != exclude_id,
                    outbox.c.payload["jira_key"].as_string() == jira_key,
                    sa.or_(outbox.c.locked_until.is_(None), outbox.c.locked_until < now),
                )
                .order_by(outbox.c.id)
                .with_for_update(skip_locked=True)
            )
            rows = [dict(row) for row in conn.execute(query).mappings()]
            if rows:
                conn.execute(
                    outbox.update().where(outbox.c.id.in_([row["id"] for row in rows])).values(locked_until=now + lease)
                )
            return rows

        return self.run(work)

    def release_jobs(self, job_ids: Collection[int]) -> None:
        """Give back leased jobs untouched (a coalesced call that failed: each runs on its own later)."""
        if job_ids:
            self.run(
                lambda conn: conn.execute(
                    outbox.update().where(outbox.c.id.in_(list(job_ids))).values(locked_until=None)
                )
            )

    def finish_coalesced(self, job_ids: Collection[int], into_id: int, now: datetime) -> None:
        """Mark jobs done whose text went out in job `into_id`'s call; the note says where."""
        if job_ids:
            self.run(
                lambda conn: conn.execute(
                    outbox.update()
                    .where(outbox.c.id.in_(list(job_ids)))
                    .values(
                        state="done", finished_at=now, locked_until=None, last_error=f"coalesced into job {into_id}"
                    )
                )
            )

    @staticmethod
    def cancel_pending(conn: Connection, kind: str, problem_id: int, reason: str, now: datetime) -> int:
        """Drop a problem's pending jobs of one kind that a person's action made pointless; returns how many."""
        result = conn.execute(
            outbox.update()
            .where(outbox.c.kind == kind, outbox.c.problem_id == problem_id, outbox.c.state == "pending")
            .values(state="done", finished_at=now, locked_until=None, last_error=f"cancelled: {reason}"[:2000])
        )
        return int(result.rowcount or 0)

    def finish_job(self, job_id: int, now: datetime) -> None:
        self.run(
            lambda conn: conn.execute(
                outbox.update()
                .where(outbox.c.id == job_id)
                .values(state="done", finished_at=now, locked_until=None, last_error=None)
            )
        )

    def retry_job(self, job_id: int, at: datetime, error: str) -> None:
        self.run(
            lambda conn: conn.execute(
                outbox.update()
                .where(outbox.c.id == job_id)
                .values(next_attempt_at=at, locked_until=None, last_error=error[:2000])
            )
        )

    def bury_job(self, job_id: int, now: datetime, error: str) -> None:
        """Dead-letter a job: kept and visible, never run again by itself."""
        self.run(
            lambda conn: conn.execute(
                outbox.update()
                .where(outbox.c.id == job_id)
                .values(state="dead", finished_at=now, locked_until=None, last_error=error[:2000])
            )
        )

    def retry_dead_jobs(
        self, now: datetime, *, kind: str | None = None, job_id: int | None = None
    ) -> tuple[list[int], dict[int, int]]:
        """Put dead jobs back in the queue (once their cause is fixed): pending, due now, attempts reset.

        The dead-letter deadline counts again from now (created_at is reset). A dead job
        whose dedup key already has a pending job is left dead: that job does the same work
        (handlers re-read the state), and the pending-dedup unique index allows one.
        Returns the ids retried and, per skipped id, the pending job that stands for it.
        """

        def work(conn: Connection) -> tuple[list[int], dict[int, int]]:
            query = sa.select(outbox.c.id, outbox.c.dedup_key).where(outbox.c.state == "dead")
            if kind is not None:
                query = query.where(outbox.c.kind == kind)
            if job_id is not None:
                query = query.where(outbox.c.id == job_id)
            dead = conn.execute(query.order_by(outbox.c.id.desc()).with_for_update()).all()
            retried: list[int] = []
            skipped: dict[int, int] = {}
            for dead_id, dedup_key in dead:
                twin = (
                    None
                    if dedup_key is None
                    else conn.execute(
                        sa.select(outbox.c.id).where(outbox.c.dedup_key == dedup_key, outbox.c.state == "pending")
                    ).scalar()
                )
                if twin is not None:
                    skipped[dead_id] = twin
                    continue
                conn.execute(
                    outbox.update()
                    .where(outbox.c.id == dead_id)
                    .values(
                        state="pending",
                        attempts=0,
                        created_at=now,
                        next_attempt_at=now,
                        locked_until=None,
                        finished_at=None,
                    )
                )
                retried.append(dead_id)
            return sorted(retried), skipped

        return self.run(work)

    def get_job(self, job_id: int) -> dict[str, Any] | None:
        if not 0 < job_id <= MAX_ID:
            return None
        query = sa.select(outbox).where(outbox.c.id == job_id)
        return self.read(lambda conn: next((dict(row) for row in conn.execute(query).mappings()), None))
