"""Deploys and changes: what the pipeline and Change Events said, and the suspects a problem is given from them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.domain.deploys import Deploy, DeployPhase
from bridge.domain.suspects import Change, ReleaseDeploy
from bridge.storage import driver_sql
from bridge.storage.engine import MAX_ID, Database, Page
from bridge.storage.schema import changes, deploys, incidents, problems

# Deploys and changes a problem's suspects are looked for among (the nearest kept): far above real
# cadence within a suspect window, low enough to keep a problem's opening cheap.
SUSPECT_CANDIDATES = 500


def deploy_of(row: Mapping[Any, Any]) -> Deploy:
    """A deploy from its row."""
    return Deploy(
        id=row["id"],
        project=row["project"],
        version=row["version"],
        environment=row["environment"],
        phase=DeployPhase(row["phase"]),
        deployed_at=row["deployed_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        failed_at=row["failed_at"],
        expires_at=row["expires_at"],
        window_id=row["window_id"],
    )


def _of_release(project: str, version: str, environment: str) -> tuple[Any, ...]:
    return (deploys.c.project == project, deploys.c.version == version, deploys.c.environment == environment)


class DeployRepository(Database):
    """Reads and writes of deploys and changes."""

    @staticmethod
    def lock_deploys(conn: Connection, project: str, version: str, environment: str) -> None:
        """Serialise the pipeline's calls for one release and environment until the transaction ends
        (SQLite's writers are serialised already)."""
        if not driver_sql.is_sqlite(conn):
            text = f"deploy\n{project}\n{version}\n{environment}".encode()
            lock_id = int.from_bytes(hashlib.sha256(text).digest()[:8], "big", signed=True)
            driver_sql.execute(conn, "SELECT pg_advisory_xact_lock(%s)", (lock_id,))

    @staticmethod
    def deploy_in_progress(conn: Connection, project: str, version: str, environment: str) -> Deploy | None:
        """The deploy of this release to this environment still `started` (maybe past its expiry)."""
        query = sa.select(deploys).where(
            *_of_release(project, version, environment), deploys.c.phase == DeployPhase.STARTED.value
        )
        row = conn.execute(query).mappings().first()
        return deploy_of(row) if row else None

    @staticmethod
    def newest_deploy(conn: Connection, project: str, version: str, environment: str) -> Deploy | None:
        query = sa.select(deploys).where(*_of_release(project, version, environment))
        row = conn.execute(query.order_by(deploys.c.id.desc()).limit(1)).mappings().first()
        return deploy_of(row) if row else None

    @staticmethod
    def add_deploy(conn: Connection, values: Mapping[str, Any]) -> int:
        """Record a deploy; its id.

        Raises:
            IntegrityError: another call started the same deploy first (the transaction retries).
        """
        deploy_id: int = conn.execute(deploys.insert().returning(deploys.c.id), dict(values)).scalar_one()
        return deploy_id

    @staticmethod
    def update_deploy(conn: Connection, deploy_id: int, values: Mapping[str, Any]) -> None:
        conn.execute(deploys.update().where(deploys.c.id == deploy_id).values(dict(values)))

    @staticmethod
    def find_deploy(conn: Connection, deploy_id: int) -> dict[str, Any] | None:
        if not 0 < deploy_id <= MAX_ID:
            return None
        row = conn.execute(sa.select(deploys).where(deploys.c.id == deploy_id)).mappings().first()
        return dict(row) if row else None

    def list_deploys(self, project: str | None, environment: str | None, limit: int, cursor: int | None) -> Page:
        """Deploys newest first, of a project and to an environment when given."""
        query = sa.select(deploys)
        if project is not None:
            query = query.where(deploys.c.project == project)
        if environment is not None:
            query = query.where(deploys.c.environment == environment)
        return self._page(query, deploys, limit, cursor, dict)

    def release_deploys(self, project: str, version: str) -> list[dict[str, Any]]:
        """Every deploy of a release, in the order they began, with the incidents that opened during each."""
        of_release = (
            sa.select(deploys)
            .where(deploys.c.project == project, deploys.c.version == version)
            .order_by(deploys.c.deployed_at, deploys.c.id)
        )

        def work(conn: Connection) -> list[dict[str, Any]]:
            found = [dict(row) for row in conn.execute(of_release).mappings()]
            ids = [row["id"] for row in found]
            counted: dict[int, int] = {}
            if ids:
                query = (
                    sa.select(incidents.c.deploy_id, sa.func.count())
                    .where(incidents.c.deploy_id.in_(ids))
                    .group_by(incidents.c.deploy_id)
                )
                counted = {int(deploy_id): int(count) for deploy_id, count in conn.execute(query).all()}
            return [{**row, "alerts_during": int(counted.get(row["id"], 0))} for row in found]

        return self.read(work)

    @staticmethod
    def suspect_deploys(
        conn: Connection, projects: Sequence[str], environment: str, since: datetime, until: datetime
    ) -> list[ReleaseDeploy]:
        """Deploys of these projects to this environment that began in [since, until], newest first."""
        query = (
            sa.select(deploys)
            .where(
                deploys.c.project.in_(sorted(set(projects))),
                deploys.c.environment == environment,
                deploys.c.deployed_at >= since,
                deploys.c.deployed_at <= until,
            )
            .order_by(deploys.c.deployed_at.desc(), deploys.c.id.desc())
            .limit(SUSPECT_CANDIDATES)
        )
        return [
            ReleaseDeploy(
                row["id"],
                row["project"],
                row["version"],
                row["environment"],
                row["deployed_at"],
                row["phase"],
                tuple(row["issues"] or ()),
            )
            for row in conn.execute(query).mappings()
        ]

    @staticmethod
    def add_change(conn: Connection, values: Mapping[str, Any]) -> int:
        change_id: int = conn.execute(changes.insert().returning(changes.c.id), dict(values)).scalar_one()
        return change_id

    @staticmethod
    def suspect_changes(conn: Connection, since: datetime, until: datetime) -> list[Change]:
        """Changes made in [since, until], newest first."""
        query = (
            sa.select(changes)
            .where(changes.c.changed_at >= since, changes.c.changed_at <= until)
            .order_by(changes.c.changed_at.desc(), changes.c.id.desc())
            .limit(SUSPECT_CANDIDATES)
        )
        return [
            Change(
                row["id"],
                row["summary"],
                row["source"] or row["routing_key"],
                row["changed_at"],
                dict(row["labels"] or {}),
                tuple(row["links"] or ()),
            )
            for row in conn.execute(query).mappings()
        ]

    def list_changes(self, limit: int, cursor: int | None) -> Page:
        return self._page(sa.select(changes), changes, limit, cursor, dict)

    @staticmethod
    def first_occurrence(conn: Connection, problem_id: int) -> datetime | None:
        """When the first of a problem's incidents was first seen."""
        found: datetime | None = conn.execute(
            sa.select(sa.func.min(incidents.c.first_seen)).where(incidents.c.problem_id == problem_id)
        ).scalar()
        return found

    @staticmethod
    def set_suspects(conn: Connection, problem_id: int, suspects: list[dict[str, Any]]) -> None:
        conn.execute(problems.update().where(problems.c.id == problem_id).values(suspects=suspects))

    def problems_suspecting(self, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
        """Problems opened in [start, end) that were given suspects, oldest first (release health)."""
        query = (
            sa.select(problems.c.id, problems.c.summary, problems.c.state, problems.c.opened_at, problems.c.suspects)
            .where(problems.c.opened_at >= start, problems.c.opened_at < end)
            .order_by(problems.c.opened_at, problems.c.id)
            .limit(limit)
        )
        # Filtered here: a problem never given suspects holds SQL NULL or JSON null, as it was written.
        return self.read(lambda conn: [dict(row) for row in conn.execute(query).mappings() if row["suspects"]])
