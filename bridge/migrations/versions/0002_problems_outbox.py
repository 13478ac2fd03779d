"""Problems, the outbox of side effects, and the incident's problem key.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import BigId, JsonType, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("problem_key", sa.Text()))
    op.create_index("ix_incidents_problem_key_candidates", "incidents", ["problem_key", "last_seen"])
    op.create_table(
        "problems",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("problem_key", sa.Text(), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("incident_count", sa.Integer(), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime()),
        sa.Column("fixed_in", sa.Text()),
        sa.Column("regressions", sa.Integer(), nullable=False),
        sa.Column("jira_project", sa.String(64)),
        sa.Column("jira_key", sa.String(64)),
        sa.Column("jira_url", sa.Text()),
        sa.Column("jira_linked_by", sa.String(16)),
        sa.Column("conclusion", sa.Text()),
        sa.Column("conclusion_updated_at", UtcDateTime()),
        sa.Column("comment_pending", sa.Integer(), nullable=False),
        sa.Column("comment_pending_since", UtcDateTime()),
        sa.Column("last_comment_at", UtcDateTime()),
        sa.Column("last_comment_hash", sa.String(64)),
    )
    live = "state <> 'closed'"
    op.create_index(
        "ux_problems_open_key",
        "problems",
        ["problem_key"],
        unique=True,
        sqlite_where=sa.text(live),
        postgresql_where=sa.text(live),
    )
    live_jira = "jira_key IS NOT NULL AND state <> 'closed'"
    op.create_index(
        "ux_problems_live_jira_key",
        "problems",
        ["jira_key"],
        unique=True,
        sqlite_where=sa.text(live_jira),
        postgresql_where=sa.text(live_jira),
    )
    op.create_index("ix_problems_state", "problems", ["state"])
    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("target", sa.String(16), nullable=False),
        sa.Column("problem_id", sa.BigInteger()),
        sa.Column("payload", JsonType, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("locked_until", UtcDateTime()),
        sa.Column("finished_at", UtcDateTime()),
        sa.Column("last_error", sa.Text()),
        sa.Column("dedup_key", sa.Text()),
    )
    pending = "state = 'pending'"
    op.create_index(
        "ux_outbox_pending_dedup_key",
        "outbox",
        ["dedup_key"],
        unique=True,
        sqlite_where=sa.text(pending),
        postgresql_where=sa.text(pending),
    )
    op.create_index("ix_outbox_state_next_attempt_at", "outbox", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_table("problems")
    op.drop_index("ix_incidents_problem_key_candidates", "incidents")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("problem_key")
