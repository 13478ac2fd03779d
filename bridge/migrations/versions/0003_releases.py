"""Releases that closed problems, problem history, and when a problem's fix shipped.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import BigId, JsonType, UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("problems") as batch:
        batch.add_column(sa.Column("fixed_at", UtcDateTime()))
    op.create_table(
        "releases",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("released_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("via", sa.String(32), nullable=False),
        sa.Column("summary", JsonType, nullable=False),
        sa.UniqueConstraint("project", "version", name="uq_releases_project_version"),
    )
    op.create_table(
        "problem_events",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("problem_id", sa.BigInteger(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_problem_events_problem_id", "problem_events", ["problem_id", "id"])


def downgrade() -> None:
    op.drop_table("problem_events")
    op.drop_table("releases")
    with op.batch_alter_table("problems") as batch:
        batch.drop_column("fixed_at")
