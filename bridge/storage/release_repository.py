"""Releases: a version's row, the issues each call for it processed, the environments it reached, and what came after it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.domain.problems import Problem
from bridge.storage.engine import Database
from bridge.storage.schema import incidents, problem_events, problems, release_issues, releases


class ReleaseRepository(Database):
    """Reads and writes of releases, inside the release close transaction."""

    @staticmethod
    def lock_release(conn: Connection, project: str, version: str) -> dict[str, Any] | None:
        """The release row of a version, locked: calls for one version take turns."""
        row = (
            conn.execute(
                sa.select(releases)
                .where(releases.c.project == project, releases.c.version == version)
                .with_for_update()
            )
            .mappings()
            .first()
        )
        return dict(row) if row else None

    @staticmethod
    def add_release(conn: Connection, **values: Any) -> int:
        """Record a version's first call; a concurrent first call hits the unique key and retries.

        Raises:
            IntegrityError: another call recorded the version first (the transaction retries).
        """
        release_id: int = conn.execute(releases.insert().returning(releases.c.id), values).scalar_one()
        return release_id

    @staticmethod
    def set_release_summary(conn: Connection, release_id: int, summary: Mapping[str, Any]) -> None:
        conn.execute(releases.update().where(releases.c.id == release_id).values(summary=dict(summary)))

    @staticmethod
    def processed_release_issues(conn: Connection, project: str, version: str, keys: Sequence[str]) -> set[str]:
        """Which of these issues an earlier call for the version already processed."""
        if not keys:
            return set()
        return set(
            conn.execute(
                sa.select(release_issues.c.issue_key).where(
                    release_issues.c.project == project,
                    release_issues.c.version == version,
                    release_issues.c.issue_key.in_(sorted(set(keys))),
                )
            ).scalars()
        )

    @staticmethod
    def add_release_issues(
        conn: Connection, release_id: int, project: str, version: str, keys: Sequence[str], now: datetime
    ) -> None:
        """Mark issues of a version processed.

        Raises:
            IntegrityError: a concurrent call processed one of them first (the transaction retries).
        """
        if keys:
            conn.execute(
                release_issues.insert(),
                [
                    dict(release_id=release_id, project=project, version=version, issue_key=key, processed_at=now)
                    for key in keys
                ],
            )

    @staticmethod
    def add_release_environments(conn: Connection, release_id: int, environments: Sequence[str]) -> list[str]:
        """Remember more environments a release reached (a later call adds to them); returns them all."""
        known = conn.execute(sa.select(releases.c.environments).where(releases.c.id == release_id)).scalar_one()
        reached = sorted({*(known or ()), *environments})
        conn.execute(releases.update().where(releases.c.id == release_id).values(environments=reached))
        return reached

    @staticmethod
    def release_environments(conn: Connection, fixed: Problem) -> list[str] | None:
        """The environments the release that fixed a problem reached; None when it did not say."""
        if fixed.jira_key is None or fixed.fixed_in is None:
            return None
        query = (
            sa.select(releases.c.environments)
            .select_from(releases.join(release_issues, release_issues.c.release_id == releases.c.id))
            .where(release_issues.c.issue_key == fixed.jira_key, release_issues.c.version == fixed.fixed_in)
            .order_by(releases.c.id.desc())
            .limit(1)
        )
        reached = conn.execute(query).scalar()
        return list(reached) if reached is not None else None

    def get_release(self, project: str, version: str) -> dict[str, Any] | None:
        query = sa.select(releases).where(releases.c.project == project, releases.c.version == version)
        return self.read(lambda conn: next((dict(row) for row in conn.execute(query).mappings()), None))

    def release_activity(
        self, version: str, closed_problems: Sequence[int], start: datetime, end: datetime, limit: int
    ) -> dict[str, Any]:
        """What came after a release: incidents and problems opened in [start, end) (the newest `limit` of
        each, and how many), and the recurrences of the problems it closed after its fix."""
        opened_incidents = (incidents.c.first_seen >= start, incidents.c.first_seen < end)
        opened_problems = (problems.c.opened_at >= start, problems.c.opened_at < end)
        recurrences = sa.select(problem_events).where(
            problem_events.c.kind.in_(("regressed", "not_deployed")),
            problem_events.c.release_version == version,
            problem_events.c.problem_id.in_(sorted(set(closed_problems))),
        )

        def work(conn: Connection) -> dict[str, Any]:
            def count(table: sa.Table, where: tuple[Any, ...]) -> int:
                return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one())

            return {
                "incident_count": count(incidents, opened_incidents),
                "incidents": [
                    dict(row)
                    for row in conn.execute(
                        sa.select(
                            incidents.c.id,
                            incidents.c.summary,
                            incidents.c.priority,
                            incidents.c.state,
                            incidents.c.problem_id,
                            incidents.c.first_seen,
                        )
                        .where(*opened_incidents)
                        .order_by(incidents.c.first_seen.desc(), incidents.c.id.desc())
                        .limit(limit)
                    ).mappings()
                ],
                "problem_count": count(problems, opened_problems),
                "problems": [
                    dict(row)
                    for row in conn.execute(
                        sa.select(problems.c.id, problems.c.summary, problems.c.state, problems.c.opened_at)
                        .where(*opened_problems)
                        .order_by(problems.c.opened_at.desc(), problems.c.id.desc())
                        .limit(limit)
                    ).mappings()
                ],
                "recurrences": [
                    dict(row) for row in conn.execute(recurrences.order_by(problem_events.c.id)).mappings()
                ],
            }

        return self.read(work)
