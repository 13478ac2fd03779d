"""A new incident enters one index by its key: the (dedup_key, state) index becomes one of resolved keys.

The live lookup reads a key's firing incident through the unique firing index and its
resolved ones through this partial index; closed incidents, the most, are in neither.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_incidents_resolved_dedup_key",
        "incidents",
        ["dedup_key"],
        sqlite_where=sa.text("state = 'resolved'"),
        postgresql_where=sa.text("state = 'resolved'"),
    )
    op.drop_index("ix_incidents_dedup_key_state", table_name="incidents")


def downgrade() -> None:
    op.create_index("ix_incidents_dedup_key_state", "incidents", ["dedup_key", "state"])
    op.drop_index("ix_incidents_resolved_dedup_key", table_name="incidents")
