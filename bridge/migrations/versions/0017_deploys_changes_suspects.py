"""Deploys, changes and suspects: where each release is going, and what may have caused each problem.

Adds the `deploys` table (each deploy of a version to an environment: started, finished,
failed, at most one in progress per project, version and environment) and the `changes`
table (PagerDuty Change Events); the hold window's `holds` (a deploy window may only mark)
and `deploy`; the incident's `during_deploy` and `deploy_id`; the problem's `suspects`.
Releases that named their environments before become finished deploys, so they are
suspects of the problems that open after the upgrade too.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

from bridge.storage.schema import BigId, JsonType, UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    deploys = op.create_table(
        "deploys",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("deployed_at", UtcDateTime(), nullable=False),
        sa.Column("started_at", UtcDateTime()),
        sa.Column("finished_at", UtcDateTime()),
        sa.Column("failed_at", UtcDateTime()),
        sa.Column("expires_at", UtcDateTime()),
        sa.Column("issues", JsonType, nullable=False),
        sa.Column("via", sa.String(32), nullable=False),
        sa.Column("window_id", sa.BigInteger()),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index(
        "ux_deploys_in_progress",
        "deploys",
        ["project", "version", "environment"],
        unique=True,
        sqlite_where=sa.text("phase = 'started'"),
        postgresql_where=sa.text("phase = 'started'"),
    )
    op.create_index("ix_deploys_project_environment_deployed_at", "deploys", ["project", "environment", "deployed_at"])
    op.create_index("ix_deploys_project_version", "deploys", ["project", "version"])
    op.create_table(
        "changes",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("routing_key", sa.String(100), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("source", sa.Text()),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("custom_details", JsonType),
        sa.Column("links", JsonType, nullable=False),
        sa.Column("labels", JsonType, nullable=False),
    )
    op.create_index("ix_changes_changed_at", "changes", ["changed_at"])
    # Plain ADD COLUMN on both (PostgreSQL: no rewrite for a constant default), never a table copy.
    op.add_column("hold_windows", sa.Column("holds", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.add_column("hold_windows", sa.Column("deploy", JsonType))
    op.add_column("incidents", sa.Column("during_deploy", JsonType))
    op.add_column("incidents", sa.Column("deploy_id", sa.BigInteger()))
    op.create_index(
        "ix_incidents_deploy_id",
        "incidents",
        ["deploy_id"],
        sqlite_where=sa.text("deploy_id IS NOT NULL"),
        postgresql_where=sa.text("deploy_id IS NOT NULL"),
    )
    op.add_column("problems", sa.Column("suspects", JsonType))
    _deploys_of_past_releases(deploys)


def _deploys_of_past_releases(deploys: sa.Table) -> None:
    """Each environment a recorded release named, as a finished deploy at its release time."""
    releases = sa.table(
        "releases",
        sa.column("project", sa.String()),
        sa.column("version", sa.String()),
        sa.column("released_at", UtcDateTime()),
        sa.column("received_at", UtcDateTime()),
        sa.column("summary", JsonType),
        sa.column("environments", JsonType),
    )
    rows = op.get_bind().execute(sa.select(releases).where(releases.c.environments.is_not(None))).mappings()
    values = [
        dict(
            project=row["project"],
            version=row["version"],
            environment=environment,
            phase="finished",
            deployed_at=row["released_at"],
            finished_at=row["released_at"],
            issues=list((row["summary"] or {}).get("issues", [])),
            via="release",
            created_at=row["received_at"],
            updated_at=row["received_at"],
        )
        for row in rows
        for environment in row["environments"] or []
    ]
    if values:
        op.bulk_insert(deploys, values)


def downgrade() -> None:
    op.drop_column("problems", "suspects")
    op.drop_index("ix_incidents_deploy_id", table_name="incidents")
    for column in ("deploy_id", "during_deploy"):
        op.drop_column("incidents", column)
    for column in ("deploy", "holds"):
        op.drop_column("hold_windows", column)
    op.drop_index("ix_changes_changed_at", table_name="changes")
    op.drop_table("changes")
    op.drop_index("ix_deploys_project_version", table_name="deploys")
    op.drop_index("ix_deploys_project_environment_deployed_at", table_name="deploys")
    op.drop_index("ux_deploys_in_progress", table_name="deploys")
    op.drop_table("deploys")
