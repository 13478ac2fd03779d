"""Reads that cost what is live, not what is kept: an index of live incidents, a problem's incidents
in id order, problems by when they opened.

`ix_incidents_live` (partial, incidents not closed) holds every column the gauges and the overview
group live incidents by, in that order, so they count from it alone without a sort;
`ix_incidents_problem_id_id` replaces the index on `problem_id` so a problem's incidents come
newest first without walking the table; `ix_incidents_state_id` does the same for a state's
(the list of closed incidents); `ix_problems_opened_at_id` finds the problems a release's watch saw open.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

LIVE_INCIDENTS = "state IN ('firing', 'resolved')"


def upgrade() -> None:
    op.create_index(
        "ix_incidents_live",
        "incidents",
        ["state", "line", "priority", "source", "sla_breached", "id"],
        sqlite_where=sa.text(LIVE_INCIDENTS),
        postgresql_where=sa.text(LIVE_INCIDENTS),
    )
    op.create_index("ix_incidents_problem_id_id", "incidents", ["problem_id", "id"])
    op.create_index("ix_incidents_state_id", "incidents", ["state", "id"])
    op.drop_index("ix_incidents_problem_id", table_name="incidents")
    op.create_index("ix_problems_opened_at_id", "problems", ["opened_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_problems_opened_at_id", table_name="problems")
    op.create_index("ix_incidents_problem_id", "incidents", ["problem_id"])
    op.drop_index("ix_incidents_state_id", table_name="incidents")
    op.drop_index("ix_incidents_problem_id_id", table_name="incidents")
    op.drop_index("ix_incidents_live", table_name="incidents")
