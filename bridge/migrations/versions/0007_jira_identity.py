"""Jira identity: moved issues, a lagging search and twin issues.

- problems.jira_issue_id: Jira's immutable issue id, kept with the key, so a moved issue
  (whose key changed) is still found, by the worker and by webhooks.
- problems.jira_create_attempted_at: when the bridge last asked Jira to create the
  problem's issue, recorded before the call, so a retry knows a create may have happened
  and waits for Jira's lagging search index before creating again.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("problems", sa.Column("jira_issue_id", sa.String(64)))
    op.add_column("problems", sa.Column("jira_create_attempted_at", UtcDateTime()))
    op.create_index("ix_problems_jira_issue_id", "problems", ["jira_issue_id"])


def downgrade() -> None:
    op.drop_index("ix_problems_jira_issue_id", "problems")
    op.drop_column("problems", "jira_create_attempted_at")
    op.drop_column("problems", "jira_issue_id")
