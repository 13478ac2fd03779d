"""Keys a Jira issue had before it moved: a release naming an old key finds its problem.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jira_key_moves",
        sa.Column("old_key", sa.String(64), primary_key=True),
        sa.Column("new_key", sa.String(64), nullable=False),
        sa.Column("moved_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("jira_key_moves")
