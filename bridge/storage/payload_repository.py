"""Raw payloads: notifications kept next to what was made of them, refused payloads, and their retention."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.storage import driver_sql
from bridge.storage.engine import Database
from bridge.storage.schema import notifications, rejected_payloads
from bridge.storage.sql_functions import octet_length

# What a listing of refused payloads shows: everything but the body, which can be 1 MB each.
REJECTED_SUMMARY = [column for column in rejected_payloads.columns if column.name != "body"] + [
    octet_length(rejected_payloads.c.body).label("body_bytes")
]
# Tables whose rows age out after BRIDGE_RETENTION; nothing else refers to them by key.
PRUNED_TABLES = (notifications, rejected_payloads)
PRUNE_BATCH = 2000
_NOTIFICATION_COLUMNS = tuple(column.name for column in notifications.columns if column.name != "id")
_NOTIFICATION_KINDS = driver_sql.column_kinds(notifications)


class PayloadRepository(Database):
    """Writes of raw and refused payloads, and their prune."""

    @staticmethod
    def add_notifications(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Keep raw notifications next to what was made of them; ids in the order given.

        Each row holds source, received_at, body, alert_count, rejected_count,
        truncated_alerts and group_key.
        """
        sqlite = driver_sql.is_sqlite(conn)
        values = [driver_sql.driver_row(row, _NOTIFICATION_COLUMNS, _NOTIFICATION_KINDS, sqlite) for row in rows]
        return driver_sql.insert_returning_ids(conn, notifications, _NOTIFICATION_COLUMNS, values, texts=("body",))

    @staticmethod
    def add_rejected(
        conn: Connection,
        source: str,
        received_at: datetime,
        *,
        reason: str,
        errors: Sequence[str],
        body: str,
        content_type: str | None,
        partial: bool,
        body_limit: int,
    ) -> int:
        """Keep a refused payload (or the refused part of one) with its reason.

        Findings quote the sender's keys, which may hold NUL: PostgreSQL text and JSONB refuse it.
        """
        truncated = len(body) > body_limit
        rejected_id: int = conn.execute(
            rejected_payloads.insert().returning(rejected_payloads.c.id),
            dict(
                source=source,
                received_at=received_at,
                reason=reason.replace("\x00", "\ufffd"),
                errors=[line.replace("\x00", "\ufffd") for line in errors],
                content_type=content_type,
                partial=partial,
                body=body[:body_limit] if truncated else body,
                body_truncated=truncated,
            ),
        ).scalar_one()
        return rejected_id

    def prune(self, before: datetime, batch: int = PRUNE_BATCH) -> dict[str, int]:
        """Delete raw notifications and refused payloads received before `before`; counts per table.

        Batches of `batch` rows, each its own short transaction, so a prune of months of
        storms never holds SQLite's write lock (or PostgreSQL row locks) for long and
        webhooks keep landing in between.
        """
        deleted = {}
        for table in PRUNED_TABLES:
            oldest = (
                sa.select(table.c.id).where(table.c.received_at < before).order_by(table.c.received_at).limit(batch)
            )
            statement = table.delete().where(table.c.id.in_(oldest))
            deleted[table.name] = 0
            while True:
                count = self.run(functools.partial(_delete_count, statement))
                deleted[table.name] += count
                if count < batch:
                    break
        return deleted


def _delete_count(statement: sa.Delete, conn: Connection) -> int:
    """Run one batch of a prune; how many rows it deleted."""
    return conn.execute(statement).rowcount
