"""The background worker: passes run on their own and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from bridge.domain.incidents import IncidentState
from bridge.storage.read_models import IncidentFilter
from bridge.storage.schema import incidents
from bridge.storage.store import Store
from bridge.worker import run_forever
from tests.conftest import ROOT, wait_for
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
