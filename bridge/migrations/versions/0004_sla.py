"""SLA clock of incidents.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("sla_elapsed_seconds", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("sla_running_since", UtcDateTime()))
        batch.add_column(sa.Column("sla_due", UtcDateTime()))
        batch.add_column(sa.Column("sla_breached", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("sla_breached_at", UtcDateTime()))
    op.create_index("ix_incidents_sla_watch", "incidents", ["state", "sla_breached", "sla_due"])


def downgrade() -> None:
    op.drop_index("ix_incidents_sla_watch", "incidents")
    with op.batch_alter_table("incidents") as batch:
        for column in ("sla_breached_at", "sla_breached", "sla_due", "sla_running_since", "sla_elapsed_seconds"):
            batch.drop_column(column)
