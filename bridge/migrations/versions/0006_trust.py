"""Trust: releases identified per issue, the source ids of incidents, and what retention prunes by.

- incidents.source_ids: the source's own ids of the events an incident gathered (Zabbix
  event ids), so closing in Zabbix never derives them from the dedup key.
- release_issues: a release is identified per (project, version, issue), so a second
  call for a version with more issues processes the new ones.
- received_at indexes on raw notifications and refused payloads, for retention.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import BigId, JsonType, UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("incidents", sa.Column("source_ids", JsonType))
    op.create_table(
        "release_issues",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("release_id", sa.BigInteger(), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("issue_key", sa.String(64), nullable=False),
        sa.Column("processed_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("project", "version", "issue_key", name="uq_release_issues_project_version_issue"),
    )
    op.create_index("ix_notifications_received_at", "notifications", ["received_at"])
    op.create_index("ix_rejected_payloads_received_at", "rejected_payloads", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_rejected_payloads_received_at", "rejected_payloads")
    op.drop_index("ix_notifications_received_at", "notifications")
    op.drop_table("release_issues")
    op.drop_column("incidents", "source_ids")
