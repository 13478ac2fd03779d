"""Heartbeats and hold windows: senders' silence becomes an incident; planned work holds side effects and clocks.

Adds the `heartbeats` and `hold_windows` tables, the incident's hold (the window that held it,
whether it still does, when its clocks started) and an index of each source's notifications
by time, which finds when a source was last heard in one probe.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import JsonType, UtcDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "heartbeats",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("armed_at", UtcDateTime(), nullable=False),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime()),
    )
    op.create_table(
        "hold_windows",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("match", JsonType, nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("ends_at", UtcDateTime(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(200)),
        sa.Column("ended_at", UtcDateTime()),
        sa.Column("ended_by", sa.String(200)),
        sa.Column("released_at", UtcDateTime()),
        sa.Column("rule", sa.String(200)),
    )
    op.create_index("ix_hold_windows_ends_at", "hold_windows", ["ends_at"])
    op.create_index("ux_hold_windows_rule_starts_at", "hold_windows", ["rule", "starts_at"], unique=True)
    # Plain ADD COLUMN on both (PostgreSQL: no rewrite for a constant default), never a table copy.
    op.add_column("incidents", sa.Column("hold_window_id", sa.BigInteger()))
    op.add_column("incidents", sa.Column("hold_window", JsonType))
    op.add_column("incidents", sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("incidents", sa.Column("clocks_from", UtcDateTime()))
    op.create_index(
        "ix_incidents_hold_window_id",
        "incidents",
        ["hold_window_id"],
        sqlite_where=sa.text("hold_window_id IS NOT NULL"),
        postgresql_where=sa.text("hold_window_id IS NOT NULL"),
    )
    op.create_index("ix_notifications_source_received_at", "notifications", ["source", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_notifications_source_received_at", table_name="notifications")
    op.drop_index("ix_incidents_hold_window_id", table_name="incidents")
    for column in ("clocks_from", "held", "hold_window", "hold_window_id"):
        op.drop_column("incidents", column)
    op.drop_index("ux_hold_windows_rule_starts_at", table_name="hold_windows")
    op.drop_index("ix_hold_windows_ends_at", table_name="hold_windows")
    op.drop_table("hold_windows")
    op.drop_table("heartbeats")
