"""Releases: a version's row and the issues each call for it processed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.storage.engine import Database
from bridge.storage.schema import release_issues, releases


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
