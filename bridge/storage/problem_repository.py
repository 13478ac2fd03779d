"""Problems: grouping decisions, links to Jira issues, closes and reopens, and their history."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bridge.domain.incidents import IncidentState
from bridge.domain.problems import Problem, ProblemState
from bridge.storage import driver_sql
from bridge.storage.engine import MAX_ID, Database
from bridge.storage.schema import incidents, jira_key_moves, problem_events, problems

_CLOSED = ProblemState.CLOSED.value
_PROBLEM_FIELDS = tuple(column.name for column in problems.columns if column.name != "id")
# Driver SQL for what every group of a storm's creates asks (see `driver_sql`): a SQLAlchemy
# statement cost 150-250 µs of Python here, the driver's own work 10-20.
_PROBLEM_ROWS = driver_sql.RowDecoder(problems)
_SQLITE_OPEN_PROBLEM = (
    f"SELECT {', '.join(_PROBLEM_ROWS.columns)} FROM problems WHERE problem_key = ? AND state <> 'closed'"
)
_POSTGRES_OPEN_PROBLEM = driver_sql.psycopg_text(_SQLITE_OPEN_PROBLEM) + " FOR UPDATE"
_COUNT_JOINED = "UPDATE problems SET incident_count = incident_count + ? WHERE id = ?"
_COUNT_JOINED_FOR_COMMENT = (
    "UPDATE problems SET incident_count = incident_count + ?, comment_pending = comment_pending + ?, "
    "comment_pending_since = coalesce(comment_pending_since, ?) WHERE id = ?"
)


# What makes an event the same as the problem's latest one: coalesced into its row, not added.
_COALESCED_BY = ("kind", "detail", "actor", "release_version")
# Problems whose latest event one statement reads.
_LATEST_CHUNK = 500


def _latest_events(conn: Connection, problem_ids: Sequence[int]) -> dict[int, tuple[tuple[Any, ...], Any]]:
    """Each problem's latest event: what makes it the same (see _COALESCED_BY), and its row id."""
    found: dict[int, tuple[tuple[Any, ...], Any]] = {}
    e = problem_events.c
    for start in range(0, len(problem_ids), _LATEST_CHUNK):
        chunk = problem_ids[start : start + _LATEST_CHUNK]
        newest = sa.select(sa.func.max(e.id)).where(e.problem_id.in_(chunk)).group_by(e.problem_id)
        query = sa.select(e.id, e.problem_id, *(e[name] for name in _COALESCED_BY)).where(e.id.in_(newest))
        for row in conn.execute(query).mappings():
            found[int(row["problem_id"])] = (tuple(row[name] for name in _COALESCED_BY), int(row["id"]))
    return found


def problem_from_row(row: Mapping[Any, Any]) -> Problem:
    values = {name: row[name] for name in _PROBLEM_FIELDS}
    values["state"] = ProblemState(row["state"])
    return Problem(id=row["id"], **values)


def problem_values(problem: Problem) -> dict[str, Any]:
    values = {name: getattr(problem, name) for name in _PROBLEM_FIELDS}
    values["state"] = problem.state.value
    return values


class ProblemRepository(Database):
    """Reads and writes of problems and their history."""

    @staticmethod
    def lock_problem_key(conn: Connection, problem_key: str) -> None:
        """Serialise problem decisions for one key until the transaction ends.

        Without it, two PostgreSQL writers could each decide "not yet a problem" (or "open
        one") from snapshots that miss the other's uncommitted incident. SQLite needs
        nothing: BEGIN IMMEDIATE already serialises writers.
        """
        if not driver_sql.is_sqlite(conn):
            lock_id = int.from_bytes(hashlib.sha256(problem_key.encode()).digest()[:8], "big", signed=True)
            driver_sql.execute(conn, "SELECT pg_advisory_xact_lock(%s)", (lock_id,))

    @staticmethod
    def open_problem(conn: Connection, problem_key: str) -> Problem | None:
        """The live (not closed) problem for a key, locked for update."""
        sqlite = driver_sql.is_sqlite(conn)
        statement = _SQLITE_OPEN_PROBLEM if sqlite else _POSTGRES_OPEN_PROBLEM
        row = driver_sql.execute(conn, statement, (problem_key,)).fetchone()
        return problem_from_row(_PROBLEM_ROWS.decode(row, sqlite)) if row else None

    @staticmethod
    def find_problem(conn: Connection, problem_id: int, *, for_update: bool = False) -> Problem | None:
        """A problem by id; `for_update` locks it, as a transition must before it writes."""
        if not 0 < problem_id <= MAX_ID:
            return None
        query = sa.select(problems).where(problems.c.id == problem_id)
        row = conn.execute(query.with_for_update() if for_update else query).mappings().first()
        return problem_from_row(row) if row else None

    @staticmethod
    def save_problem(conn: Connection, before: Problem, after: Problem) -> None:
        """Write what a domain transition changed (only those columns) on a problem locked by the caller."""
        previous, current = problem_values(before), problem_values(after)
        changed = {name: value for name, value in current.items() if previous[name] != value}
        if changed:
            conn.execute(problems.update().where(problems.c.id == before.id).values(changed))

    def change_problem(
        self, conn: Connection, problem_id: int, transition: Callable[[Problem], Problem]
    ) -> Problem | None:
        """Lock a problem, apply a domain transition and save it; the problem as it became, None if missing."""
        before = self.find_problem(conn, problem_id, for_update=True)
        if before is None:
            return None
        after = transition(before)
        self.save_problem(conn, before, after)
        return after

    @staticmethod
    def count_problem_candidates(conn: Connection, problem_key: str, since: datetime) -> int:
        """Incidents with this problem key, in no problem yet, seen since `since`."""
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(incidents)
            .where(
                incidents.c.problem_key == problem_key, incidents.c.problem_id.is_(None), incidents.c.last_seen >= since
            )
        ).scalar_one()

    @staticmethod
    def open_problem_with_candidates(conn: Connection, problem: Problem, since: datetime) -> tuple[int, int]:
        """Insert a new problem and attach the waiting incidents of its key; returns (id, attached).

        Raises:
            IntegrityError: another process opened the problem first (the transaction retries).
        """
        problem_id = conn.execute(problems.insert().returning(problems.c.id), problem_values(problem)).scalar_one()
        attached = conn.execute(
            incidents.update()
            .where(
                incidents.c.problem_key == problem.problem_key,
                incidents.c.problem_id.is_(None),
                incidents.c.last_seen >= since,
            )
            .values(problem_id=problem_id)
        ).rowcount
        conn.execute(problems.update().where(problems.c.id == problem_id).values(incident_count=attached))
        return problem_id, attached

    @staticmethod
    def join_problem(
        conn: Connection, problem_id: int, attach: Sequence[int], joined: int, notify_jira: bool, now: datetime
    ) -> None:
        """Count `joined` incidents on a problem, for the next throttled Jira comment too; the rows of
        `attach` (incidents already written) get the problem. New incidents are written with it."""
        if attach:
            conn.execute(incidents.update().where(incidents.c.id.in_(attach)).values(problem_id=problem_id))
        sqlite = driver_sql.is_sqlite(conn)
        if notify_jira:
            statement = _COUNT_JOINED_FOR_COMMENT
            parameters: tuple[Any, ...] = (joined, joined, driver_sql.datetime_value(now, sqlite), problem_id)
        else:
            statement, parameters = _COUNT_JOINED, (joined, problem_id)
        driver_sql.execute(conn, statement if sqlite else driver_sql.psycopg_text(statement), parameters)

    def link_issue(
        self, conn: Connection, problem_id: int, key: str, url: str, linked_by: str, issue_id: str | None = None
    ) -> bool:
        """Link a problem to an issue unless it already has one (see `Problem.link`); False if it had one.

        Raises:
            IntegrityError: the issue is already linked to another live problem.
        """
        problem = self.find_problem(conn, problem_id, for_update=True)
        if problem is None or problem.jira_key is not None:
            return False
        self.save_problem(conn, problem, problem.link(key, url, linked_by, issue_id))
        return True

    # Jira identity: moves, create attempts and twins --------------------------------

    def note_create_attempt(self, problem_id: int, at: datetime) -> None:
        """Record, in a transaction of its own, that the bridge is about to ask Jira to create the issue."""
        self.run(
            lambda conn: conn.execute(
                problems.update().where(problems.c.id == problem_id).values(jira_create_attempted_at=at)
            )
        )

    def follow_issue_move(
        self, conn: Connection, old_key: str, new_key: str, url: str, issue_id: str | None, now: datetime
    ) -> list[int]:
        """Problems linked to `old_key` follow their issue to `new_key`, each with a "jira_moved" event.

        Returns the problems changed. Closed problems follow too, so their history and a
        release naming the new key still find them.
        """
        moved = []
        for problem in self.problems_for_issues(conn, [old_key]):
            if issue_id is not None and problem.jira_issue_id not in (None, issue_id):
                continue
            self.save_problem(conn, problem, problem.issue_moved(new_key, url, issue_id))
            moved.append(problem.stored_id)
        if moved:
            self.record_key_move(conn, old_key, new_key, now)
        self.add_problem_events(
            conn,
            [
                dict(problem_id=pid, at=now, kind="jira_moved", detail=f"{old_key} moved to {new_key}; link follows")
                for pid in moved
            ],
        )
        return moved

    def relink_to_oldest(
        self, conn: Connection, problem_id: int, key: str, url: str, issue_id: str | None, twins: str, now: datetime
    ) -> bool:
        """Link a problem to the oldest of its twin issues instead of the one it holds; False if gone or closed."""
        problem = self.find_problem(conn, problem_id, for_update=True)
        if problem is None or problem.is_closed or problem.jira_key == key:
            return False
        before = problem.jira_key
        linked = problem.unlink().link(key, url, problem.jira_linked_by or "bridge", issue_id)
        self.save_problem(conn, problem, replace(linked, conclusion=problem.conclusion))
        self.add_problem_events(
            conn,
            [
                dict(
                    problem_id=problem_id,
                    at=now,
                    kind="jira_twin",
                    detail=f"linked to {key}, the oldest issue for this problem, instead of {before} ({twins})",
                )
            ],
        )
        return True

    def live_problems_for_issue_id(self, issue_id: str, conn: Connection | None = None) -> list[Problem]:
        """Problems (not closed) linked to the Jira issue with this immutable id."""
        query = sa.select(problems).where(problems.c.jira_issue_id == issue_id, problems.c.state != _CLOSED)
        if conn is not None:
            return [problem_from_row(row) for row in conn.execute(query).mappings()]
        return self.read(lambda c: self.live_problems_for_issue_id(issue_id, c))

    def record_jira_link(self, problem_id: int, key: str, url: str, linked_by: str) -> bool:
        """`link_issue` in a transaction of its own."""
        return self.run(lambda conn: self.link_issue(conn, problem_id, key, url, linked_by))

    def record_comment(self, problem_id: int, reported: int, text_hash: str, now: datetime) -> int:
        """Count `reported` incidents as told to Jira; returns how many joined meanwhile."""

        def work(conn: Connection) -> int:
            remaining = problems.c.comment_pending - reported
            row = conn.execute(
                problems.update()
                .where(problems.c.id == problem_id)
                .values(
                    comment_pending=remaining,
                    last_comment_at=now,
                    last_comment_hash=text_hash,
                    comment_pending_since=sa.case((remaining > 0, now), else_=None),
                )
                .returning(problems.c.comment_pending)
            ).first()
            return row[0] if row else 0

        return self.run(work)

    @staticmethod
    def record_key_move(conn: Connection, old_key: str, new_key: str, now: datetime) -> None:
        """Remember that `old_key` is now `new_key`; keys that led to `old_key` lead on to `new_key`."""
        conn.execute(jira_key_moves.update().where(jira_key_moves.c.new_key == old_key).values(new_key=new_key))
        conn.execute(jira_key_moves.delete().where(jira_key_moves.c.old_key == old_key))
        conn.execute(jira_key_moves.insert().values(old_key=old_key, new_key=new_key, moved_at=now))

    @staticmethod
    def current_keys(conn: Connection, keys: Sequence[str]) -> dict[str, str]:
        """Each key as the issue is known now: a key it moved away from maps to its new key."""
        found = conn.execute(
            sa.select(jira_key_moves.c.old_key, jira_key_moves.c.new_key).where(
                jira_key_moves.c.old_key.in_(sorted(set(keys)))
            )
        ).all()
        moved = {old: new for old, new in found}
        return {key: moved.get(key, key) for key in keys}

    @staticmethod
    def problems_for_issues(conn: Connection, keys: Sequence[str]) -> list[Problem]:
        """Every problem (any state) linked to one of the issues, locked."""
        if not keys:
            return []
        query = sa.select(problems).where(problems.c.jira_key.in_(sorted(set(keys)))).order_by(problems.c.id)
        return [problem_from_row(row) for row in conn.execute(query.with_for_update()).mappings()]

    @staticmethod
    def close_problems_and_incidents(
        conn: Connection,
        problem_ids: Sequence[int],
        now: datetime,
        close_reason: str,
        *,
        fixed_in: str | None = None,
        fixed_at: datetime | None = None,
    ) -> tuple[dict[int, int], dict[int, list[tuple[str, list[str] | None]]]]:
        """Close problems and every incident linked to them, whatever their state, in bulk.

        Returns incidents closed per problem and, per problem, the dedup key and source ids
        of each closed Zabbix incident (to close them in Zabbix). Four statements however
        many incidents: no round trip per row.
        """
        if not problem_ids:
            return {}, {}
        open_incidents = (incidents.c.problem_id.in_(problem_ids), incidents.c.state != IncidentState.CLOSED.value)
        counts: dict[int, int] = dict(
            conn.execute(
                sa.select(incidents.c.problem_id, sa.func.count())
                .where(*open_incidents)
                .group_by(incidents.c.problem_id)
            ).all()
        )
        zabbix: dict[int, list[tuple[str, list[str] | None]]] = {}
        for row in conn.execute(
            sa.select(incidents.c.problem_id, incidents.c.dedup_key, incidents.c.source_ids)
            .where(*open_incidents, incidents.c.source == "zabbix")
            .order_by(incidents.c.id)
        ):
            zabbix.setdefault(int(row.problem_id), []).append((row.dedup_key, row.source_ids))
        conn.execute(
            incidents.update()
            .where(*open_incidents)
            .values(state=IncidentState.CLOSED.value, closed_at=now, close_reason=close_reason)
        )
        # Problem.close for many problems in one statement: a release closes them set-based.
        values: dict[str, Any] = {"state": _CLOSED, "closed_at": now}
        if fixed_in is not None:
            values.update(fixed_in=fixed_in, fixed_at=fixed_at)
        conn.execute(problems.update().where(problems.c.id.in_(problem_ids)).values(values))
        return {int(pid): int(n) for pid, n in counts.items()}, zabbix

    @staticmethod
    def add_problem_events(conn: Connection, events: Sequence[Mapping[str, Any]]) -> None:
        """Write events into their problems' history; one that repeats a problem's latest event coalesces.

        A webhook resent, a ticket system saying the same again, every incident from one old
        version: the latest row counts them (`repeat_count`, `last_at`) instead of growing the
        history by a row each, so a history grows with what changed, not with how often it
        was said. A different event in between starts a new row.
        """
        if not events:
            return
        latest = _latest_events(conn, sorted({int(e["problem_id"]) for e in events}))
        inserts: list[dict[str, Any]] = []
        repeats: dict[int, dict[str, Any]] = {}
        for event in events:
            values = {**event, "repeat_count": 1}
            same = tuple(values.get(name) for name in _COALESCED_BY)
            problem_id = int(values["problem_id"])
            last = latest.get(problem_id)
            if last is None or last[0] != same:
                inserts.append(values)
                latest[problem_id] = (same, values)
                continue
            row = last[1]
            if isinstance(row, dict):
                row["repeat_count"] += 1
                row["last_at"] = values["at"]
                row["incident_id"] = values.get("incident_id") or row.get("incident_id")
                continue
            repeat = repeats.setdefault(row, {"times": 0, "incident_id": None})
            repeat["times"] += 1
            repeat["last_at"] = values["at"]
            repeat["incident_id"] = values.get("incident_id") or repeat["incident_id"]
        for row_id, repeat in repeats.items():
            conn.execute(
                problem_events.update()
                .where(problem_events.c.id == row_id)
                .values(
                    repeat_count=problem_events.c.repeat_count + repeat["times"],
                    last_at=repeat["last_at"],
                    incident_id=sa.func.coalesce(repeat["incident_id"], problem_events.c.incident_id),
                )
            )
        if inserts:
            columns = {name for values in inserts for name in values}
            conn.execute(problem_events.insert(), [{name: values.get(name) for name in columns} for values in inserts])

    @staticmethod
    def latest_fixed_problem(conn: Connection, problem_key: str) -> Problem | None:
        """The newest closed problem for a key whose fix shipped in a release, locked."""
        row = (
            conn.execute(
                sa.select(problems)
                .where(
                    problems.c.problem_key == problem_key, problems.c.state == _CLOSED, problems.c.fixed_in.is_not(None)
                )
                .order_by(problems.c.id.desc())
                .limit(1)
                .with_for_update()
            )
            .mappings()
            .first()
        )
        return problem_from_row(row) if row else None

    @staticmethod
    def attach_incident(conn: Connection, problem_id: int, incident_id: int) -> None:
        conn.execute(incidents.update().where(incidents.c.id == incident_id).values(problem_id=problem_id))
        conn.execute(
            problems.update().where(problems.c.id == problem_id).values(incident_count=problems.c.incident_count + 1)
        )

    def live_problems_for_issue(self, key: str, conn: Connection | None = None) -> list[Problem]:
        """Problems (not closed) linked to a Jira issue."""
        query = sa.select(problems).where(problems.c.jira_key == key, problems.c.state != _CLOSED)
        if conn is not None:
            return [problem_from_row(row) for row in conn.execute(query).mappings()]
        return self.read(lambda c: self.live_problems_for_issue(key, c))

    def issues_due_for_sync(self, older_than: datetime) -> list[str]:
        """Jira keys of live linked problems whose conclusion was not read since `older_than`."""
        query = (
            sa.select(problems.c.jira_key)
            .distinct()
            .where(
                problems.c.jira_key.is_not(None),
                problems.c.state != _CLOSED,
                sa.or_(problems.c.conclusion_updated_at.is_(None), problems.c.conclusion_updated_at < older_than),
            )
        )
        return self.read(lambda conn: list(conn.execute(query).scalars()))

    def set_conclusion(self, key: str, conclusion: str | None, now: datetime) -> int:
        """Mirror an issue's conclusion onto its live problems; returns how many changed."""
        return self.run(
            lambda conn: (
                conn.execute(
                    problems.update()
                    .where(problems.c.jira_key == key, problems.c.state != _CLOSED)
                    .values(conclusion=conclusion, conclusion_updated_at=now)
                ).rowcount
            )
        )

    def get_problem(self, problem_id: int, conn: Connection | None = None) -> dict[str, Any] | None:
        """A problem as a row: the shape the API, the pages and the Jira linker read."""
        if not 0 < problem_id <= MAX_ID:
            return None
        query = sa.select(problems).where(problems.c.id == problem_id)
        if conn is not None:
            row = conn.execute(query).mappings().first()
            return dict(row) if row else None
        return self.read(lambda c: self.get_problem(problem_id, c))
