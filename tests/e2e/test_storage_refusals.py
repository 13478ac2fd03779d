"""A full or read-only database is named: its own 503, one ERROR line per burst, `/readyz` failing while writes do."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from bridge.app import create_app
from bridge.config import load_settings
from bridge.storage.engine import migrate
from bridge.storage.outages import FULL_MESSAGE, READ_ONLY_MESSAGE
from tests.conftest import PG_ADMIN_URL, ROOT, Clock, new_pg_database, payload

AM = {"Authorization": "Bearer am-token", "Content-Type": "application/json"}
BURST = 20
# SQLite's largest page count: room again.
ROOMY = 2**30


def app_on(url: str, clock: Clock) -> Any:
    settings = load_settings(
        {"BRIDGE_TOKEN_ALERTMANAGER": "am-token"}, database_url=url, rules_path=str(ROOT / "rules.yaml")
    )
    return create_app(settings, now=clock)


def alerts(n: int) -> bytes:
    """A notification of five alerts no other `n` has: new incidents, new rows, new pages."""
    body = payload("alertmanager-0.25-two-firing.json")
    template = body["alerts"][0]
    fingerprints = [f"{n:08x}{i:08x}" for i in range(5)]
    body["alerts"] = [
        dict(template, fingerprint=fp, labels=dict(template["labels"], instance=fp)) for fp in fingerprints
    ]
    return json.dumps(body).encode()


def post(client: Any, n: int) -> Any:
    return client.post("/api/v1/alerts/alertmanager", data=alerts(n), headers=AM)


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bridge.storage.outages" and r.levelno == logging.ERROR]


class PageCap:
    """SQLite's max_page_count set on each transaction: a database at its size limit fails as a full disk does
    (SQLITE_FULL, "database or disk is full"), on any machine, without a small file system."""

    def __init__(self, engine: sa.Engine) -> None:
        self.pages: int | None = None
        event.listen(engine, "begin", self._apply)

    def _apply(self, conn: sa.Connection) -> None:
        if self.pages is not None:
            # Below the current size, SQLite takes the current size: no page more.
            conn.connection.dbapi_connection.execute(f"PRAGMA max_page_count = {self.pages}")  # type: ignore[union-attr]


def test_a_full_sqlite_database_is_named_logged_once_per_burst_and_not_ready_until_room_returns(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
):
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    migrate(url)
    app = app_on(url, clock)
    client = app.test_client()
    cap = PageCap(app.extensions["bridge"].store.engine)
    assert post(client, 0).status_code == 200
    cap.pages = 1
    caplog.set_level(logging.INFO)
    # The pages still partly free take a few more; then every write needs a page there is not.
    taken = 1
    while post(client, taken).status_code == 200:
        taken += 1
        assert taken < 200, "the capped database never filled"
    burst = [post(client, taken + 1 + i) for i in range(BURST)]

    for answer in burst:
        assert answer.status_code == 503
        assert (answer.json["error"], answer.json["message"]) == ("storage_full", FULL_MESSAGE)
        assert answer.headers["Retry-After"] == "30"
    [line] = refusal_lines(caplog)
    assert (line.getMessage(), line.error, line.cause) == (FULL_MESSAGE, "storage_full", "database or disk is full")
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json.get("error")) == (503, "storage_full")

    cap.pages = ROOMY
    assert client.get("/readyz").status_code == 200
    assert post(client, 1000).status_code == 200
    assert len(refusal_lines(caplog)) == 1, "a burst and the readiness polls during it: one line"
    [resumed] = [r for r in caplog.records if r.getMessage() == "database accepts writes again"]
    assert resumed.refusals_not_logged == BURST + 1, "the burst and /readyz's probe, after the first"


@pytest.fixture
def read_only_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A migrated database and the switch that makes it read-only (True) or writable again (False)."""
    if request.param == "sqlite":
        path = tmp_path / "bridge.db"
        migrate(f"sqlite:///{path}")
        # The file opened read-only (SQLITE_READONLY): as root, no file mode refuses a write.
        yield f"sqlite:///file:{path}?mode=ro&uri=true", None
        return
    with new_pg_database() as url:
        migrate(url)
        name = url.rsplit("/", 1)[1]

        def switch(read_only: bool) -> None:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                setting = (
                    "SET default_transaction_read_only = on" if read_only else "RESET default_transaction_read_only"
                )
                conn.execute(f'ALTER DATABASE "{name}" {setting}')

        yield url, switch


@pytest.mark.parametrize("read_only_url", ["sqlite", "postgres"], indirect=True)
def test_a_read_only_database_is_named_logged_once_and_not_ready(
    read_only_url: tuple[str, Any], clock: Clock, caplog: pytest.LogCaptureFixture
):
    url, switch = read_only_url
    app = app_on(url, clock)
    client = app.test_client()
    store = app.extensions["bridge"].store
    caplog.set_level(logging.INFO)
    if switch is not None:
        assert post(client, 0).status_code == 200
        switch(True)
        store.engine.dispose()  # the setting holds for new sessions
        before_any_write = client.get("/readyz")
        assert (before_any_write.status_code, before_any_write.json.get("error")) == (503, "storage_read_only")

    burst = [post(client, 1 + i) for i in range(BURST)]
    for answer in burst:
        assert answer.status_code == 503
        assert (answer.json["error"], answer.json["message"]) == ("storage_read_only", READ_ONLY_MESSAGE)
    [line] = refusal_lines(caplog)
    assert line.error == "storage_read_only"
    expected = "attempt to write a readonly database" if switch is None else "transaction_read_only is on"
    assert line.cause.startswith(expected)
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json.get("error")) == (503, "storage_read_only")
    assert len(refusal_lines(caplog)) == 1
    if switch is None:
        return
    switch(False)
    store.engine.dispose()
    assert client.get("/readyz").status_code == 200
    assert post(client, 100).status_code == 200


def test_postgres_disk_full_is_named_and_logged_once_per_burst(clock: Clock, caplog: pytest.LogCaptureFixture):
    """PostgreSQL's disk_full (53100) as its server raises it, from a trigger: a disk cannot be filled here."""
    with new_pg_database() as url:
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE FUNCTION disk_is_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "RAISE EXCEPTION 'could not extend file \"base/1/2\": No space left on device' "
                "USING ERRCODE = 'disk_full'; END $$"
            )
            conn.execute("CREATE TRIGGER disk_is_full BEFORE INSERT ON incidents EXECUTE FUNCTION disk_is_full()")
        app = app_on(url, clock)
        client = app.test_client()
        caplog.set_level(logging.INFO)
        burst = [post(client, i) for i in range(BURST)]
        app.extensions["bridge"].store.engine.dispose()

    for answer in burst:
        assert answer.status_code == 503
        assert (answer.json["error"], answer.json["message"]) == ("storage_full", FULL_MESSAGE)
    [line] = refusal_lines(caplog)
    assert line.cause == 'could not extend file "base/1/2": No space left on device'


@contextlib.contextmanager
def small_file_system(size: str) -> Iterator[Path]:
    """A tmpfs of `size` (root only: skipped where mounting is not allowed), where PostgreSQL's user may reach it."""
    where = Path(tempfile.mkdtemp(prefix="bridge-small-"))
    where.chmod(0o755)
    try:
        mounted = (
            os.geteuid() == 0
            and not subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]).returncode
        )
        if not mounted:
            pytest.skip("mounting a small file system needs root")
        try:
            yield where
        finally:
            subprocess.run(["umount", "-l", str(where)], check=False)
    finally:
        where.rmdir()


def fill(file_system: Path, leave: int) -> Path:
    """A file taking all the room but `leave` bytes."""
    filler = file_system / "filler"
    with filler.open("wb") as out:
        out.write(bytes(max(0, shutil.disk_usage(file_system).free - leave)))
    return filler


@contextlib.contextmanager
def database_on(kind: str, file_system: Path) -> Iterator[str]:
    """A migrated database whose files live on `file_system`: a SQLite file, or a PostgreSQL database in a
    tablespace there (the server runs on this machine, as it does for the tests)."""
    if kind == "sqlite":
        url = f"sqlite:///{file_system / 'bridge.db'}"
        migrate(url)
        yield url
        return
    directory = file_system / "postgres"
    directory.mkdir()
    shutil.chown(directory, "postgres", "postgres")
    space, name = f"small_{uuid.uuid4().hex[:8]}", f"bridge_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE TABLESPACE {space} LOCATION '{directory}'")
        conn.execute(f'CREATE DATABASE "{name}" TABLESPACE {space}')
    try:
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        migrate(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f"DROP TABLESPACE IF EXISTS {space}")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_full_disk_is_named_and_not_ready_until_space_is_freed(
    kind: str, clock: Clock, caplog: pytest.LogCaptureFixture
):
    """A real full disk: a small file system under a SQLite file, or under a PostgreSQL tablespace."""
    with small_file_system("40m") as small, database_on(kind, small) as url:
        app = app_on(url, clock)
        client = app.test_client()
        try:
            assert post(client, 0).status_code == 200
            filler = fill(small, leave=64 * 1024)
            caplog.set_level(logging.INFO)
            taken = 1
            while (answer := post(client, taken)).status_code == 200:
                taken += 1
                assert taken < 200, "the full disk never refused a write"
            assert (answer.status_code, answer.json["error"]) == (503, "storage_full")
            [line] = refusal_lines(caplog)
            if kind == "sqlite":
                assert line.cause == "database or disk is full"
            else:
                assert line.cause.startswith("could not extend file") and line.cause.endswith("No space left on device")
            ready = client.get("/readyz")
            assert (ready.status_code, ready.json.get("error")) == (503, "storage_full")

            filler.unlink()
            assert client.get("/readyz").status_code == 200
            assert post(client, 1000).status_code == 200
        finally:
            app.extensions["bridge"].store.engine.dispose()
