"""Incidents, raw notifications and rejected payloads.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import BigId, JsonType, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.Column("rejected_count", sa.Integer(), nullable=False),
        sa.Column("truncated_alerts", sa.Integer(), nullable=False),
        sa.Column("group_key", sa.Text()),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_table(
        "incidents",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("dedup_key", sa.Text(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("line", sa.String(64), nullable=False),
        sa.Column("impact", sa.String(16), nullable=False),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("labels", JsonType, nullable=False),
        sa.Column("annotations", JsonType, nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.Column("episode_started_at", UtcDateTime()),
        sa.Column("resolved_at", UtcDateTime()),
        sa.Column("closed_at", UtcDateTime()),
        sa.Column("close_reason", sa.Text()),
        sa.Column("auto_close_at", UtcDateTime()),
        sa.Column("problem_id", sa.BigInteger()),
        sa.Column("last_notification_id", sa.BigInteger()),
    )
    op.create_index(
        "ux_incidents_firing_dedup_key",
        "incidents",
        ["dedup_key"],
        unique=True,
        sqlite_where=sa.text("state = 'firing'"),
        postgresql_where=sa.text("state = 'firing'"),
    )
    op.create_index("ix_incidents_dedup_key_state", "incidents", ["dedup_key", "state"])
    op.create_index("ix_incidents_state_auto_close_at", "incidents", ["state", "auto_close_at"])
    op.create_index("ix_incidents_problem_id", "incidents", ["problem_id"])
    op.create_table(
        "rejected_payloads",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("errors", JsonType, nullable=False),
        sa.Column("content_type", sa.Text()),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_truncated", sa.Boolean(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rejected_payloads")
    op.drop_table("incidents")
    op.drop_table("notifications")
