"""Let a repeat update an incident in place.

A repeat changes occurrences, last_seen and last_notification_id. With last_seen in an
index, PostgreSQL wrote a new entry in every index of the table for each repeat; the
index of incidents waiting for a problem now covers the key alone (of incidents in no
problem yet), and free space on each page (fillfactor) lets repeats be heap-only updates.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

WAITING = sa.text("problem_id IS NULL")


def upgrade() -> None:
    op.drop_index("ix_incidents_problem_key_candidates", "incidents")
    op.create_index(
        "ix_incidents_problem_key_waiting", "incidents", ["problem_key"], sqlite_where=WAITING, postgresql_where=WAITING
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE incidents SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE incidents RESET (fillfactor)")
    op.drop_index("ix_incidents_problem_key_waiting", "incidents")
    op.create_index("ix_incidents_problem_key_candidates", "incidents", ["problem_key", "last_seen"])
