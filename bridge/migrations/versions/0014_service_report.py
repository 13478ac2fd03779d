"""The service report: problem events name the incident they are about, and a period's events are an index range.

`problem_events.incident_id` records the incident that regressed its problem (or recurred
where the fix was not deployed yet); the events written before it named the incident only
in their text, from which this migration reads it. `ix_problem_events_kind_at` serves the
report's counts of a period's events of one kind. The incidents' index on `first_seen` gains
`id`, so the CSV export reads a period page after page, each page an index range from where
the last ended.

Revision ID: 0014
Revises: 0013
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# How bridge.problems.grouping.handle_recurrence has always begun these events' detail.
_NAMED_INCIDENT = re.compile(r"^incident (\d+)\b")


def upgrade() -> None:
    op.create_index("ix_incidents_first_seen_id", "incidents", ["first_seen", "id"])
    op.drop_index("ix_incidents_first_seen", table_name="incidents")
    with op.batch_alter_table("problem_events") as batch:
        batch.add_column(sa.Column("incident_id", sa.BigInteger()))
    op.create_index("ix_problem_events_kind_at", "problem_events", ["kind", "at"])
    op.create_index(
        "ix_problem_events_incident_id",
        "problem_events",
        ["incident_id"],
        sqlite_where=sa.text("incident_id IS NOT NULL"),
        postgresql_where=sa.text("incident_id IS NOT NULL"),
    )
    events = sa.table(
        "problem_events",
        sa.column("id", sa.BigInteger()),
        sa.column("kind"),
        sa.column("detail"),
        sa.column("incident_id"),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(events.c.id, events.c.detail).where(events.c.kind.in_(("regressed", "not_deployed"))))
    named = [
        {"event_id": event_id, "incident_id": int(match.group(1))}
        for event_id, detail in rows
        if (match := _NAMED_INCIDENT.match(detail or "")) and int(match.group(1)) < 2**63
    ]
    if named:
        conn.execute(
            events.update()
            .where(events.c.id == sa.bindparam("event_id"))
            .values(incident_id=sa.bindparam("incident_id")),
            named,
        )


def downgrade() -> None:
    op.create_index("ix_incidents_first_seen", "incidents", ["first_seen"])
    op.drop_index("ix_incidents_first_seen_id", table_name="incidents")
    op.drop_index("ix_problem_events_incident_id", table_name="problem_events")
    op.drop_index("ix_problem_events_kind_at", table_name="problem_events")
    with op.batch_alter_table("problem_events") as batch:
        batch.drop_column("incident_id")
