"""Migrating: replicas that start together migrate once, and a database out of reach is named."""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command as alembic_command

from bridge.errors import StoreUnavailable
from bridge.storage.engine import _alembic_config, make_engine, migrate, schema_is_current
from tests.conftest import free_port, new_pg_database


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_processes_migrating_a_fresh_database_at_once_migrate_it_once(backend: str, tmp_path: Path, caplog):
    """Three replicas started together with `serve --migrate`: each returns, one ran the migrations."""
    caplog.set_level(logging.INFO, logger="alembic")
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'fresh.db'}" if backend == "sqlite" else stack.enter_context(new_pg_database())
        start = threading.Barrier(3)
        errors: list[BaseException] = []

        def replica() -> None:
            start.wait()
            try:
                migrate(url)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=replica) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert schema_is_current(url)
    first_steps = [record for record in caplog.records if record.getMessage().startswith("Running upgrade  -> 0001")]
    assert len(first_steps) == 1


def test_a_sqlite_database_in_a_missing_directory_is_named_when_migrating(tmp_path: Path):
    with pytest.raises(StoreUnavailable, match=r"cannot open the database's lock file: .*No such file or directory"):
        migrate(f"sqlite:///{tmp_path / 'missing' / 'bridge.db'}")


def test_a_postgresql_server_that_does_not_answer_is_named_when_migrating():
    with pytest.raises(StoreUnavailable, match=r"cannot reach the database: .*refused"):
        migrate(f"postgresql://postgres@127.0.0.1:{free_port()}/bridge")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0018_adds_the_sessions_table_and_its_downgrade_drops_it(backend: str, tmp_path: Path):
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'steps.db'}" if backend == "sqlite" else stack.enter_context(new_pg_database())
        migrate(url)
        alembic_command.downgrade(_alembic_config(url), "0017")
        engine = make_engine(url)
        assert "ui_sessions" not in sa.inspect(engine).get_table_names()
        engine.dispose()
        migrate(url)
        engine = make_engine(url)
        indexes = {index["name"] for index in sa.inspect(engine).get_indexes("ui_sessions")}
        engine.dispose()
        assert indexes == {"ix_ui_sessions_actor", "ix_ui_sessions_expires_at"}
        assert schema_is_current(url)
