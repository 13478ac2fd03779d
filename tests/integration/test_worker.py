"""The background worker: passes run on their own and SIGTERM stops it cleanly."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.domain.incidents import IncidentState
from bridge.storage.engine import migrate
from bridge.storage.outages import READ_ONLY_MESSAGE
from bridge.storage.read_models import IncidentFilter
from bridge.storage.schema import incidents
from bridge.storage.store import Store
from bridge.worker import run_forever
from tests.conftest import ROOT, new_pg_database, wait_for
from tests.integration.test_storage import incident_row

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def test_worker_loop_closes_due_incidents_without_being_asked(store: Store):
    with store.engine.begin() as conn:
        conn.execute(incidents.insert(), incident_row(state="resolved", resolved_at=T0, auto_close_at=T0))
    stop = threading.Event()
    thread = threading.Thread(target=run_forever, args=(store, 0.05, lambda: T0 + timedelta(seconds=1), stop))
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        [incident] = store.list_incidents(IncidentFilter(), 10, None).items
        if incident.state is IncidentState.CLOSED:
            break
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert (incident.state, incident.close_reason) == (IncidentState.CLOSED, "auto_closed")


def test_worker_process_stops_on_sigterm(database_url: str):
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "worker"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        env={**os.environ, "BRIDGE_DATABASE_URL": database_url, "BRIDGE_WORKER_INTERVAL_SECONDS": "0.1"},
    )
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    # Signal only once the handlers are in place ("worker started" is logged after them):
    # on a loaded machine the interpreter's start-up alone can take longer than a fixed sleep.
    wait_for(lambda: any(b"worker started" in line for line in lines), 30, "the worker to start", interval=0.05)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
    reader.join(10)
    assert process.returncode == 0
    assert any(b"worker stopped" in line for line in lines)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_pass_on_a_read_only_database_is_logged_with_its_cause(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """The worker's line names why its pass failed (read-only, the driver's words), not only 'unavailable'."""
    with contextlib.ExitStack() as stack:
        if backend == "sqlite":
            path = tmp_path / "bridge.db"
            url, read_only = f"sqlite:///{path}", f"sqlite:///file:{path}?mode=ro&uri=true"
        else:
            url = read_only = stack.enter_context(new_pg_database())
        migrate(url)
        writable = Store.from_url(url)
        with writable.engine.begin() as conn:  # an incident due to close: the pass must write
            conn.execute(incidents.insert(), incident_row(state="resolved", resolved_at=T0, auto_close_at=T0))
            if backend == "postgres":
                conn.exec_driver_sql(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" SET default_transaction_read_only = on')
        writable.engine.dispose()
        store = Store.from_url(read_only)
        stack.callback(store.engine.dispose)
        stop = threading.Event()

        def one_pass() -> datetime:
            stop.set()
            return T0 + timedelta(seconds=1)

        caplog.set_level(logging.INFO)
        run_forever(store, 0.01, one_pass, stop)
    [line] = [r for r in caplog.records if r.name == "bridge.worker" and r.levelno == logging.WARNING]
    assert (line.error, line.reason) == ("storage_read_only", READ_ONLY_MESSAGE)
    expected = "attempt to write a readonly database" if backend == "sqlite" else "cannot execute UPDATE in a read-only"
    assert line.cause.startswith(expected)
