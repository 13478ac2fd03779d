"""Reads that must not grow with history, held to their plans among 200,000 incidents: the live count reads
only the live incidents' index, and a problem's oldest incidents come from its index, not a walk."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bench.growth import load
from bridge.storage.engine import migrate
from bridge.storage.read_models import IncidentFilter
from bridge.storage.store import Store
from tests.conftest import new_pg_database

INCIDENTS = 200_000


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def grown(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A store with 200,000 incidents (40,000 live; problem 1 holds the oldest 10,000), loaded set-based."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('grown') / 'grown.db'}"
        migrate(url)
        load(url, INCIDENTS, 1_000)
        store = Store.from_url(url)
        yield store
        store.engine.dispose()
        return
    with new_pg_database() as url:
        migrate(url)
        load(url, INCIDENTS, 1_000)
        store = Store.from_url(url)
        yield store
        store.engine.dispose()


def plans(store: Store, read) -> list[str]:
    """The plan of every statement `read` runs, as the database explains it."""
    statements: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany) -> None:
        if not statement.startswith("EXPLAIN"):
            statements.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", keep)
    try:
        read()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", keep)
    explained = []
    with store.engine.connect() as conn:
        prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
        for statement, parameters in statements:
            if statement.lstrip().upper().startswith("SELECT"):
                rows = conn.exec_driver_sql(prefix + statement, parameters).all()
                explained.append("\n".join(str(row[-1]) for row in rows))
    return explained


def test_the_live_count_reads_the_live_index_alone(grown: Store):
    [plan] = [plan for plan in plans(grown, grown.overview_counts) if "incidents" in plan]
    assert "ix_incidents_live" in plan, plan
    if grown.engine.dialect.name == "postgresql":
        assert "Index Only Scan" in plan, plan
    else:
        assert "COVERING INDEX ix_incidents_live" in plan and "TEMP B-TREE" not in plan, plan


def test_a_problems_oldest_incidents_come_from_its_index_not_a_walk_of_newer_ones(grown: Store):
    page = grown.list_incidents(IncidentFilter(problem_id=1), 50, None)
    assert [incident.id for incident in page.items] == list(range(10_000, 9_950, -1))
    [plan] = plans(grown, lambda: grown.list_incidents(IncidentFilter(problem_id=1), 50, None))
    assert "ix_incidents_problem_id_id" in plan, plan


def test_the_newest_closed_incidents_come_from_the_state_index_not_a_sort_of_all_closed(grown: Store):
    page = grown.list_incidents(IncidentFilter(state="closed"), 50, None)
    assert [incident.id for incident in page.items] == list(range(INCIDENTS - 40_000, INCIDENTS - 40_050, -1))
    [plan] = plans(grown, lambda: grown.list_incidents(IncidentFilter(state="closed"), 50, None))
    assert "ix_incidents_state_id" in plan and "TEMP B-TREE" not in plan, plan
