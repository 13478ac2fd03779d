"""Sessions of the pages kept in the database: signing out ends a copied cookie too.

Adds the `ui_sessions` table: one row per sign-in (the SHA-256 of its id, who, whether
they may act, when it began, when it expires whatever the activity, when and how it
was signed out). Cookies signed before the upgrade name no row: everyone signs in again.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import UtcDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ui_sessions",
        sa.Column("id_sha256", sa.String(64), primary_key=True),
        sa.Column("actor", sa.String(200)),
        sa.Column("operate", sa.Boolean(), nullable=False),
        sa.Column("signed_in_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("ended_at", UtcDateTime()),
        sa.Column("ended_how", sa.String(32)),
    )
    op.create_index("ix_ui_sessions_actor", "ui_sessions", ["actor"])
    op.create_index("ix_ui_sessions_expires_at", "ui_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("ui_sessions")
