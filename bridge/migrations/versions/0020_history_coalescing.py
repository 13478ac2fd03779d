"""A problem's history coalesces repeats and is read page after page.

`problem_events.repeat_count` and `last_at`: an event repeated as the problem's latest (same
kind, text, actor and release) updates that row instead of adding one; rows written before
count once. `ix_problem_events_problem_at` serves the history's pages, newest first by
(at, id), and the partial `ix_problem_events_notes` the pages of its notes.

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import UtcDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("problem_events") as batch:
        batch.add_column(sa.Column("repeat_count", sa.Integer(), nullable=False, server_default=sa.text("1")))
        batch.add_column(sa.Column("last_at", UtcDateTime()))
    op.create_index("ix_problem_events_problem_at", "problem_events", ["problem_id", "at", "id"])
    op.create_index(
        "ix_problem_events_notes",
        "problem_events",
        ["problem_id", "at", "id"],
        sqlite_where=sa.text("kind = 'note'"),
        postgresql_where=sa.text("kind = 'note'"),
    )


def downgrade() -> None:
    op.drop_index("ix_problem_events_notes", table_name="problem_events")
    op.drop_index("ix_problem_events_problem_at", table_name="problem_events")
    with op.batch_alter_table("problem_events") as batch:
        batch.drop_column("last_at")
        batch.drop_column("repeat_count")
