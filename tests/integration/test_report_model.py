"""The report's read model on SQLite and PostgreSQL: how problems closed, and migration 0014."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from bridge.problems.actions import close_problem_by_hand
from bridge.storage.engine import _alembic_config, make_engine, migrate
from bridge.storage.report_model import ReportScope
from bridge.storage.schema import metadata, problem_events
from bridge.storage.store import Store
from tests.conftest import new_pg_database
from tests.integration.test_outcomes import T0, Bridge
from tests.jira_memory import MemoryJira


def scope(start: datetime, end: datetime) -> ReportScope:
    return ReportScope(start - (end - start), start, end, end, frozenset())


def test_wont_do_and_closing_by_hand_are_told_apart(store: Store, example_rules):
    bridge = Bridge(store, example_rules, MemoryJira())
    wont, key = bridge.open_problem("A")
    by_hand, _ = bridge.open_problem("B")
    bridge.jira.resolve(key, "Won't Do")
    bridge.sync(key)  # Jira's outcome closes it: an event no person is named on
    close_problem_by_hand(store, by_hand, "not ours", bridge.now, example_rules, actor="Ann")
    totals = store.problem_totals(scope(T0 - timedelta(hours=1), bridge.now + timedelta(hours=1)))
    assert totals["wont_do"] == {True: 1}
    assert totals["closed_by_hand"] == {True: 1}
    assert totals["known_errors"] == {True: 2}  # both issues were created and linked by the worker
    assert totals["opened"] == {True: 2}
    assert store.get_problem(wont)["outcome"] == "wont_do"
    earlier = store.problem_totals(scope(T0 - timedelta(days=2), T0 - timedelta(days=1)))
    assert earlier["opened"] == {} and "wont_do" not in earlier


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0014_names_the_incidents_of_past_recurrences_and_steps_back(backend: str, tmp_path):
    """Events written before 0014 named their incident in the text; the migration reads it from there."""
    at = datetime(2026, 10, 1, tzinfo=UTC)
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'steps.db'}" if backend == "sqlite" else stack.enter_context(new_pg_database())
        config = _alembic_config(url)
        alembic_command.upgrade(config, "0013")
        engine = make_engine(url)
        old_events = sa.table(
            "problem_events", *(sa.column(name) for name in ("problem_id", "at", "kind", "detail", "release_version"))
        )
        with engine.begin() as conn:
            conn.execute(
                old_events.insert(),
                [
                    dict(
                        problem_id=1,
                        at=at,
                        kind="regressed",
                        detail="incident 42 on version 1.2 after the fix in 1.3",
                        release_version="1.3",
                    ),
                    dict(
                        problem_id=1,
                        at=at,
                        kind="not_deployed",
                        detail="incident 7 from version 1.1, older than the fix in 1.3",
                        release_version="1.3",
                    ),
                    dict(
                        problem_id=1, at=at, kind="opened", detail="opened by rule portal-errors", release_version=None
                    ),
                ],
            )
        engine.dispose()
        migrate(url)
        engine = make_engine(url)
        with engine.connect() as conn:
            named = conn.execute(
                sa.select(problem_events.c.kind, problem_events.c.incident_id).order_by(problem_events.c.id)
            ).all()
        engine.dispose()
        alembic_command.downgrade(config, "0013")
        migrate(url)
        engine = make_engine(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        engine.dispose()
    assert named == [("regressed", 42), ("not_deployed", 7), ("opened", None)]
    assert [d for d in diff if d[0] != "remove_table"] == []
