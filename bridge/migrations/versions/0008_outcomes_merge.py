"""Jira outcomes and problem merges.

- problems.outcome: what the linked issue's end state means (fixed, wont_do, duplicate).
- problems.merged_into: the problem a merged problem's incidents went to.
- ix_problems_key_id: a key's newest problem, looked up when a key has no open problem
  (where a merged key's incidents go) without scanning closed problems.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("problems") as batch:
        batch.add_column(sa.Column("outcome", sa.String(16)))
        batch.add_column(sa.Column("merged_into", sa.BigInteger()))
    op.create_index("ix_problems_key_id", "problems", ["problem_key", "id"])


def downgrade() -> None:
    op.drop_index("ix_problems_key_id", "problems")
    with op.batch_alter_table("problems") as batch:
        batch.drop_column("merged_into")
        batch.drop_column("outcome")
