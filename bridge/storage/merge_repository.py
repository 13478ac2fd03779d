"""Corrections people (and Jira's Duplicate) make to grouping: merging problems and moving incidents.

Locks follow the order grouping takes them, so a merge never deadlocks with a webhook:
problem keys first (sorted), then problem rows ordered by id, then incidents.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.domain.incidents import Incident
from bridge.domain.problems import Problem
from bridge.storage.engine import MAX_ID, Database
from bridge.storage.incident_repository import incident_from_row
from bridge.storage.problem_repository import ProblemRepository, problem_from_row
from bridge.storage.schema import incidents, problems

# A merged problem's successor is followed this far at most (merges close their source, so chains are short).
MAX_MERGE_HOPS = 16


class MergeRepository(Database):
    """Problem rows locked together, incidents moved between problems, and where a merged key went."""

    @staticmethod
    def lock_problems(conn: Connection, problem_ids: Sequence[int]) -> dict[int, Problem]:
        """The problems (those that exist), each locked, in id order: two merges of the same pair queue."""
        wanted = sorted({pid for pid in problem_ids if 0 < pid <= MAX_ID})
        if not wanted:
            return {}
        query = sa.select(problems).where(problems.c.id.in_(wanted)).order_by(problems.c.id).with_for_update()
        return {row["id"]: problem_from_row(row) for row in conn.execute(query).mappings()}

    @staticmethod
    def problem_keys(conn: Connection, problem_ids: Sequence[int]) -> list[str]:
        """The keys of these problems, sorted: the order their key locks are taken in."""
        wanted = [pid for pid in problem_ids if 0 < pid <= MAX_ID]
        query = sa.select(problems.c.problem_key).where(problems.c.id.in_(wanted)).distinct()
        return sorted(conn.execute(query).scalars())

    @staticmethod
    def move_all_incidents(conn: Connection, source_id: int, into_id: int) -> int:
        """Every incident of `source_id` now in `into_id`; `into_id`'s count recounted. Returns how many moved."""
        moved = conn.execute(
            incidents.update().where(incidents.c.problem_id == source_id).values(problem_id=into_id)
        ).rowcount
        MergeRepository.recount(conn, into_id)
        return int(moved)

    @staticmethod
    def recount(conn: Connection, problem_id: int) -> None:
        """A problem's incident_count from its members (a move changes two problems at once)."""
        members = sa.select(sa.func.count()).select_from(incidents).where(incidents.c.problem_id == problem_id)
        conn.execute(
            problems.update().where(problems.c.id == problem_id).values(incident_count=members.scalar_subquery())
        )

    @staticmethod
    def lock_incident(conn: Connection, incident_id: int) -> Incident | None:
        if not 0 < incident_id <= MAX_ID:
            return None
        row = (
            conn.execute(sa.select(incidents).where(incidents.c.id == incident_id).with_for_update()).mappings().first()
        )
        return incident_from_row(row) if row else None

    @staticmethod
    def set_incident_problem(conn: Connection, incident_id: int, problem_id: int) -> None:
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(problem_id=problem_id))

    @staticmethod
    def merged_successor(conn: Connection, problem_key: str) -> Problem | None:
        """Where a key's incidents go once its problem was merged: the live end of the merge chain, locked.

        Only when the key's newest problem is a merged one (a problem opened later for the
        key, and closed otherwise, means the merge no longer speaks for it).
        """
        newest = conn.execute(
            sa.select(problems.c.merged_into)
            .where(problems.c.problem_key == problem_key)
            .order_by(problems.c.id.desc())
            .limit(1)
        ).first()
        successor = newest[0] if newest else None
        for _ in range(MAX_MERGE_HOPS):
            if successor is None:
                return None
            problem = ProblemRepository.find_problem(conn, successor, for_update=True)
            if problem is None:
                return None
            if not problem.is_closed:
                return problem
            successor = problem.merged_into
        return None
