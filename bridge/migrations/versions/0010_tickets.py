"""Tickets linked to problems by hand.

- problem_tickets: tickets linked to a problem by hand (system, id in that system), with
  their state, so closing the problem closes them and tells their system. Reported tickets
  are incidents (source `ticket`) and need no table of their own.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import BigId, UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "problem_tickets",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("problem_id", sa.BigInteger(), nullable=False),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(128), nullable=False),
        sa.Column("url", sa.Text()),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("linked_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime()),
        sa.Column("close_reason", sa.Text()),
        sa.UniqueConstraint("problem_id", "system", "ticket_id", name="uq_problem_tickets_problem_system_ticket"),
    )


def downgrade() -> None:
    op.drop_table("problem_tickets")
