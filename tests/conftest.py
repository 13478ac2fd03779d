"""Shared fixtures: recorded payloads, stores on SQLite and PostgreSQL, a running bridge."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import sqlalchemy as sa
import yaml

from bridge.rules.load import load_rules
from bridge.storage.engine import migrate
from bridge.storage.schema import metadata
from bridge.storage.store import Store

ROOT = Path(__file__).resolve().parent.parent
PAYLOADS = Path(__file__).resolve().parent / "fixtures" / "payloads"
PG_ADMIN_URL = os.environ.get("BRIDGE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def payload_bytes(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def payload(name: str) -> Any:
    return json.loads(payload_bytes(name))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def example_rules():
    return load_rules(ROOT / "rules.yaml")


def example_rules_with(environ: dict[str, str] | None = None, **sections: Any):
    """The example rules with these top-level sections set (heartbeats, maintenance, notify...)."""
    from bridge.rules.load import parse_rules

    raw = yaml.safe_load((ROOT / "rules.yaml").read_text())
    raw.update(sections)
    return parse_rules(raw, environ=environ or {})


@contextlib.contextmanager
def new_pg_database() -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped afterwards."""
    name = f"bridge_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session, migrated to head."""
    with new_pg_database() as url:
        migrate(url)
        yield url


def empty_tables(store: Store) -> None:
    with store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
            return
        names = ", ".join(table.name for table in metadata.sorted_tables)
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY"))


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on both backends: a fresh SQLite file, or the emptied PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'bridge.db'}"
        migrate(url)
        yield url
        return
    url = request.getfixturevalue("pg_database_url")
    store = Store.from_url(url)
    empty_tables(store)
    store.engine.dispose()
    yield url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store.from_url(database_url)
    yield store
    store.engine.dispose()


def ingest(
    store: Store,
    rules,
    source: str,
    body: bytes,
    now: datetime,
    content_type: str | None = None,
    rejected_body_limit: int = 1024 * 1024,
):
    """One webhook body through the bridge's own path (prepare, then write), as the receiver does it."""
    from bridge.ingest.deliveries import prepare_delivery, write_deliveries

    delivery = prepare_delivery(store, rules, source, body, now, content_type, rejected_body_limit)
    [result] = write_deliveries(store, rules, [delivery], rejected_body_limit)
    return result


def run_concurrently(database_url: str, works: list[Callable[[Store], object]]) -> None:
    """Each work runs in a thread with its own engine (as separate servers have), all starting at once;
    re-raises the first error any of them met."""
    start = threading.Barrier(len(works))
    errors: list[BaseException] = []

    def run(work: Callable[[Store], object]) -> None:
        store = Store.from_url(database_url)
        try:
            start.wait()
            work(store)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.engine.dispose()

    threads = [threading.Thread(target=run, args=(work,)) for work in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def ingest_concurrently(database_url: str, rules, bodies_per_writer: list[list[bytes]]) -> None:
    """Each writer (a thread with its own engine, as separate servers have) ingests its bodies,
    all starting at once; re-raises the first error any writer met."""

    def writer(bodies: list[bytes]) -> Callable[[Store], None]:
        def deliver(store: Store) -> None:
            for body in bodies:
                ingest(store, rules, "alertmanager", body, datetime.now(UTC))

        return deliver

    run_concurrently(database_url, [writer(bodies) for bodies in bodies_per_writer])


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    """Poll until `predicate` returns something truthy (and return it), or fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def build_app(tmp_path: Path, environ: dict[str, str], clock: Clock | None = None):
    """A Flask app on a fresh, migrated SQLite database with the example rules and the given settings."""
    from bridge.app import create_app
    from bridge.config import load_settings

    url = f"sqlite:///{tmp_path / 'app.db'}"
    migrate(url)
    settings = load_settings(environ, database_url=url, rules_path=str(ROOT / "rules.yaml"))
    return create_app(settings, now=clock) if clock is not None else create_app(settings)


class Clock:
    """A settable clock for tests that need time to pass."""

    def __init__(self, start: datetime | None = None) -> None:
        self.value = start or datetime(2026, 11, 23, 19, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.value

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.value += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


class BridgeProcess:
    """`incident-bridge serve` in a subprocess, as an operator runs it."""

    def __init__(
        self,
        database_url: str,
        env: dict[str, str] | None = None,
        workers: int = 2,
        options: tuple[str, ...] = (),
        ca_file: str | None = None,
    ) -> None:
        self.options = options
        self.port = free_port()
        # With ca_file, it serves HTTPS (BRIDGE_TLS_CERT in `env`) under a certificate that CA signed.
        self.verify: str | bool = ca_file or True
        self.url = f"{'https' if ca_file else 'http'}://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "BRIDGE_DATABASE_URL": database_url,
            "BRIDGE_RULES": str(ROOT / "rules.yaml"),
            "BRIDGE_BIND": f"127.0.0.1:{self.port}",
            "BRIDGE_HTTP_WORKERS": str(workers),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="bridge-", suffix=".log", delete=False)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def __enter__(self) -> BridgeProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "serve", *self.options],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bridge exited: {self.output()}")
            try:
                if requests.get(self.url + "/readyz", timeout=1, verify=self.verify).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise RuntimeError("bridge did not become ready in 30 s")

    def kill_hard(self) -> None:
        """kill -9 the whole process tree (master, HTTP workers, background worker)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # nothing may outlive the test
        except ProcessLookupError:
            pass
