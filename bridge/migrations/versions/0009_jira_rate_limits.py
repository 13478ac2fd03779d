"""The Jira rate-limit budget shared by every worker.

- jira_rate_limits: one row per scope a 429 held back (the quota, one endpoint and method,
  one issue's writes) with the time it is blocked until, and on the quota row the
  X-RateLimit-Limit / -Remaining / -NearLimit / -Reset of the latest answer.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jira_rate_limits",
        sa.Column("scope", sa.String(255), primary_key=True),
        sa.Column("operation", sa.String(64)),
        sa.Column("reason", sa.String(64)),
        sa.Column("blocked_until", UtcDateTime()),
        sa.Column("blocked_at", UtcDateTime()),
        sa.Column("remaining", sa.BigInteger()),
        sa.Column("request_limit", sa.BigInteger()),
        sa.Column("near_limit", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("reset_at", UtcDateTime()),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_jira_rate_limits_blocked_until", "jira_rate_limits", ["blocked_until"])


def downgrade() -> None:
    op.drop_index("ix_jira_rate_limits_blocked_until", "jira_rate_limits")
    op.drop_table("jira_rate_limits")
