"""What acting from the page, the response clock and release health need in the schema.

- problem_events.actor: who did what a person did (a rule or the worker leaves it empty);
  problem_events.release_version: the fix a regression (or "not deployed") recurred after.
- incident_events: an incident's own history (acknowledged, moved, closed by a person).
- incidents: acknowledged_at/_by, and the response clock (response_due, response_breached,
  response_breached_at) with an index for the worker's breach sweep.
- releases.environments: the environments a release reached (None: not said, everywhere).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import BigId, JsonType, UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("problem_events", sa.Column("actor", sa.String(200)))
    op.add_column("problem_events", sa.Column("release_version", sa.String(200)))
    op.create_table(
        "incident_events",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("incident_id", sa.BigInteger(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_incident_events_incident_id", "incident_events", ["incident_id", "id"])
    op.add_column("incidents", sa.Column("acknowledged_at", UtcDateTime()))
    op.add_column("incidents", sa.Column("acknowledged_by", sa.String(200)))
    op.add_column("incidents", sa.Column("response_due", UtcDateTime()))
    op.add_column("incidents", sa.Column("response_breached", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("incidents", sa.Column("response_breached_at", UtcDateTime()))
    op.create_index("ix_incidents_response_watch", "incidents", ["state", "response_breached", "response_due"])
    op.create_index("ix_incidents_first_seen", "incidents", ["first_seen"])
    op.add_column("releases", sa.Column("environments", JsonType))


def downgrade() -> None:
    op.drop_column("releases", "environments")
    op.drop_index("ix_incidents_first_seen", "incidents")
    op.drop_index("ix_incidents_response_watch", "incidents")
    for column in ("response_breached_at", "response_breached", "response_due", "acknowledged_by", "acknowledged_at"):
        op.drop_column("incidents", column)
    op.drop_index("ix_incident_events_incident_id", "incident_events")
    op.drop_table("incident_events")
    op.drop_column("problem_events", "release_version")
    op.drop_column("problem_events", "actor")
