"""What tickets that arrive by themselves and hear the conclusion need in the schema.

- ticket_sync_state: per ticket system the bridge reads (Request Tracker), how far it has
  read (a watermark in the system's clock), how its passes went, and the lease that lets
  one worker at a time read it across replicas.
- synced_tickets: what the bridge last saw of each ticket (or last wrote there itself), so
  an overlapping read, a restart or the bridge's own close is never taken for a change.
- ticket_notices: each workaround or conclusion text a ticket was told, by digest (unique),
  so the same text never reaches one ticket twice.
- problems.workaround (with who set it, when) and problems.reopened_by_ticket.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import BigId, UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("problems", sa.Column("workaround", sa.Text()))
    op.add_column("problems", sa.Column("workaround_updated_at", UtcDateTime()))
    op.add_column("problems", sa.Column("workaround_by", sa.String(200)))
    op.add_column("problems", sa.Column("reopened_by_ticket", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "ticket_sync_state",
        sa.Column("system", sa.String(64), primary_key=True),
        sa.Column("watermark", UtcDateTime()),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_attempt_at", UtcDateTime()),
        sa.Column("last_success_at", UtcDateTime()),
        sa.Column("next_attempt_at", UtcDateTime()),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text()),
        sa.Column("tickets_read", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_until", UtcDateTime()),
    )
    op.create_table(
        "synced_tickets",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("problem_ref", sa.String(200)),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("incident_id", sa.BigInteger()),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("system", "ticket_id", name="uq_synced_tickets_system_ticket"),
    )
    op.create_table(
        "ticket_notices",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("system", sa.String(64), nullable=False),
        sa.Column("ticket_id", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("problem_id", sa.BigInteger(), nullable=False),
        sa.Column("queued_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("system", "ticket_id", "digest", name="uq_ticket_notices_system_ticket_digest"),
    )


def downgrade() -> None:
    op.drop_table("ticket_notices")
    op.drop_table("synced_tickets")
    op.drop_table("ticket_sync_state")
    for column in ("reopened_by_ticket", "workaround_by", "workaround_updated_at", "workaround"):
        op.drop_column("problems", column)
